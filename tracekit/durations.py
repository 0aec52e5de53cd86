"""Durations as people write them (`30s`, `5m`, `24h`, `7d`), as Azure Resource Manager wants them (ISO 8601), and
as screens show a span's length (`format_duration`)."""

from __future__ import annotations

import datetime as dt

from tracekit.errors import TracekitError

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class DurationError(TracekitError):
    """A duration that cannot be read."""


def parse_duration(text: str, option: str = "--since") -> dt.timedelta:
    """`30m`, `24h`, `7d`, `90s` (or a plain number of seconds) to a timedelta; a clear error naming `option`."""
    value = str(text).strip().lower()
    unit = value[-1:] if value[-1:] in _UNITS else "s"
    number = value[:-1] if value[-1:] in _UNITS else value
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        raise DurationError(f"{option} {text!r}: expected a duration such as 30m, 24h or 7d") from None
    if seconds <= 0:
        raise DurationError(f"{option} {text!r}: the duration must be positive")
    return dt.timedelta(seconds=seconds)


def iso8601(duration: dt.timedelta) -> str:
    """A whole-second duration as ISO 8601 (`PT5M`, `PT1H30M`, `P1D`), the form ARM templates take."""
    seconds = int(duration.total_seconds())
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = "P" + (f"{days}D" if days else "")
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "") + (f"{seconds}S" if seconds else "")
    return text + ("T" + clock if clock else "") if (days or clock) else "PT0S"


def format_duration(duration_ns: int | None) -> str:
    """A short human duration: 850µs, 12ms, 1.42s, 3m05s."""
    if duration_ns is None:
        return ""
    if duration_ns < 1_000_000:
        return f"{duration_ns / 1000:.0f}µs"
    if duration_ns < 1_000_000_000:
        return f"{duration_ns / 1_000_000:.0f}ms"
    seconds = duration_ns / 1e9
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s"
