"""`tracekit tui`: the terminal UI on a store (through the running collector, or the file read-only)."""

from __future__ import annotations

import argparse

from tracekit.commands._options import add_db_argument

DESCRIPTION = """\
Browse traces in the terminal: the trace list (newest first, live as spans arrive), the span tree with a timing
waterfall and span details, and conversation replay. Press ? inside the UI for the keys.

While a collector runs on the store the UI reads through it and shows new spans as they arrive; otherwise it
opens the store file read-only.
"""

KEYS = """\
keys (press ? in the UI for the full list):
  trace list    enter open · / filter · c conversation · C conversations · y copy id · p pause live · q quit
  trace view    j/k move · h/l collapse/expand · o/O all · / find (n/N) · e expand values · y copy id · esc back
  conversation  n/p next/previous turn · e expand long values · t trace of the turn · esc back
  anywhere      d dashboards · : KQL console (ctrl+r runs) · ? keys

filter examples:  checkout  agent:planner  status:error  since:15m  conv:ID  resp:ID  trace:4bf9  model:gpt-4o
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `tui` command."""
    parser = subparsers.add_parser("tui", help="browse traces and replay conversations in the terminal",
                                   description=DESCRIPTION, epilog=KEYS,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_db_argument(parser)
    parser.add_argument("--no-live", action="store_true", help="do not poll the store for new spans")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Open the store and run the app until the user quits."""
    from tracekit.store.reader import open_reader
    from tracekit.tui.data import FirstPage

    reader = open_reader(args.db)
    try:
        first_page = FirstPage(reader)  # queried while Textual is imported and starts
        from tracekit.tui.app import run_app

        # `tracekit` (the run command) delegates here when a collector already owns the store; it has no --no-live.
        run_app(reader, live=not getattr(args, "no_live", False), title=f"tracekit · {reader.location}",
                first_page=first_page)
    finally:
        reader.close()
    return 0
