"""OTLP JSON lines: the format of the OpenTelemetry Collector's file exporter (and `otel-tui --from-json-file`).

Each line is one JSON object: a TracesData (`{"resourceSpans": [...]}`), LogsData (`{"resourceLogs": [...]}`) or
MetricsData (`{"resourceMetrics": [...]}`) in the OTLP/JSON encoding. That encoding is the protobuf JSON mapping
(lowerCamelCase names, 64-bit integers as strings, bytes as base64) with OTLP's deviations: trace and span ids are
hex strings, and enums are integers. We use protobuf's own `json_format` for the mapping and apply the deviations
here, so the files are exactly what the Collector writes and reads.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Iterable, Iterator, Union

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracekit.errors import TracekitError

Request = Union[ExportTraceServiceRequest, ExportLogsServiceRequest, ExportMetricsServiceRequest]

_ID_FIELDS = ("traceId", "spanId", "parentSpanId")


class OtlpJsonError(TracekitError):
    """A line of an OTLP JSON file that cannot be read; the message names the line and the reason."""


def _ids_to_hex(item: dict[str, Any]) -> None:
    for name in _ID_FIELDS:
        value = item.get(name)
        if value:
            item[name] = base64.b64decode(value).hex()


def _ids_to_base64(item: dict[str, Any]) -> None:
    for name in _ID_FIELDS:
        value = item.get(name)
        if value:
            item[name] = base64.b64encode(bytes.fromhex(value)).decode("ascii")


def _walk_items(data: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every object in an OTLP JSON document that carries ids: spans, their links, and log records."""
    for resource_spans in data.get("resourceSpans", ()):
        for scope_spans in resource_spans.get("scopeSpans", ()):
            for span in scope_spans.get("spans", ()):
                yield span
                yield from span.get("links", ())
    for resource_logs in data.get("resourceLogs", ()):
        for scope_logs in resource_logs.get("scopeLogs", ()):
            yield from scope_logs.get("logRecords", ())
    for resource_metrics in data.get("resourceMetrics", ()):
        for scope_metrics in resource_metrics.get("scopeMetrics", ()):
            for metric in scope_metrics.get("metrics", ()):
                for kind in ("gauge", "sum", "histogram", "exponentialHistogram"):
                    for point in metric.get(kind, {}).get("dataPoints", ()):
                        yield from point.get("exemplars", ())


def to_json_object(request: Request) -> dict[str, Any]:
    """An OTLP export request as the OTLP/JSON object of its data (TracesData, LogsData or MetricsData)."""
    data = json_format.MessageToDict(request, use_integers_for_enums=True, preserving_proto_field_name=False)
    for item in _walk_items(data):
        _ids_to_hex(item)
    return data


def to_json_line(request: Request) -> bytes:
    """One line of an OTLP JSON lines file (newline included)."""
    return orjson.dumps(to_json_object(request)) + b"\n"


def from_json_object(data: dict[str, Any]) -> Request:
    """An OTLP/JSON object (as the Collector writes it) back to the protobuf export request it describes."""
    if not isinstance(data, dict):
        raise OtlpJsonError("expected a JSON object with resourceSpans, resourceLogs or resourceMetrics")
    if "resourceSpans" in data or "resource_spans" in data:
        message: Request = ExportTraceServiceRequest()
    elif "resourceLogs" in data or "resource_logs" in data:
        message = ExportLogsServiceRequest()
    elif "resourceMetrics" in data or "resource_metrics" in data:
        message = ExportMetricsServiceRequest()
    else:
        raise OtlpJsonError(
            "expected a JSON object with resourceSpans, resourceLogs or resourceMetrics, found "
            f"{', '.join(list(data)[:5]) or 'an empty object'}")
    for snake, camel in (("resource_spans", "resourceSpans"), ("resource_logs", "resourceLogs"),
                         ("resource_metrics", "resourceMetrics")):
        if snake in data:
            data[camel] = data.pop(snake)
    try:
        for item in _walk_items(data):
            _ids_to_base64(item)
    except (ValueError, binascii.Error, TypeError, AttributeError) as error:
        raise OtlpJsonError(f"a trace or span id is not hexadecimal ({error})") from None
    try:
        json_format.ParseDict(data, message, ignore_unknown_fields=True)
    except json_format.ParseError as error:
        raise OtlpJsonError(str(error)) from None
    return message


MAX_RECORD_BYTES = 64 * 1024 * 1024  # one line (one request): a compressed file can hold lines far larger


def bounded_lines(handle: Any, source: str, limit: int = MAX_RECORD_BYTES) -> Iterator[bytes]:
    """The lines of a binary file, never reading more than `limit` bytes of one line into memory."""
    number = 0
    while True:
        line = handle.readline(limit + 1)
        if not line:
            return
        number += 1
        if len(line) > limit and not (len(line) == limit + 1 and line.endswith(b"\n")):
            raise OtlpJsonError(f"{source}:{number}: a record longer than {limit:,} bytes (the limit; "
                                f"--max-record-size raises it)")
        yield line


def read_json_lines(lines: Iterable[bytes | str], source: str = "input") -> Iterator[Request]:
    """The export requests of an OTLP JSON lines file, one per non-empty line; errors name `source:line`."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise OtlpJsonError(f"{source}:{number}: not JSON ({error})") from None
        try:
            yield from_json_object(data)
        except OtlpJsonError as error:
            raise OtlpJsonError(f"{source}:{number}: {error}") from None
