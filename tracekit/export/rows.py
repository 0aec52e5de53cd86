"""The export's one page model: a page of stored rows, read once and redacted as read, that each sender adapts.

A `RowPage` holds one page of the selection as the store returned it: span columns in store order, attributes
parsed from their JSON once, the spans' events and links, the correlated log records and the resources they name,
and, when the destination asks for them, each span's main agent. `RowReader` reads such pages through the source's
`read`, so every table is masked by the one redaction function (tracekit.redaction.columns) before any sender sees
it. A sender turns a page into what it sends (`PreparedPage`): the OTLP sender encodes protobuf from the rows, the
Azure Monitor sender rebuilds the exporter's SDK objects from them (rebuild.py) and builds their envelopes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

import orjson
import pyarrow as pa

from tracekit.export.selection import StoreKey, StoreSource
from tracekit.store.open_spans import NOT_LIVE_RECORD

if TYPE_CHECKING:
    from tracekit.export.limits import LimitReport

_loads = orjson.loads
ChildKey = tuple[int, str, str]  # (ingest_seq, trace_id, span_id): a span stored twice keeps its own children

SPAN_COLUMNS = (
    "ingest_seq, trace_id, span_id, parent_span_id, trace_state, flags, name, kind, start_time_ns, end_time_ns, "
    "status_code, status_message, resource_id, scope_name, scope_version, attributes, "
    "dropped_attributes_count, dropped_events_count, dropped_links_count"
)
MAX_AGENT_DEPTH = 64   # ancestors looked at for the main agent (cycles in bad data end there)
AGENT_EXTRA_COLUMNS = ("agent_name, agent_id, conversation_id, "
                       "CASE WHEN agent_name IS NOT NULL THEN attributes->>'gen_ai.agent.version' END AS agent_version")
AGENT_COLUMNS = f"trace_id, span_id, parent_span_id, {AGENT_EXTRA_COLUMNS}"


def log_key(row: Mapping[str, Any]) -> str:
    """A stable identity for a stored log record (the logs table has no id column)."""
    return f"log:{row['trace_id']}:{row['span_id']}:{row['time_ns']}:{row['event_name'] or ''}"


@dataclass
class RowPage:
    """One page: spans (columns, in store order) with parsed attributes, events, links and log records."""

    keys: list[StoreKey]
    spans: dict[str, list[Any]]                       # SPAN_COLUMNS as Python lists
    attributes: list[dict[str, Any]]                  # parsed span attributes, one per span
    events: dict[ChildKey, list[dict[str, Any]]] = field(default_factory=dict)  # by event_index, parsed
    links: dict[ChildKey, list[dict[str, Any]]] = field(default_factory=dict)   # by link_index, parsed
    logs: list[dict[str, Any]] = field(default_factory=list)                    # rows, attributes/body parsed
    log_keys: list[str] = field(default_factory=list)
    resources: dict[int, tuple[dict[str, Any], str]] = field(default_factory=dict)  # id -> (attributes, schema)
    main_agents: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (trace, span) -> agent
    costs: dict[tuple[str, str], float] = field(default_factory=dict)  # (trace, span) -> cost_usd, priced spans only

    def __len__(self) -> int:
        return len(self.keys)

    def item_keys(self) -> list[str]:
        """The cursor's item keys for the spans: each span, then one per event (the Azure exporter's order)."""
        keys: list[str] = []
        events = self.events
        for key in self.keys:
            base = f"{key[0]}:{key[1]}:{key[2]}"
            keys.append(base)
            span_events = events.get(key)
            if span_events:
                keys.extend(f"{base}#e{index}" for index in range(len(span_events)))
        return keys

    def span_names(self) -> dict[str, str]:
        """Each span's item key -> its name (the summary names refused items)."""
        return {f"{seq}:{trace_id}:{span_id}": name
                for (seq, trace_id, span_id), name in zip(self.keys, self.spans.get("name", ()))}


@dataclass
class PreparedPage:
    """A page as a sender made it ready to send (on the prefetch thread), with what it refused before sending."""

    rows: RowPage
    payload: Any                                      # the sender's own: encoded requests, envelopes, ...
    refused: dict[str, tuple[int, str]] = field(default_factory=dict)  # item key -> (status, reason)
    limits: LimitReport | None = None                 # what the destination's limits changed (Azure Monitor)


def _children(table: pa.Table, order_column: str) -> dict[ChildKey, list[dict[str, Any]]]:
    groups: dict[ChildKey, list[dict[str, Any]]] = {}
    if not table.num_rows:
        return groups
    for row in table.to_pylist():
        row["attributes"] = _loads(row["attributes"]) if row["attributes"] else {}
        groups.setdefault((row["ingest_seq"], row["trace_id"], row["span_id"]), []).append(row)
    for rows in groups.values():
        rows.sort(key=lambda row: row[order_column])
    return groups


class RowReader:
    """Reads pages of a selection's spans as rows (the selection and store of a `StoreSource`)."""

    def __init__(self, source: StoreSource) -> None:
        self.source = source
        self._resources: dict[int, tuple[dict[str, Any], str]] = {}

    def fetch(self, keys: list[StoreKey], *, with_logs: bool = True, with_main_agents: bool = False) -> RowPage:
        """The spans named by `keys` (a slice of `StoreSource.list_keys`), in that order, with their children.

        `with_main_agents`: also each span's outermost agent (`main_agents`), for Azure Monitor's main-agent keys,
        and its stored price (`costs`), for the `tracekit.cost_usd` measurement."""
        if not keys:
            return RowPage([], {}, [])
        low, high = keys[0][0], keys[-1][0]
        # Ids go to DuckDB as one comma-joined text (hex ids have no commas): binding a 2,000-element list
        # parameter costs more than the query itself.
        joined = ",".join([trace + span for _, trace, span in keys])
        span_ids = ",".join(sorted({span for _, _, span in keys}))
        agent_columns = f", {AGENT_EXTRA_COLUMNS}" if with_main_agents else ""
        if with_main_agents and self.source.has_cost():
            agent_columns += ", cost_usd"
        table = self.source.read(
            "spans", f"SELECT {SPAN_COLUMNS}, event_count, link_count{agent_columns} FROM spans s "
            "WHERE s.ingest_seq BETWEEN ? AND ? AND s.trace_id || s.span_id IN (SELECT unnest(string_split(?, ','))) "
            "ORDER BY s.ingest_seq, s.trace_id, s.span_id", [low, high, joined])
        columns = table.to_pydict()
        found = list(zip(columns["ingest_seq"], columns["trace_id"], columns["span_id"]))
        if found != keys:
            # Other stored copies of a span (another ingest_seq in the range) or keys gone since listing.
            wanted = set(keys)
            indices = [index for index, key in enumerate(found) if key in wanted]
            columns = {name: [values[i] for i in indices] for name, values in columns.items()}
            found = [found[i] for i in indices]
        page = RowPage(keys=found, spans=columns,
                       attributes=[_loads(text) if text else {} for text in columns["attributes"]])
        # Most pages have no events or links at all: skip those queries then.
        if any(columns["event_count"]):
            page.events = _children(self.source.read(
                "span_events", "SELECT ingest_seq, trace_id, span_id, event_index, time_ns, name, attributes, "
                "dropped_attributes_count FROM span_events WHERE ingest_seq BETWEEN ? AND ? "
                "AND span_id IN (SELECT unnest(string_split(?, ',')))", [low, high, span_ids]), "event_index")
        if any(columns["link_count"]):
            page.links = _children(self.source.read(
                "span_links", "SELECT ingest_seq, trace_id, span_id, link_index, linked_trace_id, linked_span_id, "
                "trace_state, flags, attributes, dropped_attributes_count FROM span_links WHERE ingest_seq BETWEEN ? "
                "AND ? AND span_id IN (SELECT unnest(string_split(?, ',')))", [low, high, span_ids]), "link_index")
        resource_ids = set(columns["resource_id"])
        if with_logs and self.source.has_span_logs():
            logs = self.source.read(
                "logs", "SELECT time_ns, observed_time_ns, severity_number, severity_text, body, event_name, trace_id, "
                "span_id, flags, resource_id, scope_name, scope_version, attributes, dropped_attributes_count "
                "FROM logs WHERE span_id IN (SELECT unnest(string_split(?, ','))) AND trace_id || span_id IN "
                "(SELECT unnest(string_split(?, ','))) AND " + NOT_LIVE_RECORD + " "
                "ORDER BY trace_id, span_id, time_ns, event_name, attributes",
                [span_ids, joined]).to_pylist()
            for row in logs:
                page.log_keys.append(log_key(row))
                row["attributes"] = _loads(row["attributes"]) if row["attributes"] else {}
                row["body"] = _loads(row["body"]) if row["body"] is not None else None
                resource_ids.add(row["resource_id"])
            page.logs = logs
        page.resources = self._load_resources(resource_ids)
        if with_main_agents:
            page.main_agents = self.main_agents(found, _agent_rows(columns))
            page.costs = {(trace, span): cost for trace, span, cost in zip(
                columns["trace_id"], columns["span_id"], columns.get("cost_usd", ())) if cost is not None}
        return page

    def _load_resources(self, ids: set[int]) -> dict[int, tuple[dict[str, Any], str]]:
        missing = [i for i in ids if i not in self._resources and i is not None]
        if missing:
            rows = self.source.read(
                "resources", "SELECT resource_id, any_value(attributes) AS attributes, any_value(schema_url) AS schema_url "
                "FROM resources WHERE resource_id IN (SELECT unnest(?::BIGINT[])) GROUP BY resource_id",
                [sorted(missing)]).to_pylist()
            for row in rows:
                self._resources[row["resource_id"]] = (
                    _loads(row["attributes"]) if row["attributes"] else {}, row["schema_url"] or "")
        # A resource the store lost is sent empty rather than failing the export.
        return {i: self._resources.get(i, ({}, "")) for i in ids}

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
            table = self.source.read(
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


_AGENT_FIELDS = ("trace_id", "span_id", "parent_span_id", "agent_name", "agent_id", "conversation_id", "agent_version")


def _agent_rows(columns: dict[str, list[Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """The AGENT_COLUMNS of a page's span columns, by (trace_id, span_id)."""
    return {(row[0], row[1]): dict(zip(_AGENT_FIELDS, row)) for row in zip(*(columns[name] for name in _AGENT_FIELDS))}


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
