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
        # A shallow copy with ReadableSpan's own fields set: a third of the cost of a new StoredSpan, on every span
        # of an Azure export.
        clone = object.__new__(StoredSpan)
        clone.__dict__.update(self.__dict__)
        clone._attributes = dict(self.attributes) if attributes is None else attributes
        clone._events = events
        clone._start_time = (self.start_time or 0) + shift_ns
        clone._end_time = (self.end_time or 0) + shift_ns
        return clone

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


# The span columns rebuild_spans reads, in the order it unpacks them.
_SPAN_FIELDS = ("ingest_seq", "trace_id", "span_id", "parent_span_id", "trace_state", "flags", "name", "kind",
                "start_time_ns", "end_time_ns", "status_code", "status_message", "resource_id", "scope_name",
                "scope_version", "attributes", "dropped_attributes_count", "dropped_events_count",
                "dropped_links_count")
_TRACE_FLAGS = [TraceFlags(value) for value in range(256)]


def _trace_flags(flags: int) -> TraceFlags:
    return _TRACE_FLAGS[flags & 0xFF]


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
    data = spans.select(list(_SPAN_FIELDS)).to_pydict()
    result: list[StoredSpan] = []
    unset = Status(StatusCode.UNSET)
    ok = Status(StatusCode.OK)
    for (seq, trace_hex, span_hex, parent_hex, trace_state, flags, name, kind, start, end, status_code,
         status_message, resource_id, scope_name, scope_version, attributes, dropped_attributes, dropped_events,
         dropped_links) in zip(*(data[column] for column in _SPAN_FIELDS)):
        flags = flags or 0
        trace_id = int(trace_hex, 16)
        context = SpanContext(trace_id, int(span_hex, 16), is_remote=False, trace_flags=_trace_flags(flags),
                              trace_state=_trace_state(trace_state) if trace_state else None)
        parent = None
        if parent_hex:
            remote = bool(flags & _HAS_IS_REMOTE and flags & _IS_REMOTE)
            parent = SpanContext(trace_id, int(parent_hex, 16), is_remote=remote)
        span_events: list[StoredEvent] = []
        if events_by_span:
            event_rows = events_by_span.get((seq if events_have_seq else None, trace_hex, span_hex))
            if event_rows:
                span_events = [
                    StoredEvent(e["name"], _loads(e["attributes"]), e["time_ns"], e.get("dropped_attributes_count") or 0)
                    for e in sorted(event_rows, key=lambda e: e["event_index"])]
        span_links: list[Link] = []
        if links_by_span:
            link_rows = links_by_span.get((seq if links_have_seq else None, trace_hex, span_hex))
            if link_rows:
                span_links = [
                    Link(SpanContext(int(link["linked_trace_id"], 16), int(link["linked_span_id"], 16), is_remote=bool(
                        (link["flags"] or 0) & _HAS_IS_REMOTE and (link["flags"] or 0) & _IS_REMOTE),
                        trace_flags=TraceFlags((link["flags"] or 0) & 0xFF),
                        trace_state=_trace_state(link["trace_state"])),
                        _loads(link["attributes"]))
                    for link in sorted(link_rows, key=lambda link: link["link_index"])]
        code = _STATUS.get(status_code, StatusCode.UNSET)
        # The SDK keeps a description only on ERROR; elsewhere OTLP says it must be empty anyway.
        status = Status(code, status_message) if code is StatusCode.ERROR else ok if code is StatusCode.OK else unset
        result.append(StoredSpan(
            name=name,
            context=context,
            parent=parent,
            resource=resources.get(resource_id),
            attributes=_loads(attributes),
            events=span_events,
            links=span_links,
            kind=_KINDS.get(kind, SpanKind.INTERNAL),
            status=status,
            start_time=start,
            end_time=end,
            instrumentation_scope=_scope(scope_name, scope_version),
            store_key=(seq, trace_hex, span_hex),
            dropped=(dropped_attributes or 0, dropped_events or 0, dropped_links or 0),
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
