"""`tracekit collect`: the headless collector."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Callable

from tracekit.commands._options import add_db_argument
from tracekit.store.paths import resolve_db_path
from tracekit.terminal_text import CleanFormatter, clean

HELP = "run the OTLP collector (gRPC and HTTP) that stores traces, logs and metrics in the DuckDB store"

DESCRIPTION = """\
Run the OTLP collector headless. It listens on 127.0.0.1 only unless told otherwise, stores everything it receives in
one DuckDB file, and acknowledges a request only after its data is committed. While it runs, `tracekit query`, `tui`,
`replay` and `export` on the same --db reach the store through its local read API. The HTTP receiver and the read
API answer only requests addressed to localhost, 127.0.0.1 or [::1] (see --allowed-hosts). The store, its WAL, the
state file and any directory created for them are readable by you only (0600/0700). Ctrl-C, SIGTERM or SIGHUP stop
it cleanly.

Every option also has an environment variable (the option wins). Port 0 picks a free port; the chosen addresses are
printed and written to the state file beside the database (<db>.collector.json).
"""


def add_collector_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by `collect` and the default collector+TUI command. Each sets one CollectorSettings field (its
    `dest`); `settings_from_args` converts the text given, so a bad value is one clear line, not a usage error."""
    from tracekit.collector.settings import MIB, parse_size, split_hosts

    group = parser.add_argument_group("collector")
    conversions: dict[str, Callable[[Any], Any]] = {}

    def setting(flag: str, field: str, convert: Callable[[Any], Any], metavar: str, help: str, **options: Any) -> None:
        group.add_argument(flag, dest=field, metavar=metavar, default=None, help=help, **options)
        conversions[field] = convert

    setting("--grpc", "grpc", _off_or, "HOST:PORT",
            "OTLP/gRPC listen address, 'off' to disable ($TRACEKIT_GRPC; default 127.0.0.1:4317)")
    setting("--http", "http", _off_or, "HOST:PORT",
            "OTLP/HTTP listen address, 'off' to disable ($TRACEKIT_HTTP; default 127.0.0.1:4318)")
    setting("--max-request-size", "max_request_bytes", parse_size, "SIZE",
            f"largest OTLP request accepted, e.g. 32MiB ($TRACEKIT_MAX_REQUEST_SIZE; default {32 * MIB // MIB}MiB)")
    setting("--queue-size", "queue_bytes", parse_size, "SIZE",
            "request bytes accepted but not yet committed before senders are told to retry later; OTLP/gRPC reads at "
            "most SIZE / (2 x the request limit) messages at once ($TRACEKIT_QUEUE_SIZE; default 256MiB)")
    setting("--memory-limit", "memory_limit", str, "SIZE",
            "DuckDB memory_limit of the collector's database: its cache, the data not yet checkpointed and the read "
            "API's queries share it, and DuckDB spills past it to <db>.tmp ($TRACEKIT_MEMORY_LIMIT; default 448MB)")
    setting("--decode-workers", "decode_workers", int, "N",
            "decode requests in N worker processes; 0 decodes in a thread ($TRACEKIT_DECODE_WORKERS; default 0)",
            type=int)
    setting("--checkpoint-rows", "checkpoint_rows", int, "N",
            "span rows between checkpoints under load; DuckDB writes row groups of 122,880 rows, so keep whole "
            "multiples ($TRACEKIT_CHECKPOINT_ROWS; default 245760)", type=int)
    setting("--checkpoint-wal-size", "checkpoint_wal_bytes", parse_size, "SIZE",
            "checkpoint once the WAL is this large, whatever the rows; DuckDB holds what the WAL holds in memory until "
            "then, so this bounds the collector's memory under content-heavy load ($TRACEKIT_CHECKPOINT_WAL_SIZE; "
            "default 256MiB)")
    setting("--retention-days", "retention_days", float, "DAYS",
            "delete telemetry older than this, in the background ($TRACEKIT_RETENTION_DAYS)", type=float)
    setting("--max-db-size", "max_db_bytes", parse_size, "SIZE",
            "delete the oldest telemetry while the store is larger, e.g. 2GB ($TRACEKIT_MAX_DB_SIZE)")
    setting("--allowed-hosts", "allowed_hosts", split_hosts, "HOST[,HOST]",
            "Host names the HTTP receiver and read API answer besides localhost, 127.0.0.1 and [::1] (requests "
            "naming any other host get 403, against DNS rebinding); '*' answers any ($TRACEKIT_ALLOWED_HOSTS)")
    setting("--auth-token", "auth_token", str, "TOKEN",
            "require 'Authorization: Bearer TOKEN' from senders ($TRACEKIT_AUTH_TOKEN)")
    setting("--redaction", "redaction", str, "POLICY",
            "masking applied before storage: 'default' (secrets and personal data), 'off', or a TOML/JSON policy "
            "file ($TRACEKIT_REDACTION_FILE, $TRACEKIT_REDACTION=off)")
    group.add_argument("--attribute-count-limit", metavar="N", type=int, default=None,
                       help="attributes kept per span, event, link, log record and map value, as the OpenTelemetry "
                            "specification counts them; the rest are dropped and counted in dropped_attributes_count "
                            "($OTEL_ATTRIBUTE_COUNT_LIMIT, $OTEL_SPAN_/EVENT_/LINK_/LOGRECORD_ATTRIBUTE_COUNT_LIMIT; "
                            "default 128)")
    setting("--header-timeout", "header_timeout_seconds", float, "SECONDS",
            "close an OTLP/HTTP connection whose request headers have not arrived by then, or that sits idle that "
            "long, and an OTLP/gRPC connection that finishes no handshake or carries no call that long "
            "($TRACEKIT_HEADER_TIMEOUT; default 30)", type=float)
    setting("--body-timeout", "body_timeout_seconds", float, "SECONDS",
            "answer 408 to an OTLP/HTTP request whose body has not arrived by then, and DEADLINE_EXCEEDED to an "
            "OTLP/gRPC call whose message has not ($TRACEKIT_BODY_TIMEOUT; default 30)", type=float)
    setting("--alerts", "alert_rules", str, "FILE",
            "check these alert rules on their frequency while collecting; changes of state are stored as "
            "tracekit.alert events and shown in the TUI (see `tracekit alerts --help`; $TRACEKIT_ALERTS)")
    setting("--evaluation-rules", "evaluation_rules", str, "FILE",
            "evaluate new agent responses as they arrive, per these rules (evaluators, agent, sample rate, hourly "
            "cap; see docs/evaluation.md) ($TRACEKIT_EVALUATION_RULES)")
    setting("--forward-otlp", "forward_otlp", str, "URL",
            "also forward what is stored to this OTLP endpoint (from a durable queue in the store)")
    setting("--forward-azure-monitor", "forward_azure_monitor", str, "CONNECTION_STRING",
            "also forward what is stored to Application Insights (use $APPLICATIONINSIGHTS_CONNECTION_STRING)")
    parser.set_defaults(collector_settings=conversions)


def _off_or(value: str) -> str | None:
    return None if value == "off" else value


def settings_from_args(args: argparse.Namespace):  # -> CollectorSettings
    """CollectorSettings from defaults, then TRACEKIT_* variables, then flags (a flag left out keeps the
    environment's or the default value)."""
    from tracekit.collector.processors.anyvalue import AttributeLimits
    from tracekit.collector.settings import CollectorSettings

    settings = CollectorSettings.from_env(resolve_db_path(args.db))
    limit = getattr(args, "attribute_count_limit", None)
    if limit is not None:
        if limit < 0:
            raise ValueError(f"--attribute-count-limit must be 0 or more, not {limit}")
        settings.attribute_limits = AttributeLimits(limit, limit, limit, limit, limit)
    for field, convert in getattr(args, "collector_settings", {}).items():
        value = getattr(args, field, None)
        if value is not None:
            setattr(settings, field, convert(value))
    return settings


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("collect", help=HELP, description=DESCRIPTION,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_db_argument(parser)
    add_collector_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="log every refused request and commit")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tracekit.collector.service import Collector

    handler = logging.StreamHandler()
    # log lines quote what senders sent: control characters are shown as escapes, not acted on by the terminal
    handler.setFormatter(CleanFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
    try:
        settings = settings_from_args(args)
    except ValueError as error:
        print(f"tracekit collect: error: {clean(str(error))}", file=sys.stderr)
        return 2

    def announce(collector: Collector) -> None:
        print(f"tracekit collector: store {collector.db_path}", flush=True)
        if collector.grpc_endpoint:
            print(f"  OTLP/gRPC  {collector.grpc_endpoint}", flush=True)
        if collector.http_endpoint:
            print(f"  OTLP/HTTP  {collector.http_endpoint}", flush=True)
        print("  Ctrl-C stops (what was accepted is committed first)", flush=True)

    Collector(settings).run_forever(on_ready=announce)
    return 0
