"""LangChain / LangGraph: real graphs, real tools, langchain-core's fake chat models; spans checked exactly."""

from __future__ import annotations

import asyncio
import contextvars
import json
import threading
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel, GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from opentelemetry.trace import SpanKind, StatusCode

import tracekit
from tracekit.instrumentors import _langchain_messages as lcm
from tracekit.instrumentors.langchain import LangChainInstrumentor, TracekitCallbackHandler
from tracekit.messages import to_json

USER_TEXT = "What is the weather in Reykjavik-Q7?"
TOOL_RESULT = "sleet, 2 degrees, gusty-XQ"
ANSWER = "Expect sleet and 2 degrees-ZZ9."


class OpenAILikeFake(FakeMessagesListChatModel):
    """The real fake chat model, reporting a model name, provider and usage like a hosted model would."""

    model_name: str = "gpt-4o-mini"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "temperature": 0.2}

    def _get_ls_params(self, stop: Any = None, **kwargs: Any) -> dict[str, Any]:
        return {**super()._get_ls_params(stop=stop, **kwargs), "ls_provider": "openai"}


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return TOOL_RESULT


@tool
def broken_tool(city: str) -> str:
    """Always fails."""
    raise ValueError("backend down")


def _responses() -> list[AIMessage]:
    return [
        AIMessage(content="", tool_calls=[{"name": "get_weather", "args": {"city": "Reykjavik-Q7"}, "id": "call_w1"}],
                  id="resp-1", response_metadata={"finish_reason": "tool_calls", "model_name": "gpt-4o-mini-2024-07-18"},
                  usage_metadata={"input_tokens": 50, "output_tokens": 12, "total_tokens": 62,
                                  "input_token_details": {"cache_read": 32}}),
        AIMessage(content=ANSWER, id="resp-2",
                  response_metadata={"finish_reason": "stop", "model_name": "gpt-4o-mini-2024-07-18", "id": "chatcmpl-2"},
                  usage_metadata={"input_tokens": 80, "output_tokens": 9, "total_tokens": 89,
                                  "output_token_details": {"reasoning": 4}}),
    ]


def build_agent(model: Any, name: str = "weather_agent") -> Any:
    tools = {"get_weather": get_weather, "broken_tool": broken_tool}

    def agent_node(state: MessagesState) -> dict:
        return {"messages": [model.invoke(state["messages"])]}

    def tool_node(state: MessagesState) -> dict:
        results = []
        for call in state["messages"][-1].tool_calls:
            results.append(tools[call["name"]].invoke({**call, "type": "tool_call"}))
        return {"messages": results}

    def route(state: MessagesState) -> str:
        return "tools" if state["messages"][-1].tool_calls else END

    graph = StateGraph(MessagesState)
    graph.add_node("agent", agent_node)
    graph.add_node("tools", tool_node)
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", route, ["tools", END])
    graph.add_edge("tools", "agent")
    return graph.compile(name=name)


def build_planner(inner: Any) -> Any:
    outer = StateGraph(MessagesState)
    outer.add_node("weather_agent", inner)
    outer.add_edge(START, "weather_agent")
    outer.add_edge("weather_agent", END)
    return outer.compile(name="trip_planner")


@pytest.fixture
def instrumented(telemetry):
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    yield telemetry
    instrumentor.uninstrument()


def _children(telemetry, parent) -> list:
    return sorted((s for s in telemetry.spans if s.parent and s.parent.span_id == parent.context.span_id),
                  key=lambda s: s.start_time)


def test_multi_agent_graph_spans_exactly(instrumented, content_on) -> None:
    app = build_planner(build_agent(OpenAILikeFake(responses=_responses())))
    app.invoke({"messages": [HumanMessage(USER_TEXT)]}, config={"configurable": {"thread_id": "thread-42"}})

    tel = instrumented
    assert sorted(s.name for s in tel.spans) == sorted([
        "invoke_agent trip_planner", "invoke_agent weather_agent", "chat gpt-4o-mini", "chat gpt-4o-mini",
        "execute_tool get_weather"])
    root = tel.span("invoke_agent trip_planner")
    agent = tel.span("invoke_agent weather_agent")
    assert root.parent is None and root.kind is SpanKind.INTERNAL
    assert agent.parent.span_id == root.context.span_id
    chat1, tool_span, chat2 = _children(tel, agent)
    assert [chat1.name, tool_span.name, chat2.name] == ["chat gpt-4o-mini", "execute_tool get_weather", "chat gpt-4o-mini"]
    assert {s.context.trace_id for s in tel.spans} == {root.context.trace_id}

    assert dict(agent.attributes) | {} == {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "weather_agent",
        "gen_ai.conversation.id": "thread-42",
        "gen_ai.input.messages": json.dumps([{"role": "user", "parts": [{"type": "text", "content": USER_TEXT}]}],
                                            separators=(",", ":")),
        "gen_ai.output.messages": json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": ANSWER}],
                                               "finish_reason": "stop"}], separators=(",", ":")),
    }
    assert chat1.kind is SpanKind.CLIENT
    attrs = dict(chat1.attributes)
    assert json.loads(attrs.pop("gen_ai.input.messages")) == [
        {"role": "user", "parts": [{"type": "text", "content": USER_TEXT}]}]
    assert json.loads(attrs.pop("gen_ai.output.messages")) == [
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_w1", "name": "get_weather",
                                         "arguments": {"city": "Reykjavik-Q7"}}], "finish_reason": "tool_call"}]
    assert attrs == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini", "gen_ai.request.temperature": 0.2,
        "gen_ai.conversation.id": "thread-42", "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.response.finish_reasons": ("tool_call",), "gen_ai.usage.input_tokens": 50,
        "gen_ai.usage.output_tokens": 12, "gen_ai.usage.cache_read.input_tokens": 32,
    }
    assert chat2.attributes["gen_ai.response.id"] == "chatcmpl-2"
    assert chat2.attributes["gen_ai.usage.reasoning.output_tokens"] == 4
    assert json.loads(chat2.attributes["gen_ai.input.messages"])[2] == {
        "role": "tool", "name": "get_weather",
        "parts": [{"type": "tool_call_response", "id": "call_w1", "response": TOOL_RESULT}]}
    assert dict(tool_span.attributes) == {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather", "gen_ai.tool.type": "function",
        "gen_ai.tool.description": "Current weather for a city.", "gen_ai.tool.call.id": "call_w1",
        "gen_ai.agent.name": "weather_agent", "gen_ai.conversation.id": "thread-42",
        "gen_ai.tool.call.arguments": json.dumps({"city": "Reykjavik-Q7"}, separators=(",", ":")),
        "gen_ai.tool.call.result": TOOL_RESULT,
    }
    metrics = tel.metrics()
    usage = metrics["gen_ai.client.token.usage"]
    assert sorted((p.attributes["gen_ai.token.type"], p.sum) for p in usage) == [("input", 130), ("output", 21)]
    assert list(usage[0].explicit_bounds[:3]) == [1, 4, 16]
    (duration,) = metrics["gen_ai.client.operation.duration"]
    assert duration.count == 2 and duration.attributes["gen_ai.request.model"] == "gpt-4o-mini"


def test_content_off_leaks_nothing_but_keeps_structure(instrumented, content_off) -> None:
    app = build_planner(build_agent(OpenAILikeFake(responses=_responses())))
    app.invoke({"messages": [SystemMessage("secret system prompt-S1"), HumanMessage(USER_TEXT)]})
    exported = instrumented.everything_exported()
    for text in (USER_TEXT, "Reykjavik-Q7", TOOL_RESULT, ANSWER, "secret system prompt-S1"):
        assert text not in exported
    chat2 = sorted((s for s in instrumented.spans if s.name.startswith("chat")), key=lambda s: s.start_time)[1]
    assert json.loads(chat2.attributes["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text"}]},
        {"role": "user", "parts": [{"type": "text"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_w1", "name": "get_weather"}]},
        {"role": "tool", "name": "get_weather", "parts": [{"type": "tool_call_response", "id": "call_w1"}]},
    ]
    tool_span = instrumented.span("execute_tool get_weather")
    assert "gen_ai.tool.call.arguments" not in tool_span.attributes
    assert tool_span.attributes["gen_ai.tool.call.id"] == "call_w1"


def test_explicit_handler_is_not_duplicated(instrumented, content_off) -> None:
    model = OpenAILikeFake(responses=[AIMessage("hi")])
    model.invoke("hello", config={"callbacks": [TracekitCallbackHandler(instrumented.tracer_provider)]})
    assert [s.name for s in instrumented.spans] == ["chat gpt-4o-mini"]


def test_uninstrument_stops_recording(telemetry, content_off) -> None:
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider)
    instrumentor.uninstrument()
    OpenAILikeFake(responses=[AIMessage("hi")]).invoke("hello")
    assert telemetry.spans == []


def test_tool_error_and_nesting_under_tracekit_agent(instrumented, content_off) -> None:
    with tracekit.agent("hotel-agent", conversation_id="conv-9"):
        with pytest.raises(ValueError):
            broken_tool.invoke({"city": "Oslo"})
    agent = instrumented.span("invoke_agent hotel-agent")
    span = instrumented.span("execute_tool broken_tool")
    assert span.parent.span_id == agent.context.span_id
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ValueError"
    assert span.attributes["gen_ai.agent.name"] == "hotel-agent"
    assert span.attributes["gen_ai.conversation.id"] == "conv-9"


async def test_async_streaming_and_concurrent_runs_keep_their_parents(instrumented, content_on) -> None:
    async def run(name: str) -> None:
        model = GenericFakeChatModel(messages=iter([AIMessage(content=f"streamed answer for {name}")]))
        app = build_agent(model, name=name)
        async for _ in app.astream({"messages": [HumanMessage(f"hi {name}")]}, stream_mode="messages",
                                   config={"configurable": {"thread_id": f"t-{name}"}}):
            pass

    await asyncio.gather(run("alpha"), run("beta"))
    for name in ("alpha", "beta"):
        agent = instrumented.span(f"invoke_agent {name}")
        (chat,) = _children(instrumented, agent)
        assert chat.name == "chat"  # GenericFakeChatModel names no model: the operation alone, as the spec says
        assert chat.attributes["gen_ai.conversation.id"] == f"t-{name}"
        assert chat.attributes["gen_ai.request.stream"] is True
        assert chat.attributes["gen_ai.response.time_to_first_chunk"] >= 0
        assert json.loads(chat.attributes["gen_ai.output.messages"])[0]["parts"][0]["content"] == f"streamed answer for {name}"


def test_runs_in_threads_nest_under_their_own_agents(instrumented, content_off) -> None:
    def work(name: str) -> None:
        with tracekit.agent(name):
            OpenAILikeFake(responses=[AIMessage("ok")]).invoke("hi")

    # Threads start with an empty context (Python's rule, for OTel's context too); hand each a copy, as
    # LangChain's own executors do.
    threads = [threading.Thread(target=contextvars.copy_context().run, args=(work, f"worker-{i}")) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i in range(4):
        agent = instrumented.span(f"invoke_agent worker-{i}")
        (chat,) = _children(instrumented, agent)
        assert chat.name == "chat gpt-4o-mini"


def test_planted_secrets_in_prompt_tool_args_and_results_are_redacted(instrumented, content_on) -> None:
    key = "sk-proj-Abc123Def456Ghi789Jkl012Mno345"

    @tool
    def lookup_customer(email: str) -> str:
        """Find a customer."""
        return "card on file: 4111 1111 1111 1111"

    model = OpenAILikeFake(responses=[
        AIMessage(content="", tool_calls=[{"name": "lookup_customer", "args": {"email": "ann@example.com"}, "id": "c1"}])])
    model.invoke(f"my key is {key}")
    lookup_customer.invoke({"name": "lookup_customer", "args": {"email": "ann@example.com"}, "id": "c1",
                            "type": "tool_call"})
    exported = instrumented.everything_exported()
    for secret in (key, "ann@example.com", "4111 1111 1111 1111"):
        assert secret not in exported
    assert instrumented.span("execute_tool lookup_customer").attributes["tracekit.redaction.masked_count"] == 2


def test_retriever_span_records_ids_and_scores_not_page_text(instrumented, content_on) -> None:
    from langchain_core.callbacks import CallbackManagerForRetrieverRun
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    class FareRetriever(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
            return [Document(page_content="confidential fare table", id="doc-1", metadata={"score": 0.92}),
                    Document(page_content="baggage rules", id="doc-2", metadata={"score": 0.71})]

    FareRetriever(name="fares").invoke("fares to Athens")
    span = instrumented.span("retrieval fares")
    assert span.kind is SpanKind.CLIENT
    assert span.attributes["gen_ai.operation.name"] == "retrieval"
    assert span.attributes["gen_ai.data_source.id"] == "fares"
    assert span.attributes["gen_ai.retrieval.query.text"] == "fares to Athens"
    assert json.loads(span.attributes["gen_ai.retrieval.documents"]) == [
        {"id": "doc-1", "score": 0.92}, {"id": "doc-2", "score": 0.71}]
    assert "confidential fare table" not in instrumented.everything_exported()


def test_event_only_mode_puts_content_on_the_details_event_not_the_span(instrumented) -> None:
    from tracekit.content import ContentMode, reset_content_settings, set_content_recording

    set_content_recording(ContentMode.EVENT_ONLY)
    try:
        OpenAILikeFake(responses=[AIMessage("event-only answer")]).invoke("event-only question")
    finally:
        reset_content_settings()
    span = instrumented.span("chat gpt-4o-mini")
    assert json.loads(span.attributes["gen_ai.input.messages"]) == [{"role": "user", "parts": [{"type": "text"}]}]
    (event,) = span.events
    assert event.name == "gen_ai.client.inference.operation.details"
    assert json.loads(event.attributes["gen_ai.input.messages"])[0]["parts"][0]["content"] == "event-only question"
    assert json.loads(event.attributes["gen_ai.output.messages"])[0]["parts"][0]["content"] == "event-only answer"


async def test_spans_made_inside_tools_nest_under_the_tool_span(instrumented, content_off) -> None:
    @tracekit.tool(name="inner_lookup")
    def inner_lookup(city: str) -> str:
        return "ok"

    @tool
    def outer(city: str) -> str:
        """Calls traced code."""
        return inner_lookup(city)

    @tool
    async def async_outer(city: str) -> str:
        """Async tool calling traced code."""
        return inner_lookup(city)

    outer.invoke({"city": "Oslo"})
    await async_outer.ainvoke({"city": "Rome"})
    inner = sorted((s for s in instrumented.spans if s.name == "execute_tool inner_lookup"), key=lambda s: s.start_time)
    assert inner[0].parent.span_id == instrumented.span("execute_tool outer").context.span_id
    assert inner[1].parent.span_id == instrumented.span("execute_tool async_outer").context.span_id
    from opentelemetry import trace as otel_trace

    assert not otel_trace.get_current_span().get_span_context().is_valid  # nothing left attached


def test_runnables_called_inside_nodes_are_not_mistaken_for_subgraphs(instrumented, content_off) -> None:
    from langchain_core.prompts import ChatPromptTemplate

    def build(name: str, answer: str) -> Any:
        chain = ChatPromptTemplate.from_messages([("system", "Be brief."), ("placeholder", "{messages}")]) | \
            OpenAILikeFake(responses=[AIMessage(answer)])

        def node(state: MessagesState) -> dict:
            return {"messages": [chain.invoke({"messages": state["messages"]})]}

        graph = StateGraph(MessagesState)
        graph.add_node("respond", node)
        graph.add_edge(START, "respond")
        graph.add_edge("respond", END)
        return graph.compile(name=name)

    build("solo", "hi").invoke({"messages": [HumanMessage("hello")]})
    outer = StateGraph(MessagesState)
    outer.add_node("helper", build("helper", "inner answer"))
    outer.add_edge(START, "helper")
    outer.add_edge("helper", END)
    outer.compile(name="boss").invoke({"messages": [HumanMessage("hello")]})

    names = sorted(s.name for s in instrumented.spans)
    assert names == ["chat gpt-4o-mini", "chat gpt-4o-mini", "invoke_agent boss", "invoke_agent helper",
                     "invoke_agent solo"]
    helper = instrumented.span("invoke_agent helper")
    assert helper.parent.span_id == instrumented.span("invoke_agent boss").context.span_id
    assert helper.start_time <= min(s.start_time for s in _children(instrumented, helper))
    assert [s.name for s in _children(instrumented, helper)] == ["chat gpt-4o-mini"]


class FailingFake(OpenAILikeFake):
    """A chat model whose provider call fails, like a 500 from a hosted model."""

    def _generate(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("model backend unreachable")


def test_failed_model_call_keeps_request_and_input_structure(instrumented, content_off) -> None:
    # Input messages are recorded when the run ends; a run that ends in an error must carry them too.
    with pytest.raises(ConnectionError):
        FailingFake(responses=[]).invoke([SystemMessage("secret system prompt-S1"), HumanMessage(USER_TEXT)])
    span = instrumented.span("chat gpt-4o-mini")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "ConnectionError"
    assert span.attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert json.loads(span.attributes["gen_ai.input.messages"]) == [
        {"role": "system", "parts": [{"type": "text"}]}, {"role": "user", "parts": [{"type": "text"}]}]
    assert "gen_ai.output.messages" not in span.attributes
    assert USER_TEXT not in instrumented.everything_exported()
    (duration,) = instrumented.metrics()["gen_ai.client.operation.duration"]
    assert duration.attributes["error.type"] == "ConnectionError"


def test_structure_only_messages_of_every_kind() -> None:
    """Content off, each kind of LangChain message keeps its role, part types, tool names and call ids, and
    nothing of its text; the structure is what stripping the full conversion gives."""
    from langchain_core.messages import (AIMessage, ChatMessage, FunctionMessage, HumanMessage, SystemMessage,
                                         ToolMessage)

    from tracekit.messages import structure_only

    messages = [SystemMessage("rules"), HumanMessage("hi"), HumanMessage(""),
                AIMessage("let me check", tool_calls=[{"name": "search", "args": {"q": "x"}, "id": "call_1"}]),
                ToolMessage("result", tool_call_id="call_1"),
                HumanMessage([{"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": "u"}}]),
                AIMessage("named", name="bob"), ChatMessage("c", role="critic"), FunctionMessage("f", name="fn"),
                "a plain prompt"]
    assert lcm.to_otel_messages(messages, False) == [
        {"role": "system", "parts": [{"type": "text"}]},
        {"role": "user", "parts": [{"type": "text"}]},
        {"role": "user", "parts": []},
        {"role": "assistant", "parts": [{"type": "text"}, {"type": "tool_call", "id": "call_1", "name": "search"}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1"}]},
        {"role": "user", "parts": [{"type": "text"}, {"type": "uri", "modality": "image"}]},
        {"role": "assistant", "parts": [{"type": "text"}], "name": "bob"},
        {"role": "user", "parts": [{"type": "text"}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": None}], "name": "fn"},
        {"role": "user", "parts": [{"type": "text"}]},
    ]
    assert lcm.to_otel_messages(messages, False) == structure_only(lcm.to_otel_messages(messages, True))
    # What the handler records with content off is that structure written straight as JSON: the same text.
    assert lcm.structure_json(messages) == to_json(lcm.to_otel_messages(messages, False))


def test_output_structure_written_as_json_is_the_structure_of_the_answers() -> None:
    """Content off, the output messages are each answer's structure-only parts as an assistant message's with its
    finish reason, whatever the answer holds (text, tool calls, content blocks, a text LLM's string, odd ids)."""
    from langchain_core.messages import AIMessage

    from tracekit.messages import output_message

    answers = [(AIMessage("done"), "stop"), (AIMessage(""), "stop"),
               (AIMessage("", tool_calls=[{"name": 'se"arch\\', "args": {}, "id": "c\u00e9\u2028"},
                                          {"name": "b", "args": {}, "id": None}]), "tool_call"),
               (AIMessage([{"type": "text", "text": "x"}, {"type": "reasoning", "reasoning": "r"}]), "length"),
               (AIMessage("named", name="bob"), "stop"), ("a text LLM's answer", "stop")]
    expected = [output_message("assistant", lcm.message_parts(answer, False) if not isinstance(answer, str)
                               else [{"type": "text"}], reason) for answer, reason in answers]
    assert lcm.output_structure_json(answers) == to_json(expected)
    assert json.loads(lcm.output_structure_json(answers))[2]["parts"] == [
        {"type": "tool_call", "id": "c\u00e9\u2028", "name": 'se"arch\\'}, {"type": "tool_call", "id": None, "name": "b"}]


def test_request_parameters_and_a_text_completion_run(instrumented, content_off) -> None:
    """Invocation params become request attributes (flags are not numbers; LangSmith metadata stands in only for
    an absent param); a plain-text LLM gets a `text_completion` span with its prompt and answer as structure."""
    from langchain_core.language_models.fake import FakeListLLM
    from langchain_core.outputs import Generation, LLMResult

    handler = TracekitCallbackHandler(instrumented.tracer_provider)
    run_id = __import__("uuid").uuid4()
    params = {"model": "gpt-4o", "temperature": 0.3, "max_tokens": 100, "top_p": True, "n": 2, "stop": "END",
              "seed": 7}
    handler.on_chat_model_start({}, [[HumanMessage("hi")]], run_id=run_id, invocation_params=params,
                                metadata={"ls_provider": "azure", "ls_max_tokens": 5, "ls_temperature": 0.9})
    handler.on_llm_end(LLMResult(generations=[[Generation(text="x", generation_info={"finish_reason": "length"})]]),
                       run_id=run_id)
    chat = instrumented.span("chat gpt-4o")
    assert {key: value for key, value in chat.attributes.items() if key.startswith("gen_ai.request.")} == {
        "gen_ai.request.model": "gpt-4o", "gen_ai.request.temperature": 0.3, "gen_ai.request.max_tokens": 100,
        "gen_ai.request.choice.count": 2, "gen_ai.request.stop_sequences": ("END",), "gen_ai.request.seed": 7}
    assert chat.attributes["gen_ai.provider.name"] == "azure.ai.openai"
    assert chat.attributes["gen_ai.response.finish_reasons"] == ("length",)

    FakeListLLM(responses=["an answer"]).invoke("a prompt")
    completion = next(span for span in instrumented.spans if span.name.startswith("text_completion"))
    assert completion.attributes["gen_ai.operation.name"] == "text_completion"
    assert json.loads(completion.attributes["gen_ai.input.messages"]) == [{"role": "user", "parts": [{"type": "text"}]}]
    assert json.loads(completion.attributes["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text"}], "finish_reason": "stop"}]
    assert "a prompt" not in instrumented.everything_exported()


def test_metric_exemplars_link_to_the_chat_span_when_the_call_ends_in_another_thread(telemetry, content_off) -> None:
    """The metrics are recorded in the context holding the call's span, not whatever is current when LangChain
    reports the end: a run that starts in one thread and ends in another still links its exemplars to its span."""
    import uuid

    from langchain_core.outputs import ChatGeneration, LLMResult
    from opentelemetry.sdk.metrics import MeterProvider, TraceBasedExemplarFilter
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from tracekit.configuration import genai_metric_views

    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader], views=genai_metric_views(),
                                   exemplar_filter=TraceBasedExemplarFilter())
    handler = TracekitCallbackHandler(telemetry.tracer_provider, meter_provider)
    run_id = uuid.uuid4()
    answer = AIMessage("ok", usage_metadata={"input_tokens": 5, "output_tokens": 2, "total_tokens": 7})
    for callback in (lambda: handler.on_chat_model_start({}, [[HumanMessage("hi")]], run_id=run_id,
                                                         invocation_params={"model": "gpt-4o"}),
                     lambda: handler.on_llm_end(LLMResult(generations=[[ChatGeneration(message=answer)]]),
                                                run_id=run_id)):
        thread = threading.Thread(target=callback)  # a new thread starts with an empty context: no span current
        thread.start()
        thread.join()
    chat = telemetry.span("chat gpt-4o")
    points = [point for resource_metrics in reader.get_metrics_data().resource_metrics
              for scope_metrics in resource_metrics.scope_metrics for metric in scope_metrics.metrics
              for point in metric.data.data_points]
    assert len(points) == 3  # the duration, and the input and output token usage
    assert {exemplar.span_id for point in points for exemplar in point.exemplars} == {chat.context.span_id}


def test_structure_is_remembered_per_message_while_it_lives_and_follows_new_content() -> None:
    """A history sent again is rendered from what was remembered for each message object; a message given new
    content is rendered anew, and a message that is gone is forgotten (the table does not grow with traffic)."""
    import gc

    from langchain_core.messages import AIMessage

    history = [HumanMessage("hi"), AIMessage("", tool_calls=[{"name": "search", "args": {}, "id": "call_1"}])]
    first = lcm.structure_json(history)
    assert all(id(message) in lcm._remembered for message in history)
    assert lcm.structure_json(history) == first
    history[0].content = ""  # new content: no text part any more
    assert json.loads(lcm.structure_json(history))[0] == {"role": "user", "parts": []}
    before = len(lcm._remembered)
    for turn in range(200):
        lcm.structure_json([HumanMessage(f"turn {turn}")])
    gc.collect()
    assert len(lcm._remembered) <= before
