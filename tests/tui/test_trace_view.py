"""The trace view: span tree nesting and waterfall, errors, orphans, details, long values, live spans."""

from __future__ import annotations

from textual.widgets import Input, Static

from tests.conversation import scenarios
from tests.tui.tui_helpers import plain, shown, wait_for
from tracekit.tui.app import TracekitApp
from tracekit.tui.screens.trace_view import TraceViewScreen
from tracekit.tui.widgets.span_details import SpanDetailsView
from tracekit.tui.widgets.span_tree import ICONS, SpanTree
from tracekit.tui.widgets.trace_table import TraceTable


def outline(tree: SpanTree) -> list[str]:
    """Built nodes as `depth:name`, in display order (the label's name part only)."""
    lines = []
    stack = [(node, 0) for node in reversed(tree.root.children)]
    while stack:
        node, depth = stack.pop()
        label = node.label.plain.split("  ")[0].strip()
        lines.append(f"{depth}:{label[2:] if label[:2] in tuple(f'{icon} ' for icon in ICONS.values()) else label}")
        stack.extend((child, depth + 1) for child in reversed(node.children))
    return lines


async def open_trace(pilot, app: TracekitApp, filter_text: str) -> TraceViewScreen:
    await wait_for(pilot, lambda: app.screen.query_one(TraceTable).row_count > 0)
    await pilot.press("slash")
    app.screen.query_one("#filter-input", Input).value = filter_text
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.screen.trace_filter.text == filter_text
                   and app.screen.query_one(TraceTable).row_count == 1)
    await pilot.press("enter")
    await wait_for(pilot, lambda: isinstance(app.screen, TraceViewScreen) and app.screen.loaded)
    return app.screen


async def details_of(pilot, screen: TraceViewScreen) -> str:
    view = screen.query_one(SpanDetailsView)
    await wait_for(pilot, lambda: view.details is not None and view.details.span.span_id == screen.details_for)
    return shown(view.query_one("#details-body", Static))


async def test_span_tree_nests_agents_models_and_tools(store):
    app = TracekitApp(store.reader, live=False)
    async with app.run_test(size=(200, 50)) as pilot:
        screen = await open_trace(pilot, app, "agent:triage")
        tree = screen.query_one(SpanTree)
        assert outline(tree) == [
            "0:invoke_workflow travel_planner",
            "1:execute_task plan_trip",
            "2:invoke_agent triage",
            "3:chat gpt-4o",
            "3:execute_tool transfer_to_booker",
            "3:agent_to_agent_interaction",
            "2:invoke_agent booker",
            "3:agent_planning",
            "3:chat gpt-4o",
            "3:execute_tool search_flights",
            "3:agent.state.management",
            "3:chat gpt-4o",
        ]
        summary = shown(screen.query_one("#trace-summary", Static))
        assert "12 spans" in summary and "100ms" in summary and "conversation conv-travel-42" in summary
        # the waterfall: the root's bar spans the whole axis, the last model call sits at the right end
        labels = [node.label.plain for node in tree.root.children[0].children[0].children[1].children]
        root_bar = tree.root.children[0].label.plain.rstrip()
        assert root_bar.endswith("━" * 36)
        assert labels[-1].rstrip().endswith("━")
        assert labels[0].rstrip().endswith("·")  is False


async def test_errors_are_marked_and_details_show_content(store):
    app = TracekitApp(store.reader, live=False)
    async with app.run_test(size=(200, 50)) as pilot:
        screen = await open_trace(pilot, app, "status:error")
        tree = screen.query_one(SpanTree)
        failed = [node.label.plain for node in tree.root.children[0].children if "book_flight" in node.label.plain]
        assert len(failed) == 1 and "✖" in failed[0]
        await pilot.press("j")  # the first model call
        text = await details_of(pilot, screen)
        assert "chat gpt-4o  CLIENT  UNSET" in text
        assert "gen_ai.input.messages" in text
        assert '"content": "Yes, book it"' in text  # pretty-printed JSON, one key per line
        assert "gen_ai.usage.input_tokens = 450" in text
        assert "service.name = travel-app" in text  # resource
        await pilot.press("j")
        text = await details_of(pilot, screen)
        assert "execute_tool book_flight" in text and "ERROR: payment declined" in text


async def test_orphan_spans_hang_under_a_placeholder(tmp_path):
    from tracekit.collector.service import Collector
    from tracekit.collector.settings import CollectorSettings
    from tests.tui.conftest import NamedReader

    with Collector(CollectorSettings(db_path=tmp_path / "t.duckdb", grpc="127.0.0.1:0",
                                     http="127.0.0.1:0")).running() as collector:
        scenarios.record(collector.grpc_endpoint, scenarios.orphans)
        app = TracekitApp(NamedReader(collector.reader()), live=False)
        async with app.run_test(size=(200, 40)) as pilot:
            screen = await open_trace(pilot, app, "conv:conv-orphans")
            tree = screen.query_one(SpanTree)
            lines = outline(tree)
            assert lines[0] == "0:handle_request"
            assert lines[1].startswith("1:⋯ missing span")
            assert lines[2] == "2:chat gpt-4o"
            assert "1 parent span not received yet" in shown(screen.query_one("#trace-summary", Static))
            await pilot.press("j")
            await pilot.pause(0.2)
            assert "has not been received" in shown(screen.query_one("#details-body", Static))


async def test_spans_arriving_while_a_trace_is_open_are_added(fresh_store):
    telemetry = scenarios.Telemetry(fresh_store.collector.grpc_endpoint, seed=9)
    try:
        root = telemetry.open_span("long_running_job", 100, {"gen_ai.conversation.id": "conv-live"})
        telemetry.span("chat gpt-4o", 101, 102, {"gen_ai.operation.name": "chat", "gen_ai.conversation.id": "conv-live"},
                       root)
        telemetry.flush()
        app = TracekitApp(fresh_store.reader, live=True)
        async with app.run_test(size=(200, 40)) as pilot:
            screen = await open_trace(pilot, app, "conv:conv-live")
            tree = screen.query_one(SpanTree)
            assert outline(tree)[0].startswith("0:⋯ missing span")
            scenarios.end(root, 110)
            telemetry.flush()
            await wait_for(pilot, lambda: outline(tree) == ["0:long_running_job", "1:chat gpt-4o"], timeout=10)
    finally:
        telemetry.shutdown()


async def test_hostile_content_is_literal_and_a_5mb_value_is_cut(store):
    app = TracekitApp(store.reader, live=False)
    async with app.run_test(size=(200, 50)) as pilot:
        table_text = None
        await wait_for(pilot, lambda: app.screen.query_one(TraceTable).row_count > 0)
        table = app.screen.query_one(TraceTable)
        table_text = " ".join(cell.plain for cell in table.get_row_at(0))
        assert scenarios.HOSTILE_MARKUP in table_text and "\x1b" not in table_text
        assert "agent\\x1b]52;c;SG" in table_text  # escape shown as text, cut to the column
        screen = await open_trace(pilot, app, "conv:conv-hostile")
        label = screen.query_one(SpanTree).root.children[0].label.plain
        assert label.startswith(f"✦ chat {scenarios.HOSTILE_MARKUP}")
        text = await details_of(pilot, screen)
        assert "\x1b" not in text and "\x07" not in text
        assert "note = [bold red]pwned[/bold red]\\x1b]52;c;SGVsbG8=\\x07\\x1b[2J" in text
        assert "truncated: showing 2,000 of 5,000,0" in text and "press e to expand" in text
        assert len(text) < 50_000
        await pilot.press("e")
        view = screen.query_one(SpanDetailsView)
        await wait_for(pilot, lambda: "showing 200,000 of 5,000,0" in shown(view.query_one("#details-body", Static)))


async def test_details_show_span_events_and_correlated_log_records(store):
    app = TracekitApp(store.reader, live=False)
    async with app.run_test(size=(200, 50)) as pilot:
        screen = await open_trace(pilot, app, "conv:conv-azure-ai-inference")
        await pilot.press("j")  # the first model call (azure-ai-inference): its content arrived as span events
        text = await details_of(pilot, screen)
        assert "── events (3)" in text
        events = text[text.index("── events (3)"):]  # (the conventions section above names them too)
        assert events.index("gen_ai.system.message") < events.index("gen_ai.user.message") < events.index(
            "gen_ai.choice")
        assert scenarios.RECORDED_QUESTION in text
        await pilot.press("escape")
        screen = await open_trace(pilot, app, "conv:conv-openai-v2-legacy")
        await pilot.press("j")  # the first model call (openai-v2 2.1b0): its content arrived as log records
        text = await details_of(pilot, screen)
        assert "── log records (3)" in text
        assert "gen_ai.user.message" in text and scenarios.RECORDED_QUESTION in text


async def test_find_a_span_by_name_and_step_through_matches(store):
    app = TracekitApp(store.reader, live=False)
    async with app.run_test(size=(200, 50)) as pilot:
        screen = await open_trace(pilot, app, "agent:triage")
        await pilot.press("slash")
        search = screen.query_one("#span-search", Input)
        assert search.display and search.has_focus
        search.value = "GPT-4O"
        await pilot.press("enter")
        tree = screen.query_one(SpanTree)
        assert len(screen.matches) == 3 and not search.display
        await wait_for(pilot, lambda: tree.cursor_node is not None and tree.cursor_node.data.span_id == screen.matches[0])
        await pilot.press("n")
        await wait_for(pilot, lambda: tree.cursor_node.data.span_id == screen.matches[1])
        await pilot.press("N", "N")
        await wait_for(pilot, lambda: tree.cursor_node.data.span_id == screen.matches[2])
        assert tree.cursor_node.data.span.agent_name == "booker"


async def test_details_show_convention_findings_and_the_price(store):
    """A model call recorded from azure-ai-inference (gen_ai.system alone, per-message events) lists what
    `tracekit lint` finds; the current-shape travel spans list nothing and show their cost with the price used."""
    app = TracekitApp(store.reader, live=False)
    async with app.run_test(size=(200, 50)) as pilot:
        screen = await open_trace(pilot, app, "conv:conv-azure-ai-inference")
        await pilot.press("j")  # the model call, as azure-ai-inference records it (content in span events)
        text = await details_of(pilot, screen)
        assert "── conventions" in text
        assert "deprecated  gen_ai.system  deprecated; use gen_ai.provider.name" in text
        assert "content-placement  gen_ai.choice, gen_ai.system.message, gen_ai.user.message" in text
        assert "cost $" in text and "azure gpt-4o-mini" in text  # az.ai.inference: priced as Azure
    app = TracekitApp(store.reader, live=False)
    async with app.run_test(size=(200, 50)) as pilot:
        screen = await open_trace(pilot, app, "status:error")
        await pilot.press("j")  # the first model call
        text = await details_of(pilot, screen)
        assert "── conventions" not in text
        assert "cost $" in text and "openai gpt-4o: $" in text and "input MTok" in text


async def test_a_parent_stored_after_the_list_was_read_is_in_the_opened_trace(fresh_store):
    """Opening a trace from the list bounds its span query by the row's earliest span and the sequence read before
    its page (`KnownStart`): a span stored later is read even when it starts earlier (a parent exported after its
    children), and on a filtered row the spans before the matching one are read too."""
    telemetry = scenarios.Telemetry(fresh_store.collector.grpc_endpoint, seed=11)
    conv = {"gen_ai.conversation.id": "conv-late"}
    try:
        root = telemetry.open_span("late_parent", 100, conv)
        telemetry.span("chat gpt-4o", 110, 120, {**conv, "gen_ai.operation.name": "chat"}, root)
        telemetry.span("execute_tool lookup_late", 200, 210, {
            **conv, "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup_late"}, root)
        telemetry.flush()
        app = TracekitApp(fresh_store.reader, live=False)  # no reload: the row stays as read before the parent
        async with app.run_test(size=(200, 40)) as pilot:
            await wait_for(pilot, lambda: app.screen.query_one(TraceTable).row_count > 0)
            await pilot.press("slash")
            app.screen.query_one("#filter-input", Input).value = "tool:lookup_late"
            await pilot.press("enter")
            table = app.screen.query_one(TraceTable)
            await wait_for(pilot, lambda: table.row_count == 1 and table.traces[0].root_name == "chat gpt-4o")
            row = table.traces[0]
            assert row.earliest_ns < row.start_ns  # the row starts at the matching span, the trace before it
            scenarios.end(root, 300)
            telemetry.flush()  # acknowledged once stored: the parent starts before everything the row knows
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, TraceViewScreen) and app.screen.loaded)
            assert outline(app.screen.query_one(SpanTree)) == [
                "0:late_parent", "1:chat gpt-4o", "1:execute_tool lookup_late"]
    finally:
        telemetry.shutdown()


async def test_the_trace_view_is_built_unseen_once_the_list_is_up_and_reused_by_the_first_open(store):
    app = TracekitApp(store.reader, live=False)
    async with app.run_test(size=(200, 50)) as pilot:
        trace_list = app.screen
        await wait_for(pilot, lambda: app.warmed_up)
        kept = app.trace_view
        # composed and mounted, yet never left on the stack: the list is still shown, its table focused
        assert app.screen is trace_list and kept not in app.screen_stack
        assert trace_list.query_one(TraceTable).has_focus
        assert kept.query_one(SpanTree).is_mounted and not kept.loaded
        screen = await open_trace(pilot, app, "agent:triage")
        assert screen is kept and outline(screen.query_one(SpanTree))[0] == "0:invoke_workflow travel_planner"


async def test_keys_pressed_while_the_trace_view_is_built_reach_the_list(store):
    app = TracekitApp(store.reader, live=False)
    app.warm_up = lambda: None  # the test builds the view itself, with keys queued right behind it
    async with app.run_test(size=(200, 50)) as pilot:
        trace_list = app.screen
        table = trace_list.query_one(TraceTable)
        await wait_for(pilot, lambda: trace_list.settled and table.row_count > 2)
        app.call_later(app.prepare_trace_view)
        await pilot.press("j", "j")  # queued behind the build: the hidden trace view must not take them
        await wait_for(pilot, lambda: app.warmed_up)
        assert app.trace_view is not None and app.trace_view.is_mounted
        assert app.screen is trace_list and table.cursor_row == 2
