"""Exceptions tracekit raises on purpose, each with a message that says what to do next."""

from __future__ import annotations


class TracekitError(Exception):
    """Base class: the CLI prints these as one line and exits non-zero, without a traceback."""


class StoreError(TracekitError):
    """The store cannot be opened or used as asked (locked, wrong version, not a tracekit store)."""


class QueryError(TracekitError):
    """A query was refused or failed. `line` and `column` are 1-based when the position is known."""

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column

    def __str__(self) -> str:
        base = super().__str__()
        if self.line is not None:
            return f"line {self.line}, column {self.column or 1}: {base}"
        return base


class ListenError(TracekitError, OSError):
    """A receiver or the read API cannot listen on its address (most often: the port is taken)."""


class CollectorUnavailable(TracekitError):
    """No collector answers for this store."""
