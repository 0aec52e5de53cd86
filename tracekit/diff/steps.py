"""A run's steps: the GenAI spans of its traces in tree order (parents before children, siblings by start time).

A step is what a person reading an agent run counts: an agent invocation, a model call, a tool call, a hand-off
to another agent, or one of the multi-agent operations (plan, orchestration, state). Other spans (HTTP, database)
are left out unless the run has no GenAI span at all, when every span is a step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from tracekit import semconv
from tracekit.conversation.loader import resolve
from tracekit.store.reader import StoreReader

MAX_STEPS = 5_000  # a run longer than this is cut (the comparison says so)

_MODEL_OPERATIONS = semconv.INFERENCE_OPERATIONS | {semconv.OP_EMBEDDINGS}
# Microsoft's multi-agent operations and OpenTelemetry's plan/workflow, each shown as the kind of step it is.
_OTHER_KINDS = {
    semconv.OP_EXECUTE_TASK: "task", semconv.OP_AGENT_PLANNING: "plan", semconv.OP_PLAN: "plan",
    semconv.OP_AGENT_ORCHESTRATION: "orchestration", semconv.OP_AGENT_STATE: "state",
    semconv.OP_INVOKE_WORKFLOW: "workflow", semconv.OP_RETRIEVAL: "retrieval", semconv.OP_CREATE_AGENT: "agent",
}


@dataclass
class Step:
    """One step of a run. `key` is what alignment matches on: (kind, name)."""

    kind: str             # agent, model, tool, handoff, task, plan, orchestration, state, workflow, span
    name: str             # the agent, model, tool or hand-off target; for other steps the span name
    span_id: str
    trace_id: str
    depth: int
    start_ns: int
    duration_ns: int
    error: str | None     # error type or status message when the step failed
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    arguments: str | None = None   # tool arguments as recorded (content recording on)
    result: str | None = None      # tool result, or a model call's output messages
    attributes: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def key(self) -> tuple[str, str]:
        return (self.kind, self.name)

    @property
    def tokens(self) -> int | None:
        if self.input_tokens is None and self.output_tokens is None:
            return None
        return (self.input_tokens or 0) + (self.output_tokens or 0)

    def label(self) -> str:
        return f"{self.kind} {self.name}"


@dataclass
class Run:
    """The steps of one run, with what it was resolved from."""

    key: str
    kind: str                  # trace, conversation, response
    trace_ids: list[str]
    steps: list[Step]
    duration_ns: int           # first span start to last span end
    truncated: bool = False


def load_run(reader: StoreReader, key: str) -> Run:
    """Resolve `key` (trace, conversation or response id) and read its steps; ConversationNotFound if unknown."""
    resolution = resolve(reader, key)
    rows = _span_rows(reader, resolution.trace_ids)
    steps, truncated = _steps_in_tree_order(rows)
    start = min((row["start_time_ns"] for row in rows), default=0)
    end = max((row["end_time_ns"] for row in rows), default=0)
    return Run(key, resolution.kind, resolution.trace_ids, steps, end - start, truncated or resolution.truncated)


def _span_rows(reader: StoreReader, trace_ids: list[str]) -> list[dict[str, Any]]:
    columns = set(reader.sql("SELECT * FROM spans LIMIT 0").column_names)
    cost = "cost_usd" if "cost_usd" in columns else "NULL::DOUBLE AS cost_usd"
    # One row per span id even where a retried export stored a span twice.
    table = reader.sql(f"""
        SELECT trace_id, span_id, parent_span_id, name, operation_name, start_time_ns, end_time_ns, duration_ns,
               status_code, status_message, error_type, agent_name, tool_name, request_model, response_model,
               input_tokens, output_tokens, {cost}, attributes
        FROM spans WHERE list_contains($traces, trace_id)
        QUALIFY row_number() OVER (PARTITION BY trace_id, span_id ORDER BY ingest_seq) = 1
        ORDER BY start_time_ns, span_id
    """, {"traces": trace_ids})
    return table.to_pylist()


def _steps_in_tree_order(rows: list[dict[str, Any]]) -> tuple[list[Step], bool]:
    by_id = {(row["trace_id"], row["span_id"]): row for row in rows}
    children: dict[tuple[str, str] | None, list[dict[str, Any]]] = {}
    for row in rows:
        parent = (row["trace_id"], row["parent_span_id"]) if row["parent_span_id"] else None
        children.setdefault(parent if parent in by_id else None, []).append(row)
    genai_only = any(row["operation_name"] for row in rows)
    steps: list[Step] = []
    stack = [(row, 0) for row in reversed(children.get(None, []))]
    seen: set[tuple[str, str]] = set()
    while stack and len(steps) < MAX_STEPS:
        row, depth = stack.pop()
        ident = (row["trace_id"], row["span_id"])
        if ident in seen:
            continue
        seen.add(ident)
        step = _step(row, depth, genai_only)
        if step is not None:
            steps.append(step)
        child_depth = depth + 1 if step is not None else depth
        stack.extend((child, child_depth) for child in reversed(children.get(ident, [])))
    return steps, bool(stack)


def _step(row: dict[str, Any], depth: int, genai_only: bool) -> Step | None:
    operation = row["operation_name"]
    if genai_only and not operation:
        return None
    attributes = _attributes(row["attributes"])
    kind, name = _kind_and_name(row, operation, attributes)
    error = row["error_type"] or (row["status_message"] or "error" if row["status_code"] == "ERROR" else None)
    result = attributes.get(semconv.GEN_AI_TOOL_CALL_RESULT)
    if kind == "model":
        result = attributes.get(semconv.GEN_AI_OUTPUT_MESSAGES)
    return Step(kind=kind, name=name, span_id=row["span_id"], trace_id=row["trace_id"], depth=depth,
                start_ns=row["start_time_ns"], duration_ns=row["duration_ns"], error=error,
                input_tokens=row["input_tokens"], output_tokens=row["output_tokens"], cost_usd=row["cost_usd"],
                arguments=_text(attributes.get(semconv.GEN_AI_TOOL_CALL_ARGUMENTS)), result=_text(result),
                attributes=attributes)


def _kind_and_name(row: dict[str, Any], operation: str | None, attributes: dict[str, Any]) -> tuple[str, str]:
    target = attributes.get(semconv.GEN_AI_TRANSFER_TARGET_NAME)
    if operation == semconv.OP_EXECUTE_TOOL and target:
        return "handoff", str(target)
    if operation == semconv.OP_EXECUTE_TOOL:
        return "tool", row["tool_name"] or row["name"]
    short_name = row["name"].removeprefix(f"{operation} ") if operation else row["name"]
    if operation == semconv.OP_INVOKE_AGENT:
        return "agent", row["agent_name"] or short_name
    if operation in _MODEL_OPERATIONS:
        return "model", row["request_model"] or row["response_model"] or short_name
    if operation == semconv.OP_AGENT_TO_AGENT:
        # Microsoft's agent_to_agent_interaction span is named after the agent it hands to.
        return "handoff", short_name
    return _OTHER_KINDS.get(operation or "", operation or "span"), short_name


def _attributes(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        value = orjson.loads(raw or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    """A content value as comparable text (JSON values serialized with sorted keys)."""
    if value is None:
        return None
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("{", "["):
            try:
                return orjson.dumps(orjson.loads(stripped), option=orjson.OPT_SORT_KEYS).decode()
            except orjson.JSONDecodeError:
                return value
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS, default=str).decode()
