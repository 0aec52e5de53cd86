"""Every path masks every place a sender controls, with the default policy: the collector, `tracekit import` with
and without a collector, every export (Azure Monitor, OTLP, OTLP/JSON files) and the in-process SDK processors.

The requests come from planted.full_plan: each secret shape in each place (names, status messages, trace states,
event names, attribute keys, maps and lists inside values, log bodies of every shape, severity texts, metric point
and exemplar attributes, resources, scopes), and secret-named keys at every nesting level.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.export.fake_ingestion import FakeIngestion
from tests.redaction.planted import found, full_plan, post, requests, store_text
from tracekit.cli import main
from tracekit.collector.service import Collector
from tracekit.collector.settings import CollectorSettings
from tracekit.export.otlp_json import to_json_line
from tracekit.store.reader import LocalReader


def _settings(tmp_path: Path, name: str, **options) -> CollectorSettings:
    return CollectorSettings(db_path=tmp_path / f"{name}.duckdb", grpc="127.0.0.1:0", http="127.0.0.1:0", **options)


def _file_text(db: Path) -> str:
    reader = LocalReader.open_file(db)
    try:
        return store_text(reader)
    finally:
        reader.close()


def _jsonl(tmp_path: Path, plan) -> Path:
    path = tmp_path / "planted.jsonl"
    path.write_bytes(b"".join(to_json_line(request) for request in requests(plan)))
    return path


def test_the_plan_reaches_the_store_when_nothing_redacts(tmp_path: Path) -> None:
    """The check below is only worth something if every planted value is stored somewhere when nothing masks it."""
    plan = full_plan()
    with Collector(_settings(tmp_path, "open", redaction="off")).running() as collector:
        for request in requests(plan):
            post(collector.http_endpoint, request)
        assert found(plan.needles, store_text(collector.reader())) == plan.needles


def test_the_collector_masks_every_place(collector) -> None:
    plan = full_plan()
    for request in requests(plan):
        post(collector.http_endpoint, request)
    stored = store_text(collector.reader())
    assert found(plan.needles, stored) == []
    assert "[REDACTED:" in stored and collector.status()["masked_before_storage"] >= len(plan.needles)
    span = collector.reader().sql("SELECT name, status_message, trace_state, attributes FROM spans").to_pylist()[0]
    assert span["name"].startswith("note [REDACTED:") and span["status_message"].startswith("note [REDACTED:")
    messages = json.loads(span["attributes"])["gen_ai.input.messages.structured"]
    assert messages[0] == {"role": "system", "content": "be brief"}  # structure and clean values kept


def test_import_without_a_collector_masks_every_place(tmp_path: Path, capsys) -> None:
    plan = full_plan()
    db = tmp_path / "imported.duckdb"
    assert main(["import", str(_jsonl(tmp_path, plan)), "--db", str(db)]) == 0
    assert found(plan.needles, _file_text(db)) == []
    assert "redacted by the import's policy" in capsys.readouterr().err


def test_import_through_a_running_collector_masks_every_place(tmp_path: Path, collector, capsys) -> None:
    plan = full_plan()
    path = _jsonl(tmp_path, plan)
    assert main(["import", str(path), "--db", str(collector.settings.db_path)]) == 0
    assert found(plan.needles, store_text(collector.reader())) == []
    assert "redacted by the collector's policy" in capsys.readouterr().err
    # A policy of the import's own cannot be honoured by the collector: refused, not silently replaced.
    assert main(["import", str(path), "--db", str(collector.settings.db_path), "--no-redaction"]) != 0
    assert "redacts everything it stores with its own policy" in capsys.readouterr().err


@pytest.fixture
def unmasked_store(tmp_path: Path):
    """A store holding the full plan as sent (imported with --no-redaction), and the plan."""
    plan = full_plan()
    db = tmp_path / "unmasked.duckdb"
    assert main(["import", str(_jsonl(tmp_path, plan)), "--db", str(db), "--no-redaction"]) == 0
    assert len(found(plan.needles, _file_text(db))) == len(plan.needles)
    return db, plan


def test_otlp_json_export_masks_every_place(tmp_path: Path, unmasked_store) -> None:
    db, plan = unmasked_store
    out = tmp_path / "out.jsonl"
    assert main(["export", "otlp-json", "--db", str(db), "-o", str(out), "--no-progress"]) == 0
    written = out.read_text()
    assert found(plan.needles, written) == [] and "[REDACTED:" in written


def test_azure_monitor_export_masks_every_place(unmasked_store) -> None:
    db, plan = unmasked_store
    with FakeIngestion() as fake:
        assert main(["export", "azure-monitor", "--db", str(db), "--connection-string", fake.connection_string,
                     "--no-progress"]) == 0
        sent = json.dumps(fake.telemetry())
    assert found(plan.needles, sent) == [] and "[REDACTED:" in sent


def test_otlp_export_masks_every_place(tmp_path: Path, unmasked_store) -> None:
    db, plan = unmasked_store
    with Collector(_settings(tmp_path, "receiver", redaction="off")).running() as receiver:
        assert main(["export", "otlp", "--db", str(db), "--endpoint", receiver.http_endpoint,
                     "--protocol", "http/protobuf", "--no-progress"]) == 0
        received = store_text(receiver.reader())
    assert found(plan.needles, received) == [] and "[REDACTED:" in received


def test_the_sdk_processors_mask_every_place() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, StatusCode, TraceFlags, TraceState

    from tracekit.redaction import RedactionPolicy
    from tracekit.redaction.sdk import RedactingLogRecordProcessor, RedactingSpanProcessor

    key, jwt, mail = "sk-proj-" + "Q" * 30, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJlLXBhcnQ", "ann@example.com"
    aws, ssn = "AKIAIOSFODNN7EXAMPLE", "123-45-6789"
    resource = Resource({"service.name": "svc", "deployment.note": f"key {key}"})
    spans = InMemorySpanExporter()
    provider = TracerProvider(resource=resource)
    policy = RedactionPolicy.default()
    provider.add_span_processor(RedactingSpanProcessor(policy))
    provider.add_span_processor(SimpleSpanProcessor(spans))
    parent = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(1),
                         trace_state=TraceState([("vendor", f"t {aws}")]))
    linked = SpanContext(0x9999, 0x8888, is_remote=True, trace_state=TraceState([("v", f"x {aws}")]))
    tracer = provider.get_tracer(f"scope {key}", "1.0")
    with tracer.start_as_current_span(f"POST /v1/chat key={key}", context=trace.set_span_in_context(
            NonRecordingSpan(parent)), links=[Link(linked, {"why": f"mail {mail}", "client_secret": "cs-1"})]) as span:
        span.set_attribute("app.rows", [f"ssn {ssn}", "plain"])
        span.set_attribute("app.password", "hunter2-hunter2")
        span.add_event(f"event {mail}", {"detail": f"token {jwt}"})
        span.set_status(StatusCode.ERROR, f"Incorrect API key provided: {key}")
    (finished,) = spans.get_finished_spans()
    text = finished.to_json() + json.dumps(dict(finished.resource.attributes)) + finished.instrumentation_scope.name
    for secret in (key, jwt, mail, aws, ssn, "hunter2-hunter2", "cs-1"):
        assert secret not in text, secret
    assert finished.context.trace_state.get("vendor") == "t [REDACTED:aws_access_key]"
    assert finished.attributes["tracekit.redaction.masked_count"] >= 10

    logs = InMemoryLogRecordExporter()
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(RedactingLogRecordProcessor(policy))
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    from opentelemetry._logs import LogRecord

    logger_provider.get_logger(f"lib {key}").emit(LogRecord(
        body=[{"role": "user", "content": f"my key {key}"}, [f"{jwt}"], {"password": "hunter3-hunter3"}],
        severity_text=f"WARN {mail}", event_name=f"gen_ai.user.message {aws}",
        attributes={"api_key": "k-123", "note": f"ssn {ssn}"}))
    (record,) = logs.get_finished_logs()
    text = record.to_json() + json.dumps(dict(record.resource.attributes)) + record.instrumentation_scope.name
    for secret in (key, jwt, mail, aws, ssn, "hunter3-hunter3", "k-123"):
        assert secret not in text, secret
    assert record.log_record.body[0] == {"role": "user", "content": "my key [REDACTED:openai_key]"}
