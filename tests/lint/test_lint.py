"""`tracekit lint` against spans with each kind of finding, sent by the real SDK to the real collector, and
against tracekit's own demo output (which must pass --strict)."""

from __future__ import annotations

import json
import time

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from tracekit.cli import main
from tracekit.demo import run_demo
from tracekit.lint.registry import conventions

MESSAGES = json.dumps([{"role": "user", "parts": [{"type": "text", "content": "hi"}]}])


def _wait_for_spans(collector, expected: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if collector.reader().sql("SELECT count(*) AS n FROM spans").to_pylist()[0]["n"] >= expected:
            return
        time.sleep(0.1)


def _lint(collector, capsys, *extra: str) -> tuple[int, dict]:
    code = main(["lint", "--db", str(collector.settings.db_path), "--format", "json", *extra])
    return code, json.loads(capsys.readouterr().out)


def _send_findings(collector) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.grpc_endpoint,
                                                                     insecure=True)))
    old = provider.get_tracer("legacy.instrumentation", "0.9")
    # v1.36-era chat span: gen_ai.system alone, prompt/completion tokens, flattened prompts, a per-message event,
    # and a SERVER kind.
    with old.start_as_current_span("chat gpt-4o", kind=SpanKind.SERVER, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
            "gen_ai.usage.prompt_tokens": 10, "gen_ai.usage.completion_tokens": 5,
            "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "hi"}) as span:
        span.add_event("gen_ai.user.message", {"content": "hi"})
    new = provider.get_tracer("new.instrumentation", "2.0")
    # A chat span without a model, with a typo'd key and tool arguments where they do not belong.
    with new.start_as_current_span("chat", kind=SpanKind.CLIENT, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.usage.input_tokns": 3,
            "gen_ai.usage.input_tokens": 3, "gen_ai.usage.output_tokens": 1, "gen_ai.response.model": "gpt-4o",
            "gen_ai.tool.call.arguments": '{"q": 1}', "gen_ai.input.messages": '{"not": "a list"}'}):
        pass
    # A tool span without its name, carrying chat messages, as a CLIENT span.
    with new.start_as_current_span("execute_tool", kind=SpanKind.CLIENT, attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.input.messages": MESSAGES}):
        pass
    # The newest SCG names are known: no finding for them.
    with new.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT, attributes={
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "anthropic",
            "gen_ai.request.model": "claude-sonnet-4-5", "gen_ai.response.model": "claude-sonnet-4-5",
            "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 2,
            "gen_ai.usage.cache_write.input_tokens": 4, "gen_ai.usage.reasoning.output_tokens": 1,
            "gen_ai.response.time_to_first_chunk": 0.2, "gen_ai.request.stream": True}):
        pass
    # A loop: the same search three times with the same arguments (keys in another order each time).
    with new.start_as_current_span("invoke_agent researcher", kind=SpanKind.INTERNAL, attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "researcher"}):
        for arguments in ('{"q": "x", "n": 1}', '{"n": 1, "q": "x"}', '{"q":"x","n":1}'):
            with new.start_as_current_span("execute_tool search", attributes={
                    "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search",
                    "gen_ai.agent.name": "researcher", "gen_ai.tool.call.arguments": arguments}):
                pass
    provider.shutdown()


def _finding(report: dict, scope: str, rule: str, key: str) -> dict:
    matches = [f for f in report["findings"] if f["scope"]["name"] == scope and f["rule"] == rule and f["key"] == key]
    assert matches, (scope, rule, key, [(f["scope"]["name"], f["rule"], f["key"]) for f in report["findings"]])
    return matches[0]


def test_each_kind_of_finding_per_scope_with_counts_and_an_example(collector, capsys):
    _send_findings(collector)
    _wait_for_spans(collector, 8)
    code, report = _lint(collector, capsys)
    assert code == 0  # findings, but not --strict
    assert {"name": "legacy.instrumentation", "version": "0.9"} in report["scopes"]
    system = _finding(report, "legacy.instrumentation", "deprecated", "gen_ai.system")
    assert system["replacement"] == "gen_ai.provider.name" and system["spans"] == 1
    assert len(system["example_trace_id"]) == 32
    assert _finding(report, "legacy.instrumentation", "deprecated",
                    "gen_ai.usage.prompt_tokens")["replacement"] == "gen_ai.usage.input_tokens"
    assert _finding(report, "legacy.instrumentation", "deprecated", "gen_ai.prompt.N.*")
    assert _finding(report, "legacy.instrumentation", "span-kind", "SERVER")
    assert _finding(report, "legacy.instrumentation", "content-placement", "gen_ai.user.message")
    assert _finding(report, "new.instrumentation", "unknown", "gen_ai.usage.input_tokns")
    assert "conditionally required" in _finding(report, "new.instrumentation", "missing",
                                                "gen_ai.request.model")["message"]
    assert _finding(report, "new.instrumentation", "missing", "gen_ai.tool.name")
    assert _finding(report, "new.instrumentation", "content-placement", "gen_ai.tool.call.arguments")
    placed = [f["message"] for f in report["findings"] if f["key"] == "gen_ai.input.messages"]
    assert sorted(placed) == ["messages do not belong on execute_tool spans",
                              "not an array of {role, parts} messages as the conventions' JSON schema says"]
    assert _finding(report, "new.instrumentation", "span-kind", "CLIENT")  # execute_tool is INTERNAL
    loop = _finding(report, "new.instrumentation", "loop", "repeated-tool-call")
    assert loop["spans"] == 3 and "researcher called search" in loop["message"]
    # Nothing about the current names (cache_write, reasoning, time to first chunk, stream).
    keys = {f["key"] for f in report["findings"]}
    assert not keys & {"gen_ai.usage.cache_write.input_tokens", "gen_ai.usage.reasoning.output_tokens",
                       "gen_ai.response.time_to_first_chunk", "gen_ai.request.stream"}
    # --strict makes findings an error; a higher loop threshold drops the loop.
    assert _lint(collector, capsys, "--strict")[0] == 1
    _, report = _lint(collector, capsys, "--loop-threshold", "4")
    assert not [f for f in report["findings"] if f["rule"] == "loop"]


def test_tracekit_own_demo_output_passes_strict(collector, capsys):
    sent = run_demo(f"http://{collector.grpc_endpoint}", conversations=2)
    _wait_for_spans(collector, sent)
    code, report = _lint(collector, capsys, "--strict")
    assert report["spans_checked"] == sent
    assert report["findings"] == [] and code == 0
    # It does emit gen_ai.system beside gen_ai.provider.name on purpose; the linter knows that form.
    assert collector.reader().sql(
        "SELECT count(*) AS n FROM spans WHERE json_exists(attributes, '$.\"gen_ai.system\"')").to_pylist()[0]["n"]


def test_definitions_come_from_the_published_sources():
    rules = conventions()
    # From the opentelemetry-semantic-conventions package's docstrings, not a list typed in here.
    assert rules.deprecated["gen_ai.usage.completion_tokens"] == "gen_ai.usage.output_tokens"
    assert rules.deprecated["gen_ai.openai.request.seed"] == "gen_ai.request.seed"
    assert "gen_ai.agent.name" in rules.attributes and "gen_ai.operation.name" not in rules.deprecated
    # From the vendored semantic-conventions-genai data: the cache_creation -> cache_write rename (#440).
    assert rules.deprecated["gen_ai.usage.cache_creation.input_tokens"] == "gen_ai.usage.cache_write.input_tokens"
    assert rules.operations["chat"].kinds == ("CLIENT",)


def test_bad_arguments_exit_2(capsys, tmp_path):
    assert main(["lint", "--db", str(tmp_path / "none.duckdb"), "--since", "soon"]) == 2
    assert "--since" in capsys.readouterr().err
    assert main(["lint", "--db", str(tmp_path / "none.duckdb")]) == 2
    assert "no store" in capsys.readouterr().err
