"""Real instrumented runs for the replay tests: a LangGraph multi-agent graph on langchain-core's fake chat model,
traced by tracekit's own LangChain instrumentor and exported over OTLP/gRPC to a collector."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tracekit.content import reset_content_settings, set_content_recording
from tracekit.instrumentors.langchain import LangChainInstrumentor
from tracekit.tracing import using_tracer_provider

QUESTION = "Plan a day in Lisbon: what's the weather?"
WEATHER = "sunny, 24 degrees"
ANSWER = "It will be sunny and 24 degrees: start at Belém, lunch in Alfama."


class FakeModel(FakeMessagesListChatModel):
    """langchain-core's fake chat model, reporting a model name and provider like a hosted model."""

    model_name: str = "gpt-4o-mini"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def _get_ls_params(self, stop: Any = None, **kwargs: Any) -> dict[str, Any]:
        return {**super()._get_ls_params(stop=stop, **kwargs), "ls_provider": "openai"}


@tool
def get_weather(city: str) -> str:
    """Current weather for a city."""
    return WEATHER


def _graph() -> Any:
    model = FakeModel(responses=[
        AIMessage(content="", tool_calls=[{"name": "get_weather", "args": {"city": "Lisbon"}, "id": "call_lx1"}],
                  usage_metadata={"input_tokens": 40, "output_tokens": 10, "total_tokens": 50}),
        AIMessage(content=ANSWER, usage_metadata={"input_tokens": 70, "output_tokens": 20, "total_tokens": 90}),
    ])

    def agent_node(state: MessagesState) -> dict:
        return {"messages": [model.invoke(state["messages"])]}

    def tool_node(state: MessagesState) -> dict:
        return {"messages": [get_weather.invoke({**call, "type": "tool_call"})
                             for call in state["messages"][-1].tool_calls]}

    inner = StateGraph(MessagesState)
    inner.add_node("agent", agent_node)
    inner.add_node("tools", tool_node)
    inner.add_edge(START, "agent")
    inner.add_conditional_edges("agent", lambda s: "tools" if s["messages"][-1].tool_calls else END, ["tools", END])
    inner.add_edge("tools", "agent")
    outer = StateGraph(MessagesState)
    outer.add_node("weather_agent", inner.compile(name="weather_agent"))
    outer.add_edge(START, "weather_agent")
    outer.add_edge("weather_agent", END)
    return outer.compile(name="day_planner")


def record_langgraph_run(endpoint: str, *, thread_id: str, content: bool) -> None:
    """Run the graph once under tracekit's LangChain instrumentor, exporting to the collector at `endpoint`."""
    provider = TracerProvider(resource=Resource.create({"service.name": "day-planner"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, insecure=True)))
    instrumentor = LangChainInstrumentor()
    set_content_recording(content)
    try:
        with using_tracer_provider(provider):
            instrumentor.instrument(tracer_provider=provider)
            try:
                _graph().invoke({"messages": [HumanMessage(QUESTION)]},
                                config={"configurable": {"thread_id": thread_id}})
            finally:
                instrumentor.uninstrument()
        provider.force_flush()
    finally:
        reset_content_settings()
        provider.shutdown()
