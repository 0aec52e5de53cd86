"""`tracekit import FILE`: OTLP JSON lines back into the store."""

from __future__ import annotations

import argparse
import json
import os
import sys

from tracekit.commands._options import add_db_argument

HELP = "read OTLP JSON lines files (from `tracekit export otlp-json` or the Collector's file exporter) into the store"

DESCRIPTION = """\
Import OTLP JSON lines files: one TracesData, LogsData or MetricsData object per line, as written by
`tracekit export otlp-json` and by the OpenTelemetry Collector's file exporter (gzip files are recognised). If a
collector runs for the store, the data is sent to it over OTLP/HTTP; otherwise it is written into the store file.
The redaction policy (built-in rules, --redaction-policy FILE or $TRACEKIT_REDACTION_FILE) is applied on the way in.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `import`."""
    parser = subparsers.add_parser("import", help=HELP, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", metavar="FILE", nargs="+", help="OTLP JSON lines files; - reads stdin")
    add_db_argument(parser)
    parser.add_argument("--redaction-policy", metavar="FILE", help="a TOML or JSON redaction policy")
    parser.add_argument("--no-redaction", action="store_true", help="store attribute values as they are in the file")
    parser.add_argument("--auth-token", metavar="TOKEN", default=os.environ.get("TRACEKIT_AUTH_TOKEN"),
                        help="bearer token of a collector started with --auth-token ($TRACEKIT_AUTH_TOKEN)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.set_defaults(handler=run_import)


def run_import(args: argparse.Namespace) -> int:
    from tracekit.collector.offline import write_requests
    from tracekit.file_import import import_file
    from tracekit.redaction import RedactionPolicy
    from tracekit.store.paths import resolve_db_path

    if args.no_redaction:
        policy = None
    elif args.redaction_policy:
        policy = RedactionPolicy.from_file(args.redaction_policy)
    else:
        policy = RedactionPolicy.from_env()
    db_path = resolve_db_path(args.db)
    summaries = [import_file(path, db_path, write_offline=write_requests, policy=policy, token=args.auth_token) for path in args.files]
    if args.json:
        print(json.dumps([summary.to_json() for summary in summaries], indent=2))
    else:
        for summary in summaries:
            rejected = f", {summary.rejected} rejected ({'; '.join(summary.errors)})" if summary.rejected else ""
            print(f"imported {summary.spans:,} spans, {summary.log_records:,} log records and "
                  f"{summary.metric_points:,} metrics from {summary.source} into {summary.via}"
                  f"{rejected}; {summary.redacted} values redacted", file=sys.stderr)
    return 0 if all(not s.rejected for s in summaries) else 1
