"""configure() against real endpoints: our collector over OTLP, a local Application Insights ingestion stand-in,
an application that configured OpenTelemetry itself; and the instrumentors' entry points."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from importlib.metadata import entry_points

import pytest
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor

import tracekit
from tests.export.fake_ingestion import FakeIngestion
from tracekit.configuration import configure
from tracekit.tracing import using_tracer_provider

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
    logs = _rows(collector, "SELECT event_name, span_id FROM logs WHERE event_name <> 'tracekit.heartbeat' "
                            "ORDER BY event_name")
    # The evaluation, and a start record per span (tracekit.live, on by default).
    assert [row["event_name"] for row in logs] == [
        "gen_ai.evaluation.result", "tracekit.span.started", "tracekit.span.started"]


@pytest.mark.parametrize("exemplars, variable, expected", [
    (None, None, False),  # off unless asked for: a sampled exemplar costs every record made while a span is current
    (None, "trace_based", True), (True, None, True), (False, "always_on", False)])
def test_configure_samples_exemplars_only_when_asked(collector, content_off, monkeypatch, exemplars, variable,
                                                      expected) -> None:
    if variable is None:
        monkeypatch.delenv("OTEL_METRICS_EXEMPLAR_FILTER", raising=False)
    else:
        monkeypatch.setenv("OTEL_METRICS_EXEMPLAR_FILTER", variable)
    result = configure("trip-planner", endpoint=f"http://{collector.grpc_endpoint}", set_global=False, logs=False,
                       exemplars=exemplars)
    try:
        latency = result.meter_provider.get_meter("test").create_histogram("trip.latency", unit="s")
        with result.tracer_provider.get_tracer("test").start_as_current_span("plan trip") as span:
            latency.record(0.25, {"leg": "LIS-KIX"})
            trace_id = format(span.get_span_context().trace_id, "032x")
        result.force_flush()
    finally:
        result.shutdown()
    points = _rows(collector, "SELECT details FROM metric_points WHERE metric_name = 'trip.latency'")
    assert points  # exported at the flush, and again at shutdown (cumulative)
    traces_seen = {item["trace_id"] for point in points
                   for item in json.loads(point["details"] or "{}").get("exemplars", [])}
    assert traces_seen == ({trace_id} if expected else set())


# The Azure exporter's own periodic self-telemetry would reach the fake ingestion endpoint too.
_NO_AZURE_SELF_TELEMETRY = {"APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
                            "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true"}


def _span_names(ingestion: FakeIngestion) -> list[str]:
    return sorted(item["data"]["baseData"].get("name") for item in ingestion.telemetry())


def test_configure_with_a_connection_string_exports_to_azure_monitor(content_off, monkeypatch) -> None:
    for key, value in _NO_AZURE_SELF_TELEMETRY.items():
        monkeypatch.setenv(key, value)
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
        assert _span_names(ingestion) == ["invoke_agent azure-agent"]


def test_configure_reads_the_connection_string_from_the_environment(content_off, monkeypatch) -> None:
    """APPLICATIONINSIGHTS_CONNECTION_STRING alone sends to Azure Monitor, as the README says; an endpoint passed
    in code still means OTLP."""
    for key, value in _NO_AZURE_SELF_TELEMETRY.items():
        monkeypatch.setenv(key, value)
    with FakeIngestion() as ingestion:
        monkeypatch.setenv("APPLICATIONINSIGHTS_CONNECTION_STRING", ingestion.connection_string)
        result = configure("svc", set_global=False, metrics=False, logs=False,
                           azure_options={"disable_offline_storage": True})
        try:
            with using_tracer_provider(result.tracer_provider):
                with tracekit.agent("env-agent", conversation_id="conv-env"):
                    pass
            result.force_flush()
        finally:
            result.shutdown()
        assert result.destination == "azure-monitor"
        (span,) = ingestion.telemetry()
        assert span["data"]["baseData"]["name"] == "invoke_agent env-agent"
        assert span["data"]["baseData"]["properties"]["gen_ai.conversation.id"] == "conv-env"
        otlp = configure("svc", endpoint="http://127.0.0.1:9", set_global=False, metrics=False, logs=False)
        otlp.shutdown()
        assert otlp.destination == "otlp"


_APP_WITH_ITS_OWN_PROVIDER = """
import json, sys
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

class Lines(SpanExporter):  # the application's own exporter: one JSON line a span on stdout
    def export(self, spans):
        for span in spans:
            print(json.dumps({"name": span.name, "attributes": dict(span.attributes)}), flush=True)
        return SpanExportResult.SUCCESS

provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(Lines()))
if sys.argv[1] == "own-azure-exporter":  # the application already exports to Azure Monitor itself
    import os
    from azure.monitor.opentelemetry.exporter import AzureMonitorTraceExporter
    provider.add_span_processor(SimpleSpanProcessor(AzureMonitorTraceExporter(
        connection_string=os.environ["APPLICATIONINSIGHTS_CONNECTION_STRING"], disable_offline_storage=True)))
trace.set_tracer_provider(provider)

import tracekit
first = tracekit.configure("ignored", azure_options={"disable_offline_storage": True})
second = tracekit.configure("ignored", azure_options={"disable_offline_storage": True})  # twice: still once each
assert first.tracer_provider is provider and second.tracer_provider is provider, "the application's provider"
print(json.dumps({"destination": second.destination}), flush=True)
with trace.get_tracer("app").start_as_current_span("app-work") as span:
    span.set_attribute("app.note", "calling with key SECRET")
with tracekit.agent("helper"):
    pass
second.force_flush()
provider.shutdown()
"""


@pytest.mark.parametrize("pipeline", ["own-exporter", "own-azure-exporter"])
def test_configure_keeps_the_application_provider_and_adds_azure_monitor_once(tmp_path, pipeline) -> None:
    """An application that set its own SDK TracerProvider: configure() keeps it, puts redaction in front of the
    application's exporter, and sends to Azure Monitor from APPLICATIONINSIGHTS_CONNECTION_STRING, once, also when
    called twice or when the application already exports there itself."""
    script = tmp_path / "app.py"
    script.write_text(_APP_WITH_ITS_OWN_PROVIDER.replace("SECRET", SECRET))
    with FakeIngestion() as ingestion:
        env = {**_NO_AZURE_SELF_TELEMETRY, "APPLICATIONINSIGHTS_CONNECTION_STRING": ingestion.connection_string,
               "PATH": "/usr/bin:/bin"}
        done = subprocess.run([sys.executable, str(script), pipeline], capture_output=True, text=True, env=env,
                              timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        lines = [json.loads(line) for line in done.stdout.splitlines()]
        assert lines[0] == {"destination": "existing"}
        own = {line["name"]: line["attributes"] for line in lines[1:]}
        assert sorted(own) == ["app-work", "invoke_agent helper"]
        assert own["app-work"]["app.note"] == "calling with key [REDACTED:openai_key]"
        assert _span_names(ingestion) == ["app-work", "invoke_agent helper"]
        (work,) = [item for item in ingestion.telemetry() if item["data"]["baseData"]["name"] == "app-work"]
        assert work["data"]["baseData"]["properties"]["app.note"] == "calling with key [REDACTED:openai_key]"
    assert SECRET not in done.stdout


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
