"""Spans in the newest GenAI conventions' shapes (semantic-conventions-genai), and the same multi-agent run in
Microsoft's spelling, sent with the real OpenTelemetry SDK through `scenarios.Telemetry`.

- `latest_run`: an `invoke_agent triage` whose `plan triage` span has the model call that wrote the plan as its child
  (streamed: `gen_ai.request.stream`, `gen_ai.response.time_to_first_chunk`; reasoning and cache read/write tokens),
  then an `execute_tool transfer_to_booker booker` transfer (`gen_ai.transfer.target.name`, mode pass_control) and the
  booker agent; then a workflow calling a remote agent: an `invoke_agent weather-agent` CLIENT span with
  `gen_ai.caller.type` / `gen_ai.caller.name`.
- `microsoft_run`: the same plan and hand-off as Foundry documents them: `agent_planning` and
  `agent_to_agent_interaction` spans.
- `OTHER_NAMES`: one model call per instrumentation that names the same facts otherwise.
"""

from __future__ import annotations

import json
from typing import Any

from opentelemetry.trace import SpanKind

from tests.conversation.scenarios import BASE_NS, MS, Telemetry

LATEST = "conv-latest-semconv"
MICROSOFT = "conv-microsoft-multi-agent"
PLAN_TEXT = "1) booker books the flight 2) weather-agent checks the forecast"
ANSWER = "Booked TK 1752; it will be sunny."


def _messages(role: str, text: str) -> str:
    return json.dumps([{"role": role, "parts": [{"type": "text", "content": text}]}])


def _chat(t: Telemetry, start_ms: float, parent: Any, conversation: str, output: str, **extra: Any) -> None:
    t.span("chat o3", start_ms, start_ms + 900, {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "o3",
        "gen_ai.conversation.id": conversation, "gen_ai.input.messages": _messages("user", "Fly me to Lisbon"),
        "gen_ai.output.messages": _messages("assistant", output), **extra}, parent, kind=SpanKind.CLIENT)


STREAMED_PLAN_CALL = {
    "gen_ai.request.stream": True, "gen_ai.response.time_to_first_chunk": 0.42,
    "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 900,
    "gen_ai.usage.reasoning.output_tokens": 700, "gen_ai.usage.cache_read.input_tokens": 1000,
    "gen_ai.usage.cache_write.input_tokens": 150,
}


def latest_run(t: Telemetry, **_options: Any) -> None:
    agent = {"gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": LATEST}
    triage = t.open_span("invoke_agent triage", 20000, {**agent, "gen_ai.agent.name": "triage"})
    plan = t.open_span("plan triage", 20010, {"gen_ai.operation.name": "plan", "gen_ai.agent.name": "triage",
                                              "gen_ai.conversation.id": LATEST}, triage)
    _chat(t, 20020, plan, LATEST, PLAN_TEXT, **STREAMED_PLAN_CALL)
    plan.end(end_time=t_ns(20950))
    t.span("execute_tool transfer_to_booker booker", 21000, 21010, {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "transfer_to_booker",
        "gen_ai.agent.name": "triage", "gen_ai.transfer.mode": "pass_control",
        "gen_ai.transfer.target.name": "booker", "gen_ai.conversation.id": LATEST}, triage)
    triage.end(end_time=t_ns(21020))
    booker = t.open_span("invoke_agent booker", 21030, {**agent, "gen_ai.agent.name": "booker"})
    _chat(t, 21040, booker, LATEST, ANSWER, **{"gen_ai.usage.input_tokens": 300, "gen_ai.usage.output_tokens": 20})
    booker.end(end_time=t_ns(22000))
    workflow = t.open_span("invoke_workflow weather_workflow", 22100, {
        "gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": "weather_workflow",
        "gen_ai.conversation.id": LATEST})
    t.span("invoke_agent weather-agent", 22110, 22500, {
        **agent, "gen_ai.agent.name": "weather-agent", "gen_ai.caller.type": "workflow",
        "gen_ai.caller.name": "weather_workflow"}, workflow, kind=SpanKind.CLIENT)
    workflow.end(end_time=t_ns(22600))
    t.span("execute_tool transfer_to_billing billing", 22700, 22710, {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "transfer_to_billing",
        "gen_ai.agent.name": "booker", "gen_ai.transfer.mode": "return_to_caller",
        "gen_ai.transfer.target.name": "billing", "gen_ai.conversation.id": LATEST}, error="AgentNotFound")


def microsoft_run(t: Telemetry, **_options: Any) -> None:
    agent = {"gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": MICROSOFT}
    triage = t.open_span("invoke_agent triage", 23000, {**agent, "gen_ai.agent.name": "triage"})
    plan = t.open_span("agent_planning plan", 23010, {"gen_ai.operation.name": "agent_planning",
                                                      "gen_ai.conversation.id": MICROSOFT}, triage)
    _chat(t, 23020, plan, MICROSOFT, PLAN_TEXT)
    plan.end(end_time=t_ns(23950))
    handoff = t.open_span("agent_to_agent_interaction booker", 24000, {
        "gen_ai.operation.name": "agent_to_agent_interaction", "gen_ai.transfer.target.name": "booker",
        "gen_ai.conversation.id": MICROSOFT}, triage)
    booker = t.open_span("invoke_agent booker", 24010, {**agent, "gen_ai.agent.name": "booker"}, handoff)
    _chat(t, 24020, booker, MICROSOFT, ANSWER)
    booker.end(end_time=t_ns(25000))
    handoff.end(end_time=t_ns(25010))
    triage.end(end_time=t_ns(25020))


def t_ns(ms: float) -> int:
    return BASE_NS + int(ms * MS)


# One streamed model call per naming: (conversation id, attributes) -> expected
# (reasoning, cache read, cache write, stream, time to first chunk in seconds). Each call lasts 2 s.
OTHER_NAMES: dict[str, tuple[dict[str, Any], tuple[Any, ...]]] = {
    # semantic-conventions before the cache_write rename (#440)
    "conv-names-pre440": ({"gen_ai.usage.cache_creation.input_tokens": 40, "gen_ai.usage.cache_read.input_tokens": 60,
                           "gen_ai.request.stream": True, "gen_ai.response.time_to_first_chunk": 0.25},
                          (None, 60, 40, True, 0.25)),
    # OpenLLMetry's flat names
    "conv-names-openllmetry": ({"gen_ai.is_streaming": True, "gen_ai.usage.reasoning_tokens": 30,
                                "gen_ai.usage.cache_read_input_tokens": 20,
                                "gen_ai.usage.cache_creation_input_tokens": 10},
                               (30, 20, 10, True, None)),
    # Strands: TTFT in milliseconds under OpenLIT's name, cache write under its own flat name
    "conv-names-strands": ({"gen_ai.server.time_to_first_token": 350, "gen_ai.usage.cache_write_input_tokens": 5},
                           (None, None, 5, None, 0.35)),
    # OpenLIT: the same name in seconds
    "conv-names-openlit": ({"gen_ai.server.time_to_first_token": 0.6}, (None, None, None, None, 0.6)),
    # the Vercel AI SDK
    "conv-names-vercel": ({"ai.response.msToFirstChunk": 120.0}, (None, None, None, None, 0.12)),
    # OpenInference's token details
    "conv-names-openinference": ({"llm.token_count.completion_details.reasoning": 12,
                                  "llm.token_count.prompt_details.cache_read": 8,
                                  "llm.token_count.prompt_details.cache_write": 4},
                                 (12, 8, 4, None, None)),
    # OpenInference's request parameters say whether the call streamed
    "conv-names-openinference-stream": ({"llm.invocation_parameters": '{"model": "gpt-4o", "stream": true}'},
                                        (None, None, None, True, None)),
}


def other_names(t: Telemetry, **_options: Any) -> None:
    for index, (conversation, (attributes, _expected)) in enumerate(OTHER_NAMES.items()):
        start = 30000 + index * 3000
        t.span("chat gpt-4o", start, start + 2000, {
            "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o", "gen_ai.conversation.id": conversation,
            "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 50, **attributes}, kind=SpanKind.CLIENT)
