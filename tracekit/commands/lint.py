"""`tracekit lint`: how well stored spans follow the GenAI conventions, per instrumentation, and agent loops."""

from __future__ import annotations

import argparse
import json
import sys

from tracekit.commands._options import DurationError, add_db_argument, parse_duration

HELP = "check stored spans against the GenAI semantic conventions, per instrumentation scope (a CI gate)"

DESCRIPTION = """\
For each instrumentation scope (name and version) in the store, list what does not follow the OpenTelemetry GenAI
semantic conventions, with the number of spans affected and an example trace id:

  deprecated         a deprecated attribute and its replacement (gen_ai.usage.prompt_tokens -> input_tokens,
                     gen_ai.system alone -> gen_ai.provider.name, flattened gen_ai.prompt.N.* -> input.messages)
  unknown            a gen_ai.* key the conventions do not define (a typo, a private extension)
  missing            an attribute the operation requires or recommends (a chat span without a model)
  span-kind          the wrong span kind for the operation (a model call is a CLIENT span)
  content-placement  content on the wrong span type, in deprecated per-message events, or not in the
                     conventions' message shape
  loop               an agent repeating the same tool call with the same arguments, or two agents handing off
                     back and forth, --loop-threshold times or more

The definitions come from the opentelemetry-semantic-conventions package and the semantic-conventions-genai
repository (docs/conventions.md says which release). gen_ai.system sent beside gen_ai.provider.name (what
Application Insights reads) is not a finding.

exit status: 0 no findings (or findings without --strict), 1 findings with --strict, 2 bad arguments or the
store cannot be read.
"""

EPILOG = """\
examples:
  tracekit lint
  tracekit lint --since 1h --strict            # in CI after a test run
  tracekit lint --trace 4bf92f3577b34da6a3ce929d0e0e4736 --format json
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `lint` command."""
    parser = subparsers.add_parser("lint", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_db_argument(parser)
    parser.add_argument("--since", default=None, metavar="DURATION",
                        help="only spans that started within this duration (30m, 24h, 7d; default: all)")
    parser.add_argument("--trace", default=None, metavar="ID", help="only this trace (32 hex digits)")
    parser.add_argument("--format", choices=("table", "json"), default="table", help="table (default) or json")
    parser.add_argument("--strict", action="store_true", help="exit 1 when there is any finding")
    parser.add_argument("--loop-threshold", type=int, default=None, metavar="N",
                        help="repetitions that make a loop (default: $TRACEKIT_LOOP_THRESHOLD, else 3)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tracekit.errors import TracekitError
    from tracekit.lint import lint_store
    from tracekit.store.reader import open_reader

    try:
        since = parse_duration(args.since) if args.since else None
    except DurationError as error:
        print(f"tracekit lint: {error}", file=sys.stderr)
        return 2
    from tracekit.loops import configured_threshold

    args.loop_threshold = args.loop_threshold or configured_threshold()
    if args.loop_threshold < 2:
        print("tracekit lint: --loop-threshold must be 2 or more", file=sys.stderr)
        return 2
    try:
        reader = open_reader(args.db)
        report = lint_store(reader, since=since, trace_id=args.trace, loop_threshold=args.loop_threshold)
    except TracekitError as error:
        print(f"tracekit lint: {error}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _print_table(report)
    return 1 if args.strict and report.groups else 0


def _print_table(report) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from tracekit.conversation.literal import literal

    console = Console()
    findings = report.findings
    if not findings:
        console.print(Text(f"no findings in {report.spans_checked:,} spans from {len(report.scopes)} "
                           f"instrumentation scope(s)", style="green"))
        return
    table = Table(title=Text(f"{len(findings)} findings in {report.spans_checked:,} spans"), show_lines=False)
    for column in ("scope", "rule", "attribute", "finding", "spans", "example trace"):
        table.add_column(column, justify="right" if column == "spans" else "left")
    for group in findings:
        scope = f"{group.scope_name or '(no scope)'} {group.scope_version}".strip()
        table.add_row(literal(scope, pretty=False, limit=80), group.rule, literal(group.key, pretty=False, limit=80),
                      literal(group.message, pretty=False, limit=200), f"{group.spans:,}", group.example_trace_id)
    console.print(table)
