"""Secrets sent by a sender that does not redact never reach the store."""

from __future__ import annotations

import json
import time

from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tracekit.collector.service import Collector

API_KEY = "sk-proj-" + "A1b2C3d4E5f6G7h8J9k0" * 2
JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
       "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c")
EMAIL = "ann.lee@example.com"


def _send_planted(collector) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.grpc_endpoint,
                                                                     insecure=True)))
    tracer = provider.get_tracer("third.party.library")
    messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": f"my key is {API_KEY}"}]}])
    with tracer.start_as_current_span("chat gpt-4o", attributes={
        "gen_ai.input.messages": messages, "gen_ai.conversation.id": EMAIL, "db.password": "hunter2-hunter2",
        "http.request.header.authorization": f"Bearer {JWT}", "gen_ai.usage.input_tokens": 12,
        # JSON text in a string: its fields' quotes are escaped in the stored attribute map
        "gen_ai.tool.call.arguments": json.dumps({"password": "hunter3-hunter3", "cc": EMAIL}),
    }) as span:
        span.add_event("gen_ai.user.message", {"content": f"write to {EMAIL}"})
        logger_provider = LoggerProvider()
        logger_provider.add_log_record_processor(
            SimpleLogRecordProcessor(OTLPLogExporter(endpoint=collector.grpc_endpoint, insecure=True)))
        logger_provider.get_logger("lib").emit(timestamp=time.time_ns(), body=f"token={JWT}",
                                                attributes={"note": f"key {API_KEY}"})
        logger_provider.shutdown()
    provider.shutdown()


def _everything_stored(collector) -> str:
    reader = collector.reader()
    dump = []
    for table in ("spans", "span_events", "logs"):
        dump.append(json.dumps(reader.sql(f"SELECT * FROM {table}").to_pylist(), default=str))
    return "\n".join(dump)


def test_the_default_policy_masks_before_storage(collector):
    _send_planted(collector)
    stored = _everything_stored(collector)
    for secret in (API_KEY, JWT, EMAIL, "hunter2-hunter2", "hunter3-hunter3"):
        assert secret not in stored
    span = collector.reader().sql("SELECT * FROM spans").to_pylist()[0]
    attributes = json.loads(span["attributes"])
    assert "[REDACTED:" in attributes["gen_ai.input.messages"]
    assert json.loads(attributes["gen_ai.input.messages"])[0]["role"] == "user"  # structure kept
    assert span["conversation_id"] == attributes["gen_ai.conversation.id"] != EMAIL  # typed copy masked too
    assert span["input_tokens"] == 12
    assert collector.status()["masked_before_storage"] >= 6


def test_redaction_off_stores_values_verbatim(collector_settings):
    collector_settings.redaction = "off"
    with Collector(collector_settings).running() as collector:
        _send_planted(collector)
        stored = _everything_stored(collector)
    assert API_KEY in stored and EMAIL in stored


def test_a_policy_file_adds_rules(collector_settings, tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text('[redaction]\nkeys = ["customer.*"]\npatterns = [{name = "order", regex = "ORD-[0-9]{6}"}]\n')
    collector_settings.redaction = str(policy)
    with Collector(collector_settings).running() as collector:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.grpc_endpoint,
                                                                         insecure=True)))
        with provider.get_tracer("t").start_as_current_span("s", attributes={
                "customer.name": "Ann", "note": "see ORD-123456", "plain": "nothing here"}):
            pass
        provider.shutdown()
        attributes = json.loads(collector.reader().sql("SELECT attributes FROM spans").column(0)[0].as_py())
    assert attributes["customer.name"].startswith("[REDACTED")
    assert attributes["note"] == "see [REDACTED:order]"
    assert attributes["plain"] == "nothing here"


def test_ids_that_merely_contain_digit_runs_are_not_masked(collector):
    # Luhn-valid digit runs inside hex ids: masking them would break tool-call pairing in the replay.
    ids = {"gen_ai.tool.call.id": "call_78c37aa3951188059159", "session.id": "sess-7a5841590038750e",
           "gen_ai.response.id": "chatcmpl-802d9825022590575da1"}
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.grpc_endpoint,
                                                                     insecure=True)))
    with provider.get_tracer("t").start_as_current_span("execute_tool x", attributes=ids):
        pass
    provider.shutdown()
    row = collector.reader().sql("SELECT attributes, tool_call_id, response_id FROM spans").to_pylist()[0]
    assert {key: json.loads(row["attributes"])[key] for key in ids} == ids
    assert (row["tool_call_id"], row["response_id"]) == (ids["gen_ai.tool.call.id"], ids["gen_ai.response.id"])
