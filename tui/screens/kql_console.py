"""The KQL console: write KQL (the Application Insights dialect) against the store, see the rows in a table and
errors at their line and column. Queries run in a worker through tracekit.query.kql, read-only like everything."""

from __future__ import annotations

import time

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Static, TextArea

from tracekit.conversation.literal import literal
from tracekit.errors import QueryError, TracekitError
from tracekit.tui.widgets.header import Header
from tracekit.tui.widgets.key_bar import KeyBar
from tracekit.tui.widgets.query_error import QueryErrorView

MAX_ROWS = 1_000  # rows put in the table; the status line gives the full count
CELL_LIMIT = 200
EXAMPLE = """dependencies
| where customDimensions["gen_ai.operation.name"] == "chat"
| summarize calls = count(), avg_ms = avg(duration) by model = tostring(customDimensions["gen_ai.request.model"])
| order by calls desc"""


class KqlConsoleScreen(Screen):
    """Opened with `:`."""

    BINDINGS = [
        Binding("ctrl+r,f5", "run", "Run query", priority=True),
        Binding("escape", "back", "Back"),
        Binding("ctrl+t", "focus_table", "Results", show=False),
    ]

    def __init__(self, query: str = EXAMPLE) -> None:
        super().__init__()
        self.initial = query
        self.running = False
        self.last_rows = -1

    def compose(self) -> ComposeResult:
        yield Header()
        yield TextArea(self.initial, id="kql-editor", show_line_numbers=True, tab_behavior="indent")
        yield QueryErrorView("", id="kql-error")
        yield Static(Text("ctrl+r or F5 runs the query", style="dim"), id="kql-status")
        yield DataTable(id="kql-results", zebra_stripes=True)
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(QueryErrorView).clear()
        self.query_one(TextArea).focus()

    def action_run(self) -> None:
        if self.running:
            return
        self.running = True
        self.query_one("#kql-status", Static).update(Text("running…", style="dim"))
        self.run_query(self.query_one(TextArea).text)

    @work(thread=True, exclusive=True, group="kql", exit_on_error=False)
    def run_query(self, text: str) -> None:
        from tracekit.query.kql import run_kql

        started = time.perf_counter()
        try:
            table = run_kql(self.app.reader, text)
        except QueryError as error:
            self.app.call_from_thread(self.show_error, text, error)
            return
        except TracekitError as error:
            self.app.call_from_thread(self.show_error, text, QueryError(str(error)))
            return
        self.app.call_from_thread(self.show_rows, table, time.perf_counter() - started)

    def show_error(self, text: str, error: QueryError) -> None:
        self.running = False
        self.query_one(QueryErrorView).show_error(text, error)
        self.query_one("#kql-status", Static).update(Text("query failed", style="bold red"))
        if error.line is not None:
            editor = self.query_one(TextArea)
            editor.move_cursor((error.line - 1, max(0, (error.column or 1) - 1)))
            editor.focus()

    def show_rows(self, table, seconds: float) -> None:
        self.running = False
        self.query_one(QueryErrorView).clear()
        results = self.query_one("#kql-results", DataTable)
        results.clear(columns=True)
        for name in table.column_names:
            results.add_column(literal(name, limit=80, pretty=False), key=name)
        columns = table.slice(0, MAX_ROWS).to_pydict()
        for values in zip(*columns.values()):
            results.add_row(*(self._cell(value) for value in values))
        self.last_rows = table.num_rows
        status = Text(f"{table.num_rows:,} row{'s' if table.num_rows != 1 else ''} in {seconds * 1000:.0f} ms",
                      style="bold")
        if table.num_rows > MAX_ROWS:
            status.append(f"  (first {MAX_ROWS:,} shown)", style="dim")
        self.query_one("#kql-status", Static).update(status)

    @staticmethod
    def _cell(value) -> Text:
        if value is None:
            return Text("")
        text = literal(value if isinstance(value, str) else str(value), limit=CELL_LIMIT, pretty=False)
        if not isinstance(value, str):
            text.justify = "right"
        return text

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_focus_table(self) -> None:
        self.query_one("#kql-results", DataTable).focus()
