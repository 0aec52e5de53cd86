"""configure() against real endpoints: our collector over OTLP, a local Application Insights ingestion stand-in,
an application that configured OpenTelemetry itself; and the instrumentors' entry points."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from importlib.metadata import entry_points

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tracekit
from tracekit.api import using_tracer_provider
from tracekit.configuration import _prepend_span_processor, configure
from tracekit.redaction import RedactionPolicy
from tracekit.redaction.sdk import RedactingSpanProcessor

SECRET = "sk-proj-Abc123Def456Ghi789Jkl012Mno345"


def _rows(collector, sql: str) -> list[dict]:
    deadline = time.monotonic() + 10
    while True:
        rows = collector.reader().sql(sql).to_pylist()
        if rows or time.monotonic() > deadline:
            return rows
        time.sleep(0.1)


def test_configure_sends_redacted_spans_and_evaluations_to_the_collector(collector, content_off) -> None:
    result = configure("trip-planner", endpoint=f"http://{collector.grpc_endpoint}", content=True, set_global=False,
                       metrics=False)
    try:
        with using_tracer_provider(result.tracer_provider):
            with tracekit.agent("planner", conversation_id="conv-c1") as agent:
                agent.set_response_id("resp_c1")
                with tracekit.tool("lookup", arguments={"api_key": SECRET, "q": "fares"}) as lookup:
                    lookup.set_result("ok")
                tracekit.record_evaluation("relevance", score=5.0, label="pass", response_id="resp_c1",
                                           logger_provider=result.logger_provider)
        result.force_flush()
    finally:
        result.shutdown()
    spans = _rows(collector, "SELECT s.name, s.attributes, r.service_name FROM spans s "
                             "JOIN resources r USING (resource_id) ORDER BY s.name")
    assert [(row["name"], row["service_name"]) for row in spans] == [
        ("execute_tool lookup", "trip-planner"), ("invoke_agent planner", "trip-planner")]
    tool_attrs = json.loads(spans[0]["attributes"])
    assert json.loads(tool_attrs["gen_ai.tool.call.arguments"]) == {"api_key": "[REDACTED:openai_key]", "q": "fares"}
    logs = _rows(collector, "SELECT event_name, span_id FROM logs")
    assert [row["event_name"] for row in logs] == ["gen_ai.evaluation.result"]


def test_configure_keeps_an_existing_sdk_pipeline_and_puts_redaction_first() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # What configure() does when the application already set its own provider:
    assert _prepend_span_processor(provider, RedactingSpanProcessor(RedactionPolicy.default()))
    assert _prepend_span_processor(provider, RedactingSpanProcessor(RedactionPolicy.default()))  # idempotent
    processors = provider._active_span_processor._span_processors
    assert isinstance(processors[0], RedactingSpanProcessor) and len(processors) == 2
    with provider.get_tracer("app").start_as_current_span("work") as span:
        span.set_attribute("note", f"key {SECRET}")
    assert exporter.get_finished_spans()[0].attributes["note"] == "key [REDACTED:openai_key]"


def test_configure_with_a_connection_string_exports_to_azure_monitor(content_off, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL", "true")
    monkeypatch.setenv("APPLICATIONINSIGHTS_SDKSTATS_DISABLED", "true")  # no periodic self-telemetry to the fake
    from tests.export.fake_ingestion import FakeIngestion

    with FakeIngestion() as ingestion:
        result = configure("svc", connection_string=ingestion.connection_string, set_global=False, metrics=False,
                           logs=False, azure_options={"disable_offline_storage": True})
        try:
            with using_tracer_provider(result.tracer_provider):
                with tracekit.agent("azure-agent"):
                    pass
            result.force_flush()
        finally:
            result.shutdown()
        assert result.destination == "azure-monitor"
        names = [item["data"]["baseData"].get("name") for item in ingestion.telemetry()]
        assert "invoke_agent azure-agent" in names


def test_entry_points_name_base_instrumentors() -> None:
    found = {ep.name: ep for ep in entry_points(group="opentelemetry_instrumentor") if ep.name.startswith("tracekit")}
    assert sorted(found) == ["tracekit_langchain", "tracekit_openai", "tracekit_openai_agents"]
    for ep in found.values():
        instrumentor = ep.load()()
        assert isinstance(instrumentor, BaseInstrumentor)
        assert instrumentor.instrumentation_dependencies()


def test_opentelemetry_instrument_picks_the_instrumentors_up(tmp_path) -> None:
    script = tmp_path / "app.py"
    script.write_text(
        "from tracekit.instrumentors.langchain import LangChainInstrumentor\n"
        "from tracekit.instrumentors.openai import OpenAIInstrumentor\n"
        "print(LangChainInstrumentor().is_instrumented_by_opentelemetry, "
        "OpenAIInstrumentor().is_instrumented_by_opentelemetry)\n"
    )
    bin_dir = __import__("pathlib").Path(sys.executable).parent
    env = {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "none", "OTEL_LOGS_EXPORTER": "none",
           "PATH": str(bin_dir), "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "tracekit_openai_agents"}
    out = subprocess.run([str(bin_dir / "opentelemetry-instrument"), sys.executable, str(script)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip() == "True True", out.stderr[-2000:]


def test_instrument_and_uninstrument_every_installed_framework(telemetry) -> None:
    import pytest

    from tracekit.instrumentors.langchain import LangChainInstrumentor
    from tracekit.instrumentors.openai import OpenAIInstrumentor

    try:
        done = tracekit.instrument(tracer_provider=telemetry.tracer_provider)
        assert done == ["langchain", "openai", "openai_agents"]
        assert LangChainInstrumentor().is_instrumented_by_opentelemetry
        assert OpenAIInstrumentor().is_instrumented_by_opentelemetry
    finally:
        tracekit.uninstrument()
    assert not OpenAIInstrumentor().is_instrumented_by_opentelemetry
    with pytest.raises(ValueError, match="unknown framework"):
        tracekit.instrument("crewai")


def test_demo_help_explains_itself(capsys) -> None:
    import pytest

    from tracekit.cli import main

    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = capsys.readouterr().out
    assert "--endpoint" in out and "no API key" in out


def test_global_configure_in_a_fresh_process_sends_to_the_collector(collector, tmp_path) -> None:
    """The path users take: configure() sets the global providers, instrument() patches the frameworks."""
    script = tmp_path / "app.py"
    script.write_text(
        "import tracekit\n"
        f"result = tracekit.configure('fresh-app', endpoint='http://{collector.grpc_endpoint}', instrument=True)\n"
        "from langchain_core.language_models.fake_chat_models import FakeListChatModel\n"
        "with tracekit.agent('fresh-agent', conversation_id='conv-fresh'):\n"
        "    FakeListChatModel(responses=['hi']).invoke('hello')\n"
        "print(sorted(result.instrumented))\n"
        "result.shutdown()\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "['langchain', 'openai', 'openai_agents']"
    rows = _rows(collector, "SELECT name, conversation_id FROM spans ORDER BY name")
    assert [(row["name"], row["conversation_id"]) for row in rows] == [
        ("chat", "conv-fresh"), ("invoke_agent fresh-agent", "conv-fresh")]  # no model name known: just "chat"
