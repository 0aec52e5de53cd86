"""Options and argument parsing shared by the command modules: `--db`, durations.

Kept apart from tracekit/cli.py so command modules never import the entry point that imports them.
"""

from __future__ import annotations

import argparse

from tracekit.durations import DurationError, parse_duration

__all__ = ["DB_HELP", "DurationError", "add_db_argument", "parse_duration"]

DB_HELP = "the DuckDB store (default: $TRACEKIT_DB, else traces.duckdb in the user's data directory)"


def add_db_argument(parser: argparse.ArgumentParser, help: str = DB_HELP) -> None:
    """The `--db` option every command takes."""
    parser.add_argument("--db", metavar="PATH", default=None, help=help)
