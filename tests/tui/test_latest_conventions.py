"""The TUI shows the newest conventions: plan steps, hand-offs, reasoning tokens and time to first chunk, in the
conversation screen and in span details (the real app driven by its pilot, spans from the real SDK)."""

from __future__ import annotations

import pytest

from tests.conversation import latest_conventions
from tests.tui.test_conversation_screen import block_texts, open_conversation
from tests.tui.tui_helpers import plain, wait_for
from tracekit.tui.app import TracekitApp
from tracekit.tui.screens.conversation import ConversationScreen
from tracekit.tui.screens.trace_view import TraceViewScreen
from tracekit.tui.widgets.span_details import SpanDetailsView
from tracekit.tui.widgets.transcript_view import TranscriptView


@pytest.mark.parametrize("conversation, plan, handoff", [
    (latest_conventions.LATEST, "☰ plan step plan triage", "⇢ hand-off triage → booker"),
    (latest_conventions.MICROSOFT, "☰ plan step agent_planning plan", "⇢ hand-off triage → booker"),
])
async def test_conversation_shows_plan_step_and_hand_off(latest_store, conversation, plan, handoff):
    app = TracekitApp(latest_store.reader, live=False)
    async with app.run_test(size=(200, 60)) as pilot:
        screen = await open_conversation(pilot, app, f"conv:{conversation}")
        joined = "\n".join(block_texts(screen))
        assert joined.index(plan) < joined.index(latest_conventions.PLAN_TEXT) < joined.index(handoff) \
            < joined.index("▶ agent booker")


async def test_turn_and_span_details_show_reasoning_and_time_to_first_chunk(latest_store):
    app = TracekitApp(latest_store.reader, live=False)
    async with app.run_test(size=(200, 60)) as pilot:
        screen = await open_conversation(pilot, app, f"conv:{latest_conventions.LATEST}")
        joined = "\n".join(block_texts(screen))
        assert "⇢ hand-off weather_workflow → weather-agent" in joined
        view = screen.query_one(TranscriptView)
        await pilot.press("n")
        header = plain(view.turn_widgets[0].block.renderable)
        assert "1,200 → 900 (700 reasoning) tokens" in header and "streamed, first chunk 420ms" in header
        assert "cache 1,000 read, 150 written" in header
        await pilot.press("t")  # the trace, with the turn's model call selected
        await wait_for(pilot, lambda: isinstance(app.screen, TraceViewScreen) and app.screen.loaded)
        details = app.screen.query_one(SpanDetailsView)
        turn = view.turn_widgets[0].block.turn
        await wait_for(pilot, lambda: details.details is not None and details.details.span.span_id == turn.span_id)
        text = plain(details.query_one("#details-body").content)
        line = next(line for line in text.splitlines() if line.startswith("model call"))
        for piece in ("1,200 → 900 (700 reasoning) tokens", "cache 1,000 read, 150 written",
                      "streamed, first chunk 420ms"):
            assert piece in line
        await pilot.press("escape")
        assert isinstance(app.screen, ConversationScreen)
