"""Which stored spans an export takes, listed in store order, and the one redacted way to read store tables.

A selection is what the user typed: trace ids, conversation ids, a time window, a KQL query. It becomes SQL over
the `spans` table, always read through a `StoreReader` (read-only; the running collector's read API when it owns
the file). Spans are listed in the store's own order, (ingest_seq, trace_id, span_id): new spans only ever arrive
after the ones already there, so a cursor in that order says exactly what is done and what is left. Pages of the
listed spans are read as rows by rows.RowReader, through `StoreSource.read`, which masks every table it returns.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from tracekit.errors import TracekitError
from tracekit.redaction.columns import TableRedactor
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


class StoreSource:
    """Lists and reads the spans of a selection from a store."""

    def __init__(self, reader: StoreReader, selection: Selection, *, redactor: TableRedactor | None = None) -> None:
        self.reader = reader
        self.selection = selection
        # Every table a page is built from is masked as it is read (`read`: tracekit.redaction.columns, the
        # collector's function), so no sender ever sees an unredacted value.
        self.redactor = redactor
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

    def has_cost(self) -> bool:
        """Whether the store prices model calls (a `spans.cost_usd` column: schema v3 and later)."""
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


def run_kql(reader: StoreReader, kql: str) -> pa.Table:
    """Run a KQL query over the store's Application Insights-shaped views (via tracekit.query.kql)."""
    try:
        from tracekit.query import kql as kql_engine  # the KQL engine is its own module; loaded only when used
    except ImportError:
        raise SelectionError("--where needs the KQL engine (tracekit.query.kql), which is not installed") from None
    return kql_engine.run_kql(reader, kql)  # QueryError (with line and column) reaches the CLI as one line
