"""Assembling a Transcript from the spans, events and log records of one or more traces.

The rules, in short:
- Spans are walked in start order (parents before children at the same instant). Inference spans become turns.
- Multi-turn agents resend the whole history on every model call, so an input message is shown only the first time;
  later copies are counted as "context carried" (multiset matching on a content fingerprint, so a user who says
  "yes" twice still shows twice).
- Tool calls found in model output are paired with their results by call id: from the `execute_tool` span that ran
  them (`gen_ai.tool.call.id`) or from a later `tool_call_response` part. A tool span with no matching call becomes a
  tool entry of its own, so structure shows even when content was not recorded.
- Each span belongs to the agent of its nearest `invoke_agent` ancestor (itself included); that agent is the lane.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

import orjson

from tracekit import multi_agent, semconv
from tracekit.call_metrics import call_metrics
from tracekit.conversation.model import (
    NOT_RECORDED,
    Entry,
    EntryKind,
    Message,
    Part,
    PartKind,
    SpanContent,
    ToolCall,
    Transcript,
    Turn,
)
from tracekit.conversation.shapes import EventRecord, parse_json, span_content
from tracekit.durations import format_duration


@dataclass
class SpanRecord:
    """The fields of a stored span the transcript needs (attributes already decoded)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_time_ns: int
    end_time_ns: int
    status_code: str = "UNSET"
    status_message: str | None = None
    operation_name: str | None = None
    agent_name: str | None = None
    request_model: str | None = None
    response_model: str | None = None
    response_id: str | None = None
    conversation_id: str | None = None
    tool_name: str | None = None
    tool_call_id: str | None = None
    error_type: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[EventRecord] = field(default_factory=list)
    logs: list[EventRecord] = field(default_factory=list)

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_time_ns - self.start_time_ns)


# --- what a span is -----------------------------------------------------------------------------------------------------

INFERENCE, AGENT, TOOL, STEP, HANDOFF, OTHER = "inference", "agent", "tool", "step", "handoff", "other"
_STEP_OPERATIONS = (semconv.MULTI_AGENT_OPERATIONS | set(multi_agent.OPERATION_KINDS)
                    | {semconv.OP_CREATE_AGENT, semconv.OP_RETRIEVAL})
_OPENINFERENCE_ROLES = {"LLM": INFERENCE, "AGENT": AGENT, "TOOL": TOOL, "RETRIEVER": STEP}
_SYSTEM_ROLES = frozenset({"system", "developer"})  # OTel openai-agents-v2 processor


def operation_of(span: SpanRecord) -> str | None:
    """The GenAI operation of a span: `gen_ai.operation.name`, else the first word of a conventional span name."""
    if span.operation_name:
        return span.operation_name
    if span.name.startswith("agent orchestration"):  # Foundry's documented spelling has a space
        return semconv.OP_AGENT_ORCHESTRATION
    first = span.name.split(" ", 1)[0]
    known = semconv.INFERENCE_OPERATIONS | semconv.AGENT_OPERATIONS | _STEP_OPERATIONS | {semconv.OP_EXECUTE_TOOL}
    return first if first in known else None


def role_of(span: SpanRecord) -> str:
    """Which kind of transcript element a span produces."""
    operation = operation_of(span)
    if operation in semconv.INFERENCE_OPERATIONS:
        return INFERENCE
    if operation == semconv.OP_INVOKE_AGENT:
        return AGENT
    if operation == semconv.OP_EXECUTE_TOOL:
        return TOOL
    if multi_agent.kind_of(operation) == multi_agent.HANDOFF:
        return HANDOFF
    if operation in _STEP_OPERATIONS:
        return STEP
    openinference = span.attributes.get(semconv.OPENINFERENCE_SPAN_KIND)
    if isinstance(openinference, str) and openinference.upper() in _OPENINFERENCE_ROLES:
        return _OPENINFERENCE_ROLES[openinference.upper()]
    if any(key.startswith((semconv.LEGACY_PROMPT_PREFIX, semconv.OPENINFERENCE_INPUT_MESSAGES_PREFIX))
           for key in span.attributes):
        return INFERENCE
    return OTHER


# --- fingerprints for history de-duplication -----------------------------------------------------------------------------


def _normal(value: Any) -> Any:
    if value is NOT_RECORDED:
        return "\0not-recorded"
    return parse_json(value)


def fingerprint(message: Message) -> bytes:
    """A key equal for two copies of the same message (JSON strings and objects compare equal; names ignored)."""
    parts = [(part.kind.value, _normal(part.content), part.call_id, part.name) for part in message.parts]
    return orjson.dumps([message.role, parts], option=orjson.OPT_SORT_KEYS, default=str)


# --- assembling -----------------------------------------------------------------------------------------------------------


class _Builder:
    def __init__(self, transcript: Transcript, spans: list[SpanRecord]) -> None:
        self.transcript = transcript
        self.spans = spans
        self.by_id = {(span.trace_id, span.span_id): span for span in spans}
        self.seq = itertools.count()
        self.order: dict[int, int] = {}
        self.seen_messages: Counter[bytes] = Counter()
        self.seen_system: set[bytes] = set()
        self.calls_by_id: dict[str, ToolCall] = {}
        self.pending_by_name: dict[str, list[ToolCall]] = {}
        self.agent_cache: dict[tuple[str, str], str | None] = {}
        self.last_agent: str | None = None
        # Outputs of agent / workflow spans are checked against what their model calls said only after every span
        # was walked (a parent is walked before its children, but its output is what they produced).
        self.deferred_outputs: list[tuple[SpanRecord, Message, str | None]] = []

    # where a span sits
    def parent(self, span: SpanRecord) -> SpanRecord | None:
        return self.by_id.get((span.trace_id, span.parent_span_id)) if span.parent_span_id else None

    def depth(self, span: SpanRecord) -> int:
        depth, node, guard = 0, self.parent(span), 0
        while node is not None and guard < 512:  # guard against parent cycles in bad data
            depth, node, guard = depth + 1, self.parent(node), guard + 1
        return depth

    def agent_of(self, span: SpanRecord) -> str | None:
        key = (span.trace_id, span.span_id)
        if key in self.agent_cache:
            return self.agent_cache[key]
        node, guard, agent = span, 0, None
        while node is not None and guard < 512:
            if role_of(node) == AGENT:
                agent = node.agent_name or _agent_name_from_span_name(node.name)
                break
            node, guard = self.parent(node), guard + 1
        self.agent_cache[key] = agent
        return agent

    def add(self, entry: Entry) -> Entry:
        self.order[id(entry)] = next(self.seq)
        self.transcript.entries.append(entry)
        if entry.agent and entry.agent not in self.transcript.agents:
            self.transcript.agents.append(entry.agent)
        return entry

    # the walk
    def run(self) -> None:
        by_trace: dict[str, list[SpanRecord]] = {}
        for span in self.spans:
            by_trace.setdefault(span.trace_id, []).append(span)
        first_of_trace = {}
        for trace_id, group in by_trace.items():
            roots = [span for span in group if span.parent_span_id is None]
            first_of_trace[trace_id] = min(roots or group, key=lambda s: s.start_time_ns)
        for root in first_of_trace.values():
            self.add(Entry(EntryKind.REQUEST, root.start_time_ns, span_id=root.span_id, trace_id=root.trace_id,
                           title=root.name, status=root.status_code,
                           detail=_duration_text(root.duration_ns)))
        for span in sorted(self.spans, key=lambda s: (s.start_time_ns, self.depth(s))):
            role = role_of(span)
            if role == INFERENCE:
                self.inference(span)
            elif role == AGENT:
                self.agent(span)
            elif role == TOOL:
                self.tool(span)
            elif role in (STEP, HANDOFF):
                self.step(span, role)
            self.evaluations(span)
        for span, message, agent in sorted(self.deferred_outputs, key=lambda item: item[0].end_time_ns):
            key = fingerprint(message)
            if self.seen_messages[key] > 0:
                continue  # an agent span repeating what its model call already said
            self.seen_messages[key] += 1
            self.emit_message(span, message, agent, None, span.end_time_ns)
        self.transcript.entries.sort(key=lambda entry: (entry.time_ns, self.order[id(entry)]))

    def inference(self, span: SpanRecord) -> None:
        agent = self.agent_of(span)
        content = span_content(span.attributes, span.events, span.logs)
        metrics = call_metrics(span.attributes, start_ns=span.start_time_ns, duration_ns=span.duration_ns,
                               input_tokens=span.input_tokens, output_tokens=span.output_tokens)
        turn = Turn(
            index=len(self.transcript.turns), span_id=span.span_id, trace_id=span.trace_id,
            start_ns=span.start_time_ns, duration_ns=span.duration_ns, agent=agent,
            model=span.response_model or span.request_model or _openinference_model(span),
            operation=operation_of(span), input_tokens=metrics.input_tokens, output_tokens=metrics.output_tokens,
            status=span.status_code, response_id=span.response_id, cost_usd=span.cost_usd,
            reasoning_tokens=metrics.reasoning_tokens, time_to_first_chunk_s=metrics.time_to_first_chunk_s,
            cache_read_tokens=metrics.cache_read_tokens, cache_write_tokens=metrics.cache_write_tokens,
            stream=metrics.stream,
            content_recorded=any(m.recorded for m in [*content.input, *content.output]) or bool(
                content.system and any(p.recorded for p in content.system)),
        )
        self.transcript.turns.append(turn)
        if turn.content_recorded:
            self.transcript.content_recorded = True
        if content.empty:
            self.add(Entry(EntryKind.MODEL_CALL, span.start_time_ns, agent=agent, span_id=span.span_id,
                           trace_id=span.trace_id, turn=turn.index, title=span.name, status=span.status_code,
                           detail=span.status_message))
            return
        self.content(span, content, agent, turn.index, dedupe_output=False)
        if span.status_code == "ERROR":
            self.add(Entry(EntryKind.MODEL_CALL, span.end_time_ns, agent=agent, span_id=span.span_id,
                           trace_id=span.trace_id, turn=turn.index, title=span.name, status="ERROR",
                           detail=span.status_message or span.error_type))

    def content(self, span: SpanRecord, content: SpanContent, agent: str | None, turn: int | None,
                dedupe_output: bool) -> None:
        """System instructions, the new input messages and the output messages of one span."""
        if content.system:
            self.system_entry(span, content.system, agent, turn)
        available = self.seen_messages.copy()
        carried = 0
        first_new: Entry | None = None
        for message in content.input:
            key = fingerprint(message)
            if available[key] > 0:
                available[key] -= 1
                carried += 1
                continue
            self.seen_messages[key] += 1
            if message.role in _SYSTEM_ROLES:  # system text sent inside the history reads as instructions
                self.system_entry(span, message.parts, agent, turn)
                continue
            message = self.absorb_tool_results(message)
            if message is None:
                continue
            entry = self.emit_message(span, message, agent, turn, span.start_time_ns)
            first_new = first_new or entry
        if first_new is not None:
            first_new.carried = carried
        for message in content.output:
            if dedupe_output:
                self.deferred_outputs.append((span, message, agent))
                continue
            self.seen_messages[fingerprint(message)] += 1
            self.emit_message(span, message, agent, turn, span.end_time_ns)

    def system_entry(self, span: SpanRecord, parts: list[Part], agent: str | None, turn: int | None) -> None:
        """System instructions, shown once per agent until they change."""
        key = orjson.dumps([(p.kind.value, _normal(p.content)) for p in parts], default=str)
        if (agent, key) in self.seen_system:
            return
        self.seen_system.add((agent, key))
        self.add(Entry(EntryKind.SYSTEM, span.start_time_ns, agent=agent, span_id=span.span_id,
                       trace_id=span.trace_id, turn=turn, system=parts, title="system"))

    def emit_message(self, span: SpanRecord, message: Message, agent: str | None, turn: int | None,
                     time_ns: int) -> Entry:
        """A message entry, with each tool call it makes split out as a tool entry awaiting its result."""
        calls = [part for part in message.parts if part.kind is PartKind.TOOL_CALL]
        rest = [part for part in message.parts if part.kind is not PartKind.TOOL_CALL]
        first: Entry | None = None
        if rest or not calls:
            shown = Message(message.role, rest, name=message.name, finish_reason=message.finish_reason)
            first = self.add(Entry(EntryKind.MESSAGE, time_ns, agent=agent, span_id=span.span_id,
                                   trace_id=span.trace_id, turn=turn, message=shown, title=message.role))
        for part in calls:
            call = ToolCall(name=part.name or "tool", call_id=part.call_id, arguments=part.content)
            if part.call_id:
                self.calls_by_id.setdefault(part.call_id, call)
            self.pending_by_name.setdefault(call.name, []).append(call)
            entry = self.add(Entry(EntryKind.TOOL, time_ns, agent=agent, span_id=span.span_id,
                                   trace_id=span.trace_id, turn=turn, tool=call, title=call.name))
            first = first or entry
        assert first is not None
        return first

    def absorb_tool_results(self, message: Message) -> Message | None:
        """Attach tool results to their calls; return what is left of the message to show (None when nothing)."""
        left = []
        for part in message.parts:
            call = self.calls_by_id.get(part.call_id) if part.kind is PartKind.TOOL_RESULT and part.call_id else None
            if call is None:
                left.append(part)
                continue
            if call.result is NOT_RECORDED and part.recorded:
                call.result = part.content
            if call.status == "pending":
                call.status = "ok"
        if not left:
            return None
        return Message(message.role, left, name=message.name, finish_reason=message.finish_reason)

    def tool(self, span: SpanRecord) -> None:
        agent = self.agent_of(span)
        attributes = span.attributes
        name = span.tool_name or _str(attributes.get("tool.name")) or _tool_name_from_span_name(span.name)
        arguments = attributes.get(semconv.GEN_AI_TOOL_CALL_ARGUMENTS, attributes.get("input.value", NOT_RECORDED))
        result = attributes.get(semconv.GEN_AI_TOOL_CALL_RESULT, attributes.get("output.value", NOT_RECORDED))
        call = self.calls_by_id.get(span.tool_call_id) if span.tool_call_id else None
        if call is None:
            pending = [c for c in self.pending_by_name.get(name, []) if c.span_id is None]
            call = pending[0] if pending and not span.tool_call_id else None
        if call is not None and call.span_id is not None:
            # A second execute_tool span for the same call: a retry. The earlier attempt keeps its own entry (a
            # failed attempt stays visible with its error); the retry is shown as a call of its own.
            call = ToolCall(name=call.name, call_id=call.call_id, arguments=call.arguments, attempt=call.attempt + 1)
            self.calls_by_id[span.tool_call_id] = call
        created = call is None or call.attempt > 1
        if call is None:
            call = ToolCall(name=name, call_id=span.tool_call_id)
            if span.tool_call_id:
                self.calls_by_id[span.tool_call_id] = call
        call.span_id = span.span_id
        call.duration_ns = span.duration_ns
        if call.arguments is NOT_RECORDED and arguments is not NOT_RECORDED:
            call.arguments = parse_json(arguments)
        if result is not NOT_RECORDED:
            call.result = parse_json(result)
        if span.status_code == "ERROR":
            call.status, call.error = "error", span.status_message or span.error_type or "error"
        else:
            call.status = "ok"
        if created:
            self.add(Entry(EntryKind.TOOL, span.start_time_ns, agent=agent, span_id=span.span_id,
                           trace_id=span.trace_id, tool=call, title=name, status=span.status_code))
        handoff = multi_agent.handoff_of(semconv.OP_EXECUTE_TOOL, attributes, agent=agent, tool_name=name)
        if handoff is not None:
            self.handoff(span, handoff, span.end_time_ns)

    def handoff(self, span: SpanRecord, handoff: multi_agent.Handoff, time_ns: int,
                detail: str | None = None) -> None:
        """A hand-off entry: who passed control to whom, how (the transfer mode, when recorded) and through what."""
        source, target = handoff.source or "?", handoff.target or "?"
        details = [text for text in (handoff.via, _MODE_TEXT.get(handoff.mode or "", handoff.mode), detail) if text]
        self.add(Entry(EntryKind.HANDOFF, time_ns, agent=handoff.target or self.agent_of(span),
                       from_agent=handoff.source, span_id=span.span_id, trace_id=span.trace_id,
                       title=f"{source} → {target}", detail=" · ".join(details) or None, status=span.status_code))

    def agent(self, span: SpanRecord) -> None:
        agent = self.agent_of(span)
        parent = self.parent(span)
        delegated_by = self.agent_of(parent) if parent is not None else None
        delegated = bool(delegated_by and delegated_by != agent)
        from_agent = delegated_by if delegated else (self.last_agent if self.last_agent != agent else None)
        handoff = multi_agent.handoff_of(semconv.OP_INVOKE_AGENT, span.attributes, agent=agent)
        if handoff is not None:  # a remote agent called by another agent or a workflow (gen_ai.caller.*)
            self.handoff(span, handoff, span.start_time_ns)
            from_agent, delegated = handoff.source, handoff.mode != semconv.TRANSFER_MODE_PASS_CONTROL
        description = _str(span.attributes.get(semconv.GEN_AI_AGENT_DESCRIPTION))
        self.add(Entry(EntryKind.AGENT, span.start_time_ns, agent=agent, from_agent=from_agent,
                       span_id=span.span_id, trace_id=span.trace_id, title=agent or span.name,
                       detail=description, status=span.status_code, delegated=delegated))
        self.last_agent = agent
        content = span_content(span.attributes, span.events, span.logs)
        if not content.empty:
            self.content(span, content, agent, None, dedupe_output=True)
        if span.status_code == "ERROR":
            self.add(Entry(EntryKind.STEP, span.end_time_ns, agent=agent, span_id=span.span_id,
                           trace_id=span.trace_id, title=f"{agent or span.name} failed", status="ERROR",
                           detail=span.status_message or span.error_type))

    def step(self, span: SpanRecord, role: str) -> None:
        agent = self.agent_of(span)
        attributes = span.attributes
        operation = operation_of(span)
        if role == HANDOFF:
            handoff = multi_agent.handoff_of(operation, attributes, agent=agent)
            if handoff is None or handoff.target is None:  # the span does not say to whom: its name may
                handoff = multi_agent.Handoff(handoff.source if handoff else agent, None, via=span.name)
            self.handoff(span, handoff, span.start_time_ns, detail=_duration_text(span.duration_ns))
            return
        detail = _first_text(attributes, "gen_ai.task.description", "gen_ai.workflow.name", "input.value",
                             semconv.GEN_AI_DATA_SOURCE_ID)
        kind = EntryKind.PLAN if multi_agent.kind_of(operation) == multi_agent.PLAN else EntryKind.STEP
        self.add(Entry(kind, span.start_time_ns, agent=agent, span_id=span.span_id, trace_id=span.trace_id,
                       title=span.name, status=span.status_code, detail=detail))
        content = span_content(attributes, span.events, span.logs)
        if not content.empty:
            self.content(span, content, agent, None, dedupe_output=True)

    def evaluations(self, span: SpanRecord) -> None:
        for record in [*span.events, *span.logs]:
            if record.name != semconv.EVENT_EVALUATION_RESULT:
                continue
            attributes = dict(record.attributes)
            if isinstance(parse_json(record.body), dict):
                attributes.update(parse_json(record.body))
            name = _str(attributes.get(semconv.GEN_AI_EVALUATION_NAME)) or "evaluation"
            score = attributes.get(semconv.GEN_AI_EVALUATION_SCORE_VALUE)
            label = attributes.get(semconv.GEN_AI_EVALUATION_SCORE_LABEL)
            summary = " ".join(str(x) for x in (score, label) if x is not None)
            self.add(Entry(EntryKind.EVALUATION, record.time_ns or span.end_time_ns, agent=self.agent_of(span),
                           span_id=span.span_id, trace_id=span.trace_id, title=f"{name}: {summary}".strip(": "),
                           detail=_str(attributes.get(semconv.GEN_AI_EVALUATION_EXPLANATION))))


_MODE_TEXT = {semconv.TRANSFER_MODE_RETURN_TO_CALLER: "returns to the caller",
              semconv.TRANSFER_MODE_PASS_CONTROL: "passes control"}


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _openinference_model(span: SpanRecord) -> str | None:
    return _str(span.attributes.get("llm.model_name"))


def _first_text(attributes: dict[str, Any], *keys: str) -> str | None:
    for key in keys:
        if attributes.get(key) is not None:
            return str(attributes[key])
    return None


def _agent_name_from_span_name(name: str) -> str | None:
    head, _, rest = name.partition(" ")
    return rest or (None if head == semconv.OP_INVOKE_AGENT else name)


def _tool_name_from_span_name(name: str) -> str:
    head, _, rest = name.partition(" ")
    return rest.split(" ", 1)[0] if head == semconv.OP_EXECUTE_TOOL and rest else name


def _duration_text(duration_ns: int) -> str:
    return format_duration(duration_ns)


def build_transcript(key: str, kind: str, spans: Iterable[SpanRecord], *, conversation_id: str | None = None,
                     truncated_traces: bool = False) -> Transcript:
    """The transcript of these spans (any number of traces), in the order things happened."""
    spans = list(spans)
    trace_ids = list(dict.fromkeys(span.trace_id for span in sorted(spans, key=lambda s: s.start_time_ns)))
    transcript = Transcript(key=key, kind=kind, trace_ids=trace_ids, conversation_id=conversation_id,
                            truncated_traces=truncated_traces)
    _Builder(transcript, spans).run()
    return transcript
