"""The trace list on a real store: rows, filters, errors at their position, live tail, keys."""

from __future__ import annotations

from dataclasses import replace

from tracekit.cost import format_cost

from textual.widgets import Input, Static

from tests.conversation import scenarios
from tests.tui.conftest import NamedReader
from tests.tui.tui_helpers import plain, shown, wait_for
from tracekit.tui.data import FirstPage
from tracekit.tui.app import TracekitApp
from tracekit.tui.screens.help import HelpScreen
from tracekit.tui.screens.trace_list import TraceListScreen
from tracekit.tui.widgets.key_bar import KeyBar
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
        trace_cost = store.reader.sql(
            "SELECT sum(cost_usd) AS c FROM spans WHERE trace_id = (SELECT trace_id FROM spans "
            "WHERE name = 'invoke_workflow travel_planner')").to_pylist()[0]["c"]
        assert trace_cost > 0 and workflow[7] == format_cost(trace_cost)  # the model calls' cost (gpt-4o)
        booking = listed[names.index("invoke_agent booker")]
        assert booking[8] == "1"  # the failed book_flight span


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


async def test_loop_markers_follow_the_rows_and_survive_a_reload(fresh_store):
    """Loop detection runs after the rows are shown; its markers are added to the rows and kept across reloads."""
    from tests.lint.test_loops import _send

    _send(fresh_store.collector)
    roots = "SELECT count(*) AS n FROM spans WHERE name LIKE 'invoke_agent %'"
    assert fresh_store.reader.sql(roots).to_pylist()[0]["n"] == 3  # the exporter returns once a span is stored
    app = TracekitApp(fresh_store.reader, live=False)
    async with app.run_test(size=(180, 40)) as pilot:
        table = await loaded(pilot, app)
        name = lambda root: next(row[1] for row in rows(app) if root in row[1])  # noqa: E731
        await wait_for(pilot, lambda: name("stuck").startswith("↻ "))
        assert name("ping-pong").startswith("↻ ") and not name("healthy").startswith("↻")
        assert [t.loops for t in table.traces if "stuck" in t.root_name] == [
            ('researcher called search({"q":"flights to Oslo"}) 3 times with the same arguments',)]
        # A reload's rows come without loops (detection runs after them): the known markers are shown at once.
        table.set_traces([replace(trace, loops=()) for trace in table.traces])
        assert name("stuck").startswith("↻ ") and not name("healthy").startswith("↻")


async def test_the_first_page_queried_before_the_app_starts_is_the_list(store):
    """`tracekit tui` starts the first page's query before it imports Textual; the list shows that answer."""
    queries: list[str] = []

    class Recording(NamedReader):
        def sql(self, query, params=None):
            queries.append(query)
            return super().sql(query, params)

    reader = Recording(store.reader)
    first_page = FirstPage(reader)
    _, expected = first_page.result()
    app = TracekitApp(reader, live=False, first_page=first_page)
    async with app.run_test(size=(180, 40)) as pilot:
        table = await loaded(pilot, app)
        assert [trace.trace_id for trace in table.traces] == [trace.trace_id for trace in expected]
        assert app.first_page is None  # taken once: a reload queries again
        assert sum("WITH page AS" in query for query in queries) == 1


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


async def test_key_bar_shows_the_screens_keys_and_a_click_presses_one(store):
    app = TracekitApp(store.reader, live=False)
    async with app.run_test(size=(180, 40)) as pilot:
        await loaded(pilot, app)
        bar = app.screen.query_one(KeyBar)
        line = bar.render().plain
        assert line.startswith(" / Filter  c Conversation ") and " ? Keys " in line
        assert line.rstrip().endswith("▏^p palette")
        await pilot.click(KeyBar, offset=(line.index(" ? Keys") + 2, 0))
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)  # the click pressed `?`
        await pilot.press("escape")
        await pilot.click(KeyBar, offset=(line.index(" / Filter") + 1, 0))
        await pilot.pause()
        assert app.screen.query_one("#filter-input", Input).has_focus
        await pilot.press("escape", "enter")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "TraceViewScreen" and app.screen.loaded)
        assert " o Expand all " in app.screen.query_one(KeyBar).render().plain  # the focused tree's keys
        await pilot.press("tab")  # focus moves to the details panel: the tree's keys leave the bar
        await pilot.pause()
        assert " o Expand all " not in app.screen.query_one(KeyBar).render().plain
