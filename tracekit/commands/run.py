"""`tracekit` with no command (or `tracekit run`): the collector and the terminal UI in one process.

One process, because DuckDB lets one process hold the store read-write: the collector owns it and the TUI reads it
through the same database instance, so spans appear on screen as they are committed. If the store is empty a demo
multi-agent workload is sent through the collector, so a first run shows something real. If a collector already
runs for this store, the TUI attaches to it instead of starting another.

The first run creates the data directory (0700) and the store. q, Ctrl-C, SIGTERM and closing the terminal (SIGHUP)
all quit the same way: the collector commits what it accepted and removes its state file.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from tracekit.commands._options import add_db_argument
from tracekit.commands.collect import add_collector_arguments, settings_from_args
from tracekit.files import open_private
from tracekit.store.paths import resolve_db_path
from tracekit.terminal_text import CleanFormatter

HELP = "collector + terminal UI in one process (the default when no command is given)"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("run", help=HELP, description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_db_argument(parser)
    parser.add_argument("--no-demo", action="store_true",
                        help="do not send the demo workload, even when the store is empty")
    add_collector_arguments(parser)
    parser.set_defaults(handler=run)


def _log_to_file(db_path) -> None:
    """The TUI owns the terminal: collector logs go to a file beside the store."""
    log_path = db_path.with_name(db_path.name + ".log")
    open_private(log_path, "a").close()  # created 0600 (and its directory 0700) before logging appends to it
    handler = logging.FileHandler(log_path)
    handler.setFormatter(CleanFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


_LEAVING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _store_is_empty(reader) -> bool:
    return reader.sql("SELECT count(*) AS n FROM (SELECT 1 FROM spans LIMIT 1)").column("n")[0].as_py() == 0


def _send_demo(endpoint: str) -> None:
    try:
        from tracekit.demo import run_demo
    except ImportError as error:  # the [agents] extra is not installed
        logging.getLogger("tracekit").warning("demo workload unavailable: %s", error)
        return
    try:
        run_demo(endpoint, protocol="grpc")
    except Exception:
        logging.getLogger("tracekit").exception("demo workload failed")


def run(args: argparse.Namespace) -> int:
    from tracekit.store.reader import read_state

    db_path = resolve_db_path(args.db)
    if read_state(db_path):
        # Someone already collects into this store: just look at it.
        from tracekit.commands.tui import run as run_tui

        return run_tui(args)

    if not sys.stdout.isatty():
        print("tracekit: no terminal for the UI; running the collector headless (see `tracekit collect --help`)",
              file=sys.stderr)
        from tracekit.commands.collect import run as run_collect

        args.verbose = False
        return run_collect(args)

    from tracekit.collector.service import Collector
    from tracekit.tui.app import run_app

    settings = settings_from_args(args)
    _log_to_file(db_path)
    # Until the UI takes over SIGTERM/SIGHUP (tui/app.py), they interrupt the start like Ctrl-C, so the collector
    # still stops and removes its state file; once the UI has quit, the collector's drain is not cut short.
    for signum in _LEAVING_SIGNALS:
        signal.signal(signum, _interrupt)
    with Collector(settings).running() as collector:
        reader = collector.reader()
        if not args.no_demo and collector.grpc_endpoint and _store_is_empty(reader):
            threading.Thread(target=_send_demo, args=(collector.grpc_endpoint,), name="tracekit-demo",
                             daemon=True).start()
        title = f"tracekit · {db_path.name}"
        if collector.grpc_endpoint:
            title += f" · OTLP gRPC {collector.grpc_endpoint}"
        run_app(reader, live=True, title=title, collector_status=collector.status)
        for signum in _LEAVING_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
    return 0
