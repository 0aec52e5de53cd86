"""`tracekit diff` and the TUI's compare screen over real instrumented runs stored by the real collector."""

from __future__ import annotations

import json
import time

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tests.conversation.instrumented import FakeModel
from tracekit.cli import main
from tracekit.content import reset_content_settings, set_content_recording
from tracekit.demo import run_demo
from tracekit.diff import diff_runs
from tracekit.diff.align import align
from tracekit.diff.steps import Step
from tracekit.instrumentors.langchain import TracekitCallbackHandler


# --- the alignment on its own ----------------------------------------------------------------------------------------
def _step(kind: str, name: str, arguments: str | None = None) -> Step:
    return Step(kind=kind, name=name, span_id=name, trace_id="t", depth=0, start_ns=0, duration_ns=0, error=None,
                arguments=arguments)


def _keys(pairs) -> list[tuple[str | None, str | None]]:
    return [(a.name if a else None, b.name if b else None) for a, b in pairs]


def test_an_inserted_step_lines_up_against_a_gap() -> None:
    a = [_step("agent", "x"), _step("tool", "search"), _step("tool", "book"), _step("model", "m")]
    b = [_step("agent", "x"), _step("tool", "search"), _step("tool", "search"), _step("tool", "book"),
         _step("model", "m")]
    pairs = align(a, b)
    assert len(pairs) == 5
    assert sum(1 for x, y in pairs if x is None) == 1 and all(y is not None for x, y in pairs)
    assert _keys(pairs)[-2:] == [("book", "book"), ("m", "m")]  # nothing after the insertion shifted


def test_repeated_calls_pair_by_their_arguments() -> None:
    a = [_step("tool", "search", '{"q":"b"}')]
    b = [_step("tool", "search", '{"q":"a"}'), _step("tool", "search", '{"q":"b"}')]
    pairs = align(a, b)
    assert [(x.arguments if x else None, y.arguments) for x, y in pairs] == [(None, '{"q":"a"}'),
                                                                               ('{"q":"b"}', '{"q":"b"}')]


def test_another_tool_in_the_same_place_is_paired_and_steps_of_other_kinds_are_not() -> None:
    pairs = align([_step("tool", "search_hotels"), _step("model", "m")],
                  [_step("tool", "search_flats"), _step("agent", "helper")])
    assert _keys(pairs) == [("search_hotels", "search_flats"), ("m", None), (None, "helper")]


def test_long_runs_fall_back_to_matching_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    import tracekit.diff.align as module

    monkeypatch.setattr(module, "MAX_CELLS", 10)
    a = [_step("tool", n) for n in "abcdef"]
    b = [_step("tool", n) for n in "abXcdef"]
    assert _keys(align(a, b)) == [("a", "a"), ("b", "b"), (None, "X"), ("c", "c"), ("d", "d"), ("e", "e"),
                                  ("f", "f")]


# --- real runs ---------------------------------------------------------------------------------------------------------
@tool
def search_flights(destination: str, date: str) -> str:
    """Search flights."""
    return f"2 flights to {destination} on {date}"


@tool
def book_flight(flight: str) -> str:
    """Book a flight."""
    if "|" in flight:
        raise ValueError(f"no such flight: {flight}")
    return f"booked {flight}"


TOOLS = {t.name: t for t in (search_flights, book_flight)}


def _call(name: str, args: dict, tokens: int) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"call_{name}_{len(str(args))}"}],
                     usage_metadata={"input_tokens": tokens, "output_tokens": 10, "total_tokens": tokens + 10})


def _record_run(endpoint: str, conversation: str, script: list[AIMessage]) -> None:
    """A LangGraph flight agent following `script`, traced by tracekit's LangChain handler with content on."""
    provider = TracerProvider(resource=Resource.create({"service.name": "flights"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    model = FakeModel(responses=script)

    def call_model(state: MessagesState) -> dict:
        return {"messages": [model.invoke(state["messages"])]}

    def run_tools(state: MessagesState) -> dict:
        results = []
        for call in state["messages"][-1].tool_calls:
            try:
                results.append(TOOLS[call["name"]].invoke({**call, "type": "tool_call"}))
            except ValueError as error:
                from langchain_core.messages import ToolMessage
                results.append(ToolMessage(content=str(error), tool_call_id=call["id"], status="error"))
        return {"messages": results}

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", run_tools)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", lambda s: "tools" if s["messages"][-1].tool_calls else END, ["tools", END])
    graph.add_edge("tools", "model")
    set_content_recording(True)
    try:
        graph.compile(name="flight-agent").invoke(
            {"messages": [HumanMessage("Book me a morning flight to Lisbon")]},
            config={"callbacks": [TracekitCallbackHandler(provider)], "configurable": {"thread_id": conversation}})
    finally:
        reset_content_settings()
        provider.force_flush()
        provider.shutdown()


BASELINE = [_call("search_flights", {"destination": "Lisbon", "date": "2026-12-04"}, 100),
            _call("book_flight", {"flight": "TP 575"}, 150),
            AIMessage(content="Booked TP 575.", usage_metadata={"input_tokens": 200, "output_tokens": 20,
                                                                 "total_tokens": 220})]
# The variant searches twice (a step the baseline lacks), then books a flight whose name fails the tool and carries
# a terminal escape sequence and a Markdown pipe.
VARIANT = [_call("search_flights", {"destination": "Lisbon", "date": "2026-12-04"}, 100),
           _call("search_flights", {"destination": "Lisbon", "date": "2026-12-05"}, 120),
           _call("book_flight", {"flight": "TP 575 \x1b]0;pwned\x07| x"}, 150),
           AIMessage(content="I could not book it.", usage_metadata={"input_tokens": 210, "output_tokens": 25,
                                                                       "total_tokens": 235})]


def _wait_for(collector, sql: str, expected: int) -> None:
    deadline = time.monotonic() + 15
    reader = collector.reader()
    while time.monotonic() < deadline:
        if reader.sql(sql).column(0)[0].as_py() >= expected:
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {sql}")


@pytest.fixture
def two_runs(collector):
    _record_run(collector.grpc_endpoint, "conv-good", BASELINE)
    _record_run(collector.grpc_endpoint, "conv-bad", VARIANT)
    _wait_for(collector, "SELECT count(DISTINCT conversation_id) FROM spans", 2)
    _wait_for(collector, "SELECT count(*) FROM spans WHERE tool_name = 'book_flight'", 2)
    return collector


def _tool_steps_in_store(collector, conversation: str) -> list[str]:
    rows = collector.reader().sql(
        "SELECT tool_name FROM spans WHERE conversation_id = ? AND operation_name = 'execute_tool' "
        "ORDER BY start_time_ns", [conversation]).column("tool_name").to_pylist()
    return rows


def test_the_extra_search_lines_up_and_the_failed_booking_is_flagged(two_runs) -> None:
    diff = diff_runs(two_runs.reader(), "conv-good", "conv-bad")
    tools = [(p.a.name if p.a else None, p.b.name if p.b else None, p.changes)
             for p in diff.steps if (p.a or p.b).kind == "tool"]
    assert [t[1] for t in tools] == _tool_steps_in_store(two_runs, "conv-bad")
    assert [t[0] for t in tools if t[0]] == _tool_steps_in_store(two_runs, "conv-good")
    # The first search is the same step; the second exists only in B; the booking is paired, not shifted.
    assert tools[0] == ("search_flights", "search_flights", [])
    assert tools[1] == (None, "search_flights", ["only in B"])
    assert tools[2][:2] == ("book_flight", "book_flight")
    assert "different arguments" in tools[2][2] and "error only in B" in tools[2][2]
    first = diff.first_divergence
    assert first is not None and first.changes  # where the runs first part ways
    totals_a, totals_b = diff.totals("a"), diff.totals("b")
    tokens = two_runs.reader().sql(
        "SELECT conversation_id, sum(input_tokens + output_tokens) AS t FROM spans "
        "WHERE operation_name = 'chat' GROUP BY 1").to_pylist()
    by_conversation = {row["conversation_id"]: row["t"] for row in tokens}
    assert (totals_a.tokens, totals_b.tokens) == (by_conversation["conv-good"], by_conversation["conv-bad"])
    assert totals_b.errors > totals_a.errors
    assert totals_a.cost_usd is None or totals_a.cost_usd >= 0


def test_cli_json_markdown_and_exit_code(two_runs, capsys) -> None:
    db = str(two_runs.db_path)
    assert main(["diff", "conv-good", "conv-bad", "--db", db, "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["identical"] is False and data["a"]["id"] == "conv-good"
    only_b = [s for s in data["steps"] if s["a"] is None]
    assert all(s["changes"] == ["only in B"] for s in only_b)
    # The variant's extra round trip: one more model call and one more search.
    assert sorted(f'{s["b"]["kind"]} {s["b"]["name"]}' for s in only_b) == ["model gpt-4o-mini", "tool search_flights"]
    booking = next(s["b"] for s in data["steps"] if s["b"] and s["b"]["name"] == "book_flight")
    assert json.loads(booking["arguments"]) == {"flight": "TP 575 \x1b]0;pwned\x07| x"}  # data stays exact

    assert main(["diff", "conv-good", "conv-bad", "--db", db, "--format", "markdown", "--changed-only"]) == 0
    markdown = capsys.readouterr().out
    assert "\x1b" not in markdown and "pwned" in markdown     # shown, not obeyed
    assert "\\| x" in markdown                                  # the pipe cannot break the table
    assert all(line.count("|") - line.count("\\|") == 7 for line in markdown.splitlines() if line.startswith("| "))

    assert main(["diff", "conv-good", "conv-bad", "--db", db, "--exit-code"]) == 1
    out = capsys.readouterr().out
    assert "\x1b]0;pwned" not in out and "only in B" in out
    assert main(["diff", "conv-good", "conv-good", "--db", db, "--exit-code"]) == 0
    assert "the runs take the same" in capsys.readouterr().out
    assert main(["diff", "conv-good", "no-such-run", "--db", db]) == 2
    assert "no conversation, response or trace" in capsys.readouterr().err


def test_two_demo_conversations(collector, capsys) -> None:
    sent = run_demo(f"http://{collector.grpc_endpoint}", conversations=2)
    _wait_for(collector, "SELECT count(*) FROM spans", sent)
    diff = diff_runs(collector.reader(), "demo-session-001", "demo-session-002")
    genai_spans = collector.reader().sql(
        "SELECT conversation_id, count(*) AS n FROM spans WHERE operation_name IS NOT NULL GROUP BY 1").to_pylist()
    counts = {row["conversation_id"]: row["n"] for row in genai_spans}
    assert (len(diff.a.steps), len(diff.b.steps)) == (counts["demo-session-001"], counts["demo-session-002"])
    # Same story, other city: every step pairs with its counterpart, and the searches differ in their arguments.
    assert all(pair.a is not None and pair.b is not None for pair in diff.steps)
    search = next(p for p in diff.steps if p.a.name == "search_flights")
    assert "different arguments" in search.changes
    assert "Lisbon" in search.a.arguments and "Kyoto" in search.b.arguments


async def test_tui_mark_and_compare(two_runs) -> None:
    from textual.widgets import DataTable

    from tracekit.tui.app import TracekitApp
    from tracekit.tui.screens.run_diff import RunDiffScreen
    from tracekit.tui.widgets.trace_table import TraceTable

    reader = two_runs.reader()
    traces = {row["conversation_id"]: row["trace_id"] for row in reader.sql(
        "SELECT DISTINCT conversation_id, trace_id FROM spans WHERE conversation_id IS NOT NULL").to_pylist()}
    app = TracekitApp(reader, live=False)
    async with app.run_test(size=(180, 50)) as pilot:
        table = app.screen.query_one(TraceTable)
        while table.row_count < 2:
            await pilot.pause(0.02)
        screen = app.screen
        rows = {trace.trace_id: index for index, trace in enumerate(screen.query_one(TraceTable).traces)}
        table.move_cursor(row=rows[traces["conv-good"]])
        await pilot.press("m")
        table.move_cursor(row=rows[traces["conv-bad"]])
        await pilot.press("D")
        while not (isinstance(app.screen, RunDiffScreen) and app.screen.loaded):
            await pilot.pause(0.02)
        diff_screen = app.screen
        steps = diff_screen.query_one(DataTable)
        assert diff_screen.diff is not None and steps.row_count == len(diff_screen.diff.steps)
        await pilot.press("f")
        changed = [step for step in diff_screen.diff.steps if step.changes]
        assert steps.row_count == len(changed) < len(diff_screen.diff.steps)
        rendered = " ".join(str(cell) for row in range(steps.row_count) for cell in steps.get_row_at(row))
        assert "only in B" in rendered and "\x1b" not in rendered
