"""What to evaluate: one item per agent response, and the conversation that led to it.

An agent response is the final model call of an `invoke_agent` span (the last to end among the model calls under
it, nested agents excepted), or a model call with no agent around it. Its input is read from that model call's
recorded content (tracekit.conversation.shapes, every shape the replay reads): the system instructions and input
messages are what the model saw, its output messages the response; tool definitions come from `gen_ai.tool.definitions`, else from the tools the
trace ran (name and description). Split at the last user message, as Microsoft's
AIAgentConverter does: `query` is everything up to it, `response` what the agent did after (tool calls, their
results, the answer).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field
from typing import Any

from tracekit import semconv
from tracekit.conversation.loader import load_spans, resolve
from tracekit.conversation.model import Message, Part, PartKind
from tracekit.conversation.shapes import parse_json, span_content
from tracekit.store.reader import StoreReader

_INFERENCE = tuple(sorted(semconv.INFERENCE_OPERATIONS))


@dataclass
class Selection:
    """Which responses: a time range, a KQL predicate over `dependencies`, ids, a deterministic sample, a cap."""

    since: dt.timedelta | None = None
    until: dt.timedelta | None = None      # leave out the most recent `until`
    where: str | None = None               # e.g. customDimensions["gen_ai.agent.name"] == "planner"
    keys: list[str] = field(default_factory=list)   # conversation, response or trace ids
    trace_ids: list[str] | None = None               # exactly these traces (no id resolution)
    sample: float = 1.0
    limit: int | None = None


@dataclass
class Item:
    """One agent response to judge."""

    trace_id: str
    span_id: str
    response_id: str | None
    agent: str | None
    conversation_id: str | None
    recorded: bool = True
    query: list[dict[str, Any]] = field(default_factory=list)      # agent messages up to the last user message
    response: list[dict[str, Any]] = field(default_factory=list)   # what came after: tool calls, results, answer
    tool_definitions: list[dict[str, Any]] = field(default_factory=list)
    context: str | None = None       # retrieved documents, when the trace recorded any

    @property
    def key(self) -> str:
        """What makes the item itself: the response id, else the span."""
        return self.response_id or f"{self.trace_id}/{self.span_id}"

    @property
    def query_text(self) -> str:
        """The last user message as text (for the query/response evaluators)."""
        for message in reversed(self.query):
            if message["role"] == "user":
                return _text_of(message)
        return ""

    @property
    def response_text(self) -> str:
        """The agent's final answer as text."""
        for message in reversed(self.response):
            if message["role"] == "assistant" and _text_of(message):
                return _text_of(message)
        return ""

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        return [part for message in self.response if message["role"] == "assistant"
                for part in message["content"] if isinstance(part, dict) and part.get("type") == "tool_call"]

    def as_conversation(self) -> dict[str, Any]:
        """What a user evaluator is given."""
        return {"trace_id": self.trace_id, "span_id": self.span_id, "response_id": self.response_id,
                "agent": self.agent, "conversation_id": self.conversation_id, "query": self.query,
                "response": self.response, "tool_definitions": self.tool_definitions, "context": self.context,
                "query_text": self.query_text, "response_text": self.response_text}


def in_sample(key: str, rate: float) -> bool:
    """Deterministic sampling by key: the same items are picked on every run with the same rate."""
    if rate >= 1:
        return True
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def select_items(reader: StoreReader, selection: Selection) -> list[Item]:
    """The agent responses the selection covers, oldest first, with their input read from the store."""
    rows = _candidate_spans(reader, selection)
    picked = [row for row in _agent_responses(rows) if in_sample(row["response_id"] or
                                                                 f"{row['trace_id']}/{row['span_id']}",
                                                                 selection.sample)]
    if selection.where:
        allowed = _matching_span_ids(reader, selection.where, selection.since)
        picked = [row for row in picked if row["span_id"] in allowed or row.get("agent_span_id") in allowed]
    picked.sort(key=lambda row: row["end_time_ns"])
    if selection.limit is not None:
        picked = picked[:selection.limit]
    return _with_content(reader, picked)


def _candidate_spans(reader: StoreReader, selection: Selection) -> list[dict[str, Any]]:
    """Every span of the traces that hold a model call in the selection (agents are found by walking parents)."""
    in_range, params = ["list_contains($ops, operation_name)"], {"ops": list(_INFERENCE)}
    if selection.since is not None:
        in_range.append("start_time >= (now() AT TIME ZONE 'UTC') - to_microseconds($since)")
        params["since"] = int(selection.since.total_seconds() * 1e6)
    if selection.until is not None:
        in_range.append("start_time < (now() AT TIME ZONE 'UTC') - to_microseconds($until)")
        params["until"] = int(selection.until.total_seconds() * 1e6)
    if selection.keys or selection.trace_ids is not None:
        params["traces"] = [*(selection.trace_ids or []),
                            *(trace for key in selection.keys for trace in resolve(reader, key).trace_ids)]
        in_range.append("list_contains($traces, trace_id)")
    table = reader.sql(f"""
        SELECT trace_id, span_id, parent_span_id, operation_name, agent_name, response_id, conversation_id,
               end_time_ns,
               ({" AND ".join(in_range)}) AS in_range
        FROM spans
        WHERE trace_id IN (SELECT trace_id FROM spans WHERE {" AND ".join(in_range)})
        QUALIFY row_number() OVER (PARTITION BY trace_id, span_id ORDER BY ingest_seq) = 1
    """, params)
    return table.to_pylist()


def _agent_responses(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Model calls that are agent responses: the last to end under each agent, or outside any agent."""
    by_id = {(row["trace_id"], row["span_id"]): row for row in rows}
    last_under_agent: dict[tuple[str, str], dict[str, Any]] = {}
    responses = []
    for row in rows:
        if not row["in_range"]:
            continue
        agent = _nearest_agent(row, by_id)
        if agent is None:
            responses.append({**row, "agent_span_id": None})
            continue
        key = (agent["trace_id"], agent["span_id"])
        current = last_under_agent.get(key)
        if current is None or row["end_time_ns"] > current["end_time_ns"]:
            last_under_agent[key] = {**row, "agent_span_id": agent["span_id"],
                                     "agent_name": row["agent_name"] or agent["agent_name"],
                                     "conversation_id": row["conversation_id"] or agent["conversation_id"]}
    return responses + list(last_under_agent.values())


def _nearest_agent(row: dict[str, Any], by_id: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any] | None:
    seen = set()
    parent = row["parent_span_id"]
    while parent and (row["trace_id"], parent) not in seen:
        seen.add((row["trace_id"], parent))
        ancestor = by_id.get((row["trace_id"], parent))
        if ancestor is None:
            return None
        if ancestor["operation_name"] == semconv.OP_INVOKE_AGENT:
            return ancestor
        parent = ancestor["parent_span_id"]
    return None


def _matching_span_ids(reader: StoreReader, predicate: str, since: dt.timedelta | None) -> set[str]:
    from tracekit.query.kql import run_kql

    table = run_kql(reader, f"dependencies | where {predicate} | project id", since=since)
    return set(table.column("id").to_pylist())


def _with_content(reader: StoreReader, rows: list[dict[str, Any]]) -> list[Item]:
    items = []
    spans_by_trace: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["trace_id"] not in spans_by_trace:
            records = load_spans(reader, [row["trace_id"]])
            spans_by_trace[row["trace_id"]] = {record.span_id: record for record in records}
        spans = spans_by_trace[row["trace_id"]]
        record = spans.get(row["span_id"])
        item = Item(row["trace_id"], row["span_id"], row["response_id"], row["agent_name"], row["conversation_id"])
        if record is not None:
            _fill(item, record, spans)
        else:
            item.recorded = False
        items.append(item)
    return items


def _fill(item: Item, record: Any, spans: dict[str, Any]) -> None:
    content = span_content(record.attributes, record.events, record.logs)
    messages = []
    if content.system:
        text = "\n".join(_part_text(part) for part in content.system if part.recorded)
        if text:
            messages.append({"role": "system", "content": text})
    messages += [_agent_message(message) for message in [*content.input, *content.output]]
    item.recorded = bool(content.output) and all(message.recorded for message in content.output) and any(
        message["role"] == "user" for message in messages)
    if not item.recorded:
        return
    last_user = max(index for index, message in enumerate(messages) if message["role"] == "user")
    item.query, item.response = messages[:last_user + 1], messages[last_user + 1:]
    item.tool_definitions = (_tool_definitions(record.attributes.get(semconv.GEN_AI_TOOL_DEFINITIONS))
                             or _tools_that_ran(spans))
    item.context = _retrieved_context(spans, record)


def _agent_message(message: Message) -> dict[str, Any]:
    """A transcript message in the agent message format azure-ai-evaluation reads."""
    results = [part for part in message.parts if part.kind == PartKind.TOOL_RESULT]
    if message.role == "tool" or (results and len(results) == len(message.parts)):
        first = results[0] if results else (message.parts[0] if message.parts else Part(PartKind.TEXT, ""))
        return {"role": "tool", "tool_call_id": first.call_id or "",
                "content": [{"type": "tool_result", "tool_result": _value(part.content)}
                            for part in (results or message.parts)]}
    content: list[dict[str, Any]] = []
    for part in message.parts:
        if part.kind == PartKind.TOOL_CALL:
            arguments = parse_json(part.content) if part.recorded else {}
            content.append({"type": "tool_call", "tool_call_id": part.call_id or "", "name": part.name or "",
                            "arguments": arguments if isinstance(arguments, dict) else {"input": arguments}})
        elif part.kind == PartKind.TEXT and part.recorded:
            content.append({"type": "text", "text": _part_text(part)})
    role = message.role if message.role in ("user", "assistant", "system") else "assistant"
    if role == "system":
        return {"role": "system", "content": " ".join(c["text"] for c in content if c["type"] == "text")}
    return {"role": role, "content": content}


def _part_text(part: Part) -> str:
    return part.content if isinstance(part.content, str) else str(_value(part.content))


def _value(content: Any) -> Any:
    return parse_json(content) if isinstance(content, str) else content


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content or [] if isinstance(part, dict)
                     and part.get("type") == "text").strip()


def _tool_definitions(raw: Any) -> list[dict[str, Any]]:
    definitions = parse_json(raw) if raw is not None else []
    if not isinstance(definitions, list):
        return []
    result = []
    for definition in definitions:
        if not isinstance(definition, dict):
            continue
        function = definition.get("function") if isinstance(definition.get("function"), dict) else definition
        if function.get("name"):
            result.append({"name": function["name"], "description": function.get("description", ""),
                           "parameters": function.get("parameters", {})})
    return result


def _tools_that_ran(spans: dict[str, Any]) -> list[dict[str, Any]]:
    """When the model call recorded no tool definitions: the tools its trace ran, by name and description."""
    tools: dict[str, dict[str, Any]] = {}
    for record in spans.values():
        if record.operation_name == semconv.OP_EXECUTE_TOOL and record.tool_name and record.tool_name not in tools:
            tools[record.tool_name] = {"name": record.tool_name, "parameters": {},
                                       "description": str(record.attributes.get(semconv.GEN_AI_TOOL_DESCRIPTION, ""))}
    return list(tools.values())


def _retrieved_context(spans: dict[str, Any], response: Any) -> str | None:
    """Documents retrieved in the same trace before the response ended (retrieval spans that recorded them)."""
    documents = []
    for record in spans.values():
        if record.operation_name == semconv.OP_RETRIEVAL and record.end_time_ns <= response.end_time_ns:
            value = record.attributes.get(semconv.GEN_AI_RETRIEVAL_DOCUMENTS)
            if value:
                documents.append(value if isinstance(value, str) else str(value))
    return "\n\n".join(documents) or None
