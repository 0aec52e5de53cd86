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


async def test_a_filter_reuses_the_sequence_read_before_the_page_shown(store):
    """A submitted filter does not ask the store's latest ingest sequence before its page (the one read before the
    page on screen bounds the new rows as well); a refresh (`r`) reads it again."""
    queries: list[str] = []

    class Recording(NamedReader):
        def rows(self, query, params=None):
            queries.append(query)
            return super().rows(query, params)

    app = TracekitApp(Recording(store.reader), live=False)
    async with app.run_test(size=(180, 40)) as pilot:
        table = await loaded(pilot, app)
        await wait_for(pilot, lambda: app.screen.settled)
        queries.clear()
        await pilot.press("slash")
        app.screen.query_one("#filter-input", Input).value = "agent:booker"
        await pilot.press("enter")
        await wait_for(pilot, lambda: table.row_count == 2)
        assert any("WITH page AS" in query for query in queries)
        assert not any("max(ingest_seq)" in query for query in queries)
        queries.clear()
        await pilot.press("r")
        await wait_for(pilot, lambda: any("max(ingest_seq)" in query for query in queries))


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

        def rows(self, query, params=None):
            queries.append(query)
            return super().rows(query, params)

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


def test_a_filtered_page_still_finds_loops_that_precede_the_matching_span(fresh_store):
    """On a filtered page a trace's row starts at its first matching span; loop detection reads the whole trace."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    from tests.lint.test_loops import _tool
    from tui.data import trace_loop_messages, trace_page
    from tui.filters import parse_filter

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=fresh_store.collector.grpc_endpoint, insecure=True)))
    tracer = provider.get_tracer("loops")
    with tracer.start_as_current_span("invoke_agent stuck", attributes={
            "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "researcher"}):
        for _ in range(3):
            _tool(tracer, "search", "researcher", '{"q": "flights to Oslo"}')
        _tool(tracer, "summarize", "researcher", '{}')  # the only span the filter matches, after the loop
    provider.shutdown()

    page = trace_page(fresh_store.reader, parse_filter("tool:summarize"), with_loops=False)
    assert [t.root_name for t in page] == ["invoke_agent stuck"]
    assert page[0].earliest_ns < page[0].start_ns  # the row starts at the matching span, the trace before it
    assert list(trace_loop_messages(fresh_store.reader, page).values()) == [
        ('researcher called search({"q":"flights to Oslo"}) 3 times with the same arguments',)]


async def test_the_table_draws_the_rows_in_view_and_keys_and_clicks_move_through_them(store):
    """The table draws only the lines on screen (header first); keys page and jump, a click moves the cursor and a
    click on the cursor's row opens the trace."""
    app = TracekitApp(store.reader, live=False)
    async with app.run_test(size=(180, 12)) as pilot:
        table = await loaded(pilot, app)
        rows_in_view = table.scrollable_content_region.height - 1  # below the header line
        assert 1 < rows_in_view < table.row_count
        line = lambda y: table.render_line(y).text  # noqa: E731
        assert line(0).split()[:3] == ["time", "root", "span"]
        assert "chat [bold red]pwned[/bold red]" in line(1)  # the newest, its markup shown as text
        await pilot.press("pagedown")
        assert table.cursor_row == rows_in_view and table.scroll_offset.y > 0
        await pilot.press("G")
        assert table.cursor_row == table.row_count - 1
        assert "invoke_workflow travel_planner" in line(rows_in_view)  # the oldest, on the last line
        assert "chat [bold red]pwned" not in " ".join(line(y) for y in range(rows_in_view + 1))
        await pilot.press("g")
        assert table.cursor_row == 0 and table.scroll_offset.y == 0
        await pilot.click(TraceTable, offset=(5, 3))
        assert table.cursor_row == 2
        await pilot.click(TraceTable, offset=(5, 3))
        await wait_for(pilot, lambda: type(app.screen).__name__ == "TraceViewScreen" and app.screen.loaded)
        assert app.screen.trace_id == table.traces[2].trace_id


def test_a_filtered_row_sums_up_the_whole_trace(store):
    """A filtered page is ordered by each trace's first matching span, but its columns count every span of the trace
    (the second step is bounded by the page's earliest span, not by the matching ones)."""
    from tui.data import trace_page
    from tui.filters import parse_filter

    whole = {trace.trace_id: trace for trace in trace_page(store.reader, with_loops=False)}
    starting_later = 0
    for text in ("tool:search_flights", "status:error", "agent:triage", "model:gpt-4o-mini", "chat"):
        page = trace_page(store.reader, parse_filter(text), with_loops=False)
        assert page, text
        for trace in page:
            assert replace(trace, start_ns=whole[trace.trace_id].start_ns) == whole[trace.trace_id], text
            starting_later += trace.earliest_ns < trace.start_ns
    assert starting_later  # some matching span is not its trace's first


async def test_the_started_app_keeps_its_objects_out_of_full_collections(store):
    """Once the first page is settled the app freezes what exists (the garbage collector's full passes skip it);
    leaving the app unfreezes it."""
    import gc

    app = TracekitApp(store.reader, live=False)
    async with app.run_test(size=(180, 40)) as pilot:
        await loaded(pilot, app)
        await wait_for(pilot, lambda: app.screen.settled)
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0
