"""Whole OTLP export requests to Arrow tables shaped like the store's tables.

One request becomes one `Batch`: a few Arrow tables (spans, span events, span links, resources, logs, metric points)
built column by column, so the writer inserts each with one statement. Items that cannot be stored (ids of the wrong
length, values nested too deep) are rejected one by one and counted, for OTLP partial success; the rest are kept.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson
import pyarrow as pa
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracekit import semconv
from tracekit.collector.processors.anyvalue import (MAX_DEPTH, AttributeLimits, Dropped, InvalidValue, any_value,
                                                     key_values)

try:  # the compiled decoder (setup.py builds it when a C compiler is present); the Python path serves without it
    from tracekit.collector.processors import _fastdecode
except ImportError:
    _fastdecode = None

SPAN_KINDS = ("UNSPECIFIED", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
STATUS_CODES = ("UNSET", "OK", "ERROR")
TEMPORALITIES = (None, "DELTA", "CUMULATIVE")

log = logging.getLogger("tracekit.collector.processors")
_dumps = orjson.dumps
_ts_ns = pa.timestamp("ns")
_MAX_NS = 2**63 - 1  # the store keeps nanosecond times as BIGINT
_MAX_U32 = 2**32 - 1
_DEFAULT_LIMITS = AttributeLimits()

# Why a span is refused, indexed by the codes the compiled decoder reports.
_SPAN_REJECTIONS = (
    "span with an invalid trace_id (must be 16 bytes, not all zero)",
    "span with an invalid span_id (must be 8 bytes, not all zero)",
    "span with an invalid parent_span_id (must be empty or 8 bytes)",
    f"attribute value nested deeper than {MAX_DEPTH} levels",
    "span with a time past year 2262 (nanoseconds must fit a signed 64-bit integer)",
)
_BAD_TRACE_ID, _BAD_SPAN_ID, _BAD_PARENT_ID, _TOO_DEEP, _BAD_TIME = _SPAN_REJECTIONS
_BAD_LOG_TIME = "log record with a time past year 2262 (nanoseconds must fit a signed 64-bit integer)"
_BAD_POINT_TIME = "metric data point with a time past year 2262 (nanoseconds must fit a signed 64-bit integer)"


class InvalidResource(ValueError):
    """A resource that cannot be stored: every item under it is refused (partial success), the rest are kept."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"resource refused, with every item under it: {reason}")


def _json(value: Any) -> str:
    return _dumps(value).decode()


@dataclass
class Batch:
    """What one export request adds to the store, ready for the writer."""

    tables: dict[str, pa.Table] = field(default_factory=dict)
    accepted: int = 0
    rejected: int = 0
    errors: list[str] = field(default_factory=list)
    masked: int = 0  # values the collector's redaction policy masked before storage

    def reject(self, count: int, reason: str) -> None:
        self.rejected += count
        if len(self.errors) < 5 and reason not in self.errors:
            self.errors.append(reason)

    @property
    def error_message(self) -> str:
        return "; ".join(self.errors)


class _Resources:
    """Collects the distinct resources of a request; each gets a stable 63-bit id from its content."""

    def __init__(self) -> None:
        self.rows: dict[int, tuple[Any, ...]] = {}

    def add(self, resource: Any, schema_url: str) -> tuple[int, str | None]:
        """The resource's id and service name; InvalidResource when it cannot be stored."""
        digest = hashlib.blake2b(resource.SerializeToString(deterministic=True) + schema_url.encode(), digest_size=8)
        resource_id = int.from_bytes(digest.digest(), "big") >> 1
        row = self.rows.get(resource_id)
        if row is None:
            try:
                attributes = key_values(resource.attributes)
            except InvalidValue as error:
                raise InvalidResource(str(error)) from None
            row = (
                resource_id,
                _str_or_none(attributes.get(semconv.SERVICE_NAME)),
                _str_or_none(attributes.get(semconv.SERVICE_NAMESPACE)),
                _str_or_none(attributes.get(semconv.SERVICE_INSTANCE_ID)),
                _str_or_none(attributes.get(semconv.SERVICE_VERSION)),
                schema_url or None,
                _json(attributes),
            )
            self.rows[resource_id] = row
        return resource_id, row[1]

    def table(self) -> pa.Table:
        names = ["resource_id", "service_name", "service_namespace", "service_instance_id", "service_version",
                 "schema_url", "attributes"]
        columns = list(zip(*self.rows.values())) if self.rows else [[] for _ in names]
        table = pa.table({name: list(column) for name, column in zip(names, columns)})
        now = pa.array([time.time_ns()] * len(self.rows), pa.int64()).cast(_ts_ns)
        return table.append_column("first_seen", now)


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer() and -2.0**63 <= value < 2.0**63:
        return int(value)
    return None


_TYPED_STR = list(semconv.TYPED_ATTRIBUTE_COLUMNS.items())
_TYPED_INT = list(semconv.TYPED_INTEGER_COLUMNS.items())


def _first(attributes: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        value = attributes.get(key)
        if value is not None:
            return value
    return None


def decode_traces(request: ExportTraceServiceRequest, limits: AttributeLimits = _DEFAULT_LIMITS) -> Batch:
    """An ExportTraceServiceRequest to the spans, span_events, span_links and resources tables."""
    if _fastdecode is not None:
        return decode_traces_payload(request.SerializeToString(), request, limits)
    return _decode_traces_python(request, limits)


def _span_count(resource_spans: Any) -> int:
    return sum(len(scope_spans.spans) for scope_spans in resource_spans.scope_spans)


def decode_traces_payload(payload: bytes, request: ExportTraceServiceRequest,
                          limits: AttributeLimits = _DEFAULT_LIMITS) -> Batch:
    """Like `decode_traces`, from the request's serialized bytes, through the compiled decoder when it is built.

    `request` must be `payload` already parsed (upb validates wire format and UTF-8 there); resources come from it,
    so resource ids are the same on both paths. The compiled path gives the same Batch as the Python one.
    """
    if _fastdecode is None:
        return _decode_traces_python(request, limits)
    batch = Batch()
    resources = _Resources()
    owners = []
    refused: list[int] = []
    for index, item in enumerate(request.resource_spans):
        try:
            owners.append(resources.add(item.resource, item.schema_url))
        except InvalidResource as error:
            batch.reject(_span_count(item), str(error))
            refused.append(index)
    if refused:  # rare: decode the request without the refused resources
        request = ExportTraceServiceRequest.FromString(payload)
        for index in reversed(refused):
            del request.resource_spans[index]
        payload = request.SerializeToString()
    try:
        spans, events, links, rejections = _fastdecode.decode_traces(
            payload, owners, _TYPED_STR_KEYS, _TYPED_INT_KEYS, MAX_DEPTH,
            (limits.span, limits.event, limits.link, limits.kvlist))
    except ValueError as error:
        # upb accepted these bytes, so this should not happen (a column past 2 GiB can); keep the data regardless.
        log.warning("compiled trace decoder failed (%s); decoding this request in Python", error)
        return _decode_traces_python(request, limits, batch)
    for code, count in rejections:
        batch.reject(count, _SPAN_REJECTIONS[code])
    batch.accepted = spans[0]
    if batch.accepted:
        batch.tables["spans"] = _imported(spans, _SPANS_TABLE_SCHEMA)
        batch.tables["resources"] = _resources_table(resources)
    if events[0]:
        batch.tables["span_events"] = _imported(events, _EVENTS_TABLE_SCHEMA)
    if links[0]:
        batch.tables["span_links"] = _imported(links, _LINKS_SCHEMA)
    return batch


_TYPED_STR_KEYS = tuple(keys for _, keys in _TYPED_STR)
_TYPED_INT_KEYS = tuple(keys for _, keys in _TYPED_INT)


def _array(arrow_type: pa.DataType, column: tuple[Any, ...]) -> pa.Array:
    """An Arrow array over a `_fastdecode.pack_column` result (length, null_count, validity, offsets, data)."""
    length, null_count, validity, offsets, data = column
    buffers = [None if validity is None else pa.py_buffer(validity)]
    if offsets is not None:
        buffers.append(pa.py_buffer(offsets))
    buffers.append(pa.py_buffer(data))
    return pa.Array.from_buffers(arrow_type, length, buffers, null_count=null_count)


class _CompiledColumns:
    """A table from the compiled decoder as an Arrow PyCapsule (C data interface): pyarrow adopts its buffers."""

    __slots__ = ("_schema", "_capsule")

    def __init__(self, schema: pa.Schema, capsule: Any) -> None:
        self._schema, self._capsule = schema, capsule

    def __arrow_c_array__(self, requested_schema: Any = None) -> tuple[Any, Any]:
        return self._schema.__arrow_c_schema__(), self._capsule


def _imported(table: tuple[int, Any], schema: pa.Schema) -> pa.Table:
    """One of the compiled decoder's (rows, capsule) tables, without copying."""
    return pa.Table.from_batches([pa.record_batch(_CompiledColumns(schema, table[1]))])


_RESOURCE_COLUMNS = ("resource_id", "service_name", "service_namespace", "service_instance_id", "service_version",
                     "schema_url", "attributes")


def _resources_table(resources: _Resources) -> pa.Table:
    """`resources.table()` without pyarrow's conversion of Python lists, which costs ~0.2 ms a column here.

    The same table, including pyarrow's inference that gives a column of only NULLs the `null` type."""
    rows = list(resources.rows.values())
    arrays = []
    for name, values in zip(_RESOURCE_COLUMNS, zip(*rows), strict=True):
        if all(value is None for value in values):
            arrays.append(pa.nulls(len(rows)))
        elif name == "resource_id":
            arrays.append(_array(_I64, _fastdecode.pack_column(list(values), "q")))
        else:
            arrays.append(_array(_STR, _fastdecode.pack_column(list(values), "s")))
    now = _fastdecode.pack_column([time.time_ns()] * len(rows), "q")
    arrays.append(_array(_I64, now).cast(_ts_ns))
    return pa.Table.from_arrays(arrays, names=[*_RESOURCE_COLUMNS, "first_seen"])


def _decode_traces_python(request: ExportTraceServiceRequest, limits: AttributeLimits = _DEFAULT_LIMITS,
                          batch: Batch | None = None) -> Batch:
    """The reference implementation of `decode_traces`, in Python (and the fallback without the compiled one)."""
    batch = batch or Batch()
    resources = _Resources()
    cols: dict[str, list[Any]] = {name: [] for name in (
        "trace_id", "span_id", "parent_span_id", "trace_state", "flags", "name", "kind", "start_time_ns",
        "end_time_ns", "duration_ns", "status_code", "status_message", "resource_id", "service_name", "scope_name",
        "scope_version", "attributes", "event_count", "link_count", "dropped_attributes_count",
        "dropped_events_count", "dropped_links_count",
        *semconv.TYPED_ATTRIBUTE_COLUMNS, *semconv.TYPED_INTEGER_COLUMNS,
    )}
    ev: dict[str, list[Any]] = {n: [] for n in (
        "trace_id", "span_id", "event_index", "time_ns", "name", "attributes", "dropped_attributes_count")}
    ln: dict[str, list[Any]] = {n: [] for n in (
        "trace_id", "span_id", "link_index", "linked_trace_id", "linked_span_id", "trace_state", "flags",
        "attributes", "dropped_attributes_count")}
    typed_str_cols = [(cols[name], keys) for name, keys in _TYPED_STR]
    typed_int_cols = [(cols[name], keys) for name, keys in _TYPED_INT]
    append = {name: column.append for name, column in cols.items()}

    for resource_spans in request.resource_spans:
        try:
            resource_id, service_name = resources.add(resource_spans.resource, resource_spans.schema_url)
        except InvalidResource as error:
            batch.reject(_span_count(resource_spans), str(error))
            continue
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            scope_name = scope.name or None
            scope_version = scope.version or None
            for span in scope_spans.spans:
                trace_id = span.trace_id
                span_id = span.span_id
                parent = span.parent_span_id
                if len(trace_id) != 16 or trace_id == b"\0" * 16:
                    batch.reject(1, _BAD_TRACE_ID)
                    continue
                if len(span_id) != 8 or span_id == b"\0" * 8:
                    batch.reject(1, _BAD_SPAN_ID)
                    continue
                if parent and len(parent) != 8:
                    batch.reject(1, _BAD_PARENT_ID)
                    continue
                if span.start_time_unix_nano > _MAX_NS or span.end_time_unix_nano > _MAX_NS:
                    batch.reject(1, _BAD_TIME)
                    continue
                children = len(ev["trace_id"]), len(ln["trace_id"])
                try:
                    dropped = Dropped(limits.kvlist, span.dropped_attributes_count)
                    attributes = key_values(span.attributes, limits.span, dropped)
                    events = span.events
                    links = span.links
                    trace_hex = trace_id.hex()
                    span_hex = span_id.hex()
                    for index, event in enumerate(events):
                        if event.time_unix_nano > _MAX_NS:
                            raise InvalidValue(_BAD_TIME)
                        event_dropped = Dropped(limits.kvlist, event.dropped_attributes_count)
                        ev["attributes"].append(_json(key_values(event.attributes, limits.event, event_dropped)))
                        ev["trace_id"].append(trace_hex)
                        ev["span_id"].append(span_hex)
                        ev["event_index"].append(index)
                        ev["time_ns"].append(event.time_unix_nano)
                        ev["name"].append(event.name)
                        ev["dropped_attributes_count"].append(min(event_dropped.count, _MAX_U32))
                    for index, link in enumerate(links):
                        if len(link.trace_id) != 16 or len(link.span_id) != 8:
                            continue  # a link we cannot resolve carries no information
                        link_dropped = Dropped(limits.kvlist, link.dropped_attributes_count)
                        ln["attributes"].append(_json(key_values(link.attributes, limits.link, link_dropped)))
                        ln["trace_id"].append(trace_hex)
                        ln["span_id"].append(span_hex)
                        ln["link_index"].append(index)
                        ln["linked_trace_id"].append(link.trace_id.hex())
                        ln["linked_span_id"].append(link.span_id.hex())
                        ln["trace_state"].append(link.trace_state or None)
                        ln["flags"].append(link.flags)
                        ln["dropped_attributes_count"].append(min(link_dropped.count, _MAX_U32))
                except InvalidValue as error:
                    _rollback_children(ev, ln, children)
                    batch.reject(1, str(error))
                    continue
                start = span.start_time_unix_nano
                end = span.end_time_unix_nano
                status = span.status
                append["trace_id"](trace_hex)
                append["span_id"](span_hex)
                append["parent_span_id"](parent.hex() if parent else None)
                append["trace_state"](span.trace_state or None)
                append["flags"](span.flags)
                append["name"](span.name)
                append["kind"](SPAN_KINDS[span.kind] if 0 <= span.kind < 6 else "UNSPECIFIED")
                append["start_time_ns"](start)
                append["end_time_ns"](end)
                append["duration_ns"](end - start if end >= start else 0)
                append["status_code"](STATUS_CODES[status.code] if 0 <= status.code < 3 else "UNSET")
                append["status_message"](status.message or None)
                append["resource_id"](resource_id)
                append["service_name"](service_name)
                append["scope_name"](scope_name)
                append["scope_version"](scope_version)
                append["attributes"](_json(attributes))
                append["event_count"](len(events))
                append["link_count"](len(links))
                append["dropped_attributes_count"](min(dropped.count, _MAX_U32))
                append["dropped_events_count"](span.dropped_events_count)
                append["dropped_links_count"](span.dropped_links_count)
                for column, keys in typed_str_cols:
                    value = _first(attributes, keys)
                    column.append(value if value is None or isinstance(value, str) else _json(value))
                for column, keys in typed_int_cols:
                    column.append(_int_or_none(_first(attributes, keys)))
    batch.accepted = len(cols["trace_id"])
    if batch.accepted:
        batch.tables["spans"] = _with_timestamps(
            pa.table(cols, schema=_SPANS_SCHEMA), {"start_time": "start_time_ns", "end_time": "end_time_ns"})
        batch.tables["resources"] = resources.table()
    if ev["trace_id"]:
        batch.tables["span_events"] = _with_timestamps(pa.table(ev, schema=_EVENTS_SCHEMA), {"time": "time_ns"})
    if ln["trace_id"]:
        batch.tables["span_links"] = pa.table(ln, schema=_LINKS_SCHEMA)
    return batch


def _rollback_children(ev: dict[str, list[Any]], ln: dict[str, list[Any]], lengths: tuple[int, int]) -> None:
    """Drop the events and links already appended for a span that turned out to be invalid.

    Truncating to the lengths from before the span (not popping rows with its ids) keeps the rows of an earlier
    span that carries the same ids."""
    for columns, length in zip((ev, ln), lengths):
        for column in columns.values():
            del column[length:]


def _with_timestamps(table: pa.Table, derived: dict[str, str]) -> pa.Table:
    """Add TIMESTAMP columns computed from the ns columns (DuckDB stores them at microsecond precision)."""
    for name, source in derived.items():
        table = table.append_column(name, table.column(source).cast(_ts_ns))
    return table


_STR = pa.string()
_I64 = pa.int64()
_U32 = pa.uint32()

_SPANS_SCHEMA = pa.schema(
    [("trace_id", _STR), ("span_id", _STR), ("parent_span_id", _STR), ("trace_state", _STR), ("flags", _U32),
     ("name", _STR), ("kind", _STR), ("start_time_ns", _I64), ("end_time_ns", _I64), ("duration_ns", _I64),
     ("status_code", _STR), ("status_message", _STR), ("resource_id", _I64), ("service_name", _STR),
     ("scope_name", _STR), ("scope_version", _STR), ("attributes", _STR), ("event_count", _U32),
     ("link_count", _U32), ("dropped_attributes_count", _U32), ("dropped_events_count", _U32),
     ("dropped_links_count", _U32)]
    + [(name, _STR) for name in semconv.TYPED_ATTRIBUTE_COLUMNS]
    + [(name, _I64) for name in semconv.TYPED_INTEGER_COLUMNS]
)
_EVENTS_SCHEMA = pa.schema(
    [("trace_id", _STR), ("span_id", _STR), ("event_index", _U32), ("time_ns", _I64), ("name", _STR),
     ("attributes", _STR), ("dropped_attributes_count", _U32)]
)
_LINKS_SCHEMA = pa.schema(
    [("trace_id", _STR), ("span_id", _STR), ("link_index", _U32), ("linked_trace_id", _STR),
     ("linked_span_id", _STR), ("trace_state", _STR), ("flags", _U32), ("attributes", _STR),
     ("dropped_attributes_count", _U32)]
)
# What the compiled decoder exports: the columns, then the time columns again as TIMESTAMP (as _with_timestamps adds).
_SPANS_TABLE_SCHEMA = _SPANS_SCHEMA.append(pa.field("start_time", _ts_ns)).append(pa.field("end_time", _ts_ns))
_EVENTS_TABLE_SCHEMA = _EVENTS_SCHEMA.append(pa.field("time", _ts_ns))
_LOGS_SCHEMA = pa.schema(
    [("time_ns", _I64), ("observed_time_ns", _I64), ("severity_number", pa.int32()), ("severity_text", _STR),
     ("body", _STR), ("event_name", _STR), ("trace_id", _STR), ("span_id", _STR), ("flags", _U32),
     ("resource_id", _I64), ("service_name", _STR), ("scope_name", _STR), ("scope_version", _STR),
     ("attributes", _STR), ("dropped_attributes_count", _U32)]
)


def decode_logs(request: ExportLogsServiceRequest, limits: AttributeLimits = _DEFAULT_LIMITS) -> Batch:
    """An ExportLogsServiceRequest to the logs and resources tables."""
    batch = Batch()
    resources = _Resources()
    cols: dict[str, list[Any]] = {name: [] for name in _LOGS_SCHEMA.names}
    for resource_logs in request.resource_logs:
        try:
            resource_id, service_name = resources.add(resource_logs.resource, resource_logs.schema_url)
        except InvalidResource as error:
            batch.reject(sum(len(scope.log_records) for scope in resource_logs.scope_logs), str(error))
            continue
        for scope_logs in resource_logs.scope_logs:
            scope = scope_logs.scope
            for record in scope_logs.log_records:
                trace_id, span_id = record.trace_id, record.span_id
                if trace_id and len(trace_id) != 16 or span_id and len(span_id) != 8:
                    batch.reject(1, "log record with an invalid trace_id or span_id")
                    continue
                if record.time_unix_nano > _MAX_NS or record.observed_time_unix_nano > _MAX_NS:
                    batch.reject(1, _BAD_LOG_TIME)
                    continue
                try:
                    dropped = Dropped(limits.kvlist, record.dropped_attributes_count)
                    attributes = key_values(record.attributes, limits.log_record, dropped)
                    body = any_value(record.body) if record.HasField("body") else None  # kept whole
                except InvalidValue as error:
                    batch.reject(1, str(error))
                    continue
                event_name = record.event_name or attributes.get("event.name") or attributes.get(
                    semconv.MICROSOFT_CUSTOM_EVENT_NAME)
                observed = record.observed_time_unix_nano or None
                cols["time_ns"].append(record.time_unix_nano or observed or time.time_ns())
                cols["observed_time_ns"].append(observed)
                cols["severity_number"].append(record.severity_number or None)
                cols["severity_text"].append(record.severity_text or None)
                cols["body"].append(None if body is None else _json(body))
                cols["event_name"].append(_str_or_none(event_name))
                cols["trace_id"].append(trace_id.hex() if trace_id else None)
                cols["span_id"].append(span_id.hex() if span_id else None)
                cols["flags"].append(record.flags)
                cols["resource_id"].append(resource_id)
                cols["service_name"].append(service_name)
                cols["scope_name"].append(scope.name or None)
                cols["scope_version"].append(scope.version or None)
                cols["attributes"].append(_json(attributes))
                cols["dropped_attributes_count"].append(min(dropped.count, _MAX_U32))
    batch.accepted = len(cols["time_ns"])
    if batch.accepted:
        batch.tables["logs"] = _with_timestamps(pa.table(cols, schema=_LOGS_SCHEMA), {"time": "time_ns"})
        batch.tables["resources"] = resources.table()
    return batch


_METRICS_SCHEMA = pa.schema(
    [("time_ns", _I64), ("start_time_ns", _I64), ("metric_name", _STR), ("description", _STR), ("unit", _STR),
     ("metric_type", _STR), ("temporality", _STR), ("is_monotonic", pa.bool_()), ("value", pa.float64()),
     ("count", pa.uint64()), ("sum", pa.float64()), ("min", pa.float64()), ("max", pa.float64()),
     ("bucket_counts", pa.list_(pa.uint64())), ("explicit_bounds", pa.list_(pa.float64())), ("details", _STR),
     ("flags", _U32), ("resource_id", _I64), ("service_name", _STR), ("scope_name", _STR), ("scope_version", _STR),
     ("attributes", _STR)]
)


def _exemplars(point: Any) -> list[dict[str, Any]]:
    result = []
    for exemplar in point.exemplars:
        which = exemplar.WhichOneof("value")
        result.append({
            "time_unix_nano": exemplar.time_unix_nano,
            "value": getattr(exemplar, which) if which else None,
            "trace_id": exemplar.trace_id.hex() or None,
            "span_id": exemplar.span_id.hex() or None,
            "attributes": key_values(exemplar.filtered_attributes),
        })
    return result


def decode_metrics(request: ExportMetricsServiceRequest, limits: AttributeLimits = _DEFAULT_LIMITS) -> Batch:
    """An ExportMetricsServiceRequest to the metric_points and resources tables, one row per data point."""
    batch = Batch()
    resources = _Resources()
    cols: dict[str, list[Any]] = {name: [] for name in _METRICS_SCHEMA.names}

    def add(point: Any, common: tuple[Any, ...], metric_type: str, temporality: str | None, monotonic: bool | None,
            value: float | None = None, count: int | None = None, total: float | None = None,
            minimum: float | None = None, maximum: float | None = None, buckets: list[int] | None = None,
            bounds: list[float] | None = None, details: dict[str, Any] | None = None) -> None:
        # Each point is refused on its own: the metric's other points are kept.
        if point.time_unix_nano > _MAX_NS or point.start_time_unix_nano > _MAX_NS:
            batch.reject(1, _BAD_POINT_TIME)
            return
        try:
            attributes = key_values(point.attributes)
            exemplars = _exemplars(point) if hasattr(point, "exemplars") else []
        except InvalidValue as error:
            batch.reject(1, str(error))
            return
        if exemplars:
            details = {**(details or {}), "exemplars": exemplars}
        name, description, unit, resource_id, service_name, scope_name, scope_version = common
        for column, item in (
            ("time_ns", point.time_unix_nano), ("start_time_ns", point.start_time_unix_nano or None),
            ("metric_name", name), ("description", description), ("unit", unit), ("metric_type", metric_type),
            ("temporality", temporality), ("is_monotonic", monotonic), ("value", value), ("count", count),
            ("sum", total), ("min", minimum), ("max", maximum), ("bucket_counts", buckets),
            ("explicit_bounds", bounds), ("details", _json(details) if details else None),
            ("flags", point.flags), ("resource_id", resource_id), ("service_name", service_name),
            ("scope_name", scope_name), ("scope_version", scope_version), ("attributes", _json(attributes)),
        ):
            cols[column].append(item)

    for resource_metrics in request.resource_metrics:
        try:
            resource_id, service_name = resources.add(resource_metrics.resource, resource_metrics.schema_url)
        except InvalidResource as error:
            batch.reject(_point_count(resource_metrics), str(error))
            continue
        for scope_metrics in resource_metrics.scope_metrics:
            scope = scope_metrics.scope
            for metric in scope_metrics.metrics:
                common = (metric.name, metric.description or None, metric.unit or None, resource_id, service_name,
                          scope.name or None, scope.version or None)
                _add_metric_points(add, metric, metric.WhichOneof("data"), common)
    batch.accepted = len(cols["time_ns"])
    if batch.accepted:
        batch.tables["metric_points"] = _with_timestamps(pa.table(cols, schema=_METRICS_SCHEMA), {"time": "time_ns"})
        batch.tables["resources"] = resources.table()
    return batch


def _point_count(resource_metrics: Any) -> int:
    count = 0
    for scope_metrics in resource_metrics.scope_metrics:
        for metric in scope_metrics.metrics:
            which = metric.WhichOneof("data")
            if which:
                count += len(getattr(metric, which).data_points)
    return count


def _number(point: Any) -> float | None:
    which = point.WhichOneof("value")
    return float(getattr(point, which)) if which else None


def _add_metric_points(add: Callable[..., None], metric: Any, which: str | None, common: tuple[Any, ...]) -> None:
    if which == "gauge":
        for point in metric.gauge.data_points:
            add(point, common, "gauge", None, None, value=_number(point))
    elif which == "sum":
        data = metric.sum
        for point in data.data_points:
            add(point, common, "sum", TEMPORALITIES[data.aggregation_temporality] if data.aggregation_temporality < 3
                else None, data.is_monotonic, value=_number(point))
    elif which == "histogram":
        data = metric.histogram
        temporality = TEMPORALITIES[data.aggregation_temporality] if data.aggregation_temporality < 3 else None
        for point in data.data_points:
            add(point, common, "histogram", temporality, None, count=point.count,
                total=point.sum if point.HasField("sum") else None,
                minimum=point.min if point.HasField("min") else None,
                maximum=point.max if point.HasField("max") else None,
                buckets=list(point.bucket_counts), bounds=list(point.explicit_bounds))
    elif which == "exponential_histogram":
        data = metric.exponential_histogram
        temporality = TEMPORALITIES[data.aggregation_temporality] if data.aggregation_temporality < 3 else None
        for point in data.data_points:
            details = {
                "scale": point.scale, "zero_count": point.zero_count, "zero_threshold": point.zero_threshold,
                "positive": {"offset": point.positive.offset, "bucket_counts": list(point.positive.bucket_counts)},
                "negative": {"offset": point.negative.offset, "bucket_counts": list(point.negative.bucket_counts)},
            }
            add(point, common, "exponential_histogram", temporality, None, count=point.count,
                total=point.sum if point.HasField("sum") else None,
                minimum=point.min if point.HasField("min") else None,
                maximum=point.max if point.HasField("max") else None, details=details)
    elif which == "summary":
        for point in metric.summary.data_points:
            quantiles = [{"quantile": q.quantile, "value": q.value} for q in point.quantile_values]
            add(point, common, "summary", None, None, count=point.count, total=point.sum,
                details={"quantiles": quantiles})
