"""Stored rows straight to OTLP protobuf requests (ExportTraceServiceRequest, ExportLogsServiceRequest).

Rebuilding SDK `ReadableSpan`s and running the SDK's pure-Python encoder is slow; encoding the rows directly into
`opentelemetry.proto` messages costs several times less (docs/export.md, bench/export.py), and keeps what the SDK objects lose: span kind
UNSPECIFIED, the whole span/link `flags` word (W3C trace flags and the parent-is-remote bits), link trace states and
dropped-attribute counts on links.

The hot part is attributes (a dozen per span, mostly repeating values such as the provider or the model). Each
distinct (key, value) is turned into a KeyValue once and kept as the serialized bytes of a one-attribute message of
the right type (`Span(attributes=[kv])`); a span's attributes are then one `MergeFromString` of the joined
fragments: protobuf merges repeated fields by appending, and the parsing runs in upb's C code instead of a Python
loop of setters. Resources and scopes are grouped as OTLP wants them: one ResourceSpans per stored resource, one
ScopeSpans per (scope name, version), in the page's order.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import orjson

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from tracekit.export.rows import RowPage

SPAN_KINDS = {"UNSPECIFIED": Span.SPAN_KIND_UNSPECIFIED, "INTERNAL": Span.SPAN_KIND_INTERNAL,
              "SERVER": Span.SPAN_KIND_SERVER, "CLIENT": Span.SPAN_KIND_CLIENT,
              "PRODUCER": Span.SPAN_KIND_PRODUCER, "CONSUMER": Span.SPAN_KIND_CONSUMER}
STATUS_CODES = {"UNSET": Status.STATUS_CODE_UNSET, "OK": Status.STATUS_CODE_OK, "ERROR": Status.STATUS_CODE_ERROR}

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_MAX_FRAGMENTS_PER_KEY = 20_000  # distinct values cached per attribute key


def any_value(value: Any) -> AnyValue:
    """A stored JSON value as an OTLP AnyValue: lists become arrays, objects key-value lists, None an empty value.

    Integers outside int64 (JSON allows them, OTLP does not) and non-finite markers stay as they were stored: text.
    """
    kind = type(value)
    if kind is str:
        return AnyValue(string_value=value)
    if kind is bool:
        return AnyValue(bool_value=value)
    if kind is int:
        if _INT64_MIN <= value <= _INT64_MAX:
            return AnyValue(int_value=value)
        return AnyValue(string_value=str(value))
    if kind is float:
        return AnyValue(double_value=value) if math.isfinite(value) else AnyValue(string_value=str(value))
    if kind is list:
        return AnyValue(array_value=ArrayValue(values=[any_value(item) for item in value]))
    if kind is dict:
        return AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key=k, value=any_value(v))
                                                          for k, v in value.items()]))
    if value is None:
        return AnyValue()
    return AnyValue(string_value=str(value))


class AttributeFragments:
    """Serialized one-attribute messages of one type (Span, Span.Event, ...), cached by (key, value)."""

    def __init__(self, message: Callable[..., Any]) -> None:
        # One reused message with one KeyValue: a new fragment is two field sets and a serialization.
        self._holder = message()
        self._entry = self._holder.attributes.add()
        self._by_type: dict[type, dict[str, dict[Any, bytes]]] = {}  # type -> key -> value -> fragment

    def _fragment(self, key: str, value: Any) -> bytes:
        entry = self._entry
        entry.key = key
        kind = type(value)
        if kind is str:
            entry.value.string_value = value
        elif kind is bool:
            entry.value.bool_value = value
        elif kind is int and _INT64_MIN <= value <= _INT64_MAX:
            entry.value.int_value = value
        else:
            entry.value.CopyFrom(any_value(value))
        return self._holder.SerializeToString()

    def encode(self, attributes: dict[str, Any]) -> bytes:
        """The attributes as bytes that, merged into an empty message of this type, set its `attributes`."""
        by_type = self._by_type
        parts = []
        for key, value in attributes.items():
            kind = type(value)
            # Separate caches per type (True == 1 in Python, not in OTLP); lists and objects by their JSON text.
            by_key = by_type.get(kind)
            if by_key is None:
                by_key = by_type[kind] = {}
            by_value = by_key.get(key)
            if by_value is None:
                by_value = by_key[key] = {}
            lookup = orjson.dumps(value) if kind is list or kind is dict else value
            fragment = by_value.get(lookup)
            if fragment is None:
                if len(by_value) >= _MAX_FRAGMENTS_PER_KEY:  # a high-cardinality key (ids): keep memory bounded
                    by_value.clear()
                fragment = by_value[lookup] = self._fragment(key, value)
            parts.append(fragment)
        return b"".join(parts)


def _id(hex_text: str | None) -> bytes:
    return bytes.fromhex(hex_text) if hex_text else b""


class OtlpEncoder:
    """Encodes row pages into OTLP export requests; keeps its attribute caches across pages."""

    def __init__(self) -> None:
        self._span_attributes = AttributeFragments(Span)
        self._event_attributes = AttributeFragments(Span.Event)
        self._link_attributes = AttributeFragments(Span.Link)
        self._log_attributes = AttributeFragments(LogRecord)
        self._resources: dict[int, bytes] = {}

    def _scope_items(self, page: RowPage, by_resource: dict[int, Any], resources: Any, scopes_field: str,
                     items_field: str, resource_id: int, scope_name: str | None, scope_version: str | None) -> Any:
        """The repeated items field (spans or log records) for one resource and scope, adding the Resource* and
        Scope* messages the first time they are needed. Shared by the trace and the log requests."""
        outer = by_resource.get(resource_id)
        if outer is None:
            outer = by_resource[resource_id] = resources.add()
            encoded, schema_url = self._resource(page, resource_id)
            outer.resource.MergeFromString(encoded)
            outer.schema_url = schema_url
        scope = getattr(outer, scopes_field).add()
        if scope_name or scope_version:
            scope.scope.CopyFrom(InstrumentationScope(name=scope_name or "", version=scope_version or ""))
        return getattr(scope, items_field)

    def _resource(self, page: RowPage, resource_id: int) -> tuple[bytes, str]:
        attributes, schema_url = page.resources.get(resource_id, ({}, ""))
        encoded = self._resources.get(resource_id)
        if encoded is None:
            encoded = self._resources[resource_id] = Resource(
                attributes=[KeyValue(key=k, value=any_value(v)) for k, v in attributes.items()]).SerializeToString()
        return encoded, schema_url

    def traces(self, page: RowPage) -> ExportTraceServiceRequest:
        """The page's spans (with their events and links) as one request, grouped by resource and scope."""
        request = ExportTraceServiceRequest()
        columns = page.spans
        if not page.keys:
            return request
        groups: dict[tuple[int, str | None, str | None], Any] = {}
        by_resource: dict[int, Any] = {}
        encode_attributes = self._span_attributes.encode
        events, links = page.events, page.links
        trace_ids, span_ids, parents = columns["trace_id"], columns["span_id"], columns["parent_span_id"]
        trace_states, flags, names, kinds = (columns["trace_state"], columns["flags"], columns["name"],
                                             columns["kind"])
        starts, ends = columns["start_time_ns"], columns["end_time_ns"]
        status_codes, status_messages = columns["status_code"], columns["status_message"]
        resource_ids, scope_names, scope_versions = (columns["resource_id"], columns["scope_name"],
                                                     columns["scope_version"])
        dropped_attributes, dropped_events, dropped_links = (columns["dropped_attributes_count"],
                                                             columns["dropped_events_count"],
                                                             columns["dropped_links_count"])
        kinds_map, status_map = SPAN_KINDS, STATUS_CODES
        for index, key in enumerate(page.keys):
            resource_id = resource_ids[index]
            group_key = (resource_id, scope_names[index], scope_versions[index])
            spans = groups.get(group_key)
            if spans is None:
                spans = groups[group_key] = self._scope_items(
                    page, by_resource, request.resource_spans, "scope_spans", "spans", *group_key)
            span = spans.add(
                trace_id=bytes.fromhex(trace_ids[index]), span_id=bytes.fromhex(span_ids[index]),
                parent_span_id=_id(parents[index]), trace_state=trace_states[index] or "",
                flags=flags[index] or 0, name=names[index] or "", kind=kinds_map.get(kinds[index], 0),
                start_time_unix_nano=starts[index] or 0, end_time_unix_nano=ends[index] or 0,
                dropped_attributes_count=dropped_attributes[index] or 0,
                dropped_events_count=dropped_events[index] or 0, dropped_links_count=dropped_links[index] or 0)
            status = span.status  # always present, as the SDK's encoder writes it
            status.code = status_map.get(status_codes[index], 0)
            if status_messages[index]:
                status.message = status_messages[index]
            attributes = page.attributes[index]
            if attributes:
                span.MergeFromString(encode_attributes(attributes))
            span_events = events.get(key)
            if span_events:
                self._add_events(span, span_events)
            span_links = links.get(key)
            if span_links:
                self._add_links(span, span_links)
        return request

    def _add_events(self, span: Span, rows: list[dict[str, Any]]) -> None:
        encode = self._event_attributes.encode
        for row in rows:
            event = span.events.add(time_unix_nano=row["time_ns"] or 0, name=row["name"] or "",
                                    dropped_attributes_count=row["dropped_attributes_count"] or 0)
            if row["attributes"]:
                event.MergeFromString(encode(row["attributes"]))

    def _add_links(self, span: Span, rows: list[dict[str, Any]]) -> None:
        encode = self._link_attributes.encode
        for row in rows:
            link = span.links.add(trace_id=_id(row["linked_trace_id"]), span_id=_id(row["linked_span_id"]),
                                  trace_state=row["trace_state"] or "", flags=row["flags"] or 0,
                                  dropped_attributes_count=row["dropped_attributes_count"] or 0)
            if row["attributes"]:
                link.MergeFromString(encode(row["attributes"]))

    def logs(self, page: RowPage, keys: set[str] | None = None) -> ExportLogsServiceRequest:
        """The page's log records (those whose key is in `keys`, when given) as one request."""
        request = ExportLogsServiceRequest()
        groups: dict[tuple[int, str | None, str | None], Any] = {}
        by_resource: dict[int, Any] = {}
        encode = self._log_attributes.encode
        for row, item_key in zip(page.logs, page.log_keys):
            if keys is not None and item_key not in keys:
                continue
            resource_id = row["resource_id"]
            group_key = (resource_id, row["scope_name"], row["scope_version"])
            records = groups.get(group_key)
            if records is None:
                records = groups[group_key] = self._scope_items(
                    page, by_resource, request.resource_logs, "scope_logs", "log_records", *group_key)
            record = records.add(
                time_unix_nano=row["time_ns"] or 0, observed_time_unix_nano=row["observed_time_ns"] or 0,
                severity_number=row["severity_number"] or 0, severity_text=row["severity_text"] or "",
                flags=row["flags"] or 0, trace_id=_id(row["trace_id"]), span_id=_id(row["span_id"]),
                event_name=row["event_name"] or "", dropped_attributes_count=row["dropped_attributes_count"] or 0)
            if row["body"] is not None:
                record.body.CopyFrom(any_value(row["body"]))
            if row["attributes"]:
                record.MergeFromString(encode(row["attributes"]))
        return request

