"""`tracekit diff A B`: two agent runs side by side, aligned step by step."""

from __future__ import annotations

import argparse
import json
import sys

from tracekit.commands._options import add_db_argument

HELP = "compare two runs (traces, conversations or responses) step by step"

DESCRIPTION = """\
Compare two agent runs: their agent invocations, model calls, tool calls and hand-offs are aligned as sequences,
so a step that only one run has lines up against a gap instead of shifting every later step. For each aligned
step it shows what differs (another tool or model, other arguments, another result, an error in one run only)
and the change in duration and tokens; the summary says where the runs first diverge and how total time, tokens
and cost (when prices are known) differ.

A and B may each be a trace id (or a unique prefix of 8+ hex digits), a conversation id or a response id.
Tool arguments and results are compared when content recording was on for both runs.

exit status: 0 compared (with --exit-code: 0 the runs do the same steps the same way, 1 they differ),
2 an id was not found or the store cannot be read.
"""

EPILOG = """\
examples:
  tracekit diff demo-session-001 demo-session-002
  tracekit diff 4bf92f35 7c1a9e02 --changed-only
  tracekit diff good-run bad-run --format markdown >> "$GITHUB_STEP_SUMMARY"
  tracekit diff baseline candidate --format json --exit-code
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `diff` command."""
    parser = subparsers.add_parser("diff", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("a", metavar="A", help="the first run: trace, conversation or response id")
    parser.add_argument("b", metavar="B", help="the second run: trace, conversation or response id")
    add_db_argument(parser)
    parser.add_argument("--format", choices=("table", "json", "markdown"), default="table",
                        help="table for a terminal (default), json for tools, markdown for pull requests")
    parser.add_argument("--changed-only", action="store_true", help="leave out the steps that are the same")
    parser.add_argument("--exit-code", action="store_true", help="exit 1 when the runs differ (for CI), like git diff")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Load both runs, compare, print."""
    from tracekit.diff import diff_runs
    from tracekit.diff.compare import to_dict
    from tracekit.diff.render import to_markdown, to_rich
    from tracekit.store.reader import open_reader

    reader = open_reader(args.db)
    try:
        diff = diff_runs(reader, args.a, args.b)
    finally:
        reader.close()
    if args.format == "json":
        data = to_dict(diff)
        if args.changed_only:
            data["steps"] = [step for step in data["steps"] if step["changes"]]
        json.dump(data, sys.stdout, indent=2, ensure_ascii=sys.stdout.isatty())
        sys.stdout.write("\n")
    elif args.format == "markdown":
        sys.stdout.write(to_markdown(diff, all_steps=not args.changed_only))
    else:
        from rich.console import Console

        console = Console(highlight=False)
        console.soft_wrap = not console.is_terminal
        console.print(to_rich(diff, all_steps=not args.changed_only))
    return 1 if args.exit_code and not diff.identical else 0
