"""Malformed and hostile input gets a clear error; the collector keeps serving and stores nothing half-done."""

from __future__ import annotations

import gzip
import json

import grpc
import orjson
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                       ExportTraceServiceResponse)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.collector.test_receivers import _post, otlp_json_traces

TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _grpc_export(collector, payload: bytes) -> bytes:
    with grpc.insecure_channel(collector.grpc_endpoint) as channel:
        return channel.unary_unary(TRACE_METHOD)(payload, timeout=30)


def _count(collector, table: str = "spans") -> int:
    return collector.reader().sql(f"SELECT count(*) AS n FROM {table}").column("n")[0].as_py()


def _request(spans: list[dict]) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for fields in spans:
        span = scope.spans.add()
        span.name = fields.get("name", "s")
        span.trace_id = fields.get("trace_id", b"\x01" * 16)
        span.span_id = fields.get("span_id", b"\x02" * 8)
        span.parent_span_id = fields.get("parent_span_id", b"")
        span.start_time_unix_nano, span.end_time_unix_nano = 1_000, 2_000
        for key, value in fields.get("attributes", {}).items():
            span.attributes.append(KeyValue(key=key, value=value))
    return request


def _assert_still_serving(collector) -> None:
    before = _count(collector)
    _grpc_export(collector, _request([{"name": "after", "span_id": b"\x09" * 8}]).SerializeToString())
    assert _count(collector) == before + 1


def test_malformed_protobuf_over_grpc_is_invalid_argument(collector):
    with pytest.raises(grpc.RpcError) as caught:
        _grpc_export(collector, b"\x0a\xff\xff\xff\xff\x0f garbage")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed protobuf" in caught.value.details()
    assert _count(collector) == 0
    _assert_still_serving(collector)


def test_malformed_bodies_over_http_get_400_with_a_status_message(collector):
    url = collector.http_endpoint + "/v1/traces"
    status, body, _ = _post(url, b"{not json", "application/json")
    assert status == 400 and "malformed JSON" in json.loads(body)["message"]
    status, body, _ = _post(url, b"\x0a\xff\xff\xff\xff\x0f", "application/x-protobuf")
    assert status == 400
    from google.rpc.status_pb2 import Status
    assert "malformed protobuf" in Status.FromString(body).message
    status, body, _ = _post(url, orjson.dumps({"resourceSpans": "nope"}), "application/json")
    assert status == 400 and "invalid OTLP/JSON" in json.loads(body)["message"]
    _assert_still_serving(collector)


def test_wrong_content_type_is_415(collector):
    status, body, _ = _post(collector.http_endpoint + "/v1/traces", b"hello", "text/plain")
    assert status == 415
    from google.rpc.status_pb2 import Status
    assert "unsupported Content-Type" in Status.FromString(body).message


def test_bad_hex_ids_in_json_are_refused_with_the_field_named(collector):
    document = otlp_json_traces("not-hex")
    status, body, _ = _post(collector.http_endpoint + "/v1/traces", orjson.dumps(document), "application/json")
    assert status == 400 and "traceId" in json.loads(body)["message"]
    document = otlp_json_traces("abcd")
    status, body, _ = _post(collector.http_endpoint + "/v1/traces", orjson.dumps(document), "application/json")
    assert status == 400 and "32 hex characters" in json.loads(body)["message"]


def test_spans_with_invalid_ids_are_rejected_one_by_one_with_partial_success(collector):
    request = _request([
        {"name": "good", "span_id": b"\x03" * 8},
        {"name": "short trace id", "trace_id": b"\x01" * 8},
        {"name": "zero span id", "span_id": b"\x00" * 8},
        {"name": "bad parent", "span_id": b"\x04" * 8, "parent_span_id": b"\x05" * 3},
        {"name": "good child", "span_id": b"\x06" * 8, "parent_span_id": b"\x03" * 8},
    ])
    response = ExportTraceServiceResponse.FromString(_grpc_export(collector, request.SerializeToString()))
    assert response.partial_success.rejected_spans == 3
    assert "invalid trace_id" in response.partial_success.error_message
    names = sorted(collector.reader().sql("SELECT name FROM spans").column("name").to_pylist())
    assert names == ["good", "good child"]


def test_partial_success_over_http_json(collector):
    document = otlp_json_traces()
    document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] = "0000000000000000"
    status, body, _ = _post(collector.http_endpoint + "/v1/traces", orjson.dumps(document), "application/json")
    assert status == 200
    assert json.loads(body)["partialSuccess"]["rejectedSpans"] == "1"
    assert _count(collector) == 1


def test_too_deeply_nested_values_reject_the_span_not_the_collector(collector):
    value = AnyValue(string_value="leaf")
    for _ in range(40):
        value = AnyValue(array_value={"values": [value]})
    shallow = AnyValue(string_value="leaf")
    for _ in range(5):
        shallow = AnyValue(kvlist_value={"values": [KeyValue(key="k", value=shallow)]})
    request = _request([{"name": "deep", "attributes": {"deep": value}},
                        {"name": "fine", "span_id": b"\x07" * 8, "attributes": {"nested": shallow}}])
    response = ExportTraceServiceResponse.FromString(_grpc_export(collector, request.SerializeToString()))
    assert response.partial_success.rejected_spans == 1
    assert "nested deeper" in response.partial_success.error_message
    rows = collector.reader().sql("SELECT name, attributes FROM spans").to_pylist()
    assert [r["name"] for r in rows] == ["fine"]
    assert json.loads(rows[0]["attributes"])["nested"] == {"k": {"k": {"k": {"k": {"k": "leaf"}}}}}


def _length_delimited(field: int, payload: bytes) -> bytes:
    from google.protobuf.internal.encoder import _VarintBytes

    return _VarintBytes(field << 3 | 2) + _VarintBytes(len(payload)) + payload


def test_nesting_beyond_what_protobuf_will_parse_is_a_clear_error(collector):
    # Written by hand: protobuf itself refuses to build a message this deep (its recursion limit is 100).
    value = AnyValue(string_value="leaf").SerializeToString()
    for _ in range(120):
        value = _length_delimited(5, _length_delimited(1, value))  # AnyValue.array_value.values[0]
    attribute = _length_delimited(1, b"deep") + _length_delimited(2, value)
    span = _length_delimited(1, b"\x01" * 16) + _length_delimited(2, b"\x02" * 8) + _length_delimited(9, attribute)
    payload = _length_delimited(1, _length_delimited(2, _length_delimited(2, span)))
    with pytest.raises(grpc.RpcError) as caught:
        _grpc_export(collector, payload)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed protobuf" in caught.value.details()
    _assert_still_serving(collector)


def test_huge_attribute_values_are_stored_whole(collector):
    huge = "x" * (5 * 1024 * 1024)
    request = _request([{"attributes": {"gen_ai.input.messages": AnyValue(string_value=huge)}}])
    _grpc_export(collector, request.SerializeToString())
    length = collector.reader().sql(
        "SELECT length(attributes->>'$.\"gen_ai.input.messages\"') AS n FROM spans").column("n")[0].as_py()
    assert length == len(huge)


@pytest.fixture
def small_limit_collector(collector_settings):
    from tracekit.collector.service import Collector

    collector_settings.max_request_bytes = 64 * 1024
    with Collector(collector_settings).running() as running:
        yield running


def test_oversized_requests_are_refused_on_both_receivers(small_limit_collector):
    collector = small_limit_collector
    big = _request([{"attributes": {"blob": AnyValue(string_value="y" * 100_000)}}]).SerializeToString()
    with pytest.raises(grpc.RpcError) as caught:
        _grpc_export(collector, big)
    # gRPC itself refuses a message over the limit, before it is held whole: RESOURCE_EXHAUSTED without the
    # RetryInfo that marks overload as retryable (the OTLP spec: no RetryInfo, no retry).
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in caught.value.details()
    assert "google.rpc.retryinfo-bin" not in dict(caught.value.trailing_metadata() or ())
    status, _, _ = _post(collector.http_endpoint + "/v1/traces", big, "application/x-protobuf")
    assert status == 413
    # a gzip bomb: small on the wire, over the limit once inflated
    bomb = gzip.compress(b"\x00" * (4 * 1024 * 1024))
    assert len(bomb) < 64 * 1024
    status, _, _ = _post(collector.http_endpoint + "/v1/traces", bomb, "application/x-protobuf",
                         {"Content-Encoding": "gzip"})
    assert status == 413
    _assert_still_serving(collector)


def test_logs_with_invalid_ids_are_rejected_individually(collector):
    request = ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    good = scope.log_records.add()
    good.body.string_value = "fine"
    bad = scope.log_records.add()
    bad.body.string_value = "bad"
    bad.trace_id = b"\x01" * 5
    with grpc.insecure_channel(collector.grpc_endpoint) as channel:
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
        raw = channel.unary_unary("/opentelemetry.proto.collector.logs.v1.LogsService/Export")(
            request.SerializeToString(), timeout=30)
    assert ExportLogsServiceResponse.FromString(raw).partial_success.rejected_log_records == 1
    assert collector.reader().sql("SELECT body FROM logs").column("body").to_pylist() == ['"fine"']


def test_bearer_token_is_required_when_configured(collector_settings):
    from tracekit.collector.service import Collector

    collector_settings.auth_token = "s3cret"
    with Collector(collector_settings).running() as collector:
        payload = _request([{}]).SerializeToString()
        with pytest.raises(grpc.RpcError) as caught:
            _grpc_export(collector, payload)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        status, _, _ = _post(collector.http_endpoint + "/v1/traces", payload, "application/x-protobuf")
        assert status == 401
        status, _, _ = _post(collector.http_endpoint + "/v1/traces", payload, "application/x-protobuf",
                             {"Authorization": "Bearer s3cret"})
        assert status == 200
        assert _count(collector) == 1
