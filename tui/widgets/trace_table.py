"""The trace list table: one row per trace, newest first; asks for more rows when the cursor nears the end."""

from __future__ import annotations

from dataclasses import replace

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import DataTable

from tracekit.conversation.literal import literal
from tracekit.cost import format_cost
from tracekit.tui.data import TraceSummary
from tracekit.tui.format import clock, count, format_duration

COLUMNS = (("time", 18), ("root span", 34), ("agent", 26), ("service", 12), ("duration", 9), ("spans", 7),
           ("tokens", 9), ("cost", 10), ("errors", 6))


def _cell(value: str, width: int, style: str = "") -> Text:
    """Span-supplied strings as literal Text (never markup), cut to the column width."""
    text = literal(value, limit=max(width * 4, 64), pretty=False, style=style)
    text.truncate(width, overflow="ellipsis")
    return text


def trace_cost(trace: TraceSummary) -> str:
    """The trace's cost; "≥" when some model call in it has no known price, "" when it made no priced call."""
    if trace.cost_usd is None:
        return "—" if trace.cost_partial else ""
    return ("≥" if trace.cost_partial else "") + format_cost(trace.cost_usd)


class TraceTable(DataTable):
    """Traces as rows keyed by trace id."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
    ]

    class Opened(Message):
        """The user chose a trace (Enter)."""

        def __init__(self, trace: TraceSummary) -> None:
            super().__init__()
            self.trace = trace

    class NeedMore(Message):
        """The cursor is close to the last loaded row: load the next page."""

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.traces: list[TraceSummary] = []
        # Loop markers found so far, by trace id: rows arrive without them (detection runs after the rows are
        # shown), so a reload shows the last known markers instead of blinking them off until detection is done.
        self.known_loops: dict[str, tuple[str, ...]] = {}

    def on_mount(self) -> None:
        for label, width in COLUMNS:
            self.add_column(label, width=width, key=label)

    def set_traces(self, traces: list[TraceSummary], *, append: bool = False) -> None:
        """Show these traces (replacing the rows, or after them), keeping the cursor on the same trace."""
        current = self.current_trace
        if not append:
            self.clear()
            self.traces = []
        for trace in traces:
            if not trace.loops and trace.trace_id in self.known_loops:
                trace = replace(trace, loops=self.known_loops[trace.trace_id])
            self.traces.append(trace)
            self.add_row(*self._cells(trace), key=trace.trace_id)
        if current is not None and not append:
            index = next((i for i, t in enumerate(self.traces) if t.trace_id == current.trace_id), 0)
            self.move_cursor(row=index, animate=False)

    def set_loops(self, trace_ids: list[str], messages: dict[str, tuple[str, ...]]) -> None:
        """Loop detection has looked at `trace_ids`: mark the rows of those with loops (`messages`), unmark the rest."""
        for trace_id in trace_ids:
            self.known_loops[trace_id] = messages.get(trace_id, ())
        for index, trace in enumerate(self.traces):
            loops = self.known_loops.get(trace.trace_id, trace.loops)
            if loops != trace.loops:
                self.traces[index] = trace = replace(trace, loops=loops)
                self.update_cell(trace.trace_id, "root span", self._cells(trace)[1])

    @staticmethod
    def _cells(trace: TraceSummary) -> list[Text]:
        widths = dict(COLUMNS)
        root = trace.root_name if trace.has_root else f"{trace.root_name} (root missing)"
        duration = Text(format_duration(trace.duration_ns), justify="right")
        if trace.live_state:  # in flight: the elapsed time so far, and whether its process still reports
            root = f"{'● running' if trace.running else '◌ no longer reporting'}  {root}"
            duration.stylize("bold green" if trace.running else "yellow")
        name = _cell(root, widths["root span"] - (2 if trace.loops else 0), "bold" if trace.has_root else "italic")
        if trace.loops:  # an agent going in circles: marked before the name
            name = Text.assemble(("↻ ", "bold yellow"), name)
        return [
            Text(clock(trace.start_ns), style="dim"),
            name,
            _cell(trace.agents, widths["agent"], "cyan"),
            _cell(trace.service, widths["service"]),
            duration,
            Text(count(trace.span_count), justify="right"),
            Text(count(trace.tokens), justify="right"),
            Text(trace_cost(trace), justify="right"),
            Text(str(trace.errors) if trace.errors else "", style="bold red", justify="right"),
        ]

    @property
    def current_trace(self) -> TraceSummary | None:
        if not self.traces or self.cursor_row < 0 or self.cursor_row >= len(self.traces):
            return None
        return self.traces[self.cursor_row]

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        trace = self.current_trace
        if trace is not None:
            self.post_message(self.Opened(trace))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if self.traces and event.cursor_row >= len(self.traces) - 20:
            self.post_message(self.NeedMore())
