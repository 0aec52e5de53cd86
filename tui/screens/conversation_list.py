"""Conversations in the store (by conversation id), most recently active first; Enter replays one."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from tracekit.conversation.literal import literal
from tracekit.errors import TracekitError
from tracekit.tui.data import conversations_page
from tracekit.tui.format import clock, count
from tracekit.tui.screens.table_screen import TableScreen
from tracekit.tui.widgets.header import Header
from tracekit.tui.widgets.key_bar import KeyBar


class ConversationListScreen(TableScreen):
    """Opened with `C` from the trace list."""

    def __init__(self) -> None:
        super().__init__()
        self.conversations: list[dict] = []
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text("conversations: loading…", style="dim"), id="conversations-status")
        yield DataTable(id="conversations", cursor_type="row", zebra_stripes=True)
        yield KeyBar()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, width in (("last activity", 18), ("conversation", 44), ("traces", 7), ("model calls", 11),
                             ("agents", 40)):
            table.add_column(label, width=width)
        table.focus()
        self.load()

    @work(thread=True, exclusive=True, group="conversations", exit_on_error=False)
    def load(self) -> None:
        try:
            rows = conversations_page(self.app.reader)
        except TracekitError as error:
            self.app.call_from_thread(self.notify, str(error), severity="error", title="query failed")
            return
        self.app.call_from_thread(self.show, rows)

    def show(self, rows: list[dict]) -> None:
        self.conversations = rows
        table = self.query_one(DataTable)
        table.clear()
        for row in rows:
            table.add_row(Text(clock(row["last_ns"]), style="dim"),
                          literal(row["conversation_id"], limit=200, pretty=False, style="bold"),
                          Text(count(row["traces"]), justify="right"), Text(count(row["model_calls"]), justify="right"),
                          literal(row["agents"], limit=200, pretty=False, style="cyan"))
        self.query_one("#conversations-status", Static).update(
            Text(f"{len(rows):,} conversation{'s' if len(rows) != 1 else ''} (most recent first) · "
                 "Enter replays one", style="bold"))
        self.loaded = True

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if 0 <= event.cursor_row < len(self.conversations):
            self.app.open_conversation(self.conversations[event.cursor_row]["conversation_id"])
