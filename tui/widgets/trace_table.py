"""The trace list table: one row per trace, newest first; asks for more rows when the cursor nears the end.

A Line API widget rather than Textual's DataTable: the columns have fixed widths, so a row is one line of text
cut to them, drawn only while it is on screen. DataTable measures every new row's cells for column widths and
renders each visible cell through Rich's layout (padding, wrapping) again whenever the rows, the cursor or the
focus change; replacing the page on a filter or a live reload cost a paint of ~400 cells that way.
"""

from __future__ import annotations

from dataclasses import replace

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual import events
from textual.binding import Binding
from textual.geometry import Region, Size, Spacing
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tracekit.conversation.literal import literal
from tracekit.cost import format_cost
from tracekit.tui.data import TraceSummary
from tracekit.tui.format import clock, count, format_duration

COLUMNS = (("time", 18), ("root span", 34), ("agent", 26), ("service", 12), ("duration", 9), ("spans", 7),
           ("tokens", 9), ("cost", 10), ("errors", 6))
CELL_PADDING = 1  # blank cells either side of each column's text
ROW_WIDTH = sum(width + 2 * CELL_PADDING for _, width in COLUMNS)
NEAR_END = 20  # rows from the last loaded one at which the next page is asked for


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


def _line(cells: list[Text]) -> Text:
    """Cells side by side, each padded (or cut) to its column's width and aligned as its text asks."""
    line = Text(no_wrap=True, end="")
    pad = " " * CELL_PADDING
    for cell, (_, width) in zip(cells, COLUMNS):
        cell = cell.copy()
        cell.truncate(width, overflow="ellipsis")
        gap = " " * (width - cell.cell_len)
        line.append(pad)
        if cell.justify == "right":
            line.append(gap)
            line.append_text(cell)
        else:
            line.append_text(cell)
            line.append(gap)
        line.append(pad)
    return line


class TraceTable(ScrollView, can_focus=True):
    """Traces as rows, a header line above them; the cursor selects a whole row."""

    COMPONENT_CLASSES = {"trace-table--header", "trace-table--cursor", "trace-table--even-row"}
    DEFAULT_CSS = """
    TraceTable {
        background: $surface;
        color: $foreground;
        &:focus {
            background-tint: $foreground 5%;
            & > .trace-table--cursor {
                background: $block-cursor-background;
                color: $block-cursor-foreground;
                text-style: $block-cursor-text-style;
            }
            & > .trace-table--header {
                background-tint: $foreground 5%;
            }
        }
        &:dark > .trace-table--even-row {
            background: $surface-darken-1 40%;
        }
        & > .trace-table--header {
            text-style: bold;
            background: $panel;
            color: $foreground;
        }
        & > .trace-table--even-row {
            background: $surface-lighten-1 50%;
        }
        & > .trace-table--cursor {
            background: $block-cursor-blurred-background;
            color: $block-cursor-blurred-foreground;
            text-style: $block-cursor-blurred-text-style;
        }
    }
    """

    BINDINGS = [
        Binding("enter", "select_cursor", "Open", show=False),
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown", "page_down", "Page down", show=False),
        Binding("home,g", "scroll_top", "Top", show=False),
        Binding("end,G", "scroll_bottom", "Bottom", show=False),
    ]

    class Opened(Message):
        """The user chose a trace (Enter, or a click on the row under the cursor)."""

        def __init__(self, trace: TraceSummary) -> None:
            super().__init__()
            self.trace = trace

    class NeedMore(Message):
        """The cursor is close to the last loaded row: load the next page."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.traces: list[TraceSummary] = []
        self.cursor_row = 0
        # Loop markers found so far, by trace id: rows arrive without them (detection runs after the rows are
        # shown), so a reload shows the last known markers instead of blinking them off until detection is done.
        self.known_loops: dict[str, tuple[str, ...]] = {}
        self._lines: dict[int, list[Segment]] = {}  # row index -> its cells as one line, made when first drawn
        self._pass: tuple = ()  # what every line of one drawing pass shares (render_lines)

    # --- rows ----------------------------------------------------------------------------------------------------------
    @property
    def row_count(self) -> int:
        return len(self.traces)

    def set_traces(self, traces: list[TraceSummary], *, append: bool = False) -> None:
        """Show these traces (replacing the rows, or after them), keeping the cursor on the same trace."""
        current = self.current_trace
        if not append:
            self.traces = []
            self._lines = {}
        for trace in traces:
            if not trace.loops and trace.trace_id in self.known_loops:
                trace = replace(trace, loops=self.known_loops[trace.trace_id])
            self.traces.append(trace)
        self.virtual_size = Size(ROW_WIDTH, len(self.traces) + 1)  # the header line is the first
        if not append:
            index = 0
            if current is not None:
                index = next((i for i, t in enumerate(self.traces) if t.trace_id == current.trace_id), 0)
            self.move_cursor(row=index)
        self.refresh()

    def set_loops(self, trace_ids: list[str], messages: dict[str, tuple[str, ...]]) -> None:
        """Loop detection has looked at `trace_ids`: mark the rows of those with loops (`messages`), unmark the rest."""
        for trace_id in trace_ids:
            self.known_loops[trace_id] = messages.get(trace_id, ())
        for index, trace in enumerate(self.traces):
            loops = self.known_loops.get(trace.trace_id, trace.loops)
            if loops != trace.loops:
                self.traces[index] = replace(trace, loops=loops)
                self._lines.pop(index, None)
                self.refresh_row(index)

    def get_row_at(self, index: int) -> list[Text]:
        """The cells of row `index` as drawn (before they are cut to the column widths)."""
        return self._cells(self.traces[index])

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

    # --- drawing -------------------------------------------------------------------------------------------------------
    def render_lines(self, crop: Region) -> list[Strip]:
        # The styles and the scroll offset are looked up once per pass, not once per line (each costs a walk of the
        # node's styles).
        self._pass = (self.scroll_offset, self.size.width, self.rich_style,
                      *(self.get_component_rich_style(name) for name in (
                          "trace-table--header", "trace-table--even-row", "trace-table--cursor")))
        try:
            return super().render_lines(crop)
        finally:
            self._pass = ()

    def render_line(self, y: int) -> Strip:
        if not self._pass:  # called on its own, outside a drawing pass
            return self.render_lines(Region(0, y, self.size.width, 1))[0]
        (scroll_x, scroll_y), width, base, header, even, cursor = self._pass
        if y == 0:
            segments, style = self._header_segments(), header
        else:
            index = scroll_y + y - 1
            if index >= len(self.traces):
                return Strip.blank(width, base)
            segments = self._lines.get(index)
            if segments is None:
                segments = self._lines[index] = list(_line(self._cells(self.traces[index])).render(self.app.console))
            style = base
            if index % 2:
                style += even
            if index == self.cursor_row:
                style += cursor
            style += Style.from_meta({"row": index})
        strip = Strip(Segment.apply_style(segments, style), ROW_WIDTH)
        return strip.crop_extend(scroll_x, scroll_x + width, style)

    def _header_segments(self) -> list[Segment]:
        pad = " " * CELL_PADDING
        return [Segment("".join(pad + label.ljust(width) + pad for label, width in COLUMNS))]

    def refresh_row(self, index: int) -> None:
        y = index + 1 - self.scroll_offset.y
        if 0 < y < self.size.height:
            self.refresh(Region(0, y, self.size.width, 1))

    # --- the cursor ----------------------------------------------------------------------------------------------------
    def move_cursor(self, *, row: int, animate: bool = False, scroll: bool = True) -> None:
        """Put the cursor on row `row` (clamped to the rows) and scroll it into view."""
        row = max(0, min(row, len(self.traces) - 1))
        previous, self.cursor_row = self.cursor_row, row
        if previous != row:
            self.refresh_row(previous)
            self.refresh_row(row)
        if scroll:
            self.scroll_to_region(Region(0, row + 1, 1, 1), animate=animate, spacing=Spacing(top=1), force=True,
                                  x_axis=False, immediate=True)
        if self.traces and row >= len(self.traces) - NEAR_END:
            self.post_message(self.NeedMore())

    def _page(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def action_cursor_up(self) -> None:
        self.move_cursor(row=self.cursor_row - 1)

    def action_cursor_down(self) -> None:
        self.move_cursor(row=self.cursor_row + 1)

    def action_page_up(self) -> None:
        self.move_cursor(row=self.cursor_row - self._page())

    def action_page_down(self) -> None:
        self.move_cursor(row=self.cursor_row + self._page())

    def action_scroll_top(self) -> None:
        self.move_cursor(row=0)

    def action_scroll_bottom(self) -> None:
        self.move_cursor(row=len(self.traces) - 1)

    def action_select_cursor(self) -> None:
        trace = self.current_trace
        if trace is not None:
            self.post_message(self.Opened(trace))

    def on_click(self, event: events.Click) -> None:
        """A click moves the cursor to the row; a click on the row under the cursor opens it (as in DataTable)."""
        row = event.style.meta.get("row")
        if row is None:
            return
        event.stop()
        if row == self.cursor_row:
            self.action_select_cursor()
        else:
            self.move_cursor(row=row)
