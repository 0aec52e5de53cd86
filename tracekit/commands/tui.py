"""`tracekit tui`: the terminal UI on a store (through the running collector, or the file read-only)."""

from __future__ import annotations

import argparse

from tracekit.cli import add_db_argument

DESCRIPTION = """\
Browse traces in the terminal: the trace list (newest first, live as spans arrive), the span tree with a timing
waterfall and span details, and conversation replay. Press ? inside the UI for the keys.

While a collector runs on the store the UI reads through it and shows new spans as they arrive; otherwise it
opens the store file read-only.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `tui` command."""
    parser = subparsers.add_parser("tui", help="browse traces and replay conversations in the terminal",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_db_argument(parser)
    parser.add_argument("--no-live", action="store_true", help="do not poll the store for new spans")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Open the store and run the app until the user quits."""
    from tracekit.store.reader import open_reader
    from tracekit.tui.app import run_app

    reader = open_reader(args.db)
    try:
        run_app(reader, live=not args.no_live, title=f"tracekit · {reader.location}")
    finally:
        reader.close()
    return 0
