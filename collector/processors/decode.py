"""OTLP request bytes (protobuf or OTLP/JSON) to store batches: the step that runs in decode workers."""

from __future__ import annotations

from typing import Any, Callable, NamedTuple

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracekit.collector.processors.anyvalue import AttributeLimits
from tracekit.collector.processors.normalize import (Batch, decode_logs, decode_metrics, decode_traces,
                                                     decode_traces_payload)

SIGNALS: dict[str, tuple[type, Callable[[Any], Batch]]] = {
    "traces": (ExportTraceServiceRequest, decode_traces),
    "logs": (ExportLogsServiceRequest, decode_logs),
    "metrics": (ExportMetricsServiceRequest, decode_metrics),
}

# OTLP/JSON writes these ids as hex strings, where protobuf's JSON mapping expects base64 for bytes fields.
_HEX_ID_FIELDS = {"traceId": 16, "spanId": 8, "parentSpanId": 8, "trace_id": 16, "span_id": 8, "parent_span_id": 8}


class InvalidRequest(ValueError):
    """The request cannot be decoded at all; the sender gets INVALID_ARGUMENT / HTTP 400 with this message."""


class Received(NamedTuple):
    """A request body as the receiver got it: protobuf bytes, or OTLP/JSON bytes when `json`."""

    payload: bytes
    json: bool = False


class Decode:
    """The first processor: a received body (protobuf or OTLP/JSON) to a normalized `Batch`, with the attribute
    count limits applied while decoding (so no request makes the decoder hold more than the limits allow)."""

    def __init__(self, limits: AttributeLimits = AttributeLimits()) -> None:
        self.limits = limits

    def process(self, signal: str, received: Received) -> Batch:
        payload = json_to_protobuf(signal, received.payload) if received.json else received.payload
        return decode_payload(signal, payload, self.limits)


def decode_payload(signal: str, payload: bytes, limits: AttributeLimits = AttributeLimits()) -> Batch:
    """Parse a whole protobuf request and normalize it (module-level so worker processes can run it)."""
    request_type, decode = SIGNALS[signal]
    request = request_type()
    try:
        request.ParseFromString(payload)
    except (DecodeError, RecursionError) as error:
        raise InvalidRequest(f"malformed protobuf {request_type.__name__}: {error}") from None
    if signal == "traces":
        # upb has validated the bytes; the compiled decoder reads the same bytes straight into Arrow columns.
        return decode_traces_payload(payload, request, limits)
    return decode(request, limits)


def json_to_protobuf(signal: str, payload: bytes) -> bytes:
    """An OTLP/JSON request body to the equivalent protobuf bytes, with a clear error for what is wrong."""
    request_type, _ = SIGNALS[signal]
    try:
        document = orjson.loads(payload)
    except orjson.JSONDecodeError as error:
        raise InvalidRequest(f"malformed JSON: {error}") from None
    if not isinstance(document, dict):
        raise InvalidRequest("an OTLP/JSON request must be a JSON object")
    _hex_ids_to_base64(document, 0)
    request = request_type()
    try:
        json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, ValueError, TypeError) as error:
        raise InvalidRequest(f"invalid OTLP/JSON {request_type.__name__}: {error}") from None
    return request.SerializeToString()


def protobuf_response_to_json(message: Any) -> bytes:
    """A response message in OTLP/JSON (lowerCamelCase, int64 as strings as protobuf's mapping does)."""
    return json_format.MessageToJson(message, indent=None).encode()


def _hex_ids_to_base64(node: Any, depth: int) -> None:
    import base64

    if depth > 64:
        raise InvalidRequest("OTLP/JSON nested deeper than 64 levels")
    if isinstance(node, dict):
        for key, value in node.items():
            size = _HEX_ID_FIELDS.get(key)
            if size is not None and isinstance(value, str):
                if value == "":
                    continue
                try:
                    raw = bytes.fromhex(value)
                except ValueError:
                    raise InvalidRequest(f"{key} {value[:40]!r} is not hex") from None
                if len(raw) != size:
                    raise InvalidRequest(f"{key} must be {size * 2} hex characters, got {len(value)}")
                node[key] = base64.b64encode(raw).decode()
            elif isinstance(value, (dict, list)):
                _hex_ids_to_base64(value, depth + 1)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, (dict, list)):
                _hex_ids_to_base64(item, depth + 1)
