"""`tracekit import FILE`: OTLP JSON lines back into the store."""

from __future__ import annotations

import argparse
import json
import os
import sys

from tracekit.commands._options import add_db_argument
from tracekit.terminal_text import clean

HELP = "read OTLP JSON lines files (from `tracekit export otlp-json` or the Collector's file exporter) into the store"

DESCRIPTION = """\
Import OTLP JSON lines files: one TracesData, LogsData or MetricsData object per line, as written by
`tracekit export otlp-json` and by the OpenTelemetry Collector's file exporter (gzip files are recognised). If a
collector runs for the store, the data is sent to it over OTLP/HTTP; otherwise it is written into the store file.
Everything is redacted before it is stored: by the running collector with its own policy, or, written into the file,
with the built-in rules, --redaction-policy FILE or $TRACEKIT_REDACTION_FILE (--no-redaction: as they are).
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `import`."""
    parser = subparsers.add_parser("import", help=HELP, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", metavar="FILE", nargs="+", help="OTLP JSON lines files; - reads stdin")
    add_db_argument(parser)
    parser.add_argument("--redaction-policy", metavar="FILE",
                        help="a TOML or JSON redaction policy (a store no collector owns; a running collector uses its own)")
    parser.add_argument("--no-redaction", action="store_true",
                        help="store values as they are in the file (a store no collector owns)")
    parser.add_argument("--auth-token", metavar="TOKEN", default=os.environ.get("TRACEKIT_AUTH_TOKEN"),
                        help="bearer token of a collector started with --auth-token ($TRACEKIT_AUTH_TOKEN)")
    parser.add_argument("--max-record-size", metavar="SIZE", default="64MiB",
                        help="refuse a line (one request) longer than this once decompressed, e.g. 64MiB "
                             "(default 64MiB)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=run_import)


def run_import(args: argparse.Namespace) -> int:
    from tracekit.collector.offline import write_requests
    from tracekit.collector.settings import parse_size
    from tracekit.file_import import import_file
    from tracekit.redaction import policy_from_options
    from tracekit.store.paths import resolve_db_path

    policy = policy_from_options(args.redaction_policy, disabled=args.no_redaction)
    db_path = resolve_db_path(args.db)
    try:
        max_record = parse_size(args.max_record_size)
    except ValueError as error:
        print(f"tracekit import: error: --max-record-size: {error}", file=sys.stderr)
        return 2
    given = bool(args.redaction_policy or args.no_redaction)
    summaries = [import_file(path, db_path, write_offline=write_requests, policy=policy, policy_given=given,
                             token=args.auth_token, max_record_bytes=max_record) for path in args.files]
    if args.json:
        print(json.dumps([summary.to_json() for summary in summaries], indent=2))
    else:
        for summary in summaries:
            rejected = f", {summary.rejected} rejected ({'; '.join(summary.errors)})" if summary.rejected else ""
            # the errors quote the file's content
            print(clean(f"imported {summary.spans:,} spans, {summary.log_records:,} log records and "
                        f"{summary.metric_points:,} metrics from {summary.source} into {summary.via}"
                        f"{rejected}; {summary.redaction}"
                        f"{f' ({summary.redacted} values)' if summary.redacted else ''}"), file=sys.stderr)
    return 0 if all(not s.rejected for s in summaries) else 1
