"""The TUI on a store written by a real instrumented run (LangGraph + tracekit's LangChain instrumentor)."""

from __future__ import annotations

from tests.conversation import instrumented
from tests.tui.test_conversation_screen import block_texts
from tests.tui.test_trace_view import outline
from tests.tui.tui_helpers import wait_for
from tracekit.tui.app import TracekitApp
from tracekit.tui.screens.conversation import ConversationScreen
from tracekit.tui.screens.trace_view import TraceViewScreen
from tracekit.tui.widgets.span_tree import SpanTree
from tracekit.tui.widgets.trace_table import TraceTable


async def test_langgraph_run_in_list_tree_and_replay(langgraph_store):
    app = TracekitApp(langgraph_store.reader, live=False)
    async with app.run_test(size=(200, 50)) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(TraceTable).row_count == 1)
        row = [cell.plain for cell in app.screen.query_one(TraceTable).get_row_at(0)]
        assert row[1] == "invoke_agent day_planner" and row[2] == "day_planner, weather_agent"
        assert row[3] == "day-planner" and row[5] == "5" and row[6] == "140"
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TraceViewScreen) and app.screen.loaded)
        assert outline(app.screen.query_one(SpanTree)) == [
            "0:invoke_agent day_planner", "1:invoke_agent weather_agent", "2:chat gpt-4o-mini",
            "2:execute_tool get_weather", "2:chat gpt-4o-mini"]
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded)
        joined = "\n".join(block_texts(app.screen))
        assert joined.index(instrumented.QUESTION) < joined.index("⚙ get_weather") \
            < joined.index(instrumented.WEATHER) < joined.index(instrumented.ANSWER)
        assert joined.count(instrumented.ANSWER) == 1
