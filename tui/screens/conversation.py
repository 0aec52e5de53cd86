"""Conversation replay: the transcript of a conversation, response chain or trace, stepped turn by turn."""

from __future__ import annotations

import time

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Static

from tracekit.conversation import load_transcript
from tracekit.conversation.literal import DEFAULT_LIMIT, literal
from tracekit.conversation.model import Transcript
from tracekit.errors import TracekitError
from tracekit.store.open_spans import OpenSpan
from tracekit.tui.data import conversation_seq, in_flight
from tracekit.tui.format import format_duration
from tracekit.tui.widgets.header import Header
from tracekit.tui.widgets.key_bar import KeyBar
from tracekit.tui.widgets.transcript_view import TranscriptView

EXPANDED_LIMIT = 200_000
LIVE_INTERVAL = 2.0  # seconds between checks for new spans in the conversation


class ConversationScreen(Screen):
    """Opened with `c` from the trace list or a trace."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("q", "back", "Back", show=False),
        Binding("n", "step(1)", "Next turn"),
        Binding("p", "step(-1)", "Previous turn"),
        Binding("j", "scroll(1)", "Down", show=False),
        Binding("k", "scroll(-1)", "Up", show=False),
        Binding("g", "top", "Top", show=False),
        Binding("G", "bottom", "Bottom", show=False),
        Binding("e", "expand", "Expand long values"),
        Binding("m", "more", "More entries", show=False),
        Binding("t", "open_trace", "Trace of turn"),
    ]

    def __init__(self, key: str, *, live: bool = True) -> None:
        super().__init__()
        self.key = key
        self.live = live
        self.transcript: Transcript | None = None
        self.limit: int | None = DEFAULT_LIMIT
        self.loaded = False
        self.seq = 0
        self.in_flight: list[OpenSpan] = []  # the turn in progress: open spans of this conversation

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text(f"conversation {self.key}: loading…", style="dim"), id="conversation-status")
        yield TranscriptView(id="transcript")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one(TranscriptView).focus()
        self.load()
        self.set_interval(LIVE_INTERVAL, self.poll)

    @work(thread=True, exclusive=True, group="transcript", exit_on_error=False)
    def load(self) -> None:
        try:
            transcript = load_transcript(self.app.reader, self.key)
            seq = conversation_seq(self.app.reader, transcript.conversation_id, transcript.trace_ids)
        except TracekitError as error:
            self.app.call_from_thread(self.show_error, str(error))
            return
        self.app.call_from_thread(self.show, transcript, seq)

    def poll(self) -> None:
        """Timer callback: reload the transcript when spans of this conversation arrived since it was built."""
        if self.live and self.loaded and self.transcript is not None and self.app.screen is self:
            self.check_for_new_spans(self.transcript.conversation_id, list(self.transcript.trace_ids))

    @work(thread=True, exclusive=True, group="poll", exit_on_error=False)
    def check_for_new_spans(self, conversation_id: str | None, trace_ids: list[str]) -> None:
        try:
            seq = conversation_seq(self.app.reader, conversation_id, trace_ids)
            running = in_flight(self.app.reader, conversation_id, trace_ids)
        except TracekitError:
            return
        if seq > self.seq:
            self.app.call_from_thread(self.load)
        if running or self.in_flight:
            self.app.call_from_thread(self.show_in_flight, running)

    def show_in_flight(self, spans: list[OpenSpan]) -> None:
        self.in_flight = spans
        self.update_status()

    async def show(self, transcript: Transcript, seq: int = 0) -> None:
        view = self.query_one(TranscriptView)
        turn, scroll = view.current_turn, view.scroll_y  # a live reload keeps the reader's place
        self.transcript = transcript
        self.seq = seq
        await view.show(transcript, limit=self.limit)
        if turn >= 0:
            view.select_turn(turn, scroll=False)
        view.call_after_refresh(view.scroll_to, y=scroll, animate=False)
        self.loaded = True
        self.update_status()

    def show_error(self, message: str) -> None:
        self.query_one("#conversation-status", Static).update(Text(message, style="bold red"))
        self.loaded = True

    def update_status(self) -> None:
        view = self.query_one(TranscriptView)
        total = len(view.turn_widgets)
        text = Text("turn ", style="dim")
        text.append(f"{view.current_turn + 1 if view.current_turn >= 0 else '–'} of {total}", style="bold")
        text.append("  ·  n/p step through turns, e expands long values, t opens the trace", style="dim")
        if self.in_flight:
            text.append("\n")
            text.append_text(in_progress(self.in_flight))
        self.query_one("#conversation-status", Static).update(text)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_step(self, delta: int) -> None:
        self.query_one(TranscriptView).step(delta)
        self.update_status()

    def action_scroll(self, delta: int) -> None:
        view = self.query_one(TranscriptView)
        view.scroll_relative(y=delta * 3, animate=False)

    def action_top(self) -> None:
        self.query_one(TranscriptView).scroll_home(animate=False)

    def action_bottom(self) -> None:
        self.query_one(TranscriptView).scroll_end(animate=False)

    async def action_expand(self) -> None:
        if self.transcript is None:
            return
        self.limit = EXPANDED_LIMIT if self.limit == DEFAULT_LIMIT else DEFAULT_LIMIT
        await self.query_one(TranscriptView).show(self.transcript, limit=self.limit)
        self.update_status()

    async def action_more(self) -> None:
        await self.query_one(TranscriptView).more()

    def action_open_trace(self) -> None:
        view = self.query_one(TranscriptView)
        if not view.turn_widgets:
            return
        turn = view.turn_widgets[max(view.current_turn, 0)].block.turn
        if turn is not None:
            self.app.open_trace(turn.trace_id, select_span=turn.span_id)


def in_progress(spans: list[OpenSpan]) -> Text:
    """The turn in progress as one line: the innermost open span's chain of open ancestors, and the time so far."""
    by_id = {span.span_id: span for span in spans}
    innermost = max(spans, key=lambda span: span.start_ns)
    chain = [innermost]
    while chain[-1].parent_span_id in by_id and len(chain) < 20:
        chain.append(by_id[chain[-1].parent_span_id])
    chain.reverse()
    running = innermost.running
    text = Text("● in progress  " if running else "◌ no longer reporting  ",
                style="bold green" if running else "bold yellow")
    for index, span in enumerate(chain):
        if index:
            text.append(" › ", style="dim")
        text.append_text(literal(span.name, limit=80, pretty=False))
    end = time.time_ns() if running else innermost.last_seen_ns
    text.append(f"  {format_duration(max(0, end - chain[0].start_ns))}", style="dim")
    return text
