"""Attribute count limits end to end: configured through the OTEL_* variables, applied by the running collector to
what the real OTel SDK and exporter send, counted in dropped_attributes_count, and shown in the TUI's span details."""

from __future__ import annotations

import json

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from rich.console import Console

from tracekit.collector.processors.anyvalue import AttributeLimits
from tracekit.collector.service import Collector
from tracekit.collector.settings import CollectorSettings


def test_otel_attribute_count_limit_variables_set_the_collector_limits(tmp_path, monkeypatch):
    monkeypatch.setenv("OTEL_ATTRIBUTE_COUNT_LIMIT", "50")
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "3")
    monkeypatch.setenv("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", "7")
    limits = CollectorSettings.from_env(tmp_path / "x.duckdb").attribute_limits
    assert limits == AttributeLimits(span=3, event=50, link=50, log_record=7, kvlist=50)
    monkeypatch.setenv("TRACEKIT_ATTRIBUTE_COUNT_LIMIT", "9")
    assert CollectorSettings.from_env(tmp_path / "x.duckdb").attribute_limits.event == 9


def test_spans_over_the_limit_keep_the_first_keys_and_the_tui_shows_what_was_dropped(tmp_path, monkeypatch):
    from tracekit.tui.data import SpanDetails, trace_spans
    from tracekit.tui.widgets.span_details import render_details

    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", "2")
    settings = CollectorSettings.from_env(tmp_path / "limits.duckdb")
    settings.grpc, settings.http = "127.0.0.1:0", None
    with Collector(settings).running() as collector:
        provider = TracerProvider(span_limits=SpanLimits(max_span_attributes=20))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.grpc_endpoint,
                                                                         insecure=True)))
        with provider.get_tracer("t").start_as_current_span("chat") as span:
            for index in range(5):
                span.set_attribute(f"key{index}", index)
            trace_id = format(span.get_span_context().trace_id, "032x")
        provider.shutdown()
        reader = collector.reader()
        stored = reader.sql("SELECT attributes, dropped_attributes_count FROM spans").to_pylist()
        assert [(json.loads(row["attributes"]), row["dropped_attributes_count"]) for row in stored] == [
            ({"key0": 0, "key1": 1}, 3)]
        (row,) = trace_spans(reader, trace_id)
    console = Console(record=True, width=120)
    console.print(render_details(SpanDetails(span=row)))
    assert "3 more dropped by an attribute count limit" in console.export_text()


def test_log_records_are_limited_and_their_bodies_kept_whole():
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    from tracekit.collector.processors.normalize import decode_logs

    request = ExportLogsServiceRequest()
    record = request.resource_logs.add().scope_logs.add().log_records.add(dropped_attributes_count=1)
    record.attributes.extend(KeyValue(key=f"a{index}", value=AnyValue(int_value=index)) for index in range(5))
    record.body.kvlist_value.values.extend(KeyValue(key=f"b{index}", value=AnyValue(int_value=index))
                                           for index in range(5))
    batch = decode_logs(request, AttributeLimits(log_record=2, kvlist=2))
    (row,) = batch.tables["logs"].select(["attributes", "body", "dropped_attributes_count"]).to_pylist()
    assert json.loads(row["attributes"]) == {"a0": 0, "a1": 1}
    assert row["dropped_attributes_count"] == 1 + 3
    assert json.loads(row["body"]) == {f"b{index}": index for index in range(5)}
