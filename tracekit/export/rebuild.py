"""A page of store rows as OpenTelemetry SDK objects (ReadableSpan, ReadableLogRecord): the Azure Monitor sender's
adapter.

AzureMonitorTraceExporter / AzureMonitorLogExporter (and so the envelope builder, which the exporter checks) take
SDK objects, so for that destination the rows of each page (rows.RowPage) are rebuilt exactly as the sender made
them: the same trace, span and parent ids, kind, status, times, attributes, events, links, scope and resource. Resources are built with `Resource(...)`, never `Resource.create`, which would add a
random `service.instance.id` and the SDK's own `telemetry.sdk.*` keys to data that is not ours. (OTLP and OTLP JSON
files do not come through here: `otlp_encode` encodes the rows directly, keeping more.)

Known limits of the SDK objects: a span kind of UNSPECIFIED becomes INTERNAL (the SDK has no UNSPECIFIED), and bytes
values, stored as base64 text, come back as strings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping

from opentelemetry._logs import LogRecord, SeverityNumber
from opentelemetry.context import Context
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.trace import set_span_in_context
from opentelemetry.trace.span import TraceState

if TYPE_CHECKING:
    from tracekit.export.rows import RowPage

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


class ResourceCache:
    """Resources by store id, built once each and kept across pages (a store usually has a handful; the envelope
    builder keys its resource tags on the object)."""

    def __init__(self) -> None:
        self._by_id: dict[int, Resource] = {}

    def get(self, resource_id: int, page: RowPage) -> Resource:
        """The resource with this id exactly as stored (no SDK defaults added; empty if the store lost it)."""
        resource = self._by_id.get(resource_id)
        if resource is None:
            attributes, schema_url = page.resources.get(resource_id, ({}, ""))
            resource = self._by_id[resource_id] = Resource(attributes, schema_url or None)
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
                "scope_version", "dropped_attributes_count", "dropped_events_count", "dropped_links_count")
_TRACE_FLAGS = [TraceFlags(value) for value in range(256)]


def _trace_flags(flags: int) -> TraceFlags:
    return _TRACE_FLAGS[flags & 0xFF]


def _trace_state(header: str | None) -> TraceState | None:
    return TraceState.from_header([header]) if header else None


def _remote(flags: int) -> bool:
    return bool(flags & _HAS_IS_REMOTE and flags & _IS_REMOTE)


def rebuild_spans(page: RowPage, resources: ResourceCache) -> list[StoredSpan]:
    """The page's spans (with their events and links) as StoredSpans, in the page's order."""
    columns = page.spans
    events_by_span, links_by_span = page.events, page.links
    result: list[StoredSpan] = []
    unset = Status(StatusCode.UNSET)
    ok = Status(StatusCode.OK)
    for (seq, trace_hex, span_hex, parent_hex, trace_state, flags, name, kind, start, end, status_code,
         status_message, resource_id, scope_name, scope_version, dropped_attributes, dropped_events,
         dropped_links), attributes in zip(zip(*(columns[column] for column in _SPAN_FIELDS)), page.attributes):
        flags = flags or 0
        trace_id = int(trace_hex, 16)
        context = SpanContext(trace_id, int(span_hex, 16), is_remote=False, trace_flags=_trace_flags(flags),
                              trace_state=_trace_state(trace_state) if trace_state else None)
        parent = SpanContext(trace_id, int(parent_hex, 16), is_remote=_remote(flags)) if parent_hex else None
        key = (seq, trace_hex, span_hex)
        span_events: list[StoredEvent] = []
        event_rows = events_by_span.get(key) if events_by_span else None
        if event_rows:
            span_events = [StoredEvent(e["name"], e["attributes"], e["time_ns"], e["dropped_attributes_count"] or 0)
                           for e in event_rows]
        span_links: list[Link] = []
        link_rows = links_by_span.get(key) if links_by_span else None
        if link_rows:
            span_links = [
                Link(SpanContext(int(link["linked_trace_id"], 16), int(link["linked_span_id"], 16),
                                 is_remote=_remote(link["flags"] or 0), trace_flags=_trace_flags(link["flags"] or 0),
                                 trace_state=_trace_state(link["trace_state"])), link["attributes"])
                for link in link_rows]
        code = _STATUS.get(status_code, StatusCode.UNSET)
        # The SDK keeps a description only on ERROR; elsewhere OTLP says it must be empty anyway.
        status = Status(code, status_message) if code is StatusCode.ERROR else ok if code is StatusCode.OK else unset
        result.append(StoredSpan(
            name=name,
            context=context,
            parent=parent,
            resource=resources.get(resource_id, page),
            attributes=attributes,
            events=span_events,
            links=span_links,
            kind=_KINDS.get(kind, SpanKind.INTERNAL),
            status=status,
            start_time=start,
            end_time=end,
            instrumentation_scope=_scope(scope_name, scope_version),
            store_key=key,
            dropped=(dropped_attributes or 0, dropped_events or 0, dropped_links or 0),
        ))
    return result


def rebuild_log_records(page: RowPage, resources: ResourceCache) -> list[ReadableLogRecord]:
    """The page's log records as ReadableLogRecords, correlated with their span as stored."""
    result: list[ReadableLogRecord] = []
    for row in page.logs:
        trace_hex, span_hex = row["trace_id"], row["span_id"]
        context = Context()
        if trace_hex and span_hex:
            span_context = SpanContext(int(trace_hex, 16), int(span_hex, 16), is_remote=True,
                                       trace_flags=_trace_flags(row["flags"] or 0))
            context = set_span_in_context(NonRecordingSpan(span_context), context)
        record = LogRecord(
            timestamp=row["time_ns"],
            observed_timestamp=row["observed_time_ns"] or row["time_ns"],
            context=context,
            severity_text=row["severity_text"],
            severity_number=_severity(row["severity_number"]),
            body=row["body"],
            attributes=row["attributes"],
            event_name=row["event_name"],
        )
        result.append(ReadableLogRecord(
            log_record=record,
            resource=resources.get(row["resource_id"], page),
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

