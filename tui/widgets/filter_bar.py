"""The filter input above the trace list; reports a parsed filter, or the error with a caret at its column."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Input, Static

from tracekit.tui.filters import FilterError, TraceFilter, parse_filter

PLACEHOLDER = "filter (Enter): text  agent:NAME  status:error|ok  since:15m  conv:ID  resp:ID  trace:ID  model:  tool:"


class FilterBar(Vertical):
    """An Input plus a one-line error area."""

    class Applied(Message):
        """A filter was entered and parsed."""

        def __init__(self, trace_filter: TraceFilter) -> None:
            super().__init__()
            self.trace_filter = trace_filter

    def compose(self) -> ComposeResult:
        yield Input(placeholder=PLACEHOLDER, id="filter-input")
        yield Static("", id="filter-error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.apply(event.value)

    def apply(self, text: str) -> None:
        """Parse `text`; post Applied, or show the error under the input with a caret at its column."""
        error = self.query_one("#filter-error", Static)
        try:
            trace_filter = parse_filter(text)
        except FilterError as failure:
            column = failure.column or 1
            message = Text(" " * (column - 1) + "^ ", style="bold red")
            message.append(str(failure.args[0]), style="red")
            error.update(message)
            error.add_class("visible")
            return
        if error.has_class("visible"):  # only then: hiding it changes the layout
            error.update("")
            error.remove_class("visible")
        self.post_message(self.Applied(trace_filter))

    def set_text(self, text: str) -> None:
        """Put `text` in the input and apply it, as if typed."""
        self.query_one(Input).value = text
        self.apply(text)
