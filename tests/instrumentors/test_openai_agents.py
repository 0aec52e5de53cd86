"""The real OpenAI Agents SDK (Runner, agents, handoffs, function tools) with a fake Model: no network."""

from __future__ import annotations

import json
from typing import Any

import pytest
from agents import Agent, ModelResponse, Runner, function_tool, generation_span, trace
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage, ResponseOutputText
from opentelemetry.trace import SpanKind, StatusCode

from tracekit.instrumentors._common import inference_recorded_by
from tracekit.instrumentors.openai_agents import OpenAIAgentsInstrumentor

PRICE_RESULT = "EUR 129 on flight KX-991"


@function_tool
def get_price(city: str) -> str:
    """The cheapest flight to a city."""
    return PRICE_RESULT


@function_tool
def failing_lookup(code: str) -> str:
    """A tool whose backend is down."""
    raise RuntimeError("backend down")


def _call(name: str, arguments: dict[str, Any], call_id: str) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(arguments=json.dumps(arguments), call_id=call_id, name=name,
                                    type="function_call", id=f"fc_{call_id}", status="completed")


def _text(text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(id="msg_1", role="assistant", status="completed", type="message",
                                 content=[ResponseOutputText(annotations=[], text=text, type="output_text")])


class ScriptedModel(Model):
    """Answers with a fixed script of outputs and reports each call as a generation span, as a third-party
    model integration does; also records whether the OpenAI SDK instrumentor would have been silenced."""

    def __init__(self, name: str, script: list[list[Any]]) -> None:
        self.name = name
        self.script = script
        self.silenced: list[str | None] = []

    async def get_response(self, system_instructions, input, model_settings, tools, output_schema, handoffs,
                           tracing, *, previous_response_id=None, conversation_id=None, prompt=None) -> ModelResponse:
        output = self.script.pop(0)
        with generation_span(input=[{"role": "user", "content": input if isinstance(input, str) else "..."}],
                             model=self.name, model_config={"temperature": 0.1}) as span:
            self.silenced.append(inference_recorded_by.get())
            span.span_data.output = [{"role": "assistant", "content": getattr(output[0], "content", None) and
                                      output[0].content[0].text}] if isinstance(output[0], ResponseOutputMessage) \
                else [{"role": "assistant", "tool_calls": [{"id": o.call_id, "type": "function",
                                                            "function": {"name": o.name, "arguments": o.arguments}}
                                                           for o in output]}]
            span.span_data.usage = {"input_tokens": 20, "output_tokens": 5}
        return ModelResponse(output=output, usage=Usage(requests=1, input_tokens=20, output_tokens=5, total_tokens=25),
                             response_id=f"resp_{len(self.script)}")

    def stream_response(self, *args: Any, **kwargs: Any):  # pragma: no cover - not used here
        raise NotImplementedError


@pytest.fixture
def instrumented(telemetry):
    instrumentor = OpenAIAgentsInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider,
                            exclusive=True)
    yield telemetry
    instrumentor.uninstrument()


async def test_handoff_tool_and_model_spans(instrumented, content_on) -> None:
    booking_model = ScriptedModel("gpt-4o-mini", [[_call("get_price", {"city": "Athens"}, "call_p1")],
                                                  [_text("The fare is EUR 129.")]])
    booking = Agent(name="booking_agent", instructions="Book flights.", tools=[get_price], model=booking_model)
    triage_model = ScriptedModel("gpt-4o", [[_call("transfer_to_booking_agent", {}, "call_h1")]])
    triage = Agent(name="triage_agent", instructions="Route requests.", handoffs=[booking], model=triage_model)

    with trace("trip desk", group_id="conv-agents-1"):
        result = await Runner.run(triage, "Fly me to Athens")
    assert result.final_output == "The fare is EUR 129."

    tel = instrumented
    root = tel.span("invoke_workflow trip desk")
    triage_span = tel.span("invoke_agent triage_agent")
    booking_span = tel.span("invoke_agent booking_agent")
    handoff = tel.span("agent_to_agent_interaction booking_agent")
    tool = tel.span("execute_tool get_price")
    chats = [s for s in tel.spans if s.name.startswith("chat ")]
    assert root.parent is None
    assert triage_span.parent.span_id == root.context.span_id
    assert booking_span.parent.span_id == root.context.span_id
    assert handoff.parent.span_id == triage_span.context.span_id
    assert tool.parent.span_id == booking_span.context.span_id
    assert sorted(s.name for s in chats) == ["chat gpt-4o", "chat gpt-4o-mini", "chat gpt-4o-mini"]
    for chat in chats:
        assert chat.kind is SpanKind.CLIENT
        assert chat.parent.span_id in (triage_span.context.span_id, booking_span.context.span_id)
        assert chat.attributes["gen_ai.usage.input_tokens"] == 20
    assert {s.attributes.get("gen_ai.conversation.id") for s in tel.spans} == {"conv-agents-1"}
    assert {s.context.trace_id for s in tel.spans} == {root.context.trace_id}

    assert dict(handoff.attributes) == {
        "gen_ai.operation.name": "agent_to_agent_interaction", "gen_ai.agent.name": "triage_agent",
        "gen_ai.conversation.id": "conv-agents-1", "gen_ai.transfer.target.name": "booking_agent",
        "gen_ai.transfer.source.name": "triage_agent"}
    assert dict(tool.attributes) == {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_price", "gen_ai.tool.type": "function",
        "gen_ai.agent.name": "booking_agent", "gen_ai.conversation.id": "conv-agents-1",
        "gen_ai.tool.call.arguments": json.dumps({"city": "Athens"}), "gen_ai.tool.call.result": PRICE_RESULT}
    assert json.loads(booking_span.attributes["gen_ai.tool.definitions"]) == [{"type": "function", "name": "get_price"}]
    first_booking_chat = min((c for c in chats if c.name == "chat gpt-4o-mini"), key=lambda s: s.start_time)
    assert json.loads(first_booking_chat.attributes["gen_ai.output.messages"]) == [{
        "role": "assistant", "finish_reason": "tool_call",
        "parts": [{"type": "tool_call", "id": "call_p1", "name": "get_price", "arguments": {"city": "Athens"}}]}]
    assert booking_model.silenced == ["openai_agents", "openai_agents"]
    assert inference_recorded_by.get() is None
    durations = tel.metrics()["gen_ai.client.operation.duration"]
    assert sorted((p.attributes["gen_ai.request.model"], p.count) for p in durations) == [
        ("gpt-4o", 1), ("gpt-4o-mini", 2)]


async def test_failed_tool_and_content_off(instrumented, content_off) -> None:
    model = ScriptedModel("gpt-4o-mini", [[_call("failing_lookup", {"code": "SECRET-CODE-77"}, "call_f1")],
                                          [_text("Sorry, the lookup failed.")]])
    agent = Agent(name="support_agent", tools=[failing_lookup], model=model)
    await Runner.run(agent, "look up SECRET-CODE-77")
    tool = instrumented.span("execute_tool failing_lookup")
    assert tool.status.status_code is StatusCode.ERROR
    assert tool.attributes["error.type"] == "_OTHER"
    exported = instrumented.everything_exported()
    assert "SECRET-CODE-77" not in exported and "Sorry, the lookup failed" not in exported
    assert instrumented.span("invoke_workflow Agent workflow").parent is None


async def test_uninstrument_silences_the_processor(telemetry, content_off) -> None:
    instrumentor = OpenAIAgentsInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, exclusive=True)
    instrumentor.uninstrument()
    model = ScriptedModel("gpt-4o-mini", [[_text("hi")]])
    await Runner.run(Agent(name="quiet", model=model), "hello")
    assert telemetry.spans == []


async def test_real_openai_responses_model_against_a_local_server_one_span_per_call(telemetry, content_on) -> None:
    """The Agents SDK's own OpenAIResponsesModel talking to the local stand-in, with the OpenAI SDK instrumentor on
    too: every model call is one `chat` span (the Agents SDK's response span), never two."""
    from agents import OpenAIResponsesModel
    from openai import AsyncOpenAI

    from tracekit.instrumentors.openai import OpenAIInstrumentor

    from .fake_openai import FakeOpenAI, load_exchanges

    ((_, tool_call_response),) = load_exchanges("responses_tool_call.json")
    ((_, stream),) = load_exchanges("responses_streaming.json")
    final = next(json.loads(line[len("data: "):])["response"] for line in stream.body.splitlines()
                 if line.startswith("data: ") and '"response.completed"' in line)

    @function_tool
    def get_current_weather(location: str) -> str:
        """Get the current weather in a given location."""
        return "rainy, 57 F"

    agents_instrumentor = OpenAIAgentsInstrumentor()
    openai_instrumentor = OpenAIInstrumentor()
    agents_instrumentor.instrument(tracer_provider=telemetry.tracer_provider, exclusive=True)
    openai_instrumentor.instrument(tracer_provider=telemetry.tracer_provider)
    try:
        with FakeOpenAI() as server:
            server.enqueue(tool_call_response)
            server.enqueue(final)
            client = AsyncOpenAI(api_key="test-key", base_url=server.base_url, max_retries=0)
            agent = Agent(name="weather_agent", tools=[get_current_weather],
                          model=OpenAIResponsesModel(model="gpt-4o-mini", openai_client=client))
            result = await Runner.run(agent, "What's the weather in Lisbon right now?")
            assert [path for path, _ in server.requests] == ["/v1/responses", "/v1/responses"]
    finally:
        openai_instrumentor.uninstrument()
        agents_instrumentor.uninstrument()
    assert result.final_output == "Ready when you are!"
    chats = sorted((s for s in telemetry.spans if s.name.startswith("chat ")), key=lambda s: s.start_time)
    assert [s.name for s in chats] == ["chat gpt-4o-mini", "chat gpt-4o-mini"]
    assert [s.instrumentation_scope.name for s in chats] == ["tracekit.instrumentors.openai_agents"] * 2
    # What only the (silenced) OpenAI SDK instrumentor saw of the request is merged onto the Agents SDK's span.
    assert chats[0].attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert chats[0].attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert chats[0].attributes["server.address"] == "127.0.0.1"
    assert chats[0].attributes["openai.api.type"] == "responses"
    assert chats[0].attributes["gen_ai.response.id"] == json.loads(tool_call_response.body)["id"]
    assert chats[0].attributes["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert chats[1].attributes["gen_ai.response.id"] == final["id"]
    tool = telemetry.span("execute_tool get_current_weather")
    assert tool.attributes["gen_ai.tool.call.result"] == "rainy, 57 F"
    assert tool.parent.span_id == telemetry.span("invoke_agent weather_agent").context.span_id
