"""SVG snapshots of the main screens on the recorded store (update with `pytest --snapshot-update`).

The data is deterministic (fixed ids and timestamps, TZ=UTC), so a changed snapshot means the screen changed.
"""

from __future__ import annotations

from textual.widgets import Input

from tests.tui.tui_helpers import wait_for
from tracekit.tui.app import TracekitApp
from tracekit.tui.screens.conversation import ConversationScreen
from tracekit.tui.screens.trace_view import TraceViewScreen
from tracekit.tui.widgets.span_details import SpanDetailsView
from tracekit.tui.widgets.trace_table import TraceTable

SIZE = (160, 45)


async def _list_loaded(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.screen.query_one(TraceTable).row_count > 0)


async def _filter(pilot, text: str) -> None:
    app = pilot.app
    await _list_loaded(pilot)
    await pilot.press("slash")
    app.screen.query_one("#filter-input", Input).value = text
    await pilot.press("enter")
    await wait_for(pilot, lambda: app.screen.trace_filter.text == text
                   and app.screen.query_one(TraceTable).row_count == 1)


def test_trace_list(snap_compare, store):
    assert snap_compare(TracekitApp(store.reader, live=False), terminal_size=SIZE, run_before=_list_loaded)


def test_trace_view(snap_compare, store):
    async def run_before(pilot) -> None:
        await _filter(pilot, "agent:triage")
        await pilot.press("enter")
        app = pilot.app
        await wait_for(pilot, lambda: isinstance(app.screen, TraceViewScreen) and app.screen.loaded)
        await pilot.press("j", "j", "j")  # the triage agent's model call
        view = app.screen.query_one(SpanDetailsView)
        await wait_for(pilot, lambda: view.details is not None and view.details.span.name == "chat gpt-4o")

    assert snap_compare(TracekitApp(store.reader, live=False), terminal_size=SIZE, run_before=run_before)


def test_conversation(snap_compare, store):
    async def run_before(pilot) -> None:
        await _filter(pilot, "agent:triage")
        await pilot.press("c")
        app = pilot.app
        await wait_for(pilot, lambda: isinstance(app.screen, ConversationScreen) and app.screen.loaded)
        await pilot.press("n", "n")

    assert snap_compare(TracekitApp(store.reader, live=False), terminal_size=SIZE, run_before=run_before)


def test_help(snap_compare, store):
    async def run_before(pilot) -> None:
        await _list_loaded(pilot)
        await pilot.press("question_mark")

    assert snap_compare(TracekitApp(store.reader, live=False), terminal_size=SIZE, run_before=run_before)


def test_hostile_trace(snap_compare, store):
    async def run_before(pilot) -> None:
        await _filter(pilot, "conv:conv-hostile")
        await pilot.press("enter")
        app = pilot.app
        await wait_for(pilot, lambda: isinstance(app.screen, TraceViewScreen) and app.screen.loaded)
        view = app.screen.query_one(SpanDetailsView)
        await wait_for(pilot, lambda: view.details is not None)

    assert snap_compare(TracekitApp(store.reader, live=False), terminal_size=SIZE, run_before=run_before)
