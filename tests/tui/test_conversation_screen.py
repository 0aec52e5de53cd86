"""Conversation replay in the TUI: transcript order, tool results under calls, stepping turn by turn."""

from __future__ import annotations

from textual.widgets import Input, Static

from tests.conversation import scenarios
from tests.tui.tui_helpers import plain, shown, wait_for
from tracekit.tui.app import TracekitApp
from tracekit.tui.screens.conversation import ConversationScreen
from tracekit.tui.screens.trace_view import TraceViewScreen
from tracekit.tui.widgets.trace_table import TraceTable
from tracekit.tui.widgets.transcript_view import TranscriptBlock, TranscriptView


async def open_conversation(pilot, app: TracekitApp, filter_text: str) -> ConversationScreen:
    await wait_for(pilot, lambda: app.screen.query_one(TraceTable).row_count > 0)
    await pilot.press("slash")
    app.screen.query_one("#filter-input", Input).value = filter_text
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.screen.trace_filter.text == filter_text
                   and app.screen.query_one(TraceTable).row_count >= 1)
    await pilot.press("c")
    await wait_for(pilot, lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded)
    return app.screen


def block_texts(screen: ConversationScreen) -> list[str]:
    return [plain(block.block.renderable) for block in screen.query(TranscriptBlock)]


async def test_conversation_reads_in_order_with_tool_results_under_calls(store):
    app = TracekitApp(store.reader, live=False)
    async with app.run_test(size=(160, 60)) as pilot:
        screen = await open_conversation(pilot, app, "conv:conv-travel-42")
        texts = block_texts(screen)
        joined = "\n".join(texts)
        order = ["request invoke_workflow travel_planner", "agent triage", "turn 1 · triage", scenarios.USER_1,
                 "transfer_to_booker", "hand-off triage → booker", "agent booker  ← handed off from triage",
                 "turn 2 · booker", "⚙ search_flights", "turn 3 · booker", scenarios.ANSWER_1,
                 "request invoke_agent booker", scenarios.USER_2, "⚙ book_flight", scenarios.ANSWER_2,
                 "evaluation Relevance"]
        position = 0
        for needle in order:
            found = joined.find(needle, position)
            assert found >= 0, f"{needle!r} missing in order"
            position = found
        search = next(text for text in texts if text.startswith("⚙ search_flights"))
        assert search.index("args:") < search.index('"to": "Paris"') < search.index("↳") < search.index('"price": 420')
        failed = next(text for text in texts if text.startswith("⚙ book_flight"))
        assert "↳ error: payment declined" in failed
        # one lane colour per agent: triage and booker blocks carry different lane classes
        lanes = {block.block.agent: [c for c in block.classes if c.startswith("lane-")]
                 for block in screen.query(TranscriptBlock) if block.block.agent}
        assert lanes["triage"] == ["lane-0"] and lanes["booker"] == ["lane-1"]


async def test_step_through_turns_and_jump_to_the_trace(store):
    app = TracekitApp(store.reader, live=False)
    async with app.run_test(size=(160, 40)) as pilot:
        screen = await open_conversation(pilot, app, "conv:conv-travel-42")
        view = screen.query_one(TranscriptView)
        assert len(view.turn_widgets) == 5
        await pilot.press("n")
        assert view.current_turn == 0 and "current" in view.turn_widgets[0].classes
        assert "turn 1 of 5" in shown(screen.query_one("#conversation-status", Static))
        await pilot.press("n", "n")
        assert view.current_turn == 2
        assert "turn 3 · booker · gpt-4o · 380 → 20 tokens · 37ms" in plain(view.turn_widgets[2].block.renderable)
        await pilot.press("p")
        assert view.current_turn == 1 and "current" not in view.turn_widgets[2].classes
        await pilot.press("t")
        await wait_for(pilot, lambda: isinstance(app.screen, TraceViewScreen) and app.screen.loaded)
        turn = view.turn_widgets[1].block.turn
        await wait_for(pilot, lambda: app.screen.details_for == turn.span_id)
        await pilot.press("escape")
        assert app.screen is screen


async def test_every_recorded_third_party_shape_opens_in_the_tui(store):
    app = TracekitApp(store.reader, live=False)
    async with app.run_test(size=(160, 40)) as pilot:
        for shape in scenarios.RECORDED_SHAPES:
            conversation = "conv-" + shape.__name__.replace("_", "-")
            screen = await open_conversation(pilot, app, f"conv:{conversation}")
            assert screen.transcript.conversation_id == conversation
            joined = "\n".join(block_texts(screen))
            assert joined.index(scenarios.RECORDED_QUESTION) < joined.index("⚙ lookup") \
                < joined.index("Frank Herbert") < joined.index(scenarios.RECORDED_ANSWER), conversation
            await pilot.press("escape")
            await wait_for(pilot, lambda: not isinstance(app.screen, ConversationScreen))


async def test_hostile_transcript_is_literal_and_expands_on_demand(store):
    app = TracekitApp(store.reader, live=False)
    async with app.run_test(size=(160, 40)) as pilot:
        screen = await open_conversation(pilot, app, "conv:conv-hostile")
        joined = "\n".join(block_texts(screen))
        assert scenarios.HOSTILE_MARKUP in joined and "\x1b" not in joined
        assert f"showing 4,000 of {scenarios.HUGE:,} characters" in joined
        await pilot.press("e")
        await pilot.pause()
        joined = "\n".join(block_texts(screen))
        assert f"showing 200,000 of {scenarios.HUGE:,} characters" in joined


async def test_pick_a_conversation_from_the_list(store):
    from textual.widgets import DataTable

    from tracekit.tui.screens.conversation_list import ConversationListScreen

    app = TracekitApp(store.reader, live=False)
    async with app.run_test(size=(160, 40)) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(TraceTable).row_count > 0)
        await pilot.press("C")
        await wait_for(pilot, lambda: isinstance(app.screen, ConversationListScreen) and app.screen.loaded)
        ids = [row["conversation_id"] for row in app.screen.conversations]
        assert ids[0] == "conv-hostile" and "conv-travel-42" in ids and "conv-openinference" in ids
        table = app.screen.query_one(DataTable)
        travel = ids.index("conv-travel-42")
        assert [cell.plain for cell in table.get_row_at(travel)][2:] == ["2", "5", "booker, triage"]
        table.move_cursor(row=travel)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded)
        assert app.screen.transcript.conversation_id == "conv-travel-42"


async def test_replay_updates_when_the_conversation_continues(fresh_store):
    telemetry = scenarios.Telemetry(fresh_store.collector.grpc_endpoint, seed=11)
    try:
        first = telemetry.open_span("invoke_agent helper", 0, {"gen_ai.operation.name": "invoke_agent",
                                                               "gen_ai.agent.name": "helper",
                                                               "gen_ai.conversation.id": "conv-growing"})
        question = '[{"role":"user","parts":[{"type":"text","content":"first question"}]}]'
        telemetry.span("chat gpt-4o", 1, 2, {"gen_ai.operation.name": "chat", "gen_ai.conversation.id": "conv-growing",
                                             "gen_ai.input.messages": question}, first)
        scenarios.end(first, 3)
        telemetry.flush()
        app = TracekitApp(fresh_store.reader, live=True)
        async with app.run_test(size=(160, 40)) as pilot:
            screen = await open_conversation(pilot, app, "conv:conv-growing")
            await pilot.press("n")
            assert "first question" in "\n".join(block_texts(screen))
            telemetry.span("chat gpt-4o", 10, 12, {
                "gen_ai.operation.name": "chat", "gen_ai.conversation.id": "conv-growing",
                "gen_ai.input.messages": '[{"role":"user","parts":[{"type":"text","content":"second question"}]}]'})
            telemetry.flush()
            await wait_for(pilot, lambda: "second question" in "\n".join(block_texts(screen)), timeout=10)
            assert screen.query_one(TranscriptView).current_turn == 0  # the reader's place is kept
    finally:
        telemetry.shutdown()
