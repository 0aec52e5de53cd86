"""Two runs side by side, aligned step by step (tracekit.diff): `m` marks a trace in the list, `D` on another
compares them. Enter on a row opens that step's span in its trace."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from tracekit.conversation.literal import literal
from tracekit.diff import RunDiff, diff_runs
from tracekit.diff.render import summary_lines
from tracekit.diff.steps import Step
from tracekit.errors import TracekitError
from tracekit.tui.format import format_duration
from tracekit.tui.screens.table_screen import TableScreen
from tracekit.tui.widgets.header import Header
from tracekit.tui.widgets.key_bar import KeyBar


class RunDiffScreen(TableScreen):
    """The comparison of run A with run B (trace, conversation or response ids)."""

    BINDINGS = [
        Binding("f", "toggle_changed", "Changed only"),
    ]

    def __init__(self, key_a: str, key_b: str) -> None:
        super().__init__()
        self.key_a, self.key_b = key_a, key_b
        self.diff: RunDiff | None = None
        self.changed_only = False
        self.rows: list = []
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text("comparing…", style="dim"), id="diff-summary")
        yield DataTable(id="diff-steps", cursor_type="row", zebra_stripes=True)
        yield KeyBar()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, width in (("#", 4), ("A", 46), ("B", 46), ("what differs", 30), ("Δ time", 10), ("Δ tokens", 9)):
            table.add_column(label, width=width)
        table.focus()
        self.load()

    @work(thread=True, exclusive=True, group="diff", exit_on_error=False)
    def load(self) -> None:
        try:
            diff = diff_runs(self.app.reader, self.key_a, self.key_b)
        except TracekitError as error:
            self.app.call_from_thread(self.show_error, str(error))
            return
        self.app.call_from_thread(self.show, diff)

    def show_error(self, message: str) -> None:
        self.query_one("#diff-summary", Static).update(Text(message, style="bold red"))
        self.loaded = True

    def show(self, diff: RunDiff) -> None:
        self.diff = diff
        summary = Text()
        for line in summary_lines(diff):
            summary.append_text(literal(line, limit=400, pretty=False))
            summary.append("\n")
        summary.append("Enter opens the step's span · f shows only what changed", style="dim")
        self.query_one("#diff-summary", Static).update(summary)
        self.fill()
        self.loaded = True

    def fill(self) -> None:
        assert self.diff is not None
        table = self.query_one(DataTable)
        table.clear()
        self.rows = [step for step in self.diff.steps if not (self.changed_only and step.same)]
        for step in self.rows:
            style = "dim" if step.same else ""
            delta = step.duration_delta_ns
            tokens = step.tokens_delta
            table.add_row(Text(str(step.index + 1), style=style), _cell(step.a, style), _cell(step.b, style),
                          Text(", ".join(step.changes) or "same", style="yellow" if step.changes else "dim"),
                          Text("" if delta is None else ("+" if delta > 0 else "-") + format_duration(abs(delta)),
                               justify="right"),
                          Text("" if not tokens else f"{tokens:+,}", justify="right"))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if 0 <= event.cursor_row < len(self.rows):
            pair = self.rows[event.cursor_row]
            step = pair.b or pair.a
            self.app.open_trace(step.trace_id, select_span=step.span_id)

    def action_toggle_changed(self) -> None:
        if self.diff is not None:
            self.changed_only = not self.changed_only
            self.fill()



def _cell(step: Step | None, style: str) -> Text:
    if step is None:
        return Text("—", style="dim")
    text = Text("  " * min(step.depth, 6) + step.kind + " ", style=style or "dim")
    text.append_text(literal(step.name, limit=80, pretty=False, style="red" if step.error else style or "bold"))
    if step.arguments:
        text.append(" ")
        text.append_text(literal(step.arguments, limit=60, pretty=False, style="dim"))
    return text
