"""A conversation as `tracekit replay` shows it, as data (JSON) and as Markdown.

Built from tracekit.conversation's Transcript, the model the replay and the TUI render, so the three never disagree.
Content that was not recorded is `null` with `"recorded": false`, never an empty string. Markdown puts every piece
of span content in a fenced block longer than any backtick run inside it, so content cannot turn into markup.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from tracekit.call_metrics import CallMetrics, describe
from tracekit.conversation import NOT_RECORDED, Entry, Part, Transcript, load_transcript
from tracekit.durations import format_duration
from tracekit.conversation.literal import DEFAULT_LIMIT, clean, to_display_string
from tracekit.readout.budget import DEFAULT_CHARS, MAX_CHARS, MAX_ROWS, check_offset, clamp, cut, page
from tracekit.store.reader import StoreReader

DEFAULT_ENTRIES = 100


def _iso_ns(ns: int) -> str:
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _ms(ns: int | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)


def _compact(data: dict[str, Any]) -> dict[str, Any]:
    """`data` without its empty entries (None, False, "", []); a 0 stays (turn 0 is the first model call)."""
    return {key: value for key, value in data.items()
            if not (value is None or value is False or (isinstance(value, (str, list)) and not value))}


def _content(value: Any, limit: int | None, hint: str) -> dict[str, Any]:
    if value is NOT_RECORDED:
        return {"content": None, "recorded": False}
    return {"content": cut(value, limit, hint)}


def _part(part: Part, limit: int | None, hint: str) -> dict[str, Any]:
    return {"kind": part.kind.value, **_content(part.content, limit, hint),
            **_compact({"call_id": part.call_id, "name": part.name})}


def entry_data(entry: Entry, limit: int | None) -> dict[str, Any]:
    """One transcript entry as a JSON-ready dict; values longer than `limit` are cut with a get_span hint."""
    hint = (f'get_span(trace_id="{entry.trace_id}", span_id="{entry.span_id}")' if entry.span_id
            else "tracekit replay --full")
    data: dict[str, Any] = {"kind": entry.kind.value, "time": _iso_ns(entry.time_ns)}
    data.update(_compact({"agent": entry.agent, "trace_id": entry.trace_id, "span_id": entry.span_id,
                          "turn": entry.turn, "title": entry.title, "detail": cut(entry.detail, limit, hint),
                          "from_agent": entry.from_agent, "delegated": entry.delegated,
                          "carried": entry.carried or None, "status": entry.status}))
    if entry.message is not None:
        message = entry.message
        data["message"] = {"role": message.role, **_compact({"name": message.name,
                                                             "finish_reason": message.finish_reason}),
                           "parts": [_part(part, limit, hint) for part in message.parts]}
    if entry.system is not None:
        data["system"] = [_part(part, limit, hint) for part in entry.system]
    if entry.tool is not None:
        call = entry.tool
        data["tool"] = {"name": call.name, **_compact({"call_id": call.call_id, "span_id": call.span_id}),
                        "arguments": _content(call.arguments, limit, hint)["content"],
                        "result": _content(call.result, limit, hint)["content"],
                        "status": call.status, **_compact({"error": call.error,
                                                           "duration_ms": _ms(call.duration_ns),
                                                           "attempt": call.attempt if call.attempt > 1 else None})}
    return data


def transcript_data(transcript: Transcript, *, limit: int | None = DEFAULT_LIMIT, offset: int = 0,
                    entries: int | None = None, max_chars: int | None = None) -> dict[str, Any]:
    """The transcript as data: what it is, totals, the model calls (turns) and the entries in order.

    `limit` cuts each value (None: whole); `entries` and `max_chars` page the entries (None: all of them).
    """
    shaped = (entry_data(entry, limit) for entry in transcript.entries[offset:])
    if entries is None and max_chars is None:
        items = list(shaped)
        info = {"offset": offset, "returned": len(items), "total": len(transcript.entries), "next_offset": None}
    else:
        items, info = page(shaped, offset=offset, limit=entries or MAX_ROWS, max_chars=max_chars or MAX_CHARS,
                           total=len(transcript.entries), what="entry")
    in_page = {item.get("turn") for item in items}
    return {
        "kind": transcript.kind, "id": transcript.key, "conversation_id": transcript.conversation_id,
        "trace_ids": transcript.trace_ids, "agents": transcript.agents,
        "content_recorded": transcript.content_recorded, "more_traces_than_shown": transcript.truncated_traces,
        "model_calls": len(transcript.turns), "input_tokens": transcript.input_tokens,
        "output_tokens": transcript.output_tokens, "model_time_ms": _ms(transcript.model_time_ns),
        # the model calls the entries of this page belong to
        "turns": [{"turn": turn.index, "trace_id": turn.trace_id, "span_id": turn.span_id,
                   **_compact({"agent": turn.agent, "model": turn.model, "operation": turn.operation}),
                   "input_tokens": turn.input_tokens, "output_tokens": turn.output_tokens,
                   "duration_ms": _ms(turn.duration_ns), "status": turn.status,
                   **_compact({"response_id": turn.response_id, "reasoning_tokens": turn.reasoning_tokens,
                               "cache_read_tokens": turn.cache_read_tokens,
                               "cache_write_tokens": turn.cache_write_tokens, "stream": turn.stream,
                               "time_to_first_chunk_s": turn.time_to_first_chunk_s})} for turn in transcript.turns if turn.index in in_page],
        "entries": items, "page": info,
    }


def get_conversation(reader: StoreReader, key: str, *, offset: int | None = None, limit: int | None = None,
                     max_chars: int | None = None, value_chars: int | None = None) -> dict[str, Any]:
    """The transcript for a conversation id, response id or trace id, paged by entries within a budget."""
    offset = check_offset(offset)
    transcript = load_transcript(reader, key)
    return transcript_data(transcript, limit=clamp(value_chars, 2000, MAX_CHARS, "value_chars"), offset=offset,
                           entries=clamp(limit, DEFAULT_ENTRIES, MAX_ROWS, "limit"),
                           max_chars=clamp(max_chars, DEFAULT_CHARS, MAX_CHARS, "max_chars"))


# --- Markdown ---------------------------------------------------------------------------------------------------------
_TICKS = re.compile(r"`+")


def _fenced(value: Any) -> str:
    if value is None:
        return "_[content not recorded]_"
    text = clean(to_display_string(value))
    fence = "`" * max(3, 1 + max((len(run) for run in _TICKS.findall(text)), default=0))
    return f"{fence}\n{text}\n{fence}"


def _inline(value: Any) -> str:
    """A short literal (names, ids) as inline code."""
    text = clean(str(value)).replace("\n", " ")
    fence = "`" * (1 + max((len(run) for run in _TICKS.findall(text)), default=0))
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _parts_markdown(parts: list[dict[str, Any]]) -> list[str]:
    lines = []
    for part in parts:
        label = {"text": "", "reasoning": "thinking", "tool_call": "call", "tool_call_response": "tool result"}.get(
            part["kind"], part.get("name") or part["kind"])
        if part.get("name") and part["kind"] == "tool_call":
            label += f" {_inline(part['name'])}"
        if part.get("call_id"):
            label += f" [{_inline(part['call_id'])}]"
        if label:
            lines.append(f"*{label}*" if not label.startswith(("call ", "tool result ")) else label)
        lines.append(_fenced(part.get("content")))
    return lines


def _entry_markdown(entry: dict[str, Any]) -> list[str]:
    kind = entry["kind"]
    agent = f" @{_inline(entry['agent'])}" if entry.get("agent") else ""
    if kind == "request":
        status = " · **ERROR**" if entry.get("status") == "ERROR" else ""
        detail = f" · {clean(entry['detail'])}" if entry.get("detail") else ""
        return [f"## request {_inline(entry.get('title', ''))} · {entry['time']}{detail}{status}"
                f" · trace `{entry.get('trace_id', '')}`"]
    if kind == "agent":
        line = f"**▶ agent {_inline(entry.get('title', ''))}**"
        if entry.get("from_agent"):
            line += (" ← called by " if entry.get("delegated") else " ← handed off from ") + _inline(
                entry["from_agent"])
        return [line] + ([_fenced(entry["detail"])] if entry.get("detail") else [])
    if kind == "handoff":
        return [f"**⇢ hand-off {_inline(entry.get('title', ''))}**"
                + (f" {_inline(entry['detail'])}" if entry.get("detail") else "")
                + (" **failed**" if entry.get("status") == "ERROR" else "")]
    if kind == "plan":
        line = f"**☰ plan step {_inline(entry.get('title', ''))}**{agent}" + (
            " **ERROR**" if entry.get("status") == "ERROR" else "")
        return [line] + ([_fenced(entry["detail"])] if entry.get("detail") else [])
    if kind == "step":
        line = f"**◆ {_inline(entry.get('title', ''))}**{agent}" + (" **ERROR**" if entry.get("status") == "ERROR"
                                                                     else "")
        return [line] + ([_fenced(entry["detail"])] if entry.get("detail") else [])
    if kind == "system":
        return [f"**system instructions**{agent}"] + _parts_markdown(entry.get("system", []))
    if kind == "message" and "message" in entry:
        message = entry["message"]
        line = f"**{clean(message['role'])}**"
        if message.get("name"):
            line += f" ({_inline(message['name'])})"
        line += agent
        if message.get("finish_reason") not in (None, "stop", "end_turn"):
            line += f" [finish: {clean(message['finish_reason'])}]"
        if entry.get("carried"):
            line += f" (+{entry['carried']} earlier message(s) resent as context)"
        return [line] + (_parts_markdown(message["parts"]) if message["parts"] else [_fenced(None)])
    if kind == "tool" and "tool" in entry:
        tool = entry["tool"]
        line = f"**⚙ {_inline(tool['name'])}**"
        if tool.get("call_id"):
            line += f" [{_inline(tool['call_id'])}]"
        if tool.get("attempt"):
            line += f" attempt {tool['attempt']}"
        line += agent + (f" {format_duration(int(tool['duration_ms'] * 1e6))}" if tool.get("duration_ms") else "")
        lines = [line, "arguments:", _fenced(tool.get("arguments"))]
        if tool["status"] == "error":
            lines += [f"↳ **error**: {_inline(tool.get('error') or 'error')}"]
            if tool.get("result") is not None:
                lines.append(_fenced(tool["result"]))
        elif tool["status"] == "pending" and tool.get("result") is None:
            lines.append("↳ _no result recorded_")
        else:
            lines += ["↳ result:", _fenced(tool.get("result"))]
        return lines
    if kind == "model_call":
        if entry.get("status") == "ERROR":
            return [f"model call {_inline(entry.get('title', ''))}{agent} **failed**: {_inline(entry.get('detail') or 'error')}"]
        return [f"model call {_inline(entry.get('title', ''))}{agent} _[content not recorded]_"]
    if kind == "evaluation":
        return [f"**✓ evaluation {_inline(entry.get('title', ''))}**"
                + (f" — {_inline(entry['detail'])}" if entry.get("detail") else "")]
    return [_inline(entry.get("title", kind))]


def transcript_markdown(data: dict[str, Any]) -> str:
    """The transcript data (from `transcript_data`) as Markdown: a header, then each request, turn and entry."""
    head = data.get("conversation_id") or data["id"]
    lines = [f"# {data['kind']} {_inline(head)}", "",
             f"{len(data['trace_ids'])} trace(s) · {data['model_calls']} model call(s) · "
             f"{data['input_tokens']:,} → {data['output_tokens']:,} tokens · "
             f"model time {format_duration(int((data['model_time_ms'] or 0) * 1e6))}"]
    if data["agents"]:
        lines.append("agents: " + ", ".join(_inline(agent) for agent in data["agents"]))
    if not data["content_recorded"]:
        lines.append("_content was not recorded for these spans: showing the structure only (turn it on with "
                     "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true)_")
    if data["more_traces_than_shown"]:
        lines.append("_this conversation has more traces than shown; the oldest are listed_")
    turns = {turn["turn"]: turn for turn in data["turns"]}
    headed: set[int] = set()
    for entry in data["entries"]:
        lines.append("")
        turn = turns.get(entry.get("turn")) if entry.get("turn") is not None else None
        if turn is not None and turn["turn"] not in headed:
            headed.add(turn["turn"])
            pieces = [f"turn {turn['turn'] + 1}"] + [_inline(turn[key]) for key in ("agent", "model") if turn.get(key)]
            pieces += describe(CallMetrics(turn["input_tokens"], turn["output_tokens"], turn.get("cache_read_tokens"),
                                           turn.get("cache_write_tokens"), turn.get("reasoning_tokens"),
                                           turn.get("stream"), turn.get("time_to_first_chunk_s")))
            pieces.append(format_duration(int((turn["duration_ms"] or 0) * 1e6)))
            if turn["status"] == "ERROR":
                pieces.append("**ERROR**")
            lines += [f"### {' · '.join(pieces)}", ""]
        lines += _entry_markdown(entry)
    note = data.get("page", {}).get("note")
    if note:
        lines += ["", f"_{note}_"]
    return "\n".join(lines) + "\n"
