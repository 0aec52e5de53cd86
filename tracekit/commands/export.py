"""`tracekit export azure-monitor | otlp | otlp-json | status`: stored spans to Application Insights, an OTLP
endpoint, or an OTLP JSON lines file."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from tracekit.commands._options import add_db_argument
from tracekit.files import open_private
from tracekit.terminal_text import TerminalJsonLines, clean, is_terminal

HELP = "send stored spans to Azure Monitor (Application Insights), an OTLP endpoint, or an OTLP JSON file"

DESCRIPTION = """\
Export stored spans, with their events, links, resources and correlated log records (evaluation results), rebuilt
exactly as they were received. Choose what to send with --trace, --conversation, --since/--until and --where (a KQL
query over the Application Insights-shaped views whose rows name the spans: operation_Id and id). With no selection,
everything is exported.

Exports to Azure Monitor and OTLP keep a cursor beside the store (<db>.export-state.json), per destination and
selection: an interrupted or failed export resumes where it stopped when run again, and a re-run sends only what is
new. --restart ignores the cursor. The export redaction policy (built-in secret and personal-data rules, or
--redaction-policy FILE, or $TRACEKIT_REDACTION_FILE) is applied before anything leaves.
"""

EPILOG = """\
examples:
  tracekit export azure-monitor --where 'dependencies | where customDimensions["gen_ai.agent.name"] == "planner"' \\
      --since 2h
  tracekit export azure-monitor --since 7d --retime        # shift old traces to now (ingestion refuses > 48 h)
  tracekit export otlp --endpoint http://collector.internal:4317 --since 1d
  tracekit export otlp-json --trace 4bf92f3577b34da6a3ce929d0e0e4736 -o incident.jsonl
  tracekit export status                                    # where each export's cursor stands

environment:
  APPLICATIONINSIGHTS_CONNECTION_STRING   default for --connection-string
  OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_PROTOCOL,
  OTEL_EXPORTER_OTLP_HEADERS               defaults for the otlp destination
"""


def _add_selection(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("selection (combined with AND)")
    group.add_argument("--trace", metavar="TRACE_ID", action="append", default=[],
                       help="a trace id (32 hex digits); repeat for several")
    group.add_argument("--conversation", metavar="ID", action="append", default=[],
                       help="every trace of a conversation (gen_ai.conversation.id, session.id or thread_id)")
    group.add_argument("--since", metavar="TIME", help="spans that started at or after TIME: 30m, 2h, 1d, 1w, or ISO "
                                                      "8601 (2026-11-20T08:00:00Z)")
    group.add_argument("--until", metavar="TIME", help="spans that started before TIME (same forms as --since)")
    group.add_argument("--where", metavar="KQL", help="a KQL query whose rows name spans (operation_Id, id) or "
                                                     "traces (operation_Id)")
    group.add_argument("--whole-traces", action="store_true", help="widen the selection to whole traces")


def _add_common(parser: argparse.ArgumentParser) -> None:
    add_db_argument(parser)
    _add_selection(parser)
    group = parser.add_argument_group("output")
    group.add_argument("--batch-size", metavar="N", type=int, default=None, help="spans per request")
    group.add_argument("--no-progress", action="store_true", help="no progress bar")
    group.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    group = parser.add_argument_group("redaction")
    group.add_argument("--redaction-policy", metavar="FILE", help="a TOML or JSON redaction policy for the export")
    group.add_argument("--no-redaction", action="store_true", help="send attribute values as stored")


def _add_cursor(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--restart", action="store_true",
                        help="ignore this export's cursor and send the whole selection again")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `export` and its destinations."""
    parser = subparsers.add_parser("export", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    destinations = parser.add_subparsers(dest="destination", metavar="DESTINATION")
    parser.set_defaults(handler=lambda args: parser.print_help() or 2)

    azure = destinations.add_parser(
        "azure-monitor", help="to Application Insights (and so Microsoft Foundry's tracing views)",
        description="Send spans to Application Insights with the Azure Monitor OpenTelemetry exporter. Items older "
                    "than 48 hours are refused by ingestion: they are reported and skipped, or shifted to now with "
                    "--retime. Values are trimmed to the service's limits (8 KB per property, 256 KB for GenAI "
                    "content, about 64 KB per item) keeping ids, model, agent and token usage.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    azure.add_argument("--connection-string", metavar="CS",
                       default=os.environ.get("APPLICATIONINSIGHTS_CONNECTION_STRING"),
                       help="the Application Insights connection string (default: "
                            "$APPLICATIONINSIGHTS_CONNECTION_STRING)")
    azure.add_argument("--retime", action="store_true",
                       help="shift the selection so its newest span ends now, keeping relative timing (the original "
                            "start is kept in tracekit.original_start_time)")
    azure.add_argument("--max-attempts", metavar="N", type=int, default=8,
                       help="retries for throttled or failed requests before stopping (default 8)")
    azure.add_argument("--timeout", metavar="SECONDS", type=float, default=30.0, help="per request (default 30)")
    azure.add_argument("--max-rate", metavar="ENVELOPES", type=float, default=10_000,
                       help="envelopes per second, the exporter's own client limit (default 10000)")
    _add_common(azure)
    _add_cursor(azure)
    azure.set_defaults(handler=run_azure)

    otlp = destinations.add_parser(
        "otlp", help="to an OTLP endpoint (an OpenTelemetry Collector, a vendor)",
        description="Send spans and log records with the OpenTelemetry SDK's OTLP exporters (gRPC or HTTP).")
    otlp.add_argument("--endpoint", metavar="URL",
                      default=os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                      or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
                      help="e.g. http://collector:4317 (gRPC) or http://collector:4318 (HTTP) "
                           "(default: $OTEL_EXPORTER_OTLP_ENDPOINT)")
    otlp.add_argument("--protocol", choices=("grpc", "http/protobuf"),
                      default=os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL") or None,
                      help="default: gRPC for port 4317 or grpc://, else http/protobuf")
    otlp.add_argument("--header", metavar="KEY=VALUE", action="append", default=[],
                      help="a request header, e.g. authorization=Bearer... (default: $OTEL_EXPORTER_OTLP_HEADERS)")
    otlp.add_argument("--timeout", metavar="SECONDS", type=float, default=30.0)
    _add_common(otlp)
    _add_cursor(otlp)
    otlp.set_defaults(handler=run_otlp)

    jsonl = destinations.add_parser(
        "otlp-json", help="to an OTLP JSON lines file (the OpenTelemetry Collector file exporter's format)",
        description="Write spans and log records as OTLP JSON lines, readable by `tracekit import`, the "
                    "OpenTelemetry Collector's otlpjsonfile receiver and otel-tui --from-json-file.")
    jsonl.add_argument("-o", "--output", metavar="FILE", default="-", help="the file to write (default: stdout)")
    _add_common(jsonl)
    jsonl.set_defaults(handler=run_otlp_json)

    status = destinations.add_parser("status", help="where each export's cursor stands")
    add_db_argument(status)
    status.add_argument("--json", action="store_true")
    status.set_defaults(handler=run_status)


# --- handlers ------------------------------------------------------------------------------------------------------------
def _selection(args: argparse.Namespace):
    from tracekit.export.selection import Selection, normalize_trace_id, parse_time

    parts = []
    traces = tuple(normalize_trace_id(t) for t in args.trace)
    for name in ("trace", "conversation", "since", "until", "where"):
        value = getattr(args, name)
        if value:
            parts.append(f"{name}={value}")
    if args.whole_traces:
        parts.append("whole-traces")
    return Selection(
        trace_ids=traces, conversation_ids=tuple(args.conversation),
        since_ns=parse_time(args.since) if args.since else None,
        until_ns=parse_time(args.until) if args.until else None,
        where=args.where, whole_traces=args.whole_traces, description=";".join(parts) or "all")


def _source(args: argparse.Namespace):
    from tracekit.export.selection import StoreSource
    from tracekit.store.reader import open_reader

    return StoreSource(open_reader(args.db), _selection(args), redactor=_redactor(args))


def _redactor(args: argparse.Namespace):
    from tracekit.redaction import policy_from_options
    from tracekit.redaction.columns import TableRedactor

    policy = policy_from_options(args.redaction_policy, disabled=args.no_redaction)
    return TableRedactor(policy) if policy is not None else None


def _cursors(args: argparse.Namespace):
    from tracekit.export.cursor import SidecarCursorStore, sidecar_path
    from tracekit.store.paths import resolve_db_path

    return SidecarCursorStore(sidecar_path(resolve_db_path(args.db)))


class ProgressBar:
    """A rich progress bar drawn from the export engine's progress events (runner.ExportProgress), on stderr.

    Use as a context manager and pass it as `on_progress`; disabled, it draws nothing."""

    def __init__(self, description: str, *, enabled: bool = True, console=None, rate: bool = True) -> None:
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn,
                                   TimeElapsedColumn)

        columns = [TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn()]
        if rate:
            columns += [TaskProgressColumn(), TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[note]}")]
        self._progress = Progress(*columns, TimeElapsedColumn(), console=console or Console(stderr=True),
                                  disable=not enabled)
        self._task = self._progress.add_task(description, total=None, rate="", note="")

    def __enter__(self) -> "ProgressBar":
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()

    def __call__(self, event) -> None:  # event: tracekit.export.runner.ExportProgress
        if event.event == "retry":
            self._progress.update(self._task, note=f"retrying: {_shown(event.message)[:60]}")
            return
        rate = f"{event.done / event.seconds:,.0f} spans/s" if event.done and event.seconds > 0 else ""
        self._progress.update(self._task, total=event.total, completed=event.done, rate=rate, note="")


def _shown(text: str) -> str:
    """Span names, reasons and destination answers, printed as they are: no Rich markup, no terminal controls."""
    from rich.markup import escape

    return escape(clean(text))


def print_summary(summary, console=None, *, max_items: int = 20) -> None:
    """The end-of-run report of an export.ExportSummary: counts, what limits changed, and each refusal (span
    content shown literally)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console(stderr=True)
    status = "[green]complete[/]" if summary.complete else "[yellow]stopped; run the same command again to resume[/]"
    console.print(f"Export to {_shown(summary.destination)}: {status}")
    table = Table(show_header=False, box=None, padding=(0, 2))
    rate = summary.spans_done / summary.seconds if summary.seconds else 0.0
    rows = [
        ("spans selected (left to send)", f"{summary.selected:,}" + ("  (resumed)" if summary.resumed else "")),
        ("spans done", f"{summary.spans_done:,} in {summary.seconds:.1f} s ({rate:,.0f}/s)"),
        ("items accepted", f"{summary.delivered:,} (spans, span events, log records)"),
        ("items refused", f"{len(summary.refused):,}"),
        ("items pending", f"{summary.pending:,}"),
        ("requests / retries", f"{summary.requests:,} / {summary.retries:,}"),
    ]
    if summary.rejected_by_destination:
        rows.append(("rejected by the destination", f"{summary.rejected_by_destination:,} items (OTLP partial "
                                                    f"success): {summary.rejection_message}"))
    if summary.limits.retimed:
        rows.append(("retimed", f"{summary.limits.retimed:,} spans (original start in tracekit.original_start_time)"))
    if summary.limits.too_old:
        rows.append(("too old", f"{summary.limits.too_old:,} items older than 48 h not sent (re-run with "
                                             "--retime --restart to send them shifted to now)"))
    if summary.limits.trimmed_items:
        keys = ", ".join(f"{k} x{n}" for k, n in summary.limits.trimmed_keys.most_common(5))
        rows.append(("trimmed", f"{summary.limits.trimmed_items:,} items to fit 8 KB / 64 KB ({keys})"))
    if summary.redacted:
        rows.append(("redacted", f"{summary.redacted:,} values"))
    if summary.last_error and not summary.complete:
        rows.append(("last error", summary.last_error))
    for label, value in rows:
        table.add_row(label, _shown(value))
    console.print(table)
    if summary.refused:
        console.print("Refused:")
        for (status_code, reason), count in summary.refused_by_reason.most_common():
            console.print(f"  {count:,} x {status_code}: {_shown(reason)}")
        for item in summary.refused[:max_items]:
            console.print(f"  {_shown(item.key)} {_shown(item.name)!s}: {item.status} {_shown(item.reason)}")
        if len(summary.refused) > max_items:
            console.print(f"  ... and {len(summary.refused) - max_items:,} more (see --json)")


def _finish(args: argparse.Namespace, summary) -> int:
    if args.json:
        print(json.dumps(summary.to_json(), indent=2))
    else:
        print_summary(summary)
    return 0 if summary.complete else 1


def run_azure(args: argparse.Namespace) -> int:
    from tracekit.export.azure import AzureMonitorSender
    from tracekit.export.limits import AZURE_PAGE_SIZE

    source = _source(args)
    sender = AzureMonitorSender(args.connection_string or "", max_attempts=args.max_attempts, timeout=args.timeout,
                                max_envelopes_per_second=args.max_rate)
    return _run(args, source, sender, page_size=args.batch_size or AZURE_PAGE_SIZE, retime=args.retime)


def _run(args: argparse.Namespace, source, sender, *, page_size: int, retime: bool = False) -> int:
    """One export of the selection through `sender`, with a progress bar and the summary."""
    from tracekit.export.runner import run_export

    try:
        with ProgressBar(f"export to {sender.kind}", enabled=not args.no_progress) as bar:
            summary = run_export(source, sender, _cursors(args), retime=retime, page_size=page_size,
                                 restart=args.restart, on_progress=bar)
    finally:
        sender.close()
    return _finish(args, summary)


def _headers(values: list[str]) -> dict[str, str] | None:
    from urllib.parse import unquote

    from tracekit.export.otlp import OtlpEndpointError

    if not values and os.environ.get("OTEL_EXPORTER_OTLP_HEADERS"):
        values = os.environ["OTEL_EXPORTER_OTLP_HEADERS"].split(",")
    headers = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise OtlpEndpointError(f"a header must be KEY=VALUE, got {item!r}")
        headers[key.strip().lower()] = unquote(value.strip())
    return headers or None


def run_otlp(args: argparse.Namespace) -> int:
    from tracekit.export.otlp import PAGE_SIZE, OtlpSender

    source = _source(args)
    sender = OtlpSender(args.endpoint or "", protocol=args.protocol, headers=_headers(args.header),
                        timeout=args.timeout)
    return _run(args, source, sender, page_size=args.batch_size or PAGE_SIZE)


def run_otlp_json(args: argparse.Namespace) -> int:
    from tracekit.export.runner import run_file_export

    source = _source(args)
    if args.output == "-":
        # exact in a pipe; on a terminal the characters it would act on are written as JSON escapes
        stdout = TerminalJsonLines(sys.stdout.buffer) if is_terminal(sys.stdout) else sys.stdout.buffer
        summary = run_file_export(source, stdout, path="stdout", page_size=args.batch_size or 1000)
        sys.stdout.buffer.flush()
    else:
        target = Path(args.output)
        temporary = target.with_name(target.name + ".partial")
        try:
            with open_private(temporary, "wb") as out, ProgressBar(
                    "write OTLP JSON", enabled=not args.no_progress, rate=False) as bar:
                summary = run_file_export(source, out, path=str(target), page_size=args.batch_size or 1000,
                                          on_progress=bar)
            os.replace(temporary, target)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    if args.json:
        print(json.dumps(summary.to_json(), indent=2), file=sys.stderr if args.output == "-" else sys.stdout)
    else:
        print(clean(f"wrote {summary.spans:,} spans and {summary.log_records:,} log records to {summary.path} "
                    f"({summary.lines} lines, {summary.redacted} values redacted)"), file=sys.stderr)
    return 0


def run_status(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    records = _cursors(args).all()
    if args.json:
        print(json.dumps({key: record.to_json() for key, record in records.items()}, indent=2))
        return 0
    if not records:
        print("no exports yet for this store", file=sys.stderr)
        return 0
    table = Table("destination", "selection", "position (ingest_seq)", "in flight")
    for record in records.values():
        table.add_row(clean(record.destination), clean(record.selection), str(record.position[0]) if record.position else "start",
                      f"{len(record.delivered)} delivered, {len(record.pending)} pending" if record.pending
                      or record.delivered else "", )
    Console().print(table, markup=False)
    return 0
