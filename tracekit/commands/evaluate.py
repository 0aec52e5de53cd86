"""`tracekit evaluate`: Foundry's evaluators (and your own) over the agent responses in the store."""

from __future__ import annotations

import argparse
import os
import sys

from tracekit.commands._options import add_db_argument

HELP = "judge stored agent responses with Foundry's evaluators or your own; results are stored beside them"

DESCRIPTION = """\
Evaluate agent responses recorded in the store: one evaluation per agent response (the final model call of an
invoke_agent span, or a model call outside any agent), its input read from the recorded conversation (system
instructions, messages, tool calls with their results, tool definitions). Responses whose content was not
recorded are skipped and counted: turn recording on with OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true
(or tracekit.configure(content=True)).

Built-in evaluators (Microsoft's azure-ai-evaluation: pip install 'tracekit-agents[evaluation]'), judged by a model:
  relevance, coherence, fluency, intent_resolution, task_adherence, tool_call_accuracy, groundedness (when the
  trace recorded retrieved documents)
Your own: --evaluator my_pkg.checks:no_apologies, a function given the conversation as a dict (query, response,
tool_definitions, query_text, response_text, ids) that returns a score, (score, label, explanation), a dict with
those keys, or None when it does not apply.

Each result is stored as a gen_ai.evaluation.result event on the evaluated span (through the running collector
when there is one): it shows in `tracekit replay`, in customEvents, in the dashboards' evaluation tiles and alert
rules, and it exports to Application Insights where Foundry reads it. An item already judged by an evaluator is
skipped unless --force. Judge failures (429, 5xx, unreadable verdicts) are retried with back-off, then counted.

exit status: 0 the run completed (failures are counted in the summary), 2 nothing could run (no judge for a
built-in evaluator, an unknown evaluator, the evaluation extra missing, an id not found).
"""

EPILOG = """\
examples:
  tracekit evaluate --evaluator coherence,intent_resolution --since 1d --sample 0.2 \\
      --judge-endpoint https://my-aoai.openai.azure.com --judge-model gpt-4o     # key: AZURE_OPENAI_API_KEY
  tracekit evaluate --evaluator relevance --conversation conv-42 \\
      --judge-endpoint https://api.openai.com/v1 --judge-model gpt-4o-mini        # key: OPENAI_API_KEY
  tracekit evaluate --evaluator my_checks:no_apologies --where 'customDimensions["gen_ai.agent.name"] == "planner"'
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `tracekit evaluate`."""
    parser = subparsers.add_parser("evaluate", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    add_db_argument(parser)
    parser.add_argument("--evaluator", metavar="NAMES", action="append", required=True,
                        help="comma-separated evaluator names or module:function references (repeatable)")
    selection = parser.add_argument_group("which responses")
    selection.add_argument("--since", metavar="DURATION", help="responses from the last DURATION (30m, 24h, 7d)")
    selection.add_argument("--until", metavar="DURATION", help="leave out the most recent DURATION")
    selection.add_argument("--where", metavar="KQL", help="a KQL predicate over dependencies, e.g. "
                           "'customDimensions[\"gen_ai.agent.name\"] == \"planner\"'")
    for flag in ("conversation", "trace", "response"):
        selection.add_argument(f"--{flag}", metavar="ID", action="append", default=[],
                               help=f"only this {flag} (repeatable)")
    selection.add_argument("--sample", metavar="RATE", type=float, default=1.0,
                           help="evaluate this share of the responses (0-1), picked by response id, so a rerun "
                                "picks the same ones")
    selection.add_argument("--limit", metavar="N", type=int, help="at most N responses (oldest first)")
    judge = parser.add_argument_group("judge model (for the built-in evaluators)")
    judge.add_argument("--judge-endpoint", metavar="URL", default=os.environ.get("TRACEKIT_JUDGE_ENDPOINT"),
                       help="OpenAI-compatible base URL, or an Azure OpenAI endpoint ($TRACEKIT_JUDGE_ENDPOINT)")
    judge.add_argument("--judge-model", metavar="NAME", default=os.environ.get("TRACEKIT_JUDGE_MODEL"),
                       help="the model, or the Azure OpenAI deployment ($TRACEKIT_JUDGE_MODEL)")
    judge.add_argument("--judge-api-key", metavar="KEY", default=None,
                       help="default: $OPENAI_API_KEY, or $AZURE_OPENAI_API_KEY for Azure (none: Entra ID)")
    judge.add_argument("--judge-api-version", metavar="VERSION", default=None, help="Azure OpenAI API version")
    parser.add_argument("--concurrency", metavar="N", type=int, default=4, help="judge calls in parallel (default 4)")
    parser.add_argument("--force", action="store_true", help="judge again what was already judged")
    parser.add_argument("--auth-token", metavar="TOKEN", default=os.environ.get("TRACEKIT_AUTH_TOKEN"),
                        help="bearer token of a collector started with --auth-token ($TRACEKIT_AUTH_TOKEN)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from tracekit.commands._options import parse_duration
    from tracekit.errors import TracekitError
    from tracekit.evaluators.builtin import BUILTIN, make_evaluators
    from tracekit.evaluators.items import Selection, select_items
    from tracekit.evaluators.judge import judge_from
    from tracekit.evaluators.runner import already_evaluated, run_evaluations
    from tracekit.store.paths import resolve_db_path
    from tracekit.store.reader import open_reader

    import logging

    logging.getLogger("azure.ai.evaluation").setLevel(logging.ERROR)  # "experimental class" notices, once per class
    if not 0 < args.sample <= 1:
        raise TracekitError(f"--sample {args.sample}: give a share between 0 (exclusive) and 1")
    names = [name.strip() for value in args.evaluator for name in value.split(",") if name.strip()]
    judge = None
    if any(name in BUILTIN for name in names):
        judge = judge_from(args.judge_endpoint, args.judge_model, args.judge_api_key, args.judge_api_version)
    evaluators = make_evaluators(names, judge)
    selection = Selection(
        since=parse_duration(args.since) if args.since else None,
        until=parse_duration(args.until, "--until") if args.until else None,
        where=args.where, keys=[*args.conversation, *args.trace, *args.response], sample=args.sample,
        limit=args.limit)
    db_path = resolve_db_path(args.db)
    reader = open_reader(db_path)
    try:
        items = select_items(reader, selection)
        done = already_evaluated(reader)
    finally:
        reader.close()
    deliver = _deliverer(db_path, args.auth_token)
    summary = _run_with_progress(run_evaluations, items, evaluators, deliver=deliver, done=done, force=args.force,
                                 concurrency=args.concurrency)
    _print_summary(summary)
    return 0


def _deliverer(db_path, token):
    """Where verdicts go: the running collector's OTLP/HTTP receiver, else the store file itself."""
    from tracekit.evaluators.results import evaluation_request
    from tracekit.file_import import ImportSummary, send_to_collector
    from tracekit.store.reader import read_state

    def deliver(results) -> None:
        request = evaluation_request(results)
        state = read_state(db_path)
        if state and state.get("http"):
            send_to_collector([request], state["http"], ImportSummary(source="evaluate"), token=token)
        else:
            from tracekit.collector.offline import write_requests

            write_requests([request], db_path)

    return deliver


def _run_with_progress(run_evaluations, items, evaluators, **options):
    if not sys.stderr.isatty():
        return run_evaluations(items, evaluators, **options)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("evaluating"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as progress:
        bar = progress.add_task("evaluate", total=None)
        return run_evaluations(items, evaluators, on_progress=lambda done, total: progress.update(
            bar, completed=done, total=total), **options)


def _print_summary(summary) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from tracekit.conversation.literal import clean

    table = Table(title=f"{summary.items} agent response(s) selected", title_justify="left")
    table.add_column("evaluator", no_wrap=True)
    for column in ("evaluated", "already judged", "not applicable", "failed", "mean score"):
        table.add_column(column, justify="right")
    for name, tally in summary.tallies.items():
        table.add_row(Text(clean(name)), str(tally.evaluated), str(tally.already_done), str(tally.not_applicable),
                      Text(str(tally.failed), style="red" if tally.failed else ""),
                      "—" if tally.mean is None else f"{tally.mean:.2f}")
    console = Console(highlight=False)
    console.print(table)
    if summary.not_recorded:
        console.print(f"{summary.not_recorded} response(s) skipped: their content was not recorded (turn it on with "
                      "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true or tracekit.configure(content=True))",
                      markup=False)
    for name, tally in summary.tallies.items():
        for error in tally.errors:
            console.print(f"{name}: {clean(error)}", markup=False, style="red")
