"""Pages of stored spans as plain rows, for destinations that encode OTLP themselves (no SDK objects).

The OTLP path does not need `ReadableSpan`s: rebuilding them costs more than encoding. A `RowPage` holds one page of
the selection as the store returned it — span columns in store order, attributes parsed from their JSON once, the
span's events and links, the correlated log records — and `RowReader` reads such pages with the same queries (and
the same store order) as `StoreSource.fetch`, and redacted as they are read, by the same function (StoreSource.read).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

from tracekit.export.rebuild import log_key
from tracekit.export.selection import SPAN_COLUMNS, StoreKey, StoreSource

_loads = orjson.loads
ChildKey = tuple[int, str, str]  # (ingest_seq, trace_id, span_id): a span stored twice keeps its own children


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
    encoded: dict[str, bytes] = field(default_factory=dict)  # serialized requests by signal, once a sender encoded

    def __len__(self) -> int:
        return len(self.keys)

    def item_keys(self) -> list[str]:
        """The cursor's item keys for the spans (span, then one per event, as azure.span_item_keys)."""
        keys: list[str] = []
        events = self.events
        for key in self.keys:
            base = f"{key[0]}:{key[1]}:{key[2]}"
            keys.append(base)
            span_events = events.get(key)
            if span_events:
                keys.extend(f"{base}#e{index}" for index in range(len(span_events)))
        return keys


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
        self.reader = source.reader
        self._resources: dict[int, tuple[dict[str, Any], str]] = {}

    def fetch(self, keys: list[StoreKey], *, with_logs: bool = True, **_: Any) -> RowPage:
        """The spans named by `keys` (a slice of `StoreSource.list_keys`), in that order, with their children."""
        if not keys:
            return RowPage([], {}, [])
        low, high = keys[0][0], keys[-1][0]
        # Ids go to DuckDB as one comma-joined text (hex ids have no commas): binding a 2,000-element list
        # parameter costs more than the query itself.
        joined = ",".join([trace + span for _, trace, span in keys])
        span_ids = ",".join(sorted({span for _, _, span in keys}))
        table = self.source.read(
            "spans", f"SELECT {SPAN_COLUMNS}, event_count, link_count FROM spans s WHERE s.ingest_seq BETWEEN ? AND ? "
            "AND s.trace_id || s.span_id IN (SELECT unnest(string_split(?, ','))) "
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
                "span_links", "SELECT ingest_seq, trace_id, span_id, link_index, linked_trace_id, linked_span_id, trace_state, "
                "flags, attributes, dropped_attributes_count FROM span_links WHERE ingest_seq BETWEEN ? AND ? "
                "AND span_id IN (SELECT unnest(string_split(?, ',')))", [low, high, span_ids]), "link_index")
        resource_ids = set(columns["resource_id"])
        if with_logs and self.source.has_span_logs():
            logs = self.source.read(
                "logs", "SELECT time_ns, observed_time_ns, severity_number, severity_text, body, event_name, trace_id, "
                "span_id, flags, resource_id, scope_name, scope_version, attributes, dropped_attributes_count "
                "FROM logs WHERE span_id IN (SELECT unnest(string_split(?, ','))) AND trace_id || span_id IN "
                "(SELECT unnest(string_split(?, ','))) ORDER BY trace_id, span_id, time_ns, event_name, attributes",
                [span_ids, joined]).to_pylist()
            for row in logs:
                page.log_keys.append(log_key(row))
                row["attributes"] = _loads(row["attributes"]) if row["attributes"] else {}
                row["body"] = _loads(row["body"]) if row["body"] is not None else None
                resource_ids.add(row["resource_id"])
            page.logs = logs
        page.resources = self._load_resources(resource_ids)
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
