"""The trace list: newest first, paged from the store, filterable, live as spans arrive."""

from __future__ import annotations

import time

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Input, Static

from tracekit.errors import TracekitError
from tracekit.tui.data import (PAGE_SIZE, FirstPage, KnownStart, TraceSummary, alert_states, latest_seq,
                               trace_loop_messages, trace_page)
from tracekit.tui.filters import TraceFilter
from tracekit.tui.widgets.header import Header
from tracekit.tui.widgets.key_bar import KeyBar
from tracekit.tui.widgets.filter_bar import FilterBar
from tracekit.tui.widgets.trace_table import TraceTable

LIVE_INTERVAL = 1.0  # seconds between polls for new spans
MAX_LIVE_ROWS = 1_000  # rows re-read on a live refresh at most


class TraceListScreen(Screen):
    """Where the app starts."""

    BINDINGS = [
        Binding("enter", "open_trace", "Open", show=False),
        Binding("slash", "focus_filter", "Filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False),
        Binding("c", "conversation", "Conversation"),
        Binding("C", "conversations", "Conversations"),
        Binding("r", "refresh", "Refresh"),
        Binding("y", "copy_id", "Copy trace id"),
        Binding("p", "toggle_live", "Pause/resume live"),
        Binding("m", "mark", "Mark to compare"),
        Binding("D", "compare", "Compare with marked"),
    ]

    def __init__(self, *, live: bool = True) -> None:
        super().__init__()
        self.live = live
        self.trace_filter = TraceFilter()
        self.last_seq = -1
        self.loading_more = False
        self.exhausted = False
        self.loaded_at = 0.0
        self.generation = 0  # bumped per request, so a slow stale answer never overwrites a newer one
        self.marked: str | None = None  # a trace marked with `m`, compared with another by `D`
        self.firing: list[str] = []     # alert rules firing at the last look (status line)
        self.focus_table_on_load = False  # a filter was submitted: focus goes back to the table with its rows
        self.settled = False  # the first page and its loop markers have been shown

    def compose(self) -> ComposeResult:
        yield Header()
        yield FilterBar(id="filter-bar")
        yield TraceTable(id="traces")
        yield Static("loading…", id="list-status")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(TraceTable).focus()
        self.reload()
        self.set_interval(LIVE_INTERVAL, self.poll)

    def reload(self, rows: int = PAGE_SIZE, seq: int | None = None) -> None:
        """Load the first `rows` traces for the current filter (replacing the table). `seq`: the store's ingest
        sequence read before this call (by the poll, or before the page shown now), so the page need not read it."""
        self.generation += 1
        self.loading_more = False
        first_page, self.app.first_page = self.app.first_page, None  # queried since the store was opened
        self.load_first_page(self.generation, rows, first_page if self.trace_filter.empty else None, seq)

    # --- loading -----------------------------------------------------------------------------------------------------
    @work(thread=True, group="trace-page", exit_on_error=False)
    def load_first_page(self, generation: int, rows: int, first_page: FirstPage | None = None,
                        seq: int | None = None) -> None:
        reader = self.app.reader
        trace_filter = self.trace_filter
        try:
            if first_page is not None and rows == PAGE_SIZE:
                seq, traces = first_page.result()
            else:
                # Read before the page, so spans arriving meanwhile are seen by the next poll. An older one will do:
                # every span stored up to it is in the page all the same (what KnownStart relies on).
                seq = latest_seq(reader) if seq is None else seq
                traces = trace_page(reader, trace_filter, limit=rows, with_loops=False)
        except TracekitError as error:
            self.app.call_from_thread(self.show_error, str(error))
            return
        self.app.call_from_thread(self.show_page, generation, traces, seq, False, rows)

    @work(thread=True, exclusive=True, group="alerts", exit_on_error=False)
    def load_firing(self) -> None:
        """The alert rules firing now, for the status line (looked for after the frame with a page's rows)."""
        try:
            firing = [alert.name for alert in alert_states(self.app.reader) if alert.firing]
        except TracekitError:
            return
        self.app.call_from_thread(self.show_firing, firing)

    @work(thread=True, group="trace-more", exit_on_error=False)
    def load_more(self, generation: int, after: tuple[int, str]) -> None:
        try:
            traces = trace_page(self.app.reader, self.trace_filter, after=after, with_loops=False)
        except TracekitError as error:
            self.app.call_from_thread(self.show_error, str(error))
            return
        self.app.call_from_thread(self.show_page, generation, traces, None, True, PAGE_SIZE)

    @work(thread=True, group="loops", exit_on_error=False)
    def find_loops(self, generation: int, traces: list[TraceSummary]) -> None:
        """Loop markers for rows just shown: detection reads every tool and agent span of the page, so the rows are
        painted first and marked when it is done."""
        try:
            messages = trace_loop_messages(self.app.reader, traces)
        except TracekitError:
            self.app.call_from_thread(self.settle)
            return
        self.app.call_from_thread(self.show_loops, generation, [trace.trace_id for trace in traces], messages)

    def show_loops(self, generation: int, trace_ids: list[str], messages: dict[str, tuple[str, ...]]) -> None:
        if generation == self.generation:
            self.query_one(TraceTable).set_loops(trace_ids, messages)
        self.settle()

    def settle(self) -> None:
        """The first page and its loop markers are shown: the app is up (see TracekitApp.freeze_long_lived)."""
        if not self.settled:
            self.settled = True
            self.app.freeze_long_lived()
            self.app.warm_up()

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def poll_store(self, rows: int, in_flight: bool = False) -> None:
        try:
            seq = latest_seq(self.app.reader)
        except TracekitError:
            return  # the next poll tries again; a collector restarting is not an error worth a popup
        if seq != self.last_seq or in_flight:  # a running trace's elapsed time ticks
            self.app.call_from_thread(self.reload, rows, seq)

    def poll(self) -> None:
        """Timer callback: look for new spans while live and on screen."""
        if self.live and self.app.screen is self:
            traces = self.query_one(TraceTable).traces
            self.poll_store(min(MAX_LIVE_ROWS, max(PAGE_SIZE, len(traces))),
                            any(trace.live_state for trace in traces))

    def show_page(self, generation: int, traces: list[TraceSummary], seq: int | None, append: bool,
                  requested: int) -> None:
        if generation != self.generation:
            return
        table = self.query_one(TraceTable)
        table.set_traces(traces, append=append)
        if seq is not None:  # a reload (not the next page): after its frame, so the query does not compete with it
            self.call_after_refresh(self.load_firing)
        if traces:
            self.call_after_refresh(self.find_loops, generation, traces)
        else:
            self.call_after_refresh(self.settle)
        self.focus_table()
        if seq is not None:
            self.last_seq = seq
        self.loading_more = False
        self.exhausted = len(traces) < requested
        self.loaded_at = time.time()
        self.update_status()

    def show_firing(self, firing: list[str]) -> None:
        if firing != self.firing:
            self.firing = firing
            self.update_status()

    def show_error(self, message: str) -> None:
        self.loading_more = False
        self.focus_table()
        self.query_one("#list-status", Static).update(Text(message, style="bold red"))
        self.notify(message, severity="error", title="query failed")

    def update_status(self) -> None:
        table = self.query_one(TraceTable)
        shown = len(table.traces)
        # One line whatever its length (cut at the end), so a new status is a repaint of that line, not a layout.
        text = Text(f"{shown:,} trace{'s' if shown != 1 else ''}", style="bold", no_wrap=True, overflow="ellipsis")
        if not self.exhausted:
            text.append(" loaded (more below)", style="dim")
        if not self.trace_filter.empty:
            text.append("  filter: ", style="dim")
            text.append(self.trace_filter.text)
        text.append("  ·  ")
        text.append("live" if self.live else "paused", style="green" if self.live else "yellow")
        if self.marked:
            text.append(f"  ·  marked {self.marked[:8]} (D compares)", style="magenta")
        if self.firing:
            text.append(f"  ·  ⚠ {len(self.firing)} alert{'s' if len(self.firing) != 1 else ''} firing (a)",
                        style="bold red")
        text.append(f"  ·  {self.app.reader.location}", style="dim")
        self.query_one("#list-status", Static).update(text, layout=False)

    # --- events --------------------------------------------------------------------------------------------------------
    def on_trace_table_need_more(self, event: TraceTable.NeedMore) -> None:
        table = self.query_one(TraceTable)
        if self.loading_more or self.exhausted or not table.traces:
            return
        self.loading_more = True
        last = table.traces[-1]
        self.load_more(self.generation, (last.start_ns, last.trace_id))

    def on_trace_table_opened(self, event: TraceTable.Opened) -> None:
        self.open_trace(event.trace)

    def on_filter_bar_applied(self, event: FilterBar.Applied) -> None:
        self.trace_filter = event.trace_filter
        self.focus_table_on_load = True  # with the new rows: a focus change repaints every cell, so paint once
        self.reload(seq=self.last_seq if self.last_seq >= 0 else None)  # one query less before the rows

    def focus_table(self) -> None:
        if self.focus_table_on_load:
            self.focus_table_on_load = False
            self.set_focus(self.query_one(TraceTable))  # now, with the rows: focus() would wait for the next paint

    # --- actions -------------------------------------------------------------------------------------------------------
    def action_open_trace(self) -> None:
        trace = self.query_one(TraceTable).current_trace
        if trace is not None:
            self.open_trace(trace)

    def open_trace(self, trace: TraceSummary) -> None:
        # Every row shown came from a page queried after `last_seq` was read: its earliest span bounds the span query.
        known = None
        if trace.earliest_ns is not None and self.last_seq >= 0:
            known = KnownStart(trace.earliest_ns, self.last_seq)
        self.app.open_trace(trace.trace_id, known=known)

    def apply_filter(self, text: str) -> None:
        """Show `text` in the filter bar and apply it (the alerts screen jumps here with what fired)."""
        self.query_one(FilterBar).set_text(text)

    def action_focus_filter(self) -> None:
        self.query_one("#filter-input", Input).focus()

    def action_clear_filter(self) -> None:
        field = self.query_one("#filter-input", Input)
        if field.value or not self.trace_filter.empty:
            self.query_one(FilterBar).set_text("")
        self.query_one(TraceTable).focus()

    def action_conversation(self) -> None:
        trace = self.query_one(TraceTable).current_trace
        if trace is not None:
            self.app.open_conversation(trace.conversation_id or trace.trace_id)

    def action_conversations(self) -> None:
        from tracekit.tui.screens.conversation_list import ConversationListScreen

        self.app.push_screen(ConversationListScreen())

    def action_copy_id(self) -> None:
        """Put the selected trace id on the clipboard (for `tracekit replay ID`, KQL, a bug report)."""
        trace = self.query_one(TraceTable).current_trace
        if trace is not None:
            self.app.copy_to_clipboard(trace.trace_id)
            self.notify(f"copied trace id {trace.trace_id}")

    def action_refresh(self) -> None:
        self.reload(max(PAGE_SIZE, len(self.query_one(TraceTable).traces)))

    def action_mark(self) -> None:
        """Mark the selected trace as run A of a comparison (again on the same trace: unmark)."""
        trace = self.query_one(TraceTable).current_trace
        if trace is not None:
            self.marked = None if self.marked == trace.trace_id else trace.trace_id
            self.update_status()

    def action_compare(self) -> None:
        """Compare the marked trace (A) with the selected one (B), step by step."""
        trace = self.query_one(TraceTable).current_trace
        if trace is None:
            return
        if self.marked is None or self.marked == trace.trace_id:
            self.notify("mark a run with m first, then press D on the run to compare it with")
            return
        from tracekit.tui.screens.run_diff import RunDiffScreen

        self.app.push_screen(RunDiffScreen(self.marked, trace.trace_id))

    def action_toggle_live(self) -> None:
        self.live = not self.live
        self.update_status()
