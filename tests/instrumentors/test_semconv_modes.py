"""Both convention modes of every instrumentor: the default shape Application Insights reads, and the latest
semantic-conventions-genai names with OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental.

The real `openai` client streams from the local stand-in (a reasoning model's answer with cached and reasoning
tokens), real LangGraph graphs run on langchain-core's fake chat models (one streamed, with usage), the real Agents
SDK hands off between agents; attribute sets and metric names are checked exactly, and `tracekit lint --strict`
reads what the real collector stored.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any, Iterator

import openai
import pytest
from agents import Agent, ModelResponse, OpenAIResponsesModel, Runner, generation_span, trace
from agents.models.interface import Model
from agents.usage import Usage
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.outputs import ChatGenerationChunk
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

import tracekit
from tracekit import tracing
from tracekit.cli import main
from tracekit.instrumentors.langchain import LangChainInstrumentor
from tracekit.instrumentors.openai import OpenAIInstrumentor
from tracekit.instrumentors.openai_agents import OpenAIAgentsInstrumentor
from tracekit.tracing import using_tracer_provider

from .conftest import Telemetry
from .fake_openai import FakeOpenAI, load_exchanges
from .test_langchain import OpenAILikeFake, build_agent, build_planner
from .test_openai_agents import _call, _text, get_price

OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
# The default mode's metrics: the v1.37-v1.40 names Application Insights reads.
DEFAULT_INFERENCE_METRICS = {"gen_ai.client.operation.duration", "gen_ai.client.token.usage"}
LATEST_INFERENCE_METRICS = {
    "gen_ai.client.inference.duration", "gen_ai.client.inference.usage.input_tokens",
    "gen_ai.client.inference.usage.output_tokens", "gen_ai.client.inference.usage.cache_read.input_tokens",
    "gen_ai.client.inference.usage.cache_write.input_tokens", "gen_ai.client.inference.usage.reasoning.output_tokens",
    "gen_ai.client.inference.operation.input_tokens", "gen_ai.client.inference.operation.output_tokens"}


def _reparse() -> None:
    """Forget the parsed variable (opentelemetry-instrumentation reads it once per process, as tracekit does once
    per instrument()), so the next instrument() reads the environment the test set."""
    try:
        from opentelemetry.instrumentation._semconv import _OpenTelemetrySemanticConventionStability
    except ImportError:  # pragma: no cover - an opentelemetry-instrumentation without it
        pass
    else:
        _OpenTelemetrySemanticConventionStability._initialized = False
    tracing.read_latest_conventions()


@pytest.fixture(params=["default", "latest"])
def mode(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "latest":
        monkeypatch.setenv(OPT_IN, "http, gen_ai_latest_experimental")  # a list, as the contrib packages read it
    else:
        monkeypatch.delenv(OPT_IN, raising=False)
    _reparse()
    yield request.param
    monkeypatch.undo()
    _reparse()


def _with_system(mode: str, provider: str) -> dict[str, str]:
    if mode == "latest":
        return {"gen_ai.provider.name": provider}
    return {"gen_ai.provider.name": provider, "gen_ai.system": provider}


# --- the opt-in variable ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "latest"), [
    (None, False), ("", False), ("gen_ai_latest_experimental", True), ("http/dup, gen_ai_latest_experimental", True),
    ("database,gen_ai_latest_experimental ", True), ("gen_ai", False), ("GEN_AI_LATEST_EXPERIMENTAL", False)])
def test_opt_in_is_a_comma_separated_list_as_the_contrib_instrumentations_read_it(monkeypatch, value, latest) -> None:
    if value is None:
        monkeypatch.delenv(OPT_IN, raising=False)
    else:
        monkeypatch.setenv(OPT_IN, value)
    try:
        _reparse()
        assert tracing.latest_conventions() is latest
    finally:
        monkeypatch.undo()
        _reparse()


def test_the_variable_is_read_at_instrument_time_not_per_call(monkeypatch, telemetry, content_off) -> None:
    monkeypatch.setenv(OPT_IN, "gen_ai_latest_experimental")
    _reparse()
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    try:
        monkeypatch.delenv(OPT_IN)
        _reparse()  # even re-read: the instrumentor keeps what it was instrumented with
        with FakeOpenAI() as server:
            ((request, response),) = load_exchanges("chat_streaming_cached_reasoning.json")
            server.enqueue(response)
            client = openai.OpenAI(api_key="test-key", base_url=server.base_url, max_retries=0)
            list(client.chat.completions.create(**request))
    finally:
        instrumentor.uninstrument()
        _reparse()
    span = telemetry.span("chat o4-mini")
    assert "gen_ai.system" not in span.attributes
    assert set(telemetry.metrics()) >= {"gen_ai.client.inference.duration"}


# --- OpenAI SDK: a streamed answer with cached and reasoning tokens ---------------------------------------------------


@contextlib.contextmanager
def _openai_client(tel: Telemetry, exchanges: str) -> Iterator[tuple[openai.OpenAI, dict[str, Any], FakeOpenAI]]:
    """The instrumented `openai` client, the stand-in answering with `exchanges`' response, and its request."""
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=tel.tracer_provider, meter_provider=tel.meter_provider)
    try:
        with FakeOpenAI() as server:
            ((request, response),) = load_exchanges(exchanges)
            server.enqueue(response)
            yield openai.OpenAI(api_key="test-key", base_url=server.base_url, max_retries=0), request, server
    finally:
        instrumentor.uninstrument()


def test_openai_streamed_answer_with_cache_and_reasoning_tokens(mode, content_off) -> None:
    tel = Telemetry()
    with _openai_client(tel, "chat_streaming_cached_reasoning.json") as (client, request, server):
        started = time.perf_counter()
        text = "".join(chunk.choices[0].delta.content or "" for chunk in client.chat.completions.create(**request)
                       if chunk.choices)
        elapsed = time.perf_counter() - started
    assert text == "Lisbon's trams run until about 11 pm."

    span = tel.span("chat o4-mini")
    attributes = dict(span.attributes)
    first_chunk = attributes.pop("gen_ai.response.time_to_first_chunk")
    assert 0 < first_chunk <= elapsed
    for content_key in ("gen_ai.input.messages", "gen_ai.output.messages"):  # structure only: content is off
        assert "Lisbon" not in attributes.pop(content_key)
    assert attributes == {
        "gen_ai.operation.name": "chat", **_with_system(mode, "openai"), "openai.api.type": "chat_completions",
        "gen_ai.request.model": "o4-mini", "server.address": "127.0.0.1", "server.port": server.port,
        "gen_ai.request.stream": True, "gen_ai.request.reasoning.level": "low",
        "gen_ai.response.id": "chatcmpl-Cv7rT2mQw9LxN4bZk8JdH3sYf6Ua", "gen_ai.response.model": "o4-mini-2025-04-16",
        "openai.response.service_tier": "default", "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": 1310, "gen_ai.usage.output_tokens": 231,
        "gen_ai.usage.cache_read.input_tokens": 1152, "gen_ai.usage.reasoning.output_tokens": 192}

    metrics = tel.metrics()
    if mode == "default":
        assert set(metrics) == DEFAULT_INFERENCE_METRICS | {"gen_ai.client.operation.time_to_first_chunk"}
        (ttfc,) = metrics["gen_ai.client.operation.time_to_first_chunk"]
        assert sorted((p.attributes["gen_ai.token.type"], p.sum) for p in metrics["gen_ai.client.token.usage"]) == [
            ("input", 1310), ("output", 231)]
    else:
        # OpenAI reported no cache write: that counter gets nothing (adding 0 changes no sum).
        no_write = LATEST_INFERENCE_METRICS - {"gen_ai.client.inference.usage.cache_write.input_tokens"}
        assert set(metrics) == no_write | {"gen_ai.client.inference.time_to_first_chunk"}
        (ttfc,) = metrics["gen_ai.client.inference.time_to_first_chunk"]
        counted = {name: [(p.attributes["gen_ai.token.modality"], p.value) for p in metrics[name]]
                   for name in no_write if ".usage." in name}
        assert counted == {
            "gen_ai.client.inference.usage.input_tokens": [("unknown", 1310)],
            "gen_ai.client.inference.usage.output_tokens": [("unknown", 231)],
            "gen_ai.client.inference.usage.cache_read.input_tokens": [("unknown", 1152)],
            "gen_ai.client.inference.usage.reasoning.output_tokens": [("unknown", 192)]}
        assert [p.sum for p in metrics["gen_ai.client.inference.operation.output_tokens"]] == [231]
    assert ttfc.count == 1 and ttfc.sum == pytest.approx(first_chunk)
    assert "gen_ai.system" not in ttfc.attributes and ttfc.attributes["gen_ai.request.model"] == "o4-mini"


def test_openai_failed_call_metrics_in_both_modes(mode, content_off) -> None:
    tel = Telemetry()
    with _openai_client(tel, "chat_unknown_model.json") as (client, request, _):
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(**request)
    metrics = tel.metrics()
    if mode == "default":  # the duration with its error type; no usage was received, so no token metric
        assert set(metrics) == {"gen_ai.client.operation.duration"}
        assert metrics["gen_ai.client.operation.duration"][0].attributes["error.type"] == "model_not_found"
        return
    # Failed calls count too: input and output counters get 0 (modality unknown), the per-operation histograms a 0
    # with the error type.
    assert set(metrics) == {"gen_ai.client.inference.duration", "gen_ai.client.inference.usage.input_tokens",
                            "gen_ai.client.inference.usage.output_tokens",
                            "gen_ai.client.inference.operation.input_tokens",
                            "gen_ai.client.inference.operation.output_tokens"}
    for name in ("gen_ai.client.inference.usage.input_tokens", "gen_ai.client.inference.usage.output_tokens"):
        (point,) = metrics[name]
        assert point.value == 0 and point.attributes["gen_ai.token.modality"] == "unknown"
    for name in ("gen_ai.client.inference.duration", "gen_ai.client.inference.operation.input_tokens"):
        (point,) = metrics[name]
        assert point.attributes["error.type"] == "model_not_found"


# --- LangChain / LangGraph ----------------------------------------------------------------------------------------------


class StreamingFake(GenericFakeChatModel):
    """langchain-core's streaming fake, reporting a model and provider, and usage on the last chunk as ChatOpenAI
    does with stream_usage."""

    model_name: str = "gpt-4o-mini"

    def _get_ls_params(self, stop: Any = None, **kwargs: Any) -> dict[str, Any]:
        return {**super()._get_ls_params(stop=stop, **kwargs), "ls_provider": "openai"}

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        yield from super()._stream(*args, **kwargs)
        yield ChatGenerationChunk(message=AIMessageChunk(
            content="", response_metadata={"model_name": "gpt-4o-mini-2024-07-18", "finish_reason": "stop"},
            usage_metadata={"input_tokens": 40, "output_tokens": 6, "total_tokens": 46,
                            "input_token_details": {"cache_read": 24, "cache_creation": 16}}))


def _graph_responses() -> list[AIMessage]:
    return [
        AIMessage(content="", tool_calls=[{"name": "get_weather", "args": {"city": "Oslo"}, "id": "call_w1"}],
                  id="resp-1", response_metadata={"finish_reason": "tool_calls", "model_name": "gpt-4o-mini-2024-07-18"},
                  usage_metadata={"input_tokens": 50, "output_tokens": 12, "total_tokens": 62,
                                  "input_token_details": {"cache_read": 32, "cache_creation": 8}}),
        AIMessage(content="Cold.", id="resp-2", response_metadata={"finish_reason": "stop",
                                                                   "model_name": "gpt-4o-mini-2024-07-18"},
                  usage_metadata={"input_tokens": 80, "output_tokens": 9, "total_tokens": 89,
                                  "output_token_details": {"reasoning": 4}}),
    ]


def _run_langchain(tel: Telemetry) -> None:
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=tel.tracer_provider, meter_provider=tel.meter_provider)
    try:
        app = build_planner(build_agent(OpenAILikeFake(responses=_graph_responses())))
        app.invoke({"messages": [HumanMessage("Weather in Oslo?")]}, config={"configurable": {"thread_id": "t-7"}})
        streamed = StreamingFake(messages=iter([AIMessage(content="Two trams an hour.")]))
        assert "".join(chunk.content for chunk in streamed.stream("How often do trams run?")) == "Two trams an hour."
    finally:
        instrumentor.uninstrument()


def test_langchain_graph_and_streamed_model_in_both_modes(mode, content_off) -> None:
    tel = Telemetry()
    _run_langchain(tel)
    chats = sorted((s for s in tel.spans if s.name == "chat gpt-4o-mini"), key=lambda s: s.start_time)
    assert len(chats) == 3
    first, second, streamed = (dict(span.attributes) for span in chats)
    for attributes in (first, second, streamed):
        assert {key: attributes[key] for key in ("gen_ai.provider.name", "gen_ai.system") if key in attributes} \
            == _with_system(mode, "openai")
    assert {key: value for key, value in first.items() if key.startswith("gen_ai.usage.")} == {
        "gen_ai.usage.input_tokens": 50, "gen_ai.usage.output_tokens": 12,
        "gen_ai.usage.cache_read.input_tokens": 32, "gen_ai.usage.cache_write.input_tokens": 8}
    assert {key: value for key, value in second.items() if key.startswith("gen_ai.usage.")} == {
        "gen_ai.usage.input_tokens": 80, "gen_ai.usage.output_tokens": 9, "gen_ai.usage.reasoning.output_tokens": 4}
    assert "gen_ai.request.stream" not in first and "gen_ai.response.time_to_first_chunk" not in first
    assert streamed["gen_ai.request.stream"] is True and streamed["gen_ai.response.time_to_first_chunk"] > 0
    assert {key: value for key, value in streamed.items() if key.startswith("gen_ai.usage.")} == {
        "gen_ai.usage.input_tokens": 40, "gen_ai.usage.output_tokens": 6,
        "gen_ai.usage.cache_read.input_tokens": 24, "gen_ai.usage.cache_write.input_tokens": 16}
    agent = tel.span("invoke_agent weather_agent")
    assert agent.kind is SpanKind.INTERNAL and "gen_ai.system" not in agent.attributes

    metrics = tel.metrics()
    if mode == "default":
        assert set(metrics) == DEFAULT_INFERENCE_METRICS | {"gen_ai.client.operation.time_to_first_chunk"}
        return
    assert set(metrics) == LATEST_INFERENCE_METRICS | {"gen_ai.client.inference.time_to_first_chunk",
                                                       "gen_ai.invocation.duration", "gen_ai.execute_tool.duration"}
    assert sum(p.value for p in metrics["gen_ai.client.inference.usage.cache_write.input_tokens"]) == 8 + 16
    assert sum(p.value for p in metrics["gen_ai.client.inference.usage.cache_read.input_tokens"]) == 32 + 24
    assert sum(p.value for p in metrics["gen_ai.client.inference.usage.reasoning.output_tokens"]) == 4
    agents = {p.attributes["gen_ai.agent.name"]: p for p in metrics["gen_ai.invocation.duration"]}
    assert set(agents) == {"trip_planner", "weather_agent"}
    assert agents["weather_agent"].attributes == {"gen_ai.operation.name": "invoke_agent",
                                                  "gen_ai.agent.name": "weather_agent"}
    assert agents["trip_planner"].sum >= agents["weather_agent"].sum > 0
    (tool,) = metrics["gen_ai.execute_tool.duration"]
    assert tool.count == 1 and tool.attributes == {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather", "gen_ai.tool.type": "function",
        "gen_ai.agent.name": "weather_agent"}


# --- OpenAI Agents SDK: a handoff ---------------------------------------------------------------------------------------


class DetailedUsageModel(Model):
    """Answers from a script and reports each call as a generation span with the SDK's detailed usage (cached,
    cache-write and reasoning tokens), as the SDK's own models do."""

    def __init__(self, name: str, script: list[list[Any]]) -> None:
        self.name = name
        self.script = script

    async def get_response(self, system_instructions, input, model_settings, tools, output_schema, handoffs,
                           tracing, *, previous_response_id=None, conversation_id=None, prompt=None) -> ModelResponse:
        output = self.script.pop(0)
        with generation_span(input=[{"role": "user", "content": "..."}], model=self.name) as span:
            span.span_data.output = [{"role": "assistant", "content": "..."}]
            span.span_data.usage = {"input_tokens": 300, "output_tokens": 40,
                                    "input_tokens_details": {"cached_tokens": 256, "cache_write_tokens": 32},
                                    "output_tokens_details": {"reasoning_tokens": 24}}
        return ModelResponse(output=output, usage=Usage(requests=1, input_tokens=300, output_tokens=40,
                                                        total_tokens=340), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any):  # pragma: no cover - not used here
        raise NotImplementedError


async def _run_agents(tel: Telemetry) -> None:
    instrumentor = OpenAIAgentsInstrumentor()
    instrumentor.instrument(tracer_provider=tel.tracer_provider, meter_provider=tel.meter_provider, exclusive=True)
    try:
        booking = Agent(name="booking_agent", tools=[get_price], model=DetailedUsageModel(
            "gpt-4o-mini", [[_call("get_price", {"city": "Athens"}, "call_p1")], [_text("EUR 129.")]]))
        triage = Agent(name="triage_agent", handoffs=[booking], model=DetailedUsageModel(
            "gpt-4o", [[_call("transfer_to_booking_agent", {}, "call_h1")]]))
        with trace("trip desk", group_id="conv-9"):
            assert (await Runner.run(triage, "Fly me to Athens")).final_output == "EUR 129."
    finally:
        instrumentor.uninstrument()


async def test_agents_handoff_in_both_modes(mode, content_off) -> None:
    tel = Telemetry()
    await _run_agents(tel)
    triage = tel.span("invoke_agent triage_agent")
    booking = tel.span("invoke_agent booking_agent")
    names = sorted(span.name for span in tel.spans)
    if mode == "default":
        root = tel.span("invoke_workflow trip desk")
        handoff = tel.span("agent_to_agent_interaction booking_agent")
        assert triage.parent.span_id == booking.parent.span_id == root.context.span_id
        assert dict(handoff.attributes) == {
            "gen_ai.operation.name": "agent_to_agent_interaction", "gen_ai.agent.name": "triage_agent",
            "gen_ai.conversation.id": "conv-9", "gen_ai.transfer.target.name": "booking_agent",
            "gen_ai.transfer.source.name": "triage_agent"}
    else:
        # No workflow span: Runner.run is the internal conversation-turn invocation (#571) the agents run under.
        assert not [name for name in names if name.startswith(("invoke_workflow", "agent_to_agent"))]
        root = tel.span("handle_conversation_turn trip desk")
        assert root.parent is None and root.kind is SpanKind.INTERNAL
        assert dict(root.attributes) == {"gen_ai.operation.name": "handle_conversation_turn",
                                         "gen_ai.conversation.id": "conv-9"}
        assert triage.parent.span_id == booking.parent.span_id == root.context.span_id
        handoff = tel.span("execute_tool transfer_to_booking_agent booking_agent")
        assert dict(handoff.attributes) == {
            "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "transfer_to_booking_agent",
            "gen_ai.tool.type": "function", "gen_ai.agent.name": "triage_agent", "gen_ai.conversation.id": "conv-9",
            "gen_ai.transfer.target.name": "booking_agent", "gen_ai.transfer.mode": "pass_control"}
    assert handoff.parent.span_id == triage.context.span_id and handoff.kind is SpanKind.INTERNAL
    for chat in (span for span in tel.spans if span.name.startswith("chat ")):
        assert {key: chat.attributes.get(key) for key in ("gen_ai.provider.name", "gen_ai.system")
                if key in chat.attributes} == _with_system(mode, "openai")
        assert {key: value for key, value in chat.attributes.items() if key.startswith("gen_ai.usage.")} == {
            "gen_ai.usage.input_tokens": 300, "gen_ai.usage.output_tokens": 40,
            "gen_ai.usage.cache_read.input_tokens": 256, "gen_ai.usage.cache_write.input_tokens": 32,
            "gen_ai.usage.reasoning.output_tokens": 24}

    metrics = tel.metrics()
    if mode == "default":
        assert set(metrics) == DEFAULT_INFERENCE_METRICS
        return
    assert set(metrics) == LATEST_INFERENCE_METRICS | {"gen_ai.invocation.duration", "gen_ai.execute_tool.duration"}
    assert sum(p.value for p in metrics["gen_ai.client.inference.usage.cache_write.input_tokens"]) == 3 * 32
    assert sorted(p.attributes["gen_ai.tool.name"] for p in metrics["gen_ai.execute_tool.duration"]) == [
        "get_price", "transfer_to_booking_agent"]
    assert sorted((p.attributes["gen_ai.operation.name"], p.attributes.get("gen_ai.agent.name"))
                  for p in metrics["gen_ai.invocation.duration"]) == [
        ("handle_conversation_turn", None), ("invoke_agent", "booking_agent"), ("invoke_agent", "triage_agent")]


@contextlib.contextmanager
def _agents_over_http(tel: Telemetry, *answers: Any) -> Iterator[Any]:
    """Both instrumentors on (the Agents SDK's and, silenced under it, the OpenAI SDK's) and an AsyncOpenAI client
    of the stand-in, which gives `answers` in turn."""
    agents_instrumentor, openai_instrumentor = OpenAIAgentsInstrumentor(), OpenAIInstrumentor()
    agents_instrumentor.instrument(tracer_provider=tel.tracer_provider, meter_provider=tel.meter_provider,
                                   exclusive=True)
    openai_instrumentor.instrument(tracer_provider=tel.tracer_provider, meter_provider=tel.meter_provider)
    try:
        with FakeOpenAI() as server:
            for answer in answers:
                server.enqueue(answer)
            yield openai.AsyncOpenAI(api_key="test-key", base_url=server.base_url, max_retries=0)
    finally:
        openai_instrumentor.uninstrument()
        agents_instrumentor.uninstrument()


def _responses_body(output: dict[str, Any], cached: int = 0, cache_write: int = 0) -> dict[str, Any]:
    """A Responses API answer in the canned exchange's shape, with another output item and usage details."""
    ((_, canned),) = load_exchanges("responses_tool_call.json")
    body = json.loads(canned.body)
    body["output"] = [output]
    body["usage"]["input_tokens_details"] = {"cached_tokens": cached, "cache_write_tokens": cache_write}
    return body


async def _run_agents_over_http(tel: Telemetry) -> None:
    """The same handoff with the SDK's own OpenAIResponsesModel asking the local stand-in, the OpenAI SDK
    instrumentor on too (so each model call is the Agents SDK's response span, completed from the request)."""
    def call(name: str, call_id: str, arguments: str) -> dict[str, Any]:
        return {"id": f"fc_{call_id}", "type": "function_call", "status": "completed", "arguments": arguments,
                "call_id": call_id, "name": name}

    answer = {"id": "msg_9", "type": "message", "role": "assistant", "status": "completed",
              "content": [{"type": "output_text", "text": "EUR 129.", "annotations": []}]}
    with _agents_over_http(tel, _responses_body(call("transfer_to_booking_agent", "call_h1", "{}"), cached=64),
                           _responses_body(call("get_price", "call_p1", '{"city": "Athens"}'), cache_write=128),
                           _responses_body(answer)) as client:
        booking = Agent(name="booking_agent", tools=[get_price],
                        model=OpenAIResponsesModel(model="gpt-4o-mini", openai_client=client))
        triage = Agent(name="triage_agent", handoffs=[booking],
                       model=OpenAIResponsesModel(model="gpt-4o", openai_client=client))
        with trace("trip desk", group_id="conv-10"):
            assert (await Runner.run(triage, "Fly me to Athens")).final_output == "EUR 129."


async def test_agents_streamed_run_gets_the_time_to_first_chunk_from_the_silenced_sdk_call(mode, content_off) -> None:
    """Only the OpenAI SDK call sees the stream's first chunk; the Agents SDK's response span, which records the
    call, gets it from there (with request.stream) and so do the metrics."""
    tel = Telemetry()
    ((_, stream),) = load_exchanges("responses_streaming.json")
    with _agents_over_http(tel, stream) as client:
        agent = Agent(name="greeter", model=OpenAIResponsesModel(model="gpt-4o-mini", openai_client=client))
        result = Runner.run_streamed(agent, "Say hello")
        async for _ in result.stream_events():
            pass
    assert result.final_output == "Ready when you are!"
    (chat,) = [span for span in tel.spans if span.name.startswith("chat ")]
    assert chat.instrumentation_scope.name == "tracekit.instrumentors.openai_agents"
    assert chat.attributes["gen_ai.request.stream"] is True
    first_chunk = chat.attributes["gen_ai.response.time_to_first_chunk"]
    assert 0 < first_chunk < (chat.end_time - chat.start_time) / 1e9
    name = ("gen_ai.client.inference.time_to_first_chunk" if mode == "latest"
            else "gen_ai.client.operation.time_to_first_chunk")
    (point,) = tel.metrics()[name]
    assert point.count == 1 and point.sum == pytest.approx(first_chunk)


# --- tracekit's own API -------------------------------------------------------------------------------------------------


def _run_api() -> None:
    with tracekit.agent("planner", provider="azure.ai.openai", model="gpt-4o", conversation_id="conv-api"):
        @tracekit.tool
        def lookup(code: str) -> str:
            """Look a code up."""
            return "found"

        lookup("A1")


def test_api_agent_and_tool_in_both_modes(mode, content_off, telemetry, monkeypatch) -> None:
    from tracekit.genai_metrics import GenAIMetrics

    # Agent and tool durations go to the global MeterProvider (this test's stands in for it); only the latest
    # conventions define them.
    monkeypatch.setattr(tracekit.api, "_latest_metrics", GenAIMetrics("tracekit", telemetry.meter_provider,
                                                                      latest=True))
    _run_api()
    with tracekit.agent("refund_agent", remote=True):  # a remote agent: a client call, no invocation duration
        pass
    agent = telemetry.span("invoke_agent planner")
    assert {key: agent.attributes[key] for key in ("gen_ai.provider.name", "gen_ai.system")
            if key in agent.attributes} == _with_system(mode, "azure.ai.openai")
    metrics = telemetry.metrics()
    if mode == "default":
        assert metrics == {}
        return
    assert set(metrics) == {"gen_ai.invocation.duration", "gen_ai.execute_tool.duration"}
    (agent_point,) = metrics["gen_ai.invocation.duration"]
    assert agent_point.attributes == {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner",
                                      "gen_ai.request.model": "gpt-4o"}
    (tool_point,) = metrics["gen_ai.execute_tool.duration"]
    assert tool_point.attributes == {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup",
                                     "gen_ai.tool.type": "function", "gen_ai.agent.name": "planner"}
    assert agent_point.sum >= tool_point.sum > 0


# --- tracekit lint --strict over what the collector stored --------------------------------------------------------------


async def test_lint_strict_finds_nothing_in_tracekit_output(mode, content_on, collector, capsys) -> None:
    tel = Telemetry()
    tel.tracer_provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(
        endpoint=collector.grpc_endpoint, insecure=True)))
    with _openai_client(tel, "chat_streaming_cached_reasoning.json") as (client, request, _):
        list(client.chat.completions.create(**request))
    _run_langchain(tel)
    await _run_agents_over_http(tel)
    with using_tracer_provider(tel.tracer_provider):
        _run_api()
    sent = len(tel.spans)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if collector.reader().sql("SELECT count(*) AS n FROM spans").to_pylist()[0]["n"] >= sent:
            break
        time.sleep(0.1)
    code = main(["lint", "--db", str(collector.settings.db_path), "--format", "json", "--strict"])
    report = json.loads(capsys.readouterr().out)
    assert report["spans_checked"] == sent
    assert report["findings"] == [] and code == 0, [(f["scope"], f["key"], f["spans"]) for f in report["findings"]]
    stored = collector.reader().sql(
        "SELECT count(*) FILTER (WHERE json_exists(attributes, '$.\"gen_ai.system\"')) AS system, "
        "count(*) FILTER (WHERE json_exists(attributes, '$.\"gen_ai.transfer.mode\"')) AS transfers, "
        "count(*) FILTER (WHERE json_exists(attributes, '$.\"gen_ai.usage.cache_write.input_tokens\"')) AS writes "
        "FROM spans").to_pylist()[0]
    assert (stored["system"] > 0) is (mode == "default")
    assert stored["transfers"] == (1 if mode == "latest" else 0)
    assert stored["writes"] > 0
