"""Store rows back to OpenTelemetry SDK objects: ReadableSpan and ReadableLogRecord, for the Azure Monitor path.

AzureMonitorTraceExporter / AzureMonitorLogExporter take SDK objects, so for that destination the rows are rebuilt
exactly as the sender made them: the same trace, span and parent ids, kind, status, times, attributes, events,
links, scope and resource. Resources are built with `Resource(...)`, never `Resource.create`, which would add a
random `service.instance.id` and the SDK's own `telemetry.sdk.*` keys to data that is not ours. (OTLP and OTLP JSON
files do not come through here: `rows` + `otlp_encode` encode the rows directly, keeping more.)

Known limits of the SDK objects: a span kind of UNSPECIFIED becomes INTERNAL (the SDK has no UNSPECIFIED), and bytes
values, stored as base64 text, come back as strings.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import orjson
import pyarrow as pa
from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.context import Context
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace import set_span_in_context
from opentelemetry.trace.span import TraceState

# OTLP span flags: bit 8 says whether bit 9 (parent is remote) is known.
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200

_KINDS = {
    "INTERNAL": SpanKind.INTERNAL,
    "UNSPECIFIED": SpanKind.INTERNAL,  # the SDK has no UNSPECIFIED; INTERNAL is what OTLP receivers assume
    "SERVER": SpanKind.SERVER,
    "CLIENT": SpanKind.CLIENT,
    "PRODUCER": SpanKind.PRODUCER,
    "CONSUMER": SpanKind.CONSUMER,
}
_STATUS = {"UNSET": StatusCode.UNSET, "OK": StatusCode.OK, "ERROR": StatusCode.ERROR}

_loads = orjson.loads


class StoredSpan(ReadableSpan):
    """A ReadableSpan rebuilt from the store; it also keeps the row's position in the store and its drop counts."""

    def __init__(self, *args: Any, store_key: tuple[int, str, str], dropped: tuple[int, int, int],
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.store_key = store_key  # (ingest_seq, trace_id hex, span_id hex): the export cursor's order
        self._dropped = dropped

    @property
    def dropped_attributes(self) -> int:
        return self._dropped[0]

    @property
    def dropped_events(self) -> int:
        return self._dropped[1]

    @property
    def dropped_links(self) -> int:
        return self._dropped[2]

    def replace(self, *, attributes: Mapping[str, Any] | None = None, shift_ns: int = 0,
                event_attributes: Callable[[Mapping[str, Any]], Mapping[str, Any]] | None = None) -> "StoredSpan":
        """A copy with other attributes, every time (start, end, events) moved by `shift_ns`, and each event's
        attributes passed through `event_attributes`."""
        events = self.events
        if shift_ns or event_attributes:
            events = tuple(StoredEvent(
                e.name, event_attributes(e.attributes or {}) if event_attributes else (e.attributes or {}),
                e.timestamp + shift_ns, e.dropped_attributes) for e in self.events)
        return StoredSpan(
            name=self.name, context=self.context, parent=self.parent, resource=self.resource,
            attributes=dict(self.attributes) if attributes is None else attributes, events=events,
            links=self.links, kind=self.kind, status=self.status, start_time=(self.start_time or 0) + shift_ns,
            end_time=(self.end_time or 0) + shift_ns, instrumentation_scope=self.instrumentation_scope,
            store_key=self.store_key, dropped=self._dropped)

    @property
    def trace_id_hex(self) -> str:
        return self.store_key[1]

    @property
    def span_id_hex(self) -> str:
        return self.store_key[2]


class StoredEvent(Event):
    """A span event rebuilt from the store, with its dropped-attributes count."""

    def __init__(self, name: str, attributes: Mapping[str, Any], timestamp: int, dropped: int) -> None:
        super().__init__(name, attributes, timestamp)
        self._dropped = dropped

    @property
    def dropped_attributes(self) -> int:
        return self._dropped


def resource_from_row(attributes_json: str | None, schema_url: str | None) -> Resource:
    """The Resource exactly as stored (no SDK defaults added)."""
    return Resource(_loads(attributes_json) if attributes_json else {}, schema_url or None)


class ResourceCache:
    """Resources by store id, built once each (a store usually has a handful)."""

    def __init__(self) -> None:
        self._by_id: dict[int, Resource] = {}

    def missing(self, ids: Iterable[int]) -> list[int]:
        """The ids of `ids` not cached yet."""
        return sorted({i for i in ids if i not in self._by_id})

    def add_rows(self, table: pa.Table) -> None:
        """Add rows of the resources table (resource_id, attributes, schema_url)."""
        data = table.to_pydict()
        for resource_id, attributes, schema_url in zip(data["resource_id"], data["attributes"], data["schema_url"]):
            self._by_id.setdefault(resource_id, resource_from_row(attributes, schema_url))

    def get(self, resource_id: int) -> Resource:
        """The resource with this id (an empty resource if the store lost it)."""
        resource = self._by_id.get(resource_id)
        if resource is None:
            resource = self._by_id[resource_id] = Resource({})
        return resource


_scopes: dict[tuple[str | None, str | None], InstrumentationScope | None] = {}


def _scope(name: str | None, version: str | None) -> InstrumentationScope | None:
    key = (name, version)
    scope = _scopes.get(key, False)
    if scope is False:
        scope = InstrumentationScope(name or "", version) if (name or version) else None
        _scopes[key] = scope
    return scope  # type: ignore[return-value]


def _trace_state(header: str | None) -> TraceState | None:
    return TraceState.from_header([header]) if header else None


def _group_by_span(table: pa.Table | None) -> dict[tuple[Any, str, str], list[dict[str, Any]]]:
    """Child rows by (ingest_seq, trace_id, span_id): a span stored twice keeps its own copy of its children."""
    groups: dict[tuple[Any, str, str], list[dict[str, Any]]] = {}
    if table is None or table.num_rows == 0:
        return groups
    for row in table.to_pylist():
        groups.setdefault((row.get("ingest_seq"), row["trace_id"], row["span_id"]), []).append(row)
    return groups


def rebuild_spans(
    spans: pa.Table,
    events: pa.Table | None,
    links: pa.Table | None,
    resources: ResourceCache,
) -> list[StoredSpan]:
    """Rows of `spans` (with their `span_events` and `span_links` rows) to StoredSpans, in the order of `spans`.

    `spans` needs the store's span columns; events and links are matched to their span by (trace_id, span_id)
    and kept in their stored order.
    """
    events_by_span = _group_by_span(events)
    links_by_span = _group_by_span(links)
    events_have_seq = events is not None and "ingest_seq" in events.column_names
    links_have_seq = links is not None and "ingest_seq" in links.column_names
    data = spans.to_pydict()
    result: list[StoredSpan] = []
    for i in range(spans.num_rows):
        trace_hex = data["trace_id"][i]
        span_hex = data["span_id"][i]
        flags = data["flags"][i] or 0
        trace_id = int(trace_hex, 16)
        context = SpanContext(trace_id, int(span_hex, 16), is_remote=False,
                              trace_flags=TraceFlags(flags & 0xFF), trace_state=_trace_state(data["trace_state"][i]))
        parent_hex = data["parent_span_id"][i]
        parent = None
        if parent_hex:
            remote = bool(flags & _HAS_IS_REMOTE and flags & _IS_REMOTE)
            parent = SpanContext(trace_id, int(parent_hex, 16), is_remote=remote)
        key = (data["ingest_seq"][i] if events_have_seq else None, trace_hex, span_hex)
        link_key = (data["ingest_seq"][i] if links_have_seq else None, trace_hex, span_hex)
        event_rows = events_by_span.get(key)
        span_events = [
            StoredEvent(e["name"], _loads(e["attributes"]), e["time_ns"], e.get("dropped_attributes_count") or 0)
            for e in sorted(event_rows, key=lambda e: e["event_index"])
        ] if event_rows else []
        link_rows = links_by_span.get(link_key)
        span_links = [
            Link(SpanContext(int(link["linked_trace_id"], 16), int(link["linked_span_id"], 16), is_remote=bool(
                (link["flags"] or 0) & _HAS_IS_REMOTE and (link["flags"] or 0) & _IS_REMOTE),
                trace_flags=TraceFlags((link["flags"] or 0) & 0xFF), trace_state=_trace_state(link["trace_state"])),
                _loads(link["attributes"]))
            for link in sorted(link_rows, key=lambda link: link["link_index"])
        ] if link_rows else []
        status_code = _STATUS.get(data["status_code"][i], StatusCode.UNSET)
        # The SDK keeps a description only on ERROR; elsewhere OTLP says it must be empty anyway.
        status = Status(status_code, data["status_message"][i] if status_code is StatusCode.ERROR else None)
        result.append(StoredSpan(
            name=data["name"][i],
            context=context,
            parent=parent,
            resource=resources.get(data["resource_id"][i]),
            attributes=_loads(data["attributes"][i]),
            events=span_events,
            links=span_links,
            kind=_KINDS.get(data["kind"][i], SpanKind.INTERNAL),
            status=status,
            start_time=data["start_time_ns"][i],
            end_time=data["end_time_ns"][i],
            instrumentation_scope=_scope(data["scope_name"][i], data["scope_version"][i]),
            store_key=(data["ingest_seq"][i], trace_hex, span_hex),
            dropped=(data["dropped_attributes_count"][i] or 0, data["dropped_events_count"][i] or 0,
                     data["dropped_links_count"][i] or 0),
        ))
    return result


def rebuild_log_records(logs: pa.Table, resources: ResourceCache) -> list[ReadableLogRecord]:
    """Rows of the logs table to ReadableLogRecords, correlated with their span as stored."""
    result: list[ReadableLogRecord] = []
    for row in logs.to_pylist():
        trace_hex, span_hex = row["trace_id"], row["span_id"]
        context = Context()
        if trace_hex and span_hex:
            span_context = SpanContext(int(trace_hex, 16), int(span_hex, 16), is_remote=True,
                                       trace_flags=TraceFlags((row["flags"] or 0) & 0xFF))
            context = set_span_in_context(NonRecordingSpan(span_context), context)
        severity = row["severity_number"]
        record = LogRecord(
            timestamp=row["time_ns"],
            observed_timestamp=row["observed_time_ns"] or row["time_ns"],
            context=context,
            severity_text=row["severity_text"],
            severity_number=_severity(severity),
            body=_loads(row["body"]) if row["body"] is not None else None,
            attributes=_loads(row["attributes"]),
            event_name=row["event_name"],
        )
        result.append(ReadableLogRecord(
            log_record=record,
            resource=resources.get(row["resource_id"]),
            instrumentation_scope=_scope(row["scope_name"], row["scope_version"]),
        ))
    return result


def _severity(number: int | None) -> SeverityNumber | None:
    if not number:
        return None
    try:
        return SeverityNumber(number)
    except ValueError:
        return None


def log_key(row: Mapping[str, Any]) -> str:
    """A stable identity for a stored log record (the logs table has no id column)."""
    return f"log:{row['trace_id']}:{row['span_id']}:{row['time_ns']}:{row['event_name'] or ''}"
