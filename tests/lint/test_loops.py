"""Loops: the same tool call repeated, and agents handing off back and forth, flagged in the trace list, the replay
and `tracekit lint` (real SDK spans through the real collector)."""

from __future__ import annotations

import json
import time

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tracekit.cli import main
from tracekit.conversation import load_transcript
from tracekit.tui.data import trace_page
from tracekit.tui.widgets.trace_table import TraceTable


def _tool(tracer, tool: str, agent: str, arguments: str, **extra) -> None:
    with tracer.start_as_current_span(f"execute_tool {tool}", attributes={
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": tool, "gen_ai.agent.name": agent,
            "gen_ai.tool.call.arguments": arguments, **extra}):
        pass


def _handoff(tracer, source: str, target: str) -> None:
    _tool(tracer, f"transfer_to_{target}", source, "{}", **{"gen_ai.transfer.target.name": target,
                                                             "gen_ai.transfer.mode": "pass_control"})


def _send(collector) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.grpc_endpoint,
                                                                     insecure=True)))
    tracer = provider.get_tracer("loops")
    with tracer.start_as_current_span("invoke_agent stuck", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "researcher",
            "gen_ai.conversation.id": "conv-stuck"}):
        for _ in range(3):
            _tool(tracer, "search", "researcher", json.dumps({"q": "flights to Oslo"}))
    with tracer.start_as_current_span("invoke_agent ping-pong", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "triage",
            "gen_ai.conversation.id": "conv-ping-pong"}):
        for source, target in (("triage", "billing"), ("billing", "triage"), ("triage", "billing")):
            _handoff(tracer, source, target)
    with tracer.start_as_current_span("invoke_agent healthy", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "triage",
            "gen_ai.conversation.id": "conv-healthy"}):
        _handoff(tracer, "triage", "billing")
        _tool(tracer, "lookup_invoice", "billing", '{"id": 1}', **{"gen_ai.tool.call.result": "paid"})
        _handoff(tracer, "billing", "triage")
        _tool(tracer, "search", "triage", '{"q": "a"}')
        _tool(tracer, "search", "triage", '{"q": "b"}')  # other arguments: not the same call
        _handoff(tracer, "triage", "billing")
    provider.shutdown()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and collector.reader().sql(
            "SELECT count(*) AS n FROM spans").to_pylist()[0]["n"] < 16:
        time.sleep(0.1)


def test_loops_in_the_trace_list_the_replay_and_lint(collector, capsys, monkeypatch):
    _send(collector)
    reader = collector.reader()
    traces = {t.root_name: t for t in trace_page(reader)}
    assert traces["invoke_agent stuck"].loops == (
        'researcher called search({"q":"flights to Oslo"}) 3 times with the same arguments',)
    assert traces["invoke_agent ping-pong"].loops == (
        "billing and triage handed off back and forth 3 times with no result between",)
    assert traces["invoke_agent healthy"].loops == ()
    cells = TraceTable._cells(traces["invoke_agent stuck"])
    assert cells[1].plain.startswith("↻ invoke_agent stuck")
    assert not TraceTable._cells(traces["invoke_agent healthy"])[1].plain.startswith("↻")

    assert load_transcript(reader, "conv-ping-pong").loops == [traces["invoke_agent ping-pong"].loops[0]]
    assert load_transcript(reader, "conv-healthy").loops == []

    # N is configurable: 4 repetitions flag nothing here.
    monkeypatch.setenv("TRACEKIT_LOOP_THRESHOLD", "4")
    assert all(not t.loops for t in trace_page(reader))
    assert load_transcript(reader, "conv-stuck").loops == []
    monkeypatch.delenv("TRACEKIT_LOOP_THRESHOLD")

    assert main(["lint", "--db", str(collector.settings.db_path), "--format", "json", "--strict"]) == 1
    report = json.loads(capsys.readouterr().out)
    loops = {f["key"]: f for f in report["findings"] if f["rule"] == "loop"}
    assert set(loops) == {"repeated-tool-call", "handoff-ping-pong"}
    assert loops["handoff-ping-pong"]["spans"] == 3


def test_ping_pong_through_other_hand_off_spellings(collector):
    """openai-agents' `agent_handoff` spans and a remote `invoke_agent` carrying `gen_ai.caller.*` are hand-offs too
    (tracekit.multi_agent), so going back and forth through them is a loop."""
    from opentelemetry.trace import SpanKind

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=collector.grpc_endpoint,
                                                                     insecure=True)))
    tracer = provider.get_tracer("loops")

    def agent_handoff(source: str, target: str) -> None:
        with tracer.start_as_current_span(f"agent_handoff {target}", attributes={
                "gen_ai.operation.name": "agent_handoff", "gen_ai.handoff.from_agent": source,
                "gen_ai.handoff.to_agent": target}):
            pass

    with tracer.start_as_current_span("invoke_workflow router", attributes={
            "gen_ai.operation.name": "invoke_workflow", "gen_ai.conversation.id": "conv-spellings"}):
        agent_handoff("triage", "billing")
        with tracer.start_as_current_span("invoke_agent triage", kind=SpanKind.CLIENT, attributes={
                "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "triage",
                "gen_ai.caller.type": "agent", "gen_ai.caller.name": "billing"}):
            pass
        agent_handoff("triage", "billing")
    provider.shutdown()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and collector.reader().sql(
            "SELECT count(*) AS n FROM spans").to_pylist()[0]["n"] < 4:
        time.sleep(0.1)
    reader = collector.reader()
    message = "billing and triage handed off back and forth 3 times with no result between"
    assert {t.root_name: t for t in trace_page(reader)}["invoke_workflow router"].loops == (message,)
    assert load_transcript(reader, "conv-spellings").loops == [message]
