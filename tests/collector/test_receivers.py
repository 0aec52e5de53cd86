"""The real OTLP exporters (gRPC and HTTP protobuf) and raw OTLP/JSON into the real collector; rows checked field by field."""

from __future__ import annotations

import json
import time
import urllib.request

import orjson
import pytest
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

RESOURCE = Resource({"service.name": "trip-planner", "service.version": "2.1.0", "service.instance.id": "host-7",
                     "deployment.environment": "test"})


def _rows(collector, sql: str, params=None) -> list[dict]:
    return collector.reader().sql(sql, params).to_pylist()


def _emit_agent_trace(provider: TracerProvider) -> dict[str, object]:
    """A small agent trace with every attribute type, events, a link, an error; returns what was sent."""
    tracer = provider.get_tracer("tracekit.tests", "9.9.9")
    sent: dict[str, object] = {}
    with tracer.start_as_current_span("linked-source") as source:
        link_context = source.get_span_context()
    with tracer.start_as_current_span(
        "invoke_agent planner", kind=SpanKind.INTERNAL,
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner",
                    "gen_ai.conversation.id": "conv-42", "gen_ai.provider.name": "openai", "gen_ai.system": "openai"},
        links=[Link(link_context, {"link.reason": "follows"})],
    ) as root:
        root.add_event("plan.ready", {"steps": 3, "ok": True})
        with tracer.start_as_current_span(
            "chat gpt-4o", kind=SpanKind.CLIENT,
            attributes={"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o",
                        "gen_ai.response.id": "chatcmpl-1", "gen_ai.usage.input_tokens": 120,
                        "gen_ai.usage.output_tokens": 33, "gen_ai.request.temperature": 0.25,
                        "gen_ai.response.finish_reasons": ("stop",), "flag": False,
                        "ints": [1, 2, 3], "floats": [0.5, 1.5], "unicode": "h\u00e9llo \u2603 \"q\" \n"},
        ) as chat:
            sent["chat_span_id"] = format(chat.get_span_context().span_id, "016x")
        with tracer.start_as_current_span(
            "execute_tool get_weather", attributes={"gen_ai.operation.name": "execute_tool",
                                                    "gen_ai.tool.name": "get_weather",
                                                    "gen_ai.tool.call.id": "call_1"},
        ) as tool:
            tool.record_exception(ValueError("city not found"))
            tool.set_status(Status(StatusCode.ERROR, "city not found"))
            tool.set_attribute("error.type", "ValueError")
            sent["tool_span_id"] = format(tool.get_span_context().span_id, "016x")
        sent["root_span_id"] = format(root.get_span_context().span_id, "016x")
        sent["trace_id"] = format(root.get_span_context().trace_id, "032x")
        sent["link_trace_id"] = format(link_context.trace_id, "032x")
        sent["link_span_id"] = format(link_context.span_id, "016x")
    return sent


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_spans_from_the_real_exporters_are_stored_field_by_field(collector, protocol):
    exporter = (GrpcSpanExporter(endpoint=collector.grpc_endpoint, insecure=True) if protocol == "grpc"
                else HttpSpanExporter(endpoint=collector.http_endpoint + "/v1/traces"))
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    sent = _emit_agent_trace(provider)
    provider.shutdown()

    spans = {row["name"]: row for row in _rows(
        collector, "SELECT * FROM spans WHERE trace_id = ? ORDER BY start_time_ns", [sent["trace_id"]])}
    assert set(spans) == {"invoke_agent planner", "chat gpt-4o", "execute_tool get_weather"}
    root, chat, tool = spans["invoke_agent planner"], spans["chat gpt-4o"], spans["execute_tool get_weather"]

    assert root["span_id"] == sent["root_span_id"] and root["parent_span_id"] is None
    assert chat["parent_span_id"] == tool["parent_span_id"] == sent["root_span_id"]
    assert chat["span_id"] == sent["chat_span_id"] and tool["span_id"] == sent["tool_span_id"]
    assert (root["kind"], chat["kind"], tool["kind"]) == ("INTERNAL", "CLIENT", "INTERNAL")
    assert (root["status_code"], tool["status_code"]) == ("UNSET", "ERROR")
    assert tool["status_message"] == "city not found" and tool["error_type"] == "ValueError"
    assert root["service_name"] == "trip-planner"
    assert root["scope_name"] == "tracekit.tests" and root["scope_version"] == "9.9.9"
    assert chat["end_time_ns"] - chat["start_time_ns"] == chat["duration_ns"] > 0
    assert abs(chat["start_time"].timestamp() * 1e9 - chat["start_time_ns"]) < 1e3  # microsecond timestamp

    # typed columns lifted from gen_ai.* attributes
    assert (root["operation_name"], root["agent_name"], root["conversation_id"], root["provider_name"]) == (
        "invoke_agent", "planner", "conv-42", "openai")
    assert (chat["request_model"], chat["response_id"], chat["input_tokens"], chat["output_tokens"]) == (
        "gpt-4o", "chatcmpl-1", 120, 33)
    assert (tool["tool_name"], tool["tool_call_id"]) == ("get_weather", "call_1")

    # every attribute type round-trips through the JSON column
    attributes = json.loads(chat["attributes"])
    assert attributes["gen_ai.request.temperature"] == 0.25
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attributes["flag"] is False and attributes["ints"] == [1, 2, 3] and attributes["floats"] == [0.5, 1.5]
    assert attributes["unicode"] == "h\u00e9llo \u2603 \"q\" \n"
    assert attributes["gen_ai.usage.input_tokens"] == 120

    events = _rows(collector, "SELECT * FROM span_events WHERE trace_id = ? ORDER BY time_ns", [sent["trace_id"]])
    assert [(e["span_id"], e["name"]) for e in events] == [
        (sent["root_span_id"], "plan.ready"), (sent["tool_span_id"], "exception")]
    assert json.loads(events[0]["attributes"]) == {"steps": 3, "ok": True}
    exception = json.loads(events[1]["attributes"])
    assert exception["exception.type"] == "ValueError" and exception["exception.message"] == "city not found"
    assert root["event_count"] == 1 and tool["event_count"] == 1

    links = _rows(collector, "SELECT * FROM span_links WHERE span_id = ?", [sent["root_span_id"]])
    assert len(links) == 1
    assert (links[0]["linked_trace_id"], links[0]["linked_span_id"]) == (sent["link_trace_id"], sent["link_span_id"])
    assert json.loads(links[0]["attributes"]) == {"link.reason": "follows"}

    resources = _rows(collector, "SELECT * FROM resources WHERE resource_id = ?", [root["resource_id"]])
    assert len(resources) == 1
    assert resources[0]["service_version"] == "2.1.0" and resources[0]["service_instance_id"] == "host-7"
    assert json.loads(resources[0]["attributes"])["deployment.environment"] == "test"


def test_a_resource_is_stored_once_however_many_requests_carry_it(collector):
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(GrpcSpanExporter(endpoint=collector.grpc_endpoint,
                                                                      insecure=True)))
    tracer = provider.get_tracer("t")
    for index in range(5):
        with tracer.start_as_current_span(f"s{index}"):
            pass
    provider.shutdown()
    assert _rows(collector, "SELECT count(*) AS n FROM spans")[0]["n"] == 5
    assert _rows(collector, "SELECT count(*) AS n FROM resources")[0]["n"] == 1


def test_logs_are_stored_and_correlated_with_the_current_span(collector):
    logger_provider = LoggerProvider(resource=RESOURCE)
    logger_provider.add_log_record_processor(
        SimpleLogRecordProcessor(OTLPLogExporter(endpoint=collector.grpc_endpoint, insecure=True)))
    tracer_provider = TracerProvider(resource=RESOURCE)
    tracer = tracer_provider.get_tracer("t")
    logger = logger_provider.get_logger("tracekit.tests")
    with tracer.start_as_current_span("invoke_agent judge") as span:
        # no explicit ids: the SDK takes them from the current span, as instrumentations do
        logger.emit(
            timestamp=time.time_ns(), severity_number=SeverityNumber.INFO, severity_text="INFO",
            body={"gen_ai.evaluation.name": "relevance", "score": 4.0},
            attributes={"microsoft.custom_event.name": "gen_ai.evaluation.result",
                        "gen_ai.evaluation.score.value": 4.0},
        )
        context = span.get_span_context()
    logger_provider.shutdown()
    rows = _rows(collector, "SELECT * FROM logs")
    assert len(rows) == 1
    record = rows[0]
    assert record["trace_id"] == format(context.trace_id, "032x")
    assert record["span_id"] == format(context.span_id, "016x")
    assert record["severity_number"] == SeverityNumber.INFO.value and record["severity_text"] == "INFO"
    assert record["event_name"] == "gen_ai.evaluation.result"
    assert json.loads(record["body"]) == {"gen_ai.evaluation.name": "relevance", "score": 4.0}
    assert json.loads(record["attributes"])["gen_ai.evaluation.score.value"] == 4.0
    assert record["service_name"] == "trip-planner" and record["scope_name"] == "tracekit.tests"


def test_metric_points_of_every_kind_are_stored(collector):
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=collector.grpc_endpoint, insecure=True),
                                           export_interval_millis=60_000)
    provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
    meter = provider.get_meter("tracekit.tests")
    histogram = meter.create_histogram("gen_ai.client.token.usage", unit="{token}",
                                       explicit_bucket_boundaries_advisory=[1, 4, 16, 64, 256])
    histogram.record(100, {"gen_ai.token.type": "input", "gen_ai.request.model": "gpt-4o"})
    histogram.record(3, {"gen_ai.token.type": "input", "gen_ai.request.model": "gpt-4o"})
    counter = meter.create_counter("agent.runs")
    counter.add(2, {"agent": "planner"})
    meter.create_observable_gauge("queue.depth", callbacks=[lambda options: [
        __import__("opentelemetry.metrics", fromlist=["Observation"]).Observation(7, {"q": "a"})]])
    provider.shutdown()

    points = {row["metric_name"]: row for row in _rows(collector, "SELECT * FROM metric_points")}
    tokens = points["gen_ai.client.token.usage"]
    assert tokens["metric_type"] == "histogram" and tokens["unit"] == "{token}"
    assert tokens["count"] == 2 and tokens["sum"] == 103 and tokens["min"] == 3 and tokens["max"] == 100
    assert tokens["explicit_bounds"] == [1, 4, 16, 64, 256]
    assert tokens["bucket_counts"] == [0, 1, 0, 0, 1, 0]
    assert json.loads(tokens["attributes"]) == {"gen_ai.token.type": "input", "gen_ai.request.model": "gpt-4o"}
    runs = points["agent.runs"]
    assert (runs["metric_type"], runs["value"], runs["is_monotonic"], runs["temporality"]) == (
        "sum", 2.0, True, "CUMULATIVE")
    assert points["queue.depth"]["metric_type"] == "gauge" and points["queue.depth"]["value"] == 7.0


def _post(url: str, body: bytes, content_type: str, headers: dict[str, str] | None = None):
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": content_type, **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def otlp_json_traces(trace_id: str = "5b8efff798038103d269b633813fc60c") -> dict:
    """An OTLP/JSON request as the spec's examples write it (hex ids, string int64s, enum numbers)."""
    return {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "json-sender"}}]},
        "scopeSpans": [{
            "scope": {"name": "manual", "version": "1.0"},
            "spans": [
                {"traceId": trace_id, "spanId": "eee19b7ec3c1b174", "name": "invoke_agent json",
                 "kind": 1, "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": "1544712661000000000",
                 "attributes": [
                     {"key": "gen_ai.agent.name", "value": {"stringValue": "json-agent"}},
                     {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "42"}},
                     {"key": "ratio", "value": {"doubleValue": 0.5}},
                     {"key": "ok", "value": {"boolValue": True}},
                     {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}]}}},
                     {"key": "obj", "value": {"kvlistValue": {"values": [
                         {"key": "k", "value": {"intValue": "1"}}]}}},
                     {"key": "raw", "value": {"bytesValue": "aGk="}}],
                 "events": [{"timeUnixNano": "1544712660500000000", "name": "ev",
                             "attributes": [{"key": "n", "value": {"intValue": "3"}}]}],
                 "status": {"code": 2, "message": "boom"}},
                {"traceId": trace_id, "spanId": "eee19b7ec3c1b175", "parentSpanId": "eee19b7ec3c1b174",
                 "name": "chat json", "kind": 3, "startTimeUnixNano": "1544712660100000000",
                 "endTimeUnixNano": "1544712660200000000"},
            ]}]}]}


def test_otlp_json_over_http_is_stored_with_hex_ids(collector):
    status, body, headers = _post(collector.http_endpoint + "/v1/traces", orjson.dumps(otlp_json_traces()),
                                  "application/json")
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert json.loads(body) == {}  # no partial_success when everything was accepted
    rows = {r["name"]: r for r in _rows(collector, "SELECT * FROM spans")}
    root, child = rows["invoke_agent json"], rows["chat json"]
    assert root["trace_id"] == "5b8efff798038103d269b633813fc60c" and root["span_id"] == "eee19b7ec3c1b174"
    assert child["parent_span_id"] == "eee19b7ec3c1b174" and child["kind"] == "CLIENT"
    assert root["kind"] == "INTERNAL" and root["status_code"] == "ERROR" and root["status_message"] == "boom"
    assert root["start_time_ns"] == 1544712660000000000 and root["duration_ns"] == 1_000_000_000
    assert root["service_name"] == "json-sender" and root["agent_name"] == "json-agent"
    assert root["input_tokens"] == 42
    assert json.loads(root["attributes"]) == {
        "gen_ai.agent.name": "json-agent", "gen_ai.usage.input_tokens": 42, "ratio": 0.5, "ok": True,
        "tags": ["a"], "obj": {"k": 1}, "raw": "aGk="}
    events = _rows(collector, "SELECT * FROM span_events")
    assert [(e["name"], json.loads(e["attributes"])) for e in events] == [("ev", {"n": 3})]


def test_otlp_json_logs_and_gzip_protobuf(collector):
    import gzip

    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from google.protobuf import json_format

    logs = {"resourceLogs": [{"resource": {}, "scopeLogs": [{"logRecords": [{
        "timeUnixNano": "1544712660300000000", "severityNumber": 17, "severityText": "ERROR",
        "body": {"stringValue": "tool failed"}, "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b174", "eventName": "tool.error"}]}]}]}
    status, _, _ = _post(collector.http_endpoint + "/v1/logs", orjson.dumps(logs), "application/json")
    assert status == 200
    request = ExportTraceServiceRequest()
    document = otlp_json_traces("0af7651916cd43dd8448eb211c80319c")
    for span in document["resourceSpans"][0]["scopeSpans"][0]["spans"]:  # protobuf's JSON mapping wants base64 ids
        for key in ("traceId", "spanId", "parentSpanId"):
            if key in span:
                import base64
                span[key] = base64.b64encode(bytes.fromhex(span[key])).decode()
    json_format.ParseDict(document, request)
    status, body, _ = _post(collector.http_endpoint + "/v1/traces", gzip.compress(request.SerializeToString()),
                            "application/x-protobuf", {"Content-Encoding": "gzip"})
    assert status == 200
    log = _rows(collector, "SELECT * FROM logs")[0]
    assert (log["severity_number"], log["event_name"], json.loads(log["body"])) == (17, "tool.error", "tool failed")
    assert log["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert _rows(collector, "SELECT count(*) AS n FROM spans WHERE trace_id = '0af7651916cd43dd8448eb211c80319c'"
                 )[0]["n"] == 2


def test_every_commit_group_gets_a_higher_ingest_seq(collector):
    exporter = GrpcSpanExporter(endpoint=collector.grpc_endpoint, insecure=True)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("first"):
        pass
    first = _rows(collector, "SELECT ingest_seq FROM spans")[0]["ingest_seq"]
    with tracer.start_as_current_span("second"):
        pass
    provider.shutdown()
    second = _rows(collector, "SELECT ingest_seq FROM spans WHERE name = 'second'")[0]["ingest_seq"]
    assert second > first


def test_decoding_in_worker_processes_stores_the_same_rows(collector_settings):
    from tracekit.collector.service import Collector

    collector_settings.decode_workers = 1  # the process-pool path: requests and the redactor cross a process boundary
    with Collector(collector_settings).running() as collector:
        provider = TracerProvider(resource=RESOURCE)
        provider.add_span_processor(SimpleSpanProcessor(GrpcSpanExporter(endpoint=collector.grpc_endpoint,
                                                                          insecure=True)))
        sent = _emit_agent_trace(provider)
        provider.shutdown()
        rows = _rows(collector, "SELECT name, parent_span_id, agent_name FROM spans WHERE trace_id = ? ORDER BY name",
                     [sent["trace_id"]])
    assert rows == [
        {"name": "chat gpt-4o", "parent_span_id": sent["root_span_id"], "agent_name": None},
        {"name": "execute_tool get_weather", "parent_span_id": sent["root_span_id"], "agent_name": None},
        {"name": "invoke_agent planner", "parent_span_id": None, "agent_name": "planner"},
    ]
