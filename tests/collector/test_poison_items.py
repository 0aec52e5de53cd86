"""Poison items are refused on their own (OTLP partial success) and the good items beside them are stored; a request
that cannot be decoded at all is a permanent error (400 / INVALID_ARGUMENT), never a retryable 503 / UNAVAILABLE."""

from __future__ import annotations

import gzip

import grpc
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (ExportLogsServiceRequest,
                                                                    ExportLogsServiceResponse)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (ExportMetricsServiceRequest,
                                                                          ExportMetricsServiceResponse)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                      ExportTraceServiceResponse)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tests.collector.test_receivers import _post
from tracekit.collector.processors import normalize

METHODS = {
    "traces": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    "metrics": "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
}


def _export(collector, signal: str, payload: bytes) -> bytes:
    with grpc.insecure_channel(collector.grpc_endpoint) as channel:
        return channel.unary_unary(METHODS[signal])(payload, timeout=30)


def _rows(collector, sql: str) -> list[dict]:
    return collector.reader().sql(sql).to_pylist()


def _too_deep() -> AnyValue:
    """Past the collector's depth limit (32), well within what protobuf parses."""
    value = AnyValue(string_value="leaf")
    for _ in range(40):
        value = AnyValue(array_value={"values": [value]})
    return value


def _poisoned_resource(resource) -> None:
    resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="bad")))
    resource.attributes.append(KeyValue(key="deep", value=_too_deep()))


def _add_span(scope_spans, name: str, span_id: int) -> None:
    span = scope_spans.spans.add(name=name, trace_id=b"\x01" * 16, span_id=span_id.to_bytes(8, "big"))
    span.start_time_unix_nano, span.end_time_unix_nano = 1_000, 2_000


def test_a_log_record_with_a_time_past_int64_is_refused_alone(collector):
    request = ExportLogsServiceRequest()
    scope = request.resource_logs.add().scope_logs.add()
    scope.log_records.add(time_unix_nano=1_700_000_000_000_000_000).body.string_value = "good"
    scope.log_records.add(time_unix_nano=2**63).body.string_value = "time past int64"
    scope.log_records.add(observed_time_unix_nano=2**64 - 1).body.string_value = "observed past int64"
    response = ExportLogsServiceResponse.FromString(_export(collector, "logs", request.SerializeToString()))
    assert response.partial_success.rejected_log_records == 2
    assert "past year 2262" in response.partial_success.error_message
    assert [row["body"] for row in _rows(collector, "SELECT body FROM logs")] == ['"good"']


def test_a_metric_point_with_time_2_64_minus_1_is_refused_alone(collector):
    request = ExportMetricsServiceRequest()
    metric = request.resource_metrics.add().scope_metrics.add().metrics.add(name="queue.depth")
    metric.gauge.data_points.add(time_unix_nano=1_000, as_int=1)
    metric.gauge.data_points.add(time_unix_nano=2**64 - 1, as_int=2)
    metric.gauge.data_points.add(time_unix_nano=3_000, start_time_unix_nano=2**63, as_int=3)
    metric.gauge.data_points.add(time_unix_nano=4_000, as_int=4)
    deep = metric.gauge.data_points.add(time_unix_nano=5_000, as_int=5)
    deep.attributes.append(KeyValue(key="deep", value=_too_deep()))
    response = ExportMetricsServiceResponse.FromString(_export(collector, "metrics", request.SerializeToString()))
    assert response.partial_success.rejected_data_points == 3
    assert "past year 2262" in response.partial_success.error_message
    values = [row["value"] for row in _rows(collector, "SELECT value FROM metric_points ORDER BY time_ns")]
    assert values == [1.0, 4.0]  # the points after a refused one are kept too


@pytest.mark.parametrize("decoder", ["compiled", "python"])
def test_a_resource_nested_past_the_depth_limit_refuses_only_its_own_spans(collector, monkeypatch, decoder):
    if decoder == "python":
        monkeypatch.setattr(normalize, "_fastdecode", None)
    elif normalize._fastdecode is None:
        pytest.skip("the compiled decoder was not built")
    request = ExportTraceServiceRequest()
    good = request.resource_spans.add()
    good.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="good")))
    _add_span(good.scope_spans.add(), "kept", 1)
    bad = request.resource_spans.add()
    _poisoned_resource(bad.resource)
    scope = bad.scope_spans.add()
    _add_span(scope, "refused 1", 2)
    _add_span(scope, "refused 2", 3)
    after = request.resource_spans.add()
    _add_span(after.scope_spans.add(), "kept after", 4)
    response = ExportTraceServiceResponse.FromString(_export(collector, "traces", request.SerializeToString()))
    assert response.partial_success.rejected_spans == 2
    assert "resource refused" in response.partial_success.error_message
    rows = _rows(collector, "SELECT name, service_name FROM spans ORDER BY name")
    assert rows == [{"name": "kept", "service_name": "good"}, {"name": "kept after", "service_name": None}]


def test_a_resource_nested_past_the_depth_limit_refuses_its_logs_and_metric_points(collector):
    logs = ExportLogsServiceRequest()
    bad = logs.resource_logs.add()
    _poisoned_resource(bad.resource)
    bad.scope_logs.add().log_records.add().body.string_value = "refused"
    logs.resource_logs.add().scope_logs.add().log_records.add().body.string_value = "kept"
    response = ExportLogsServiceResponse.FromString(_export(collector, "logs", logs.SerializeToString()))
    assert response.partial_success.rejected_log_records == 1
    assert [row["body"] for row in _rows(collector, "SELECT body FROM logs")] == ['"kept"']

    metrics = ExportMetricsServiceRequest()
    bad_metrics = metrics.resource_metrics.add()
    _poisoned_resource(bad_metrics.resource)
    points = bad_metrics.scope_metrics.add().metrics.add(name="refused").sum.data_points
    points.add(as_int=1)
    points.add(as_int=2)
    metrics.resource_metrics.add().scope_metrics.add().metrics.add(name="kept").gauge.data_points.add(as_int=3)
    response = ExportMetricsServiceResponse.FromString(_export(collector, "metrics", metrics.SerializeToString()))
    assert response.partial_success.rejected_data_points == 2
    assert [row["metric_name"] for row in _rows(collector, "SELECT metric_name FROM metric_points")] == ["kept"]


@pytest.mark.parametrize("body", [
    b"\x1f\x8b\x08\x00garbage that is not deflate",            # a gzip header, then nonsense
    gzip.compress(b"\x0a\x00" * 1000)[:-20],                   # a valid stream cut short
], ids=["broken", "truncated"])
def test_a_broken_gzip_body_is_400_not_a_retryable_503(collector, body):
    status, answer, headers = _post(collector.http_endpoint + "/v1/traces", body, "application/x-protobuf",
                                    {"Content-Encoding": "gzip"})
    assert status == 400, answer
    assert "Retry-After" not in headers
    assert "compressed body" in Status.FromString(answer).message


def test_an_unsupported_content_encoding_is_415(collector):
    status, answer, headers = _post(collector.http_endpoint + "/v1/traces", b"\x0a\x00", "application/x-protobuf",
                                    {"Content-Encoding": "br"})
    assert status == 415 and "Retry-After" not in headers
    assert "Content-Encoding" in Status.FromString(answer).message


def test_a_decoder_failure_is_a_permanent_error_on_both_receivers(collector, monkeypatch):
    """Whatever goes wrong decoding a request would go wrong again on a retry: never UNAVAILABLE / 503."""
    def broken(*_: object) -> None:
        raise RuntimeError("a decoder bug")

    monkeypatch.setattr(normalize, "_decode_traces_python", broken)
    monkeypatch.setattr(normalize, "_fastdecode", None)
    request = ExportTraceServiceRequest()
    _add_span(request.resource_spans.add().scope_spans.add(), "s", 1)
    with pytest.raises(grpc.RpcError) as caught:
        _export(collector, "traces", request.SerializeToString())
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "a decoder bug" in caught.value.details()
    status, answer, headers = _post(collector.http_endpoint + "/v1/traces", request.SerializeToString(),
                                    "application/x-protobuf")
    assert status == 400 and "Retry-After" not in headers
