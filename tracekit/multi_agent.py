"""Microsoft's multi-agent operations and OpenTelemetry's, read as one vocabulary.

Microsoft Foundry documents five multi-agent operations (with Cisco Outshift): execute_task, agent_planning,
agent_to_agent_interaction, agent_orchestration (also spelled "agent orchestration") and agent.state.management.
OpenTelemetry's GenAI conventions (semantic-conventions-genai) model the same ideas otherwise: the `plan` operation,
hand-offs as `execute_tool` spans carrying `gen_ai.transfer.target.name` / `gen_ai.transfer.mode`, a remote
`invoke_agent` CLIENT span carrying `gen_ai.caller.*`, `invoke_workflow` (and, unreleased, `handle_conversation_turn`)
and the memory operations. `OPERATION_KINDS` is the one table that says which is which; the replay reads every span
through it, so a plan step or a hand-off looks the same whichever spelling recorded it (docs/conventions.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from tracekit import semconv

PLAN, HANDOFF, TASK, ORCHESTRATION, STATE = "plan", "handoff", "task", "orchestration", "state"

# Operation name -> what it is. Microsoft's names and OpenTelemetry's side by side.
OPERATION_KINDS: dict[str, str] = {
    semconv.OP_PLAN: PLAN,                            # OpenTelemetry (semantic-conventions-genai #97)
    semconv.OP_AGENT_PLANNING: PLAN,                  # Microsoft
    semconv.OP_AGENT_TO_AGENT: HANDOFF,               # Microsoft; OpenTelemetry: see `handoff_of`
    semconv.OP_AGENT_HANDOFF: HANDOFF,                # the OTel openai-agents-v2 processor
    semconv.OP_EXECUTE_TASK: TASK,                    # Microsoft; OpenTelemetry has no task span (a proposal)
    semconv.OP_AGENT_ORCHESTRATION: ORCHESTRATION,    # Microsoft
    semconv.OP_INVOKE_WORKFLOW: ORCHESTRATION,        # OpenTelemetry
    semconv.OP_HANDLE_CONVERSATION_TURN: ORCHESTRATION,  # OpenTelemetry, unreleased (#571)
    semconv.OP_AGENT_STATE: STATE,                    # Microsoft
    **{operation: STATE for operation in semconv.MEMORY_OPERATIONS},  # OpenTelemetry
}

KIND_LABELS = {PLAN: "plan", HANDOFF: "hand-off", TASK: "task", ORCHESTRATION: "orchestration", STATE: "state"}

# The operations whose spans can record a hand-off.
HANDOFF_OPERATIONS = frozenset({semconv.OP_EXECUTE_TOOL, semconv.OP_INVOKE_AGENT} | {
    operation for operation, kind in OPERATION_KINDS.items() if kind == HANDOFF})
_CALLER_TYPES = frozenset({"agent", "workflow"})
_TRANSFER_TOOL_PREFIX = "transfer_to_"  # the OpenAI Agents SDK's and Swarm's name for a hand-off tool


def kind_of(operation: str | None) -> str | None:
    """PLAN, HANDOFF, TASK, ORCHESTRATION, STATE, or None for other operations."""
    return OPERATION_KINDS.get(operation) if operation else None


@dataclass(frozen=True)
class Handoff:
    """Control passing from one agent to another, however it was recorded."""

    source: str | None
    target: str | None
    mode: str | None = None  # return_to_caller, pass_control (only when the span says so)
    via: str = ""            # what recorded it, for the replay: "transfer_to_x", "caller", the operation name


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def handoff_of(operation: str | None, attributes: Mapping[str, Any], *, agent: str | None = None,
               tool_name: str | None = None) -> Handoff | None:
    """The hand-off a span records, or None.

    - `execute_tool` with `gen_ai.transfer.target.name` (OpenTelemetry's agent-as-tool refinement; the source is
      the agent running the tool), or a `transfer_to_<agent>` tool;
    - `invoke_agent` with `gen_ai.caller.name` of caller type agent or workflow (OpenTelemetry puts it on the
      remote agent's CLIENT span), or Agent 365's `gen_ai.caller.agent.name`: the caller hands off to the invoked
      agent (a caller of another type, a person, is not a hand-off);
    - Microsoft's `agent_to_agent_interaction` and openai-agents' `agent_handoff` spans.
    `agent` is the agent the span runs under (its lane).
    """
    if operation not in HANDOFF_OPERATIONS:
        return None  # most spans: model calls, steps
    target = _text(attributes.get(semconv.GEN_AI_TRANSFER_TARGET_NAME))
    mode = _text(attributes.get(semconv.GEN_AI_TRANSFER_MODE))
    source = _text(attributes.get(semconv.GEN_AI_TRANSFER_SOURCE_NAME))
    if operation == semconv.OP_EXECUTE_TOOL:
        name = tool_name or _text(attributes.get(semconv.GEN_AI_TOOL_NAME)) or ""
        if target is None and name.startswith(_TRANSFER_TOOL_PREFIX):
            target = name[len(_TRANSFER_TOOL_PREFIX):] or None
        if target is None:
            return None
        return Handoff(source or _text(attributes.get(semconv.GEN_AI_AGENT_NAME)) or agent, target, mode,
                       via=f"transfer via {name or 'a tool'}")
    if operation == semconv.OP_INVOKE_AGENT:
        caller_type = _text(attributes.get(semconv.GEN_AI_CALLER_TYPE))
        caller = _text(attributes.get(semconv.GEN_AI_CALLER_AGENT_NAME))
        if caller is None and caller_type in _CALLER_TYPES:
            caller = _text(attributes.get(semconv.GEN_AI_CALLER_NAME))
        if caller is None:
            return None
        return Handoff(caller, _text(attributes.get(semconv.GEN_AI_AGENT_NAME)) or agent, mode,
                       via=f"remote call from {caller_type or 'agent'} {caller}")
    if kind_of(operation) == HANDOFF:  # always, given HANDOFF_OPERATIONS
        source = _text(attributes.get(semconv.GEN_AI_HANDOFF_FROM_AGENT)) or source or agent
        target = _text(attributes.get(semconv.GEN_AI_HANDOFF_TO_AGENT)) or target
        return Handoff(source, target, mode, via=operation or "")
    return None
