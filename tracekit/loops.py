"""Agents going in circles, found in one trace's spans.

Two patterns, each flagged once it repeats `threshold` times (default 3, `--loop-threshold` where shown):
- repeated tool call: one agent calls the same tool with the same arguments again and again (arguments compared as
  JSON with sorted keys; without recorded arguments, the tool name alone would flag every legitimate retry, so
  calls whose arguments were not recorded are not counted);
- ping-pong hand-off: two agents hand control back and forth (A→B, B→A, ...) with no tool result and no model
  answer in between. Hand-offs are what the replay shows as hand-offs (`tracekit.multi_agent.handoff_of`: transfer
  tools, agent_to_agent_interaction and agent_handoff spans, a remote invoke_agent with `gen_ai.caller.*`), or one
  agent's invoke_agent span starting under another's.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import orjson

from tracekit import multi_agent, semconv

DEFAULT_THRESHOLD = 3
THRESHOLD_ENV = "TRACEKIT_LOOP_THRESHOLD"  # what the TUI and the replay use; `tracekit lint --loop-threshold` too
HANDOFF_OPERATIONS = multi_agent.HANDOFF_OPERATIONS  # Microsoft's and OpenTelemetry's spellings


def configured_threshold() -> int:
    """TRACEKIT_LOOP_THRESHOLD when set to a number of 2 or more, else 3."""
    value = os.environ.get(THRESHOLD_ENV, "")
    return int(value) if value.isdigit() and int(value) >= 2 else DEFAULT_THRESHOLD


@dataclass(frozen=True)
class Loop:
    kind: str               # "repeated-tool-call" or "handoff-ping-pong"
    trace_id: str
    count: int
    agents: tuple[str, ...]
    detail: str             # the tool and its arguments, or the two agents
    span_ids: tuple[str, ...]

    @property
    def message(self) -> str:
        if self.kind == "repeated-tool-call":
            who = self.agents[0] if self.agents and self.agents[0] else "an agent"
            return f"{who} called {self.detail} {self.count} times with the same arguments"
        return f"{' and '.join(self.agents)} handed off back and forth {self.count} times with no result between"


@dataclass(frozen=True)
class LoopSpan:
    """What loop detection needs of a span."""

    span_id: str
    parent_span_id: str | None
    start_ns: int
    operation: str | None
    agent: str | None
    tool: str | None
    attributes: Mapping[str, Any]


def _arguments_key(value: Any) -> str | None:
    """The arguments as one comparable text: JSON re-serialized with sorted keys, other text as it is."""
    if value is None:
        return None
    if isinstance(value, str):
        with contextlib.suppress(orjson.JSONDecodeError):
            value = orjson.loads(value)
    return value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def find_loops(trace_id: str, spans: Iterable[LoopSpan], threshold: int = DEFAULT_THRESHOLD) -> list[Loop]:
    ordered = sorted(spans, key=lambda span: (span.start_ns, span.span_id))
    return _repeated_tool_calls(trace_id, ordered, threshold) + _ping_pong(trace_id, ordered, threshold)


def _repeated_tool_calls(trace_id: str, spans: list[LoopSpan], threshold: int) -> list[Loop]:
    calls: dict[tuple[str, str, str], list[str]] = {}
    for span in spans:
        if span.operation != semconv.OP_EXECUTE_TOOL or not span.tool:
            continue
        if multi_agent.handoff_of(span.operation, span.attributes, agent=span.agent, tool_name=span.tool):
            continue  # a hand-off, counted below
        arguments = _arguments_key(span.attributes.get(semconv.GEN_AI_TOOL_CALL_ARGUMENTS))
        if arguments is None:
            continue
        calls.setdefault((span.agent or "", span.tool, arguments), []).append(span.span_id)
    return [Loop("repeated-tool-call", trace_id, len(ids), (agent,), f"{tool}({arguments[:200]})", tuple(ids))
            for (agent, tool, arguments), ids in calls.items() if len(ids) >= threshold]


def _handoffs(spans: list[LoopSpan]) -> list[tuple[str, str, str] | str]:
    """The trace as a sequence of hand-offs (source, target, span id) and "progress" marks (tool result, answer)."""
    by_id = {span.span_id: span for span in spans}
    sequence: list[tuple[str, str, str] | str] = []
    for span in spans:
        handoff = multi_agent.handoff_of(span.operation, span.attributes, agent=span.agent, tool_name=span.tool)
        if handoff is not None and handoff.target:
            sequence.append((handoff.source or "", handoff.target, span.span_id))
        elif span.operation == semconv.OP_INVOKE_AGENT and span.agent:
            parent = by_id.get(span.parent_span_id or "")
            while parent is not None and not parent.agent:
                parent = by_id.get(parent.parent_span_id or "")
            if parent is not None and parent.agent and parent.agent != span.agent:
                if not sequence or not isinstance(sequence[-1], tuple) or sequence[-1][1] != span.agent:
                    sequence.append((parent.agent, span.agent, span.span_id))
        elif span.operation == semconv.OP_EXECUTE_TOOL and span.attributes.get(semconv.GEN_AI_TOOL_CALL_RESULT):
            sequence.append("progress")
        elif span.operation in semconv.INFERENCE_OPERATIONS and _answered(span.attributes):
            sequence.append("progress")
    return sequence


def _answered(attributes: Mapping[str, Any]) -> bool:
    """A model call that answered (finished with stop), rather than asking for a tool or a hand-off."""
    reasons = attributes.get(semconv.GEN_AI_RESPONSE_FINISH_REASONS)
    if isinstance(reasons, str):
        reasons = [reasons]
    return isinstance(reasons, list) and semconv.FINISH_STOP in reasons


def _ping_pong(trace_id: str, spans: list[LoopSpan], threshold: int) -> list[Loop]:
    loops: list[Loop] = []
    run: list[tuple[str, str, str]] = []

    def close() -> None:
        if len(run) >= threshold:
            pair = tuple(sorted({run[0][0], run[0][1]}))
            loops.append(Loop("handoff-ping-pong", trace_id, len(run), pair, " ↔ ".join(pair),
                              tuple(span_id for _, _, span_id in run)))

    for item in _handoffs(spans):
        if item == "progress" or not isinstance(item, tuple):
            close()
            run = []
            continue
        source, target, _ = item
        if run and (source, target) != (run[-1][1], run[-1][0]):
            close()
            run = []
        run.append(item)
    close()
    return loops


def loop_counts(loops: Iterable[Loop]) -> Counter[str]:
    return Counter(loop.kind for loop in loops)


_LOOP_SPANS_SQL = """
SELECT trace_id, span_id, parent_span_id, start_time_ns, operation_name, agent_name, tool_name,
       json_object(
           'gen_ai.tool.call.arguments', left(attributes->>'$."gen_ai.tool.call.arguments"', 4000),
           'gen_ai.tool.call.result', attributes->>'$."gen_ai.tool.call.result"' IS NOT NULL,
           'gen_ai.transfer.target.name', attributes->>'$."gen_ai.transfer.target.name"',
           'gen_ai.transfer.source.name', attributes->>'$."gen_ai.transfer.source.name"',
           -- read only on the spans that can carry them (most rows skip these extractions)
           'gen_ai.handoff.from_agent', CASE WHEN operation_name = 'agent_handoff'
                                             THEN attributes->>'$."gen_ai.handoff.from_agent"' END,
           'gen_ai.handoff.to_agent', CASE WHEN operation_name = 'agent_handoff'
                                           THEN attributes->>'$."gen_ai.handoff.to_agent"' END,
           'gen_ai.caller.type', CASE WHEN operation_name = 'invoke_agent'
                                      THEN attributes->>'$."gen_ai.caller.type"' END,
           'gen_ai.caller.name', CASE WHEN operation_name = 'invoke_agent'
                                      THEN attributes->>'$."gen_ai.caller.name"' END,
           'gen_ai.caller.agent.name', CASE WHEN operation_name = 'invoke_agent'
                                            THEN attributes->>'$."gen_ai.caller.agent.name"' END,
           'gen_ai.response.finish_reasons', attributes->'$."gen_ai.response.finish_reasons"'
       )::VARCHAR AS attributes
FROM spans
WHERE trace_id IN (SELECT unnest(?::VARCHAR[]))
  AND (operation_name IN ({operations}))
""".format(operations=", ".join(f"'{operation}'" for operation in sorted(
    HANDOFF_OPERATIONS | semconv.INFERENCE_OPERATIONS)))


def trace_loops(reader: Any, trace_ids: list[str], threshold: int = DEFAULT_THRESHOLD, *,
                since_ns: int | None = None) -> dict[str, list[Loop]]:
    """Loops in each of these traces (only traces with loops are keys), reading only what detection needs.

    `since_ns`, when no span of these traces starts earlier (the trace list knows each trace's first span), lets
    DuckDB skip the row groups of older spans instead of matching every span's trace id against the list.
    """
    if not trace_ids:
        return {}
    sql, params = _LOOP_SPANS_SQL, [trace_ids]
    if since_ns is not None:
        sql, params = f"{sql}  AND start_time_ns >= ?", [trace_ids, since_ns]
    spans: dict[str, dict[str, LoopSpan]] = {}
    for row in reader.sql(sql, params).to_pylist():
        attributes = {key: value for key, value in orjson.loads(row["attributes"]).items() if value is not None}
        reasons = attributes.get(semconv.GEN_AI_RESPONSE_FINISH_REASONS)
        if isinstance(reasons, str):
            try:
                attributes[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = orjson.loads(reasons)
            except orjson.JSONDecodeError:
                pass
        if attributes.get(semconv.GEN_AI_TOOL_CALL_RESULT) is False:
            attributes.pop(semconv.GEN_AI_TOOL_CALL_RESULT)
        spans.setdefault(row["trace_id"], {})[row["span_id"]] = LoopSpan(  # one row per span id (retried exports)
            row["span_id"], row["parent_span_id"], row["start_time_ns"], row["operation_name"], row["agent_name"],
            row["tool_name"], attributes)
    found = {trace_id: find_loops(trace_id, list(by_id.values()), threshold) for trace_id, by_id in spans.items()}
    return {trace_id: loops for trace_id, loops in found.items() if loops}
