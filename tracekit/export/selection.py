"""Which stored spans an export takes, and reading them from the store page by page.

A selection is what the user typed: trace ids, conversation ids, a time window, a KQL query. It becomes SQL over
the `spans` table, always read through a `StoreReader` (read-only; the running collector's read API when it owns
the file). Spans are listed in the store's own order, (ingest_seq, trace_id, span_id): new spans only ever arrive
after the ones already there, so a cursor in that order says exactly what is done and what is left.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from tracekit.errors import TracekitError
from tracekit.redaction.columns import TableRedactor
from tracekit.export.rebuild import ResourceCache, StoredSpan, log_key, rebuild_log_records, rebuild_spans
from tracekit.store.open_spans import NOT_LIVE_RECORD
from tracekit.store.reader import StoreReader

StoreKey = tuple[int, str, str]  # (ingest_seq, trace_id, span_id)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_HEX32 = re.compile(r"^[0-9a-f]{32}$")


class SelectionError(TracekitError):
    """A selection option that cannot be understood (bad time, bad trace id, KQL without the right columns)."""


def parse_time(text: str, *, now_ns: int | None = None) -> int:
    """A `--since/--until` value to Unix ns: a duration back from now (`90s`, `30m`, `2h`, `1d`, `1w`) or an ISO
    8601 date-time (`2026-11-20T08:00:00Z`; no zone means UTC)."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    match = _DURATION.match(text)
    if match:
        amount, unit = float(match.group(1)), match.group(2)
        return now_ns - int(amount * _UNIT_SECONDS[unit] * 1e9)
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise SelectionError(
            f"cannot read the time {text!r}: give a duration such as 30m, 2h, 1d, or an ISO date-time such as "
            "2026-11-20T08:00:00Z") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1_000_000) * 1000


def normalize_trace_id(text: str) -> str:
    """A trace id as the store keeps it (32 lowercase hex), or a SelectionError saying what is wrong."""
    value = text.strip().lower().removeprefix("0x").replace("-", "")
    if not _HEX32.match(value):
        raise SelectionError(f"{text!r} is not a trace id (32 hexadecimal digits, e.g. 4bf92f3577b34da6a3ce929d0e0e4736)")
    return value


@dataclass(frozen=True)
class Selection:
    """The spans an export takes. Empty means every stored span."""

    trace_ids: tuple[str, ...] = ()
    conversation_ids: tuple[str, ...] = ()
    since_ns: int | None = None
    until_ns: int | None = None
    where: str | None = None          # KQL whose rows name spans (operation_Id + id), or traces (operation_Id only)
    whole_traces: bool = False        # widen every selected span to its whole trace
    description: str = ""             # the options as the user gave them: the cursor's identity for this selection

    def describe(self) -> str:
        """A stable text for this selection (relative times stay relative, so a re-run finds the same cursor)."""
        if self.description:
            return self.description
        parts = [f"trace={','.join(self.trace_ids)}" if self.trace_ids else "",
                 f"conversation={','.join(self.conversation_ids)}" if self.conversation_ids else "",
                 f"since={self.since_ns}" if self.since_ns is not None else "",
                 f"until={self.until_ns}" if self.until_ns is not None else "",
                 f"where={self.where}" if self.where else "", "whole-traces" if self.whole_traces else ""]
        return ";".join(p for p in parts if p) or "all"


MAX_AGENT_DEPTH = 64   # ancestors looked at for the main agent (cycles in bad data end there)
AGENT_EXTRA_COLUMNS = ("agent_name, agent_id, conversation_id, "
                       "CASE WHEN agent_name IS NOT NULL THEN attributes->>'gen_ai.agent.version' END AS agent_version")
AGENT_COLUMNS = f"trace_id, span_id, parent_span_id, {AGENT_EXTRA_COLUMNS}"

SPAN_COLUMNS = (
    "ingest_seq, trace_id, span_id, parent_span_id, trace_state, flags, name, kind, start_time_ns, end_time_ns, "
    "status_code, status_message, resource_id, scope_name, scope_version, attributes, "
    "dropped_attributes_count, dropped_events_count, dropped_links_count"
)


@dataclass
class SpanPage:
    """One page of the selection, rebuilt: spans in store order and the log records correlated with them."""

    keys: list[StoreKey]
    spans: list[StoredSpan]
    logs: list[Any]                 # ReadableLogRecord
    log_keys: list[str]
    main_agents: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (trace, span) -> agent
    costs: dict[tuple[str, str], float] = field(default_factory=dict)  # (trace, span) -> cost_usd, priced spans only


class StoreSource:
    """Lists and reads the spans of a selection from a store."""

    def __init__(self, reader: StoreReader, selection: Selection, *, redactor: TableRedactor | None = None) -> None:
        self.reader = reader
        self.selection = selection
        # Every table a page is built from is masked as it is read (tracekit.redaction.columns: the collector's
        # function), so each sender, rows or rebuilt SDK objects, only ever sees redacted values.
        self.redactor = redactor
        self.resources = ResourceCache()
        self._span_logs: bool | None = None
        self._has_cost: bool | None = None
        self._kql_keys: list[str] | None = None
        self._kql_traces: list[str] | None = None

    # --- selecting -----------------------------------------------------------------------------------------------
    def _filters(self) -> tuple[list[str], list[Any]]:
        selection = self.selection
        clauses: list[str] = []
        params: list[Any] = []
        if selection.trace_ids:
            clauses.append("s.trace_id IN (SELECT unnest(?::VARCHAR[]))")
            params.append(list(selection.trace_ids))
        if selection.conversation_ids:
            clauses.append("s.trace_id IN (SELECT trace_id FROM spans WHERE conversation_id IN "
                           "(SELECT unnest(?::VARCHAR[])))")
            params.append(list(selection.conversation_ids))
        if selection.since_ns is not None:
            clauses.append("s.start_time >= make_timestamp(?::BIGINT)")
            params.append(selection.since_ns // 1000)
        if selection.until_ns is not None:
            clauses.append("s.start_time < make_timestamp(?::BIGINT)")
            params.append(selection.until_ns // 1000)
        if selection.where:
            self._resolve_kql()
            if selection.whole_traces or self._kql_keys is None:
                clauses.append("s.trace_id IN (SELECT unnest(?::VARCHAR[]))")
                params.append(self._kql_traces)
            else:
                clauses.append("s.trace_id || s.span_id IN (SELECT unnest(?::VARCHAR[]))")
                params.append(self._kql_keys)
        elif selection.whole_traces and clauses:
            inner = " AND ".join(clauses)
            clauses = [f"s.trace_id IN (SELECT s.trace_id FROM spans s WHERE {inner})"]
        return clauses, params

    def _resolve_kql(self) -> None:
        if self._kql_traces is not None:
            return
        table = run_kql(self.reader, self.selection.where or "")
        names = {name.lower(): name for name in table.column_names}
        trace_col = next((names[n] for n in ("operation_id", "operationid", "trace_id") if n in names), None)
        span_col = next((names[n] for n in ("id", "span_id") if n in names), None)
        if trace_col is None:
            raise SelectionError(
                "the --where query must return the spans' operation_Id (and id) columns, e.g. "
                "'dependencies | where customDimensions[\"gen_ai.agent.name\"] == \"planner\"'; "
                f"it returned {', '.join(table.column_names) or 'no columns'}")
        traces = [t for t in table.column(trace_col).to_pylist() if t]
        self._kql_traces = sorted(set(traces))
        if span_col is not None:
            spans = table.column(span_col).to_pylist()
            self._kql_keys = sorted({t + s for t, s in zip(table.column(trace_col).to_pylist(), spans) if t and s})

    def list_keys(self, after: StoreKey | None = None) -> list[StoreKey]:
        """Every selected span after `after`, in store order, as (ingest_seq, trace_id, span_id)."""
        clauses, params = self._filters()
        if after is not None:
            seq, trace_id, span_id = after
            clauses.append("(s.ingest_seq > ? OR (s.ingest_seq = ? AND (s.trace_id > ? OR "
                           "(s.trace_id = ? AND s.span_id > ?))))")
            params += [seq, seq, trace_id, trace_id, span_id]
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        table = self.reader.sql(
            f"SELECT DISTINCT s.ingest_seq, s.trace_id, s.span_id FROM spans s {where} "
            "ORDER BY s.ingest_seq, s.trace_id, s.span_id", params)
        data = table.to_pydict()
        return list(zip(data["ingest_seq"], data["trace_id"], data["span_id"]))

    def latest_end_ns(self) -> int | None:
        """The latest end time (Unix ns) of the whole selection, cursor or not: the anchor for --retime."""
        clauses, params = self._filters()
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        value = self.reader.sql(f"SELECT max(s.end_time_ns) AS latest FROM spans s {where}", params).column(0)[0]
        return value.as_py()

    # --- reading -------------------------------------------------------------------------------------------------
    def read(self, table: str, sql: str, params: list[Any] | None = None) -> pa.Table:
        """Rows of the store table `table` (any of its columns), redacted when the export has a policy."""
        result = self.reader.sql(sql, params or [])
        return self.redactor.redact_table(table, result) if self.redactor is not None else result

    def main_agents(self, keys: list[StoreKey], known: dict[tuple[str, str], dict[str, Any]] | None = None,
                    ) -> dict[tuple[str, str], dict[str, Any]]:
        """For each span, the outermost agent span among itself and its ancestors (name, id, version,
        conversation id): what Azure Monitor's distro records as `microsoft.gen_ai.main_agent.*` while tracing.

        `known`: rows of AGENT_COLUMNS already read, by (trace_id, span_id)."""
        if not keys:
            return {}
        # Walk each span's parent chain over rows in hand (`known`: the page's own spans), and read the rows of a
        # trace from the store only when a chain leaves them (a recursive CTE per page cost ~10x more).
        nodes: dict[tuple[str, str], dict[str, Any]] = dict(known) if known else {}
        walks = [_walk_to_agent(nodes, trace_id, span_id) for _, trace_id, span_id in keys]
        unresolved = sorted({key[1] for key, (_, complete) in zip(keys, walks) if not complete})
        if unresolved:
            # Trace ids as one comma-joined text: binding long list parameters costs more than the query itself.
            table = self.read(
                "spans", f"SELECT {AGENT_COLUMNS} FROM spans WHERE trace_id IN (SELECT unnest(string_split(?, ',')))",
                [",".join(unresolved)])
            for row in table.to_pylist():
                nodes[(row["trace_id"], row["span_id"])] = row
            walks = [walk if walk[1] else _walk_to_agent(nodes, key[1], key[2]) for key, walk in zip(keys, walks)]
        outermost: dict[tuple[str, str], dict[str, Any]] = {}
        for (_, trace_id, span_id), (found, _) in zip(keys, walks):
            if found is not None:
                depth, node = found
                outermost[(trace_id, span_id)] = {
                    "trace_id": trace_id, "start_id": span_id, "depth": depth, "agent_name": node["agent_name"],
                    "agent_id": node["agent_id"], "conversation_id": node["conversation_id"],
                    "agent_version": node["agent_version"]}
        return outermost

    def fetch(self, keys: list[StoreKey], *, with_logs: bool = True, with_main_agents: bool = False) -> SpanPage:
        """The spans named by `keys` (a slice of `list_keys`), rebuilt, with their events, links and log records;
        `with_main_agents` (the Azure export) adds each span's main agent and stored cost."""
        if not keys:
            return SpanPage([], [], [], [])
        low, high = keys[0][0], keys[-1][0]
        # Ids as one comma-joined text, and no event / link / log query a page does not need (as RowReader).
        joined = ",".join([trace + span for _, trace, span in keys])
        span_ids = ",".join(sorted({span for _, _, span in keys}))
        spans = self.read(
            "spans", f"SELECT {SPAN_COLUMNS}, event_count, link_count{', ' + AGENT_EXTRA_COLUMNS if with_main_agents else ''}"
            f"{', cost_usd' if with_main_agents and self.has_cost() else ''} "
            "FROM spans s WHERE s.ingest_seq BETWEEN ? AND ? "
            "AND s.trace_id || s.span_id IN (SELECT unnest(string_split(?, ','))) "
            "ORDER BY s.ingest_seq, s.trace_id, s.span_id", [low, high, joined])
        data = spans.select(["ingest_seq", "trace_id", "span_id", "event_count", "link_count"]).to_pydict()
        found = list(zip(data["ingest_seq"], data["trace_id"], data["span_id"]))
        if found != keys:
            # Other stored copies of a span (another ingest_seq in the range) or keys gone since listing; `keys`
            # come in the same order (list_keys).
            wanted = set(keys)
            spans = spans.take(pa.array([i for i, key in enumerate(found) if key in wanted], pa.int64()))
        events = links = None
        if any(data["event_count"]):
            events = self.read(
                "span_events", "SELECT ingest_seq, trace_id, span_id, event_index, time_ns, name, attributes, "
                "dropped_attributes_count FROM span_events WHERE ingest_seq BETWEEN ? AND ? "
                "AND span_id IN (SELECT unnest(string_split(?, ',')))", [low, high, span_ids])
        if any(data["link_count"]):
            links = self.read(
                "span_links", "SELECT ingest_seq, trace_id, span_id, link_index, linked_trace_id, linked_span_id, trace_state, "
                "flags, attributes FROM span_links WHERE ingest_seq BETWEEN ? AND ? "
                "AND span_id IN (SELECT unnest(string_split(?, ',')))", [low, high, span_ids])
        self._load_resources(spans.column("resource_id").to_pylist())
        rebuilt = rebuild_spans(spans, events, links, self.resources)
        logs: list[Any] = []
        log_keys: list[str] = []
        if with_logs and self.has_span_logs():
            log_rows = self.read(
                "logs", "SELECT time_ns, observed_time_ns, severity_number, severity_text, body, event_name, trace_id, span_id, "
                "flags, resource_id, scope_name, scope_version, attributes FROM logs "
                "WHERE span_id IN (SELECT unnest(string_split(?, ','))) AND trace_id || span_id IN "
                "(SELECT unnest(string_split(?, ','))) AND " + NOT_LIVE_RECORD + " "
                "ORDER BY trace_id, span_id, time_ns, event_name, attributes",
                [span_ids, joined])
            if log_rows.num_rows:
                self._load_resources(log_rows.column("resource_id").to_pylist())
                logs = rebuild_log_records(log_rows, self.resources)
                log_keys = [log_key(row) for row in log_rows.select(
                    ["trace_id", "span_id", "time_ns", "event_name"]).to_pylist()]
        return SpanPage(keys=[span.store_key for span in rebuilt], spans=rebuilt, logs=logs, log_keys=log_keys,
                        main_agents=self.main_agents(keys, _agent_rows(spans)) if with_main_agents else {},
                        costs=_costs(spans))

    def has_cost(self) -> bool:
        """Whether the store prices model calls (a `cost_usd` column: schema v3 and later)."""
        if self._has_cost is None:
            from tracekit.cost import has_cost_column

            self._has_cost = has_cost_column(self.reader)
        return self._has_cost

    def has_span_logs(self) -> bool:
        """Whether the store holds any log record correlated with a span (asked once; without any, the common case
        for pure tracing, a page costs no log query)."""
        if self._span_logs is None:
            self._span_logs = bool(self.reader.sql(
                "SELECT count(*) FROM (SELECT 1 FROM logs WHERE span_id IS NOT NULL LIMIT 1)").column(0)[0].as_py())
        return self._span_logs

    def _load_resources(self, ids: list[int]) -> None:
        missing = self.resources.missing(ids)
        if missing:
            self.resources.add_rows(self.read(
                "resources", "SELECT resource_id, any_value(attributes) AS attributes, any_value(schema_url) AS schema_url "
                "FROM resources WHERE resource_id IN (SELECT unnest(?::BIGINT[])) GROUP BY resource_id", [missing]))


def _costs(spans: pa.Table) -> dict[tuple[str, str], float]:
    """The priced spans' cost_usd by (trace_id, span_id); none when the rows have no cost column."""
    if "cost_usd" not in spans.column_names:
        return {}
    columns = spans.select(["trace_id", "span_id", "cost_usd"]).to_pydict()
    return {(trace, span): cost for trace, span, cost in zip(*columns.values()) if cost is not None}


def _agent_rows(spans: pa.Table) -> dict[tuple[str, str], dict[str, Any]]:
    """The AGENT_COLUMNS of a page's span rows, by (trace_id, span_id)."""
    columns = spans.select(["trace_id", "span_id", "parent_span_id", "agent_name", "agent_id", "conversation_id",
                            "agent_version"]).to_pydict()
    return {(row[0], row[1]): dict(zip(columns, row)) for row in zip(*columns.values())}


def _walk_to_agent(nodes: dict[tuple[str, str], dict[str, Any]], trace_id: str, span_id: str,
                   ) -> tuple[tuple[int, dict[str, Any]] | None, bool]:
    """(depth, row) of the outermost agent span on the chain from `span_id` up, and whether the chain was complete
    in `nodes` (it ended at a root or at the depth limit, not at a row missing from `nodes`)."""
    current: str | None = span_id
    depth, found = 0, None
    while current is not None and depth <= MAX_AGENT_DEPTH:
        node = nodes.get((trace_id, current))
        if node is None:
            return found, False
        if node["agent_name"] is not None:
            found = (depth, node)
        current = node["parent_span_id"]
        depth += 1
    return found, True


def run_kql(reader: StoreReader, kql: str) -> pa.Table:
    """Run a KQL query over the store's Application Insights-shaped views (via tracekit.query.kql)."""
    try:
        from tracekit.query import kql as kql_engine  # the KQL engine is its own module; loaded only when used
    except ImportError:
        raise SelectionError("--where needs the KQL engine (tracekit.query.kql), which is not installed") from None
    return kql_engine.run_kql(reader, kql)  # QueryError (with line and column) reaches the CLI as one line
