"""One trace: the span tree with its waterfall on the left, the selected span's details on the right.

The app keeps one instance of this screen and loads each trace into it (`show_trace`) with its spans and their
forest already queried (`load_trace`): opening a trace is one paint of a screen that exists, not composing and
mounting a new one and repainting it as each part arrives. The details of the span under the cursor follow, as
for every cursor move.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Input, Static

from tracekit.errors import TracekitError
from tracekit.tui.data import KnownStart, SpanDetails, SpanRow, attribute_value, span_details, trace_spans
from tracekit.tui.format import count, format_duration
from tracekit.tui.span_forest import SpanNode, build_forest
from tracekit.tui.widgets.header import Header
from tracekit.tui.widgets.key_bar import KeyBar
from tracekit.tui.widgets.span_details import SpanDetailsView
from tracekit.tui.widgets.span_tree import SpanTree

LIVE_INTERVAL = 1.0


@dataclass
class LoadedTrace:
    """A trace as the screen shows it first: its spans and their forest."""

    trace_id: str
    rows: list[SpanRow]
    forest: list[SpanNode]
    conversation_id: str | None
    select_span: str | None  # the span to put the cursor on (None: the first line)


def load_trace(reader, trace_id: str, select_span: str | None = None, known: KnownStart | None = None) -> LoadedTrace:
    """Query a trace for the trace view (in a worker): its spans and their forest (`known`: see `trace_spans`)."""
    rows = trace_spans(reader, trace_id, known=known)
    conversation = next((row.conversation_id for row in rows if row.conversation_id), None)
    return LoadedTrace(trace_id, rows, build_forest(rows), conversation, select_span)


class TraceViewScreen(Screen):
    """Opened from the trace list (Enter) or a conversation (t)."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("q", "back", "Back", show=False),
        Binding("e", "expand_values", "Expand values"),
        Binding("c", "conversation", "Conversation"),
        Binding("y", "copy_id", "Copy span id"),
        Binding("tab", "switch_focus", "Tree/details", show=False),
        Binding("slash", "search", "Find span"),
        Binding("n", "next_match(1)", "Next match", show=False),
        Binding("N", "next_match(-1)", "Previous match", show=False),
    ]

    def __init__(self, *, live: bool = True) -> None:
        super().__init__()
        self.trace_id = ""
        self.live = live
        self.pending: LoadedTrace | None = None  # loaded before the screen was mounted: shown on mount
        self.spans: dict[str, SpanRow] = {}
        self.max_seq = 0
        self.loaded = False
        self.conversation_id: str | None = None
        self.details_for: str | None = None
        self.matches: list[str] = []
        self.match_index = -1

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text(f"trace {self.trace_id}", style="bold"), id="trace-summary")
        with Horizontal(id="trace-body"):
            yield SpanTree(id="span-tree")
            yield SpanDetailsView(id="span-details")
        yield Input(placeholder="find a span: name, agent, tool, model or id (Enter; n / N for next / previous)",
                    id="span-search")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#span-search", Input).display = False
        if self.pending is not None:
            self.fill(self.pending)
        self.set_interval(LIVE_INTERVAL, self.poll)

    # --- loading ---------------------------------------------------------------------------------------------------------
    def show_trace(self, trace: LoadedTrace) -> None:
        """Show a loaded trace, replacing whatever this screen showed before (kept until mounted if need be)."""
        self.trace_id = trace.trace_id
        self.loaded = False
        if self.is_mounted:
            self.fill(trace)
        else:
            self.pending = trace

    def fill(self, trace: LoadedTrace) -> None:
        self.pending = None
        self.matches, self.match_index = [], -1
        search = self.query_one("#span-search", Input)
        search.display = False
        search.value = ""
        self.query_one(SpanTree).focus()
        self.conversation_id = trace.conversation_id
        self.spans = {row.span_id: row for row in trace.rows}
        self.details_for = None  # the cursor's first highlight loads the details
        self.query_one(SpanDetailsView).show(
            None, f"no spans for trace {self.trace_id} (yet)" if not trace.rows else "loading details…")
        self.redraw(keep=trace.select_span, forest=trace.forest)
        self.loaded = True

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def poll_spans(self, trace_id: str, since: int) -> None:
        try:
            rows = trace_spans(self.app.reader, trace_id, since_seq=since)
        except TracekitError:
            return
        if rows:
            self.app.call_from_thread(self.add_spans, trace_id, rows)

    def poll(self) -> None:
        """Timer callback: spans of this trace that arrived since the last look are added to the tree."""
        if self.live and self.loaded and self.app.screen is self:
            self.poll_spans(self.trace_id, self.max_seq)

    def add_spans(self, trace_id: str, rows: list[SpanRow]) -> None:
        if trace_id != self.trace_id:
            return  # this screen shows another trace by now
        self.spans.update({row.span_id: row for row in rows})
        self.conversation_id = self.conversation_id or next(
            (row.conversation_id for row in rows if row.conversation_id), None)
        tree = self.query_one(SpanTree)
        current = tree.cursor_node.data.span_id if tree.cursor_node and tree.cursor_node.data else None
        self.redraw(keep=current)

    def redraw(self, keep: str | None, forest: list[SpanNode] | None = None) -> None:
        rows = list(self.spans.values())
        self.max_seq = max((row.ingest_seq for row in rows), default=0)
        tree = self.query_one(SpanTree)
        tree.show_spans(rows, keep=keep, forest=forest)
        self.query_one("#trace-summary", Static).update(self.summary(rows))

    def summary(self, rows: list[SpanRow]) -> Text:
        start = min((row.start_ns for row in rows), default=0)
        end = max((row.end_ns for row in rows), default=0)
        errors = sum(1 for row in rows if row.status_code == "ERROR")
        ids = {row.span_id for row in rows}
        missing = len({row.parent_span_id for row in rows if row.parent_span_id and row.parent_span_id not in ids})
        text = Text(f"trace {self.trace_id}", style="bold")
        text.append(f"  ·  {count(len(rows))} span{'s' if len(rows) != 1 else ''}  ·  {format_duration(end - start)}")
        if errors:
            text.append(f"  ·  {errors} error{'s' if errors != 1 else ''}", style="bold red")
        if missing:
            text.append(f"  ·  {missing} parent span{'s' if missing != 1 else ''} not received yet",
                        style="yellow")
        if self.conversation_id:
            text.append("  ·  conversation ", style="dim")
            text.append(self.conversation_id[:80])
        return text

    @work(thread=True, exclusive=True, group="details", exit_on_error=False)
    def load_details(self, span: SpanRow) -> None:
        try:
            details = span_details(self.app.reader, span)
        except TracekitError as error:
            self.app.call_from_thread(self.notify, str(error), severity="error", title="query failed")
            return
        self.app.call_from_thread(self.show_details, details)

    def show_details(self, details: SpanDetails) -> None:
        if details.span.span_id == self.details_for and details.span.trace_id == self.trace_id:
            self.query_one(SpanDetailsView).show(details)

    @work(thread=True, exclusive=True, group="expand", exit_on_error=False)
    def load_full_values(self, span: SpanRow, keys: list[str]) -> None:
        try:
            values = [attribute_value(self.app.reader, span, key) for key in keys]
        except TracekitError as error:
            self.app.call_from_thread(self.notify, str(error), severity="error", title="query failed")
            return
        self.app.call_from_thread(self.query_one(SpanDetailsView).replace_attributes, span, values)

    # --- events and actions ---------------------------------------------------------------------------------------------
    def on_span_tree_span_highlighted(self, event: SpanTree.SpanHighlighted) -> None:
        if event.span is None:
            self.details_for = None
            self.query_one(SpanDetailsView).show(
                None, "this span has not been received (yet): its children arrived first")
            return
        if event.span.span_id == self.details_for:
            return
        self.details_for = event.span.span_id
        # After the frame that shows the cursor there: the queries and the linter do not compete with its paint.
        self.call_after_refresh(self.load_details, event.span)

    def action_back(self) -> None:
        search = self.query_one("#span-search", Input)
        if search.display:
            search.display = False
            self.query_one(SpanTree).focus()
            return
        self.app.pop_screen()

    def action_expand_values(self) -> None:
        view = self.query_one(SpanDetailsView)
        keys = view.truncated_keys()
        if view.details is None or not keys:
            self.notify("nothing to expand: every value is shown in full")
            return
        self.load_full_values(view.details.span, keys)

    def action_conversation(self) -> None:
        self.app.open_conversation(self.conversation_id or self.trace_id)

    def action_copy_id(self) -> None:
        """Put the selected span's id (or the trace id, when no span is selected) on the clipboard."""
        value = self.details_for or self.trace_id
        self.app.copy_to_clipboard(value)
        self.notify(f"copied {'span' if self.details_for else 'trace'} id {value}")

    def action_search(self) -> None:
        search = self.query_one("#span-search", Input)
        search.display = True
        search.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        tree = self.query_one(SpanTree)
        self.matches = tree.find(event.value) if event.value.strip() else []
        self.match_index = -1
        event.input.display = False
        tree.focus()
        if not self.matches:
            self.notify(f"no span matches {event.value!r}" if event.value.strip() else "search cleared")
            return
        self.action_next_match(1)

    def action_next_match(self, delta: int) -> None:
        if not self.matches:
            return
        self.match_index = (self.match_index + delta) % len(self.matches)
        self.query_one(SpanTree).select_span(self.matches[self.match_index])
        self.notify(f"match {self.match_index + 1} of {len(self.matches)}", timeout=2)

    def action_switch_focus(self) -> None:
        tree, details = self.query_one(SpanTree), self.query_one(SpanDetailsView)
        (details if tree.has_focus else tree).focus()
