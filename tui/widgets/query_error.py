"""A query error shown where it happened: the offending line of the query, a caret under the column, the reason."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from tracekit.terminal_text import clean
from tracekit.errors import QueryError


def error_at_position(query: str, error: QueryError) -> Text:
    """`line 2, column 7: reason` followed by that line of the query and a caret under the column."""
    text = Text(str(error), style="bold red")
    lines = query.splitlines()
    if error.line is not None and 1 <= error.line <= len(lines):
        source = clean(lines[error.line - 1])
        column = max(1, min(error.column or 1, len(source) + 1))
        text.append("\n")
        text.append(f"{error.line:>4} │ ", style="dim")
        text.append(source)
        text.append("\n     │ " + " " * (column - 1), style="dim")
        text.append("^", style="bold red")
    return text


class QueryErrorView(Static):
    """Shows a QueryError at its position (hidden while there is none)."""

    def show_error(self, query: str, error: QueryError) -> None:
        self.update(error_at_position(query, error))
        self.display = True

    def clear(self) -> None:
        self.update("")
        self.display = False
