"""`tracekit dashboards`: list the dashboards, show one in the terminal, export one as an Azure Monitor Workbook."""

from __future__ import annotations

import argparse
import json
import sys

from tracekit.commands._options import add_db_argument

HELP = "list, show in the terminal, or export as an Azure Monitor Workbook the KQL dashboards"

DESCRIPTION = """\
Dashboards are sets of KQL tiles over the Application Insights tables. `show` runs every tile over the store and
draws the numbers and charts in the terminal; `export --workbook` writes the Azure Monitor Workbook JSON with the
same KQL, to import in Application Insights (Workbooks > New > Advanced editor > Gallery template).

`show --format json` prints the tiles as data instead, the shape `tracekit mcp`'s get_dashboard returns: name,
title, description, since, and tiles, each with id, title, chart, description, kql and its result (columns with
name and type, rows as objects, page) or an error.
"""

EPILOG = """\
examples:
  tracekit dashboards list
  tracekit dashboards show agents --since 7d
  tracekit dashboards show agents --format json | jq '.tiles[] | {id, rows}'
  tracekit dashboards export agents --workbook > agents.workbook.json
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `tracekit dashboards` to the CLI."""
    parser = subparsers.add_parser("dashboards", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser("list", help="the dashboards that ship with tracekit")
    listing.set_defaults(handler=run_list)

    show = actions.add_parser("show", help="run a dashboard's tiles over the store and draw them")
    show.add_argument("name", metavar="NAME", help="the dashboard (see `tracekit dashboards list`)")
    add_db_argument(show)
    show.add_argument("--since", metavar="DURATION", default=None,
                      help="time range, e.g. 1h, 24h, 7d (default: the dashboard's own, 24h for agents); "
                           "'all' for everything stored")
    show.add_argument("--tile", metavar="ID", action="append", default=None, help="only these tiles (repeatable)")
    show.add_argument("--format", choices=("terminal", "json"), default="terminal",
                      help="terminal (default: numbers and charts) or json (the tiles and their results as data)")
    show.set_defaults(handler=run_show)

    export = actions.add_parser("export", help="write a dashboard as Azure Monitor Workbook JSON to stdout")
    export.add_argument("name", metavar="NAME", help="the dashboard (see `tracekit dashboards list`)")
    export.add_argument("--workbook", action="store_true", required=True,
                        help="Azure Monitor Workbook format (the only export format)")
    add_db_argument(export, help="first run every tile over this store, so a query that fails is found before it "
                                 "is deployed (default: export without running)")
    export.set_defaults(handler=run_export)


def run_list(args: argparse.Namespace) -> int:
    """Print each dashboard's name, title and tile count."""
    from tracekit import dashboards

    for name in dashboards.names():
        board = dashboards.load(name)
        print(f"{name}\t{board.title} ({len(board.tiles)} tiles)")
    return 0


def run_show(args: argparse.Namespace) -> int:
    """Run and draw a dashboard."""
    from rich.columns import Columns
    from rich.console import Console
    from rich.progress import Progress
    from rich.text import Text

    from tracekit import dashboards
    from tracekit.commands._options import parse_duration
    from tracekit.dashboards.terminal import render_tile
    from tracekit.store.reader import open_reader

    if args.format == "json":
        return _show_json(args)
    board = dashboards.load(args.name)
    if args.since == "all":
        since = None
    else:
        since = parse_duration(args.since) if args.since else board.default_since
    tiles = [board.tile(tile_id) for tile_id in args.tile] if args.tile else board.tiles
    console = Console()
    reader = open_reader(args.db)
    panels = []
    try:
        with Progress(transient=True, console=console) as progress:
            task = progress.add_task("running tiles", total=len(tiles))
            for tile in tiles:
                panels.append((tile, render_tile(tile, dashboards.run_tile(reader, tile, since))))
                progress.advance(task)
    finally:
        reader.close()
    scope = "all data" if since is None else f"last {args.since or _describe(since)}"
    console.print(Text(f"{board.title} — {scope}", style="bold"))
    numbers = [panel for tile, panel in panels if tile.chart == "number"]
    if numbers:
        console.print(Columns(numbers, equal=True, expand=True))
    for tile, panel in panels:
        if tile.chart != "number":
            console.print(panel)
    return 0


def _show_json(args: argparse.Namespace) -> int:
    """Print the dashboard as data (tracekit.readout.tables.dashboard_data), progress on stderr."""
    from rich.console import Console
    from rich.progress import Progress

    from tracekit import dashboards
    from tracekit.readout.tables import dashboard_data
    from tracekit.store.reader import open_reader

    board = dashboards.load(args.name)
    count = len([board.tile(tile_id) for tile_id in args.tile]) if args.tile else len(board.tiles)
    reader = open_reader(args.db)
    try:
        with Progress(transient=True, console=Console(stderr=True)) as progress:
            task = progress.add_task("running tiles", total=count)
            data = dashboard_data(reader, args.name, since=args.since, tiles=args.tile, rows_per_tile=None,
                                  on_tile=lambda: progress.advance(task))
    finally:
        reader.close()
    json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
    sys.stdout.write("\n")
    return 0


def _describe(since) -> str:
    hours = since.total_seconds() / 3600
    return f"{hours / 24:g}d" if hours >= 48 else f"{hours:g}h"


def run_export(args: argparse.Namespace) -> int:
    """Print the Workbook JSON."""
    from tracekit import dashboards
    from tracekit.dashboards.workbook import to_workbook

    board = dashboards.load(args.name)
    if args.db:
        _check_tiles_run(board, args.db)
    json.dump(to_workbook(board), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _check_tiles_run(board, db: str) -> None:
    """Run each tile once over the store; a tile whose query fails stops the export with its id and the reason."""
    from tracekit import dashboards
    from tracekit.errors import QueryError
    from tracekit.store.reader import open_reader

    reader = open_reader(db)
    try:
        for tile in board.tiles:
            try:
                dashboards.run_tile(reader, tile, board.default_since)
            except QueryError as error:
                raise QueryError(f"tile {tile.id!r} of {board.name!r} does not run: {error}") from None
    finally:
        reader.close()
