"""The trace list on a real store: rows, filters, errors at their position, live tail, keys."""

from __future__ import annotations

from textual.widgets import Input, Static

from tests.conversation import scenarios
from tests.tui.tui_helpers import plain, shown, wait_for
from tracekit.tui.app import TracekitApp
from tracekit.tui.screens.help import HelpScreen
from tracekit.tui.screens.trace_list import TraceListScreen
from tracekit.tui.widgets.trace_table import TraceTable


def rows(app: TracekitApp) -> list[list[str]]:
    table = app.screen.query_one(TraceTable)
    return [[cell.plain for cell in table.get_row_at(index)] for index in range(table.row_count)]


async def loaded(pilot, app: TracekitApp) -> TraceTable:
    await wait_for(pilot, lambda: isinstance(app.screen, TraceListScreen) and app.screen.query_one(TraceTable).row_count > 0)
    return app.screen.query_one(TraceTable)


async def test_traces_listed_newest_first_with_their_columns(store):
    app = TracekitApp(store.reader, live=False)
    async with app.run_test(size=(180, 40)) as pilot:
        await loaded(pilot, app)
        listed = rows(app)
        names = [row[1] for row in listed]
        # the hostile run is the newest, the travel workflow the oldest
        assert names[0].startswith("chat [bold red]pwned")
        assert names[-1] == "invoke_workflow travel_planner"
        assert names.index("invoke_agent booker") < names.index("invoke_workflow travel_planner")
        workflow = listed[-1]
        assert workflow[0] == "01-15 10:00:00.000"
        assert workflow[2] == "booker, triage"  # agents
        assert workflow[3] == "travel-app"
        assert workflow[4] == "100ms" and workflow[5] == "12" and workflow[6] == "875"
        booking = listed[names.index("invoke_agent booker")]
        assert booking[7] == "1"  # the failed book_flight span


async def test_filters_narrow_the_list(store):
    app = TracekitApp(store.reader, live=False)
    async with app.run_test(size=(180, 40)) as pilot:
        table = await loaded(pilot, app)
        total = table.row_count
        for text, expected in [
            ("agent:booker", {"invoke_workflow travel_planner", "invoke_agent booker"}),
            ("status:error", {"invoke_agent booker"}),
            ("conv:conv-openai-v2-legacy", {"answer_question"}),
            ("resp:resp_chain_2", {"chat gpt-5"}),
            ("Dune", set()),
            ("model:gpt-4o-mini", {"answer_question"}),  # OpenInference names only the response model
            ("tool:search_flights", {"invoke_workflow travel_planner"}),
        ]:
            await pilot.press("slash")
            field = app.screen.query_one("#filter-input", Input)
            field.value = text
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.screen.trace_filter.text == text and
                           {row[1] for row in rows(app)} == expected or (not expected and table.row_count == 0))
            assert {row[1] for row in rows(app)} == expected, text
        await pilot.press("escape")
        await wait_for(pilot, lambda: table.row_count == total)


async def test_a_bad_filter_is_shown_at_its_position(store):
    app = TracekitApp(store.reader, live=False)
    async with app.run_test(size=(180, 40)) as pilot:
        await loaded(pilot, app)
        await pilot.press("slash")
        app.screen.query_one("#filter-input", Input).value = "checkout colour:blue"
        await pilot.press("enter")
        await pilot.pause()
        error = app.screen.query_one("#filter-error", Static)
        message = shown(error)
        assert message.index("^") == len("checkout ")
        assert "unknown filter key 'colour'" in message
        assert error.display


async def test_live_tail_shows_new_traces_as_they_arrive(fresh_store):
    app = TracekitApp(fresh_store.reader, live=True)
    async with app.run_test(size=(180, 40)) as pilot:
        table = await loaded(pilot, app)
        assert [row[1] for row in rows(app)] == ["answer_question"]
        fresh_store.record(scenarios.response_chain, seed=5)  # three newer traces
        await wait_for(pilot, lambda: table.row_count == 4, timeout=10)
        assert [row[1] for row in rows(app)] == ["chat gpt-5"] * 3 + ["answer_question"]
        await pilot.press("p")  # pause the live tail
        assert not app.screen.live


async def test_keys_move_open_and_show_help(store):
    app = TracekitApp(store.reader, live=False)
    async with app.run_test(size=(180, 40)) as pilot:
        table = await loaded(pilot, app)
        await pilot.press("j", "j")
        assert table.cursor_row == 2
        await pilot.press("k")
        assert table.cursor_row == 1
        await pilot.press("G")
        assert table.cursor_row == table.row_count - 1
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        help_text = shown(app.screen.query_one(Static))
        for key, description in [("/", "Filter"), ("c", "Conversation"), ("p", "Pause/resume live"), ("q", "Quit"),
                                 ("j / k", "move")]:
            assert key in help_text and description in help_text
        await pilot.press("escape")
        assert isinstance(app.screen, TraceListScreen)
        await pilot.press("g", "y")
        assert app.clipboard == table.traces[0].trace_id
        await pilot.press("enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "TraceViewScreen")
        await pilot.press("escape")
        assert isinstance(app.screen, TraceListScreen)
