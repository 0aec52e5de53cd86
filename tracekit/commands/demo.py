"""`tracekit demo`: send a realistic multi-agent workload to a collector (no network, no API key)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import Iterator

from tracekit.commands._options import add_db_argument
from tracekit.errors import TracekitError

HELP = "send a realistic multi-agent workload (LangGraph agents, tools, a retry, an evaluation) to a collector"

DESCRIPTION = """\
Run a small trip-planning system in this process and send its telemetry over OTLP: an orchestrator plans, delegates
to a flight agent and a hotel agent (real LangGraph graphs with real tools and scripted fake chat models), one tool
call times out and is retried, the itinerary is saved to memory and the answer is evaluated. Everything is recorded by
tracekit's own instrumentation with content recording on (the content is synthetic) and the default redaction policy
(the traveler's e-mail address in the request is masked before it leaves the process).

Nothing leaves the machine except the OTLP requests to --endpoint, and no API key is needed.

With --db the demo goes into that store: through the collector that owns it when one runs, else through a collector
started for the run on free loopback ports (so the spans are decoded, redacted and stored exactly as usual).
"""

EPILOG = """\
examples:
  tracekit collect &          # in another terminal, or let `tracekit` run collector + TUI
  tracekit demo               # 3 conversations to 127.0.0.1:4317
  tracekit demo --protocol http --endpoint http://127.0.0.1:4318 --conversations 10
  tracekit demo --db /tmp/try.duckdb   # into that store, collector running or not
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `demo` command."""
    parser = subparsers.add_parser("demo", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoint", metavar="URL", default=None,
                        help="OTLP endpoint (default: $OTEL_EXPORTER_OTLP_ENDPOINT, else http://127.0.0.1:4317, "
                             "or :4318 with --protocol http)")
    parser.add_argument("--protocol", choices=("grpc", "http"), default="grpc",
                        help="OTLP over gRPC (default) or HTTP/protobuf")
    parser.add_argument("--conversations", metavar="N", type=int, default=3,
                        help="how many independent user requests to run (default 3)")
    add_db_argument(parser, help="send to this store instead of --endpoint: to the collector that owns it, else "
                                 "through a collector started for the run")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo and report how many spans the collector accepted."""
    from tracekit.demo import default_endpoint

    if args.conversations < 1:
        print("tracekit demo: --conversations must be at least 1", file=sys.stderr)
        return 2
    if args.db and args.endpoint:
        print("tracekit demo: give --db or --endpoint, not both", file=sys.stderr)
        return 2
    with _endpoint_for(args, default_endpoint(args.protocol)) as endpoint:
        sent = _send(args, endpoint)
    print(f"sent {sent} spans from {args.conversations} conversation(s) to {endpoint} ({args.protocol})")
    return 0


@contextlib.contextmanager
def _endpoint_for(args: argparse.Namespace, default: str) -> Iterator[str]:
    """Where to send: --endpoint, else the --db store's collector (running, or started for the run)."""
    if not args.db:
        yield args.endpoint or default
        return
    from tracekit.store.paths import resolve_db_path
    from tracekit.store.reader import read_state

    db_path = resolve_db_path(args.db)
    state = read_state(db_path)
    if state:
        yield _state_endpoint(state, args.protocol)
        return
    from tracekit.collector.service import Collector
    from tracekit.collector.settings import CollectorSettings

    settings = CollectorSettings(db_path=db_path, grpc="127.0.0.1:0", http="127.0.0.1:0")
    with Collector(settings).running() as collector:
        yield _state_endpoint({"grpc": collector.grpc_endpoint, "http": collector.http_endpoint}, args.protocol)


def _state_endpoint(state: dict, protocol: str) -> str:
    """The collector's OTLP endpoint for `protocol`, as the OTLP exporters want it."""
    if protocol == "http":
        if not state.get("http"):
            raise TracekitError("the store's collector has no OTLP/HTTP receiver; use --protocol grpc")
        return state["http"]
    if not state.get("grpc"):
        raise TracekitError("the store's collector has no OTLP/gRPC receiver; use --protocol http")
    return "http://" + state["grpc"]


def _send(args: argparse.Namespace, endpoint: str) -> int:
    from tracekit.demo import run_demo

    if not sys.stderr.isatty():
        return run_demo(endpoint, protocol=args.protocol, conversations=args.conversations)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    with Progress(TextColumn("demo conversations"), BarColumn(), MofNCompleteColumn(),
                  console=Console(stderr=True), transient=True) as progress:
        bar = progress.add_task("demo", total=args.conversations)
        return run_demo(endpoint, protocol=args.protocol, conversations=args.conversations,
                        on_progress=lambda done: progress.update(bar, completed=done))
