"""`tracekit replay ID`: a conversation printed as a transcript (rich text on a terminal, plain when piped)."""

from __future__ import annotations

import argparse
import json
import sys

from rich.console import Console

from tracekit.commands._options import add_db_argument

DESCRIPTION = """\
Print a conversation as the chat it was: system instructions, user and assistant messages, each tool call with
its result, agent hand-offs and multi-agent steps, with tokens and latency per model call.

ID may be a conversation id (gen_ai.conversation.id, session.id, thread_id), a response id (gen_ai.response.id;
the chain through gen_ai.request.previous_response.id is followed both ways) or a trace id (or a unique prefix of
at least 8 hex digits). Output is coloured on a terminal and plain text when piped.

--format json prints the transcript as data, the shape `tracekit mcp`'s get_conversation returns: kind, id,
conversation_id, trace_ids, agents, content_recorded, model_calls, input_tokens, output_tokens, model_time_ms, turns
(one per model call) and entries (request, agent, handoff, step, system, message, tool, model_call, evaluation, in
order); content that was not recorded is null with "recorded": false. --format markdown prints the same transcript
as Markdown, every piece of span content in a fenced block. See docs/mcp.md.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `replay` command."""
    parser = subparsers.add_parser(
        "replay", help="print a conversation, response chain or trace as a transcript",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("id", metavar="ID", help="conversation id, response id or trace id")
    add_db_argument(parser)
    parser.add_argument("--full", action="store_true",
                        help="print long values in full (default: cut at --limit characters with a marker)")
    parser.add_argument("--limit", type=int, default=4000, metavar="N",
                        help="characters shown per value before cutting (default: 4000)")
    parser.add_argument("--format", choices=("text", "json", "markdown"), default="text",
                        help="text (default: the transcript as on a terminal), json (the transcript as data) or "
                             "markdown")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Resolve the id, rebuild the transcript and print it."""
    from tracekit.conversation import load_transcript
    from tracekit.conversation.render import render_transcript
    from tracekit.store.reader import open_reader

    reader = open_reader(args.db)
    try:
        transcript = load_transcript(reader, args.id)
    finally:
        reader.close()
    limit = None if args.full else max(1, args.limit)
    if args.format != "text":
        from tracekit.readout.transcript import transcript_data, transcript_markdown

        data = transcript_data(transcript, limit=limit)
        if args.format == "json":
            json.dump(data, sys.stdout, ensure_ascii=False, indent=2)
            sys.stdout.write("\n")
        else:
            sys.stdout.write(transcript_markdown(data))
        return 0
    console = Console(highlight=False)
    console.soft_wrap = not console.is_terminal  # piped: one line per line, no re-wrapping at 80 columns
    console.print(render_transcript(transcript, limit=limit))
    return 0
