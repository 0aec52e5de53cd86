"""`tracekit demo`: send a realistic multi-agent workload to a collector (no network, no API key)."""

from __future__ import annotations

import argparse
import sys

HELP = "send a realistic multi-agent workload (LangGraph agents, tools, a retry, an evaluation) to a collector"

DESCRIPTION = """\
Run a small trip-planning system in this process and send its telemetry over OTLP: an orchestrator plans, delegates
to a flight agent and a hotel agent (real LangGraph graphs with real tools and scripted fake chat models), one tool
call times out and is retried, the itinerary is saved to memory and the answer is evaluated. Everything is recorded by
tracekit's own instrumentation with content recording on (the content is synthetic) and the default redaction policy
(the traveler's e-mail address in the request is masked before it leaves the process).

Nothing leaves the machine except the OTLP requests to --endpoint, and no API key is needed.
"""

EPILOG = """\
examples:
  tracekit collect &          # in another terminal, or let `tracekit` run collector + TUI
  tracekit demo               # 3 conversations to 127.0.0.1:4317
  tracekit demo --protocol http --endpoint http://127.0.0.1:4318 --conversations 10
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
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the demo and report how many spans the collector accepted."""
    from tracekit.demo import default_endpoint, run_demo

    if args.conversations < 1:
        print("tracekit demo: --conversations must be at least 1", file=sys.stderr)
        return 2
    endpoint = args.endpoint or default_endpoint(args.protocol)
    if not sys.stderr.isatty():
        sent = run_demo(endpoint, protocol=args.protocol, conversations=args.conversations)
    else:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        with Progress(TextColumn("demo conversations"), BarColumn(), MofNCompleteColumn(),
                      console=Console(stderr=True), transient=True) as progress:
            bar = progress.add_task("demo", total=args.conversations)
            sent = run_demo(endpoint, protocol=args.protocol, conversations=args.conversations,
                            on_progress=lambda done: progress.update(bar, completed=done))
    print(f"sent {sent} spans from {args.conversations} conversation(s) to {endpoint} ({args.protocol})")
    return 0
