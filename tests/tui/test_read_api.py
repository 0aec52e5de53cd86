"""The TUI on a store owned by a running collector, read through its HTTP read API (what `tracekit tui` does)."""

from __future__ import annotations

from textual.widgets import Input

from tests.conversation import scenarios
from tests.tui.tui_helpers import wait_for
from tracekit.store.reader import RemoteReader, open_reader
from tracekit.tui.app import TracekitApp
from tracekit.tui.screens.conversation import ConversationScreen
from tracekit.tui.screens.trace_view import TraceViewScreen
from tracekit.tui.widgets.span_details import SpanDetailsView
from tracekit.tui.widgets.trace_table import TraceTable


async def test_list_filter_trace_and_replay_through_the_read_api(fresh_store):
    fresh_store.record(scenarios.travel_conversation, seed=4)  # ids apart from the store's first run
    reader = open_reader(fresh_store.collector.db_path)
    assert isinstance(reader, RemoteReader)
    app = TracekitApp(reader, live=True)
    async with app.run_test(size=(180, 40)) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(TraceTable).row_count == 3)
        await pilot.press("slash")
        app.screen.query_one("#filter-input", Input).value = "since:3650d agent:triage"
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.trace_filter.text.startswith("since")
                       and app.screen.query_one(TraceTable).row_count == 1)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, TraceViewScreen) and app.screen.loaded)
        view = app.screen.query_one(SpanDetailsView)
        await wait_for(pilot, lambda: view.details is not None)
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded)
        assert app.screen.transcript is not None and len(app.screen.transcript.turns) == 5
