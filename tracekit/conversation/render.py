"""A Transcript as Rich text: the same blocks for `tracekit replay` and the TUI's conversation screen.

Each block is one entry (or a turn header) rendered as a rich.text.Text built from literal span strings, never
from markup, so content cannot style or control the terminal. Agents get a colour each, in order of appearance.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from rich.console import Group, RenderableType
from rich.text import Text

from tracekit.call_metrics import describe
from tracekit.durations import format_duration
from tracekit.conversation.literal import DEFAULT_LIMIT, literal
from tracekit.conversation.model import NOT_RECORDED, Entry, EntryKind, Message, Part, PartKind, Transcript, Turn
from tracekit.cost import format_cost

AGENT_COLOURS = ("cyan", "magenta", "green", "yellow", "blue", "bright_red", "bright_cyan", "bright_magenta")
ROLE_STYLES = {"user": "bold bright_white", "assistant": "bold", "tool": "bold yellow", "system": "bold blue"}
NOT_RECORDED_TEXT = "[content not recorded]"


@dataclass
class Block:
    """One rendered piece of a transcript: a turn header or an entry."""

    kind: str  # "turn" or an EntryKind value
    renderable: RenderableType
    entry: Entry | None = None
    turn: Turn | None = None
    agent: str | None = None


def agent_colour(transcript: Transcript, agent: str | None) -> str:
    """The colour of an agent's lane (white for spans outside any agent)."""
    if agent is None or agent not in transcript.agents:
        return "white"
    return AGENT_COLOURS[transcript.agents.index(agent) % len(AGENT_COLOURS)]


def _clock(time_ns: int) -> str:
    return datetime.fromtimestamp(time_ns / 1e9, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _agent_label(transcript: Transcript, agent: str | None) -> Text:
    if agent is None:
        return Text("")
    return Text.assemble((" @", "dim"), (agent, agent_colour(transcript, agent)))


def turn_header(transcript: Transcript, turn: Turn) -> Text:
    """`── turn 3 · planner · o3 · 1,204 → 96 (64 reasoning) tokens · cache 1,024 read · streamed, first chunk
    420ms · $0.0031 · 1.42s ──`."""
    pieces = [f"turn {turn.index + 1}"]
    if turn.model:
        pieces.append(turn.model)
    pieces.extend(describe(turn.metrics))
    if turn.input_tokens is not None or turn.output_tokens is not None:
        pieces.append(format_cost(turn.cost_usd))
    pieces.append(format_duration(turn.duration_ns))
    if turn.status == "ERROR":
        pieces.append("ERROR")
    text = Text("── ", style="dim")
    text.append_text(literal(pieces[0], style="bold", pretty=False))
    if turn.agent:
        text.append(" · ", style="dim")
        text.append_text(literal(turn.agent, style=agent_colour(transcript, turn.agent), pretty=False))
    for piece in pieces[1:]:
        text.append(" · ", style="dim")
        text.append_text(literal(piece, style="red bold" if piece == "ERROR" else "", pretty=False))
    text.append(" ──", style="dim")
    return text


def _value(value: Any, limit: int | None, style: str = "") -> Text:
    if value is NOT_RECORDED:
        return Text(NOT_RECORDED_TEXT, style="italic dim")
    return literal(value, limit=limit, style=style)


def _indent(text: Text, prefix: str = "    ") -> Text:
    lines = text.split("\n", allow_blank=True)
    result = Text()
    for index, line in enumerate(lines):
        if index:
            result.append("\n")
        result.append(prefix)
        result.append_text(line)
    return result


def render_part(part: Part, limit: int | None) -> Text:
    """One message part: text literally, reasoning dimmed, media by reference, unmatched tool results labelled."""
    if part.kind is PartKind.TEXT:
        return _value(part.content, limit)
    if part.kind is PartKind.REASONING:
        text = Text("thinking: ", style="dim italic")
        text.append_text(_value(part.content, limit, style="dim italic"))
        return text
    if part.kind is PartKind.MEDIA:
        text = Text(f"[{part.name or 'media'}] ", style="dim")
        text.append_text(_value(part.content, limit))
        return text
    if part.kind is PartKind.TOOL_RESULT:
        text = Text("tool result", style="yellow")
        if part.call_id:
            text.append(" for ", style="dim")
            text.append_text(literal(part.call_id, pretty=False, limit=200, style="dim"))
        text.append(": ")
        text.append_text(_value(part.content, limit))
        return text
    if part.kind is PartKind.TOOL_CALL:
        text = Text("call ", style="yellow")
        text.append_text(literal(part.name or "tool", pretty=False, limit=200))
        text.append(" ")
        text.append_text(_value(part.content, limit))
        return text
    text = Text(f"[{part.name or 'part'}] ", style="dim")
    text.append_text(_value(part.content, limit))
    return text


def _message(transcript: Transcript, entry: Entry, message: Message, limit: int | None) -> Text:
    header = Text()
    header.append_text(literal(message.role, pretty=False, limit=100, style=ROLE_STYLES.get(message.role, "bold")))
    if message.name:
        header.append(" (", style="dim")
        header.append_text(literal(message.name, pretty=False, limit=200, style="dim"))
        header.append(")", style="dim")
    header.append_text(_agent_label(transcript, entry.agent))
    if message.finish_reason and message.finish_reason not in ("stop", "end_turn"):
        header.append_text(literal(f"  [finish: {message.finish_reason}]", pretty=False, limit=200, style="dim"))
    if entry.carried:
        header.append(f"  (+{entry.carried} earlier message{'s' if entry.carried != 1 else ''} resent as context)",
                      style="dim")
    body = Text("\n").join(render_part(part, limit) for part in message.parts) if message.parts else Text(
        NOT_RECORDED_TEXT, style="italic dim")
    return Text.assemble(header, "\n", _indent(body))


def _tool(transcript: Transcript, entry: Entry, limit: int | None) -> Text:
    call = entry.tool
    assert call is not None
    text = Text("⚙ ", style="yellow")
    text.append_text(literal(call.name, pretty=False, limit=200, style="bold yellow"))
    if call.call_id:
        text.append(" [", style="dim")
        text.append_text(literal(call.call_id, pretty=False, limit=200, style="dim"))
        text.append("]", style="dim")
    text.append_text(_agent_label(transcript, entry.agent))
    if call.attempt > 1:
        text.append(f"  attempt {call.attempt}", style="bold yellow")
    if call.duration_ns is not None:
        text.append(f"  {format_duration(call.duration_ns)}", style="dim")
    text.append("\n")
    arguments = Text("args: ", style="dim")
    arguments.append_text(_value(call.arguments, limit))
    text.append_text(_indent(arguments))
    text.append("\n")
    if call.status == "error":
        result = Text("↳ error: ", style="bold red")
        result.append_text(literal(call.error or "error", limit=limit, pretty=False))
        if call.result is not NOT_RECORDED and not (isinstance(call.result, str) and (call.error or "") in call.result):
            result.append("\n")
            result.append_text(_value(call.result, limit))
    elif call.status == "pending" and call.result is NOT_RECORDED:
        result = Text("↳ no result recorded", style="italic dim")
    else:
        result = Text("↳ ", style="green")
        result.append_text(_value(call.result, limit))
    text.append_text(_indent(result))
    return text


def render_entry(transcript: Transcript, entry: Entry, *, limit: int | None = DEFAULT_LIMIT) -> Text:
    """One transcript entry as Text (content cut at `limit` characters per value)."""
    colour = agent_colour(transcript, entry.agent)
    if entry.kind is EntryKind.REQUEST:
        text = Text("━━ request ", style="bold")
        text.append_text(literal(entry.title, pretty=False, limit=300, style="bold"))
        text.append(f" · {_clock(entry.time_ns)}", style="dim")
        if entry.detail:
            text.append(f" · {entry.detail}", style="dim")
        if entry.status == "ERROR":
            text.append(" · ERROR", style="bold red")
        if entry.trace_id:
            text.append(f" · trace {entry.trace_id}", style="dim")
        return text
    if entry.kind is EntryKind.AGENT:
        text = Text("▶ agent ", style=f"bold {colour}")
        text.append_text(literal(entry.title, pretty=False, limit=300, style=f"bold {colour}"))
        if entry.from_agent:
            text.append("  ← called by " if entry.delegated else "  ← handed off from ", style="dim")
            text.append_text(literal(entry.from_agent, pretty=False, limit=300,
                                     style=agent_colour(transcript, entry.from_agent)))
        if entry.detail:
            text.append("\n")
            text.append_text(_indent(literal(entry.detail, limit=limit, pretty=False, style="dim")))
        return text
    if entry.kind is EntryKind.HANDOFF:
        text = Text("⇢ hand-off ", style=f"bold {colour}")
        text.append_text(literal(entry.title, pretty=False, limit=300, style=f"bold {colour}"))
        if entry.detail:
            text.append("  ")
            text.append_text(literal(entry.detail, pretty=False, limit=300, style="dim"))
        if entry.status == "ERROR":  # the conventions record a transfer that failed too
            text.append("  failed", style="bold red")
        return text
    if entry.kind in (EntryKind.STEP, EntryKind.PLAN):
        plan = entry.kind is EntryKind.PLAN
        text = Text("☰ plan step ", style=f"bold {colour}") if plan else Text("◆ ", style=colour)
        text.append_text(literal(entry.title, pretty=False, limit=300, style=f"bold {colour}"))
        text.append_text(_agent_label(transcript, entry.agent))
        if entry.status == "ERROR":
            text.append("  ERROR", style="bold red")
        if entry.detail and entry.detail not in entry.title:
            text.append("\n")
            text.append_text(_indent(literal(entry.detail, limit=limit, style="dim")))
        return text
    if entry.kind is EntryKind.SYSTEM:
        text = Text("system instructions", style=ROLE_STYLES["system"])
        text.append_text(_agent_label(transcript, entry.agent))
        body = Text("\n").join(render_part(part, limit) for part in entry.system or [])
        return Text.assemble(text, "\n", _indent(body))
    if entry.kind is EntryKind.MESSAGE and entry.message is not None:
        return _message(transcript, entry, entry.message, limit)
    if entry.kind is EntryKind.TOOL and entry.tool is not None:
        return _tool(transcript, entry, limit)
    if entry.kind is EntryKind.MODEL_CALL:
        text = Text("model call ", style="dim")
        text.append_text(literal(entry.title, pretty=False, limit=300))
        text.append_text(_agent_label(transcript, entry.agent))
        if entry.status == "ERROR":
            text.append("  failed: ", style="bold red")
            text.append_text(literal(entry.detail or "error", pretty=False, limit=limit))
        else:
            text.append(f"  {NOT_RECORDED_TEXT}", style="italic dim")
        return text
    if entry.kind is EntryKind.EVALUATION:
        text = Text("✓ evaluation ", style="bold green")
        text.append_text(literal(entry.title, pretty=False, limit=300))
        if entry.detail:
            text.append(" — ", style="dim")
            text.append_text(literal(entry.detail, pretty=False, limit=limit, style="dim"))
        return text
    return literal(entry.title, pretty=False)


def _total_cost(transcript: Transcript) -> str:
    """The priced calls' total; "≥" and a count when some calls have no known price."""
    unpriced = transcript.unpriced_turns
    if transcript.cost_usd is None:
        return format_cost(None)
    if unpriced:
        return f"≥{format_cost(transcript.cost_usd)} ({unpriced} call{'s' if unpriced != 1 else ''} without a price)"
    return format_cost(transcript.cost_usd)


def summary(transcript: Transcript) -> Text:
    """The transcript's header line: what it is, how many traces, turns and tokens, which agents."""
    text = Text(f"{transcript.kind} ", style="bold")
    text.append_text(literal(transcript.conversation_id or transcript.key, pretty=False, limit=300, style="bold"))
    text.append(f" · {len(transcript.trace_ids)} trace{'s' if len(transcript.trace_ids) != 1 else ''}"
                f" · {len(transcript.turns)} model call{'s' if len(transcript.turns) != 1 else ''}"
                f" · {transcript.input_tokens:,} → {transcript.output_tokens:,} tokens"
                f" · model time {format_duration(transcript.model_time_ns)}", style="dim")
    text.append(f" · cost {_total_cost(transcript)}", style="dim")
    costs = transcript.cost_by_agent()
    if transcript.agents:
        text.append("\nagents: ", style="dim")
        for index, agent in enumerate(transcript.agents):
            if index:
                text.append(", ", style="dim")
            text.append_text(literal(agent, pretty=False, limit=200, style=agent_colour(transcript, agent)))
            if agent in costs:
                text.append(f" {format_cost(costs[agent])}", style="dim")
    if not transcript.content_recorded:
        text.append("\ncontent was not recorded for these spans: showing the structure only "
                    "(turn it on with OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true)", style="yellow")
    if transcript.truncated_traces:
        text.append("\nthis conversation has more traces than shown; the oldest are listed", style="yellow")
    for loop in transcript.loops:
        text.append("\n↻ loop: ", style="bold yellow")
        text.append_text(literal(loop, pretty=False, limit=500, style="yellow"))
    return text


def blocks(transcript: Transcript, *, limit: int | None = DEFAULT_LIMIT) -> list[Block]:
    """The transcript as blocks in order, with a header block before the first entry of each turn."""
    result: list[Block] = []
    headed: set[int] = set()
    turns = {turn.index: turn for turn in transcript.turns}
    for entry in transcript.entries:
        if entry.turn is not None and entry.turn not in headed:
            headed.add(entry.turn)
            turn = turns[entry.turn]
            result.append(Block("turn", turn_header(transcript, turn), turn=turn, agent=turn.agent))
        result.append(Block(entry.kind.value, render_entry(transcript, entry, limit=limit), entry=entry,
                            agent=entry.agent))
    return result


def render_transcript(transcript: Transcript, *, limit: int | None = DEFAULT_LIMIT) -> Group:
    """The whole transcript as one renderable (summary, then every block separated by a blank line)."""
    items: list[RenderableType] = [summary(transcript), Text("")]
    for block in blocks(transcript, limit=limit):
        items.append(block.renderable)
        if block.kind != "turn":
            items.append(Text(""))
    return Group(*items)
