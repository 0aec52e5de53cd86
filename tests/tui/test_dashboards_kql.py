"""The dashboards screen and the KQL console over a real store."""

from __future__ import annotations

from textual.widgets import DataTable, Static, TextArea

from tests.tui.tui_helpers import plain, shown, wait_for
from tracekit.tui.app import TracekitApp
from tracekit.tui.screens.dashboards import DashboardsScreen
from tracekit.tui.screens.kql_console import KqlConsoleScreen
from tracekit.tui.widgets.query_error import QueryErrorView
from tracekit.tui.widgets.trace_table import TraceTable


async def test_agents_dashboard_draws_every_tile(store):
    app = TracekitApp(store.reader, live=False)
    async with app.run_test(size=(200, 60)) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(TraceTable).row_count > 0)
        await pilot.press("d")
        screen = app.screen
        assert isinstance(screen, DashboardsScreen)
        await pilot.press("4")  # the recorded runs are dated January 2026: show all data
        await wait_for(pilot, lambda: screen.range_name == "all" and screen.finished == len(screen.board.tiles),
                       timeout=60)
        tiles = {tile.title: shown(screen.query_one(f"#tile-{index}", Static))
                 for index, tile in enumerate(screen.board.tiles)}
        runs = tiles["Agent runs"]
        assert "3" in runs.split("Agent runs", 1)[1]  # triage, booker, booker
        assert not any("line " in text and "column" in text for text in tiles.values()), tiles
        for title, label in (("Cost by model (USD)", "gpt-4o-mini"), ("Cost by agent (USD)", "booker")):
            lines = [line for line in tiles[title].splitlines() if label in line]  # one sparkline per series
            assert lines and any(block in lines[0] for block in "▁▂▃▄▅▆▇█"), tiles[title]
        assert "all data" in shown(screen.query_one("#dashboard-status", Static))


async def test_kql_console_shows_rows_and_errors_at_their_position(store):
    app = TracekitApp(store.reader, live=False)
    async with app.run_test(size=(200, 50)) as pilot:
        await wait_for(pilot, lambda: app.screen.query_one(TraceTable).row_count > 0)
        await pilot.press("colon")
        screen = app.screen
        assert isinstance(screen, KqlConsoleScreen)
        editor = screen.query_one(TextArea)
        await pilot.press("ctrl+r")  # the example query the console opens with
        await wait_for(pilot, lambda: screen.last_rows >= 0 or screen.query_one(QueryErrorView).display)
        results = screen.query_one("#kql-results", DataTable)
        # two model calls in each of the five recorded shapes that name the operation (OpenInference and the
        # indexed OpenLLMetry release do not); then the travel conversation's 5, the v1.37 and the hostile run
        assert [[cell.plain for cell in results.get_row_at(row)][:2] for row in (0, 1)] == [
            ["gpt-4o-mini", "10"], ["gpt-4o", "7"]]
        assert " rows in " in shown(screen.query_one("#kql-status", Static))
        screen.last_rows = -1
        editor.text = ('dependencies\n| where customDimensions["gen_ai.operation.name"] == "execute_tool"\n'
                       '| summarize calls = count() by name\n| order by name asc')
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: screen.last_rows >= 0 or screen.query_one(QueryErrorView).display)
        rows = [[cell.plain for cell in results.get_row_at(index)] for index in range(results.row_count)]
        assert ["execute_tool search_flights", "1"] in rows and ["execute_tool book_flight", "1"] in rows
        editor.text = "dependencies\n| whre name == 'x'"
        await pilot.press("f5")
        error = screen.query_one(QueryErrorView)
        await wait_for(pilot, lambda: error.display)
        message = shown(error)
        assert "line 2" in message
        source_line, caret_line = message.splitlines()[1:3]
        assert source_line.endswith("| whre name == 'x'")
        assert caret_line.rstrip().endswith("^")
        assert editor.cursor_location[0] == 1


async def test_kql_console_cannot_change_the_store(store):
    """Issue 13.2 through the console, on the in-process reader and on the collector's read API: KQL control and
    ingestion commands and SQL smuggled in string literals are refused or match nothing; the store stays the same."""
    from tests.query.test_read_only import KQL_WRITES, fingerprint
    from tracekit.store.reader import RemoteReader, open_reader

    assert store.collector.views.installed.wait(120)  # the store's catalog settled before the fingerprint
    before = fingerprint(store.collector.reader())
    remote = open_reader(store.collector.db_path)
    assert isinstance(remote, RemoteReader)
    for reader in (store.reader, remote):
        app = TracekitApp(reader, live=False)
        async with app.run_test(size=(200, 50)) as pilot:
            await wait_for(pilot, lambda: app.screen.query_one(TraceTable).row_count > 0)
            await pilot.press("colon")
            screen = app.screen
            editor = screen.query_one(TextArea)
            error = screen.query_one(QueryErrorView)
            for text in KQL_WRITES:
                screen.last_rows = -1
                editor.text = text
                await pilot.press("ctrl+r")
                await wait_for(pilot, lambda: not screen.running)
                if text.startswith("."):
                    assert error.display and screen.last_rows == -1, text
                    assert "not supported" in shown(error) or "writes are disabled" in shown(error), text
                else:
                    assert error.display or screen.last_rows == 0, text
    assert fingerprint(store.collector.reader()) == before
