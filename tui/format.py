"""Small formatting helpers shared by the screens (times, durations, counts), all returning plain strings."""

from __future__ import annotations

import time

from tracekit.durations import format_duration

__all__ = ["clock", "count", "format_duration", "short_id"]


def clock(time_ns: int) -> str:
    """A span time in the user's local time zone: `01-15 10:00:00.123`."""
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    return time.strftime("%m-%d %H:%M:%S", time.localtime(seconds)) + f".{nanos // 1_000_000:03d}"


def count(value: int | None) -> str:
    """A count with thousands separators, or an empty string for none."""
    return "" if value is None else f"{value:,}"


def short_id(identifier: str | None, length: int = 8) -> str:
    """The first characters of an id, enough to recognise it."""
    return (identifier or "")[:length]
