"""The transcript model: what a conversation looked like, independent of how the spans recorded it.

Every content shape the read side understands (OTel GenAI JSON attributes, span events, log records, OpenInference,
legacy indexed attributes) is parsed into these few types, so the replay and the TUI render one model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from tracekit.call_metrics import CallMetrics


class _NotRecorded:
    """Marker for content the instrumentation did not record (content recording was off)."""

    _instance: "_NotRecorded | None" = None

    def __new__(cls) -> "_NotRecorded":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOT_RECORDED"

    def __bool__(self) -> bool:
        return False


NOT_RECORDED: Any = _NotRecorded()


class PartKind(str, Enum):
    """What one piece of a message is."""

    TEXT = "text"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_call_response"
    REASONING = "reasoning"
    MEDIA = "media"  # blob, file, uri parts: shown by type and reference, never decoded
    OTHER = "other"


@dataclass
class Part:
    """One part of a message. `content` is NOT_RECORDED when only the structure was captured."""

    kind: PartKind
    content: Any = NOT_RECORDED
    call_id: str | None = None
    name: str | None = None  # tool name for tool calls; the original part type for OTHER / MEDIA

    @property
    def recorded(self) -> bool:
        return self.content is not NOT_RECORDED


@dataclass
class Message:
    """A chat message: a role and its parts, as the model saw or produced it."""

    role: str
    parts: list[Part] = field(default_factory=list)
    name: str | None = None
    finish_reason: str | None = None

    @property
    def recorded(self) -> bool:
        return all(part.recorded for part in self.parts) if self.parts else False


@dataclass
class SpanContent:
    """The messages one span carries, whichever shape they were recorded in."""

    system: list[Part] | None = None
    input: list[Message] = field(default_factory=list)
    output: list[Message] = field(default_factory=list)
    source: str | None = None  # which shape the content came from, for the details view

    @property
    def empty(self) -> bool:
        return self.system is None and not self.input and not self.output


class EntryKind(str, Enum):
    """The kinds of lines in a transcript."""

    REQUEST = "request"  # a trace starts: one request of the conversation
    AGENT = "agent"  # an agent starts working (invoke_agent); hand-offs carry `from_agent`
    HANDOFF = "handoff"  # control passing between agents, however recorded (tracekit.multi_agent.handoff_of)
    STEP = "step"  # multi-agent step: execute_task, orchestration, state management, workflow, memory
    PLAN = "plan"  # a plan step: OpenTelemetry's `plan`, Microsoft's `agent_planning` (tracekit.multi_agent)
    SYSTEM = "system"  # system instructions
    MESSAGE = "message"  # a user / assistant / other message
    TOOL = "tool"  # a tool call with its result
    MODEL_CALL = "model_call"  # an inference whose content was not recorded
    EVALUATION = "evaluation"  # a gen_ai.evaluation.result


@dataclass
class ToolCall:
    """A tool call paired with its result (by call id, or by the execute_tool span that ran it)."""

    name: str
    call_id: str | None = None
    arguments: Any = NOT_RECORDED
    result: Any = NOT_RECORDED
    status: str = "pending"  # ok, error, pending (no result seen)
    error: str | None = None
    span_id: str | None = None
    duration_ns: int | None = None
    attempt: int = 1  # 2 and up: the same call (same call id) run again by another execute_tool span


@dataclass
class Entry:
    """One line of the transcript, in the order things happened."""

    kind: EntryKind
    time_ns: int
    agent: str | None = None
    span_id: str | None = None
    trace_id: str | None = None
    turn: int | None = None
    message: Message | None = None
    tool: ToolCall | None = None
    system: list[Part] | None = None
    title: str = ""
    detail: str | None = None
    from_agent: str | None = None
    delegated: bool = False  # for AGENT entries: started by `from_agent` (nested), rather than taking over from it
    carried: int = 0  # for MESSAGE entries of a new input: how many earlier messages were resent as context
    status: str | None = None


@dataclass
class Turn:
    """One model call: the unit you step through, with its tokens and latency."""

    index: int
    span_id: str
    trace_id: str
    start_ns: int
    duration_ns: int
    agent: str | None = None
    model: str | None = None
    operation: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    status: str = "UNSET"
    response_id: str | None = None
    content_recorded: bool = True
    cost_usd: float | None = None  # None: no known price (tracekit/cost.py)
    reasoning_tokens: int | None = None  # gen_ai.usage.reasoning.output_tokens, part of output_tokens
    time_to_first_chunk_s: float | None = None  # gen_ai.response.time_to_first_chunk (streaming)
    cache_read_tokens: int | None = None  # gen_ai.usage.cache_read.input_tokens, part of input_tokens
    cache_write_tokens: int | None = None  # gen_ai.usage.cache_write.input_tokens, part of input_tokens
    stream: bool | None = None  # gen_ai.request.stream

    @property
    def metrics(self) -> CallMetrics:
        """The call's tokens and streaming, as span details show them too (tracekit.call_metrics)."""
        return CallMetrics(self.input_tokens, self.output_tokens, self.cache_read_tokens, self.cache_write_tokens,
                           self.reasoning_tokens, self.stream, self.time_to_first_chunk_s)


@dataclass
class Transcript:
    """A conversation (or one trace) as an ordered list of entries, its turns and the agents that took part."""

    key: str
    kind: str  # conversation, response, trace
    trace_ids: list[str]
    conversation_id: str | None = None
    entries: list[Entry] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)
    agents: list[str] = field(default_factory=list)
    content_recorded: bool = False
    truncated_traces: bool = False
    loops: list[str] = field(default_factory=list)  # agents going in circles (tracekit.loops), as messages

    @property
    def input_tokens(self) -> int:
        return sum(turn.input_tokens or 0 for turn in self.turns)

    @property
    def output_tokens(self) -> int:
        return sum(turn.output_tokens or 0 for turn in self.turns)

    @property
    def cost_usd(self) -> float | None:
        """What the priced model calls cost; None when none has a known price."""
        costs = [turn.cost_usd for turn in self.turns if turn.cost_usd is not None]
        return sum(costs) if costs else None

    @property
    def unpriced_turns(self) -> int:
        return sum(1 for turn in self.turns if turn.cost_usd is None and (turn.input_tokens or turn.output_tokens))

    def cost_by_agent(self) -> dict[str, float]:
        """Priced model calls' cost per agent (calls outside any agent under "")."""
        totals: dict[str, float] = {}
        for turn in self.turns:
            if turn.cost_usd is not None:
                totals[turn.agent or ""] = totals.get(turn.agent or "", 0.0) + turn.cost_usd
        return totals

    @property
    def model_time_ns(self) -> int:
        return sum(turn.duration_ns for turn in self.turns)
