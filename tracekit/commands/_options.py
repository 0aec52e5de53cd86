"""Options and argument parsing shared by the command modules: `--db`, durations.

Kept apart from tracekit/cli.py so command modules never import the entry point that imports them.
"""

from __future__ import annotations

import argparse
import datetime as dt

from tracekit.errors import TracekitError

DB_HELP = "the DuckDB store (default: $TRACEKIT_DB, else traces.duckdb in the user's data directory)"

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def add_db_argument(parser: argparse.ArgumentParser, help: str = DB_HELP) -> None:
    """The `--db` option every command takes."""
    parser.add_argument("--db", metavar="PATH", default=None, help=help)


def parse_duration(text: str, option: str = "--since") -> dt.timedelta:
    """`30m`, `24h`, `7d`, `90s` (or a plain number of seconds) to a timedelta; a clear error naming `option`."""
    value = text.strip().lower()
    unit = value[-1:] if value[-1:] in _UNITS else "s"
    number = value[:-1] if value[-1:] in _UNITS else value
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        raise DurationError(f"{option} {text!r}: expected a duration such as 30m, 24h or 7d") from None
    if seconds <= 0:
        raise DurationError(f"{option} {text!r}: the duration must be positive")
    return dt.timedelta(seconds=seconds)


class DurationError(TracekitError):
    """A duration option that cannot be read."""
