"""The demo's story: a trip-planning orchestrator that plans, delegates to a flight agent and a hotel agent (real
LangGraph graphs with real tools and scripted fake chat models), survives one tool failure with a retry, writes the
itinerary to memory, answers, and is evaluated.

Everything is recorded by tracekit's own instrumentation: the public helpers (`task`, `agent`, `agent_planning`,
`agent_orchestration`, `agent_to_agent`, `agent_state`, `record_evaluation`) and the LangChain callback handler.
"""

from __future__ import annotations

import random
from typing import Any, Callable

from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph

import tracekit
from tracekit.demo.pipeline import DemoPipeline
from tracekit.instrumentors.langchain import TracekitCallbackHandler

TRIPS = [
    ("Lisbon", "2026-12-04", 3),
    ("Kyoto", "2027-03-28", 5),
    ("Reykjavik", "2027-01-15", 4),
    ("Cape Town", "2027-02-10", 6),
    ("Montreal", "2027-05-02", 2),
]


class DemoChatModel(FakeMessagesListChatModel):
    """langchain-core's scripted chat model, presenting itself as a hosted model (name, provider, usage)."""

    model_name: str = "gpt-4o-mini"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "temperature": 0.3, "max_tokens": 800}

    def _get_ls_params(self, stop: Any = None, **kwargs: Any) -> dict[str, Any]:
        return {**super()._get_ls_params(stop=stop, **kwargs), "ls_provider": "openai"}


class _Responses:
    """Builds scripted AI messages with realistic ids, finish reasons and token usage."""

    def __init__(self, rng: random.Random, model: str) -> None:
        self.rng = rng
        self.model = model

    def _meta(self, finish_reason: str, prompt: int) -> dict[str, Any]:
        completion = self.rng.randint(18, 160)
        return {
            "response_metadata": {"finish_reason": finish_reason, "model_name": f"{self.model}-2024-07-18",
                                  "id": f"chatcmpl-demo{self.rng.getrandbits(48):012x}"},
            "usage_metadata": {"input_tokens": prompt, "output_tokens": completion, "total_tokens": prompt + completion,
                               "input_token_details": {"cache_read": self.rng.choice([0, 0, 128, 256])}},
        }

    def text(self, content: str) -> AIMessage:
        return AIMessage(content=content, **self._meta("stop", self.rng.randint(300, 1400)))

    def call(self, name: str, args: dict[str, Any]) -> AIMessage:
        call_id = f"call_{self.rng.getrandbits(64):016x}"
        return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": call_id}],
                         **self._meta("tool_calls", self.rng.randint(200, 900)))


# --- tools (real LangChain tools) -----------------------------------------------------------------------------------


@tool
def search_flights(destination: str, date: str) -> str:
    """Search direct and one-stop flights to a destination on a date."""
    return f"3 options to {destination} on {date}: TK 1752 09:40 (EUR 214), LH 1166 12:05 (EUR 251), TP 575 18:30 (EUR 189)"


@tool
def book_flight(flight: str) -> str:
    """Book a flight by its number and return the booking reference."""
    return f"Booked {flight}; reference PNR-{abs(hash(flight)) % 100000:05d}"


_hotel_failures: dict[str, int] = {}


@tool
def search_hotels(city: str, nights: int) -> str:
    """Find available hotels in a city for a number of nights."""
    if _hotel_failures.get(city, 0) == 0:
        _hotel_failures[city] = 1
        raise TimeoutError(f"hotel inventory service timed out after 5.0 s for {city}")
    return f"Casa Azul ({nights} nights, EUR {95 * nights}), Hotel Miradouro (EUR {120 * nights}), both refundable"


@tool
def get_weather(city: str, date: str) -> str:
    """Weather forecast for a city on a date."""
    return f"{city} on {date}: 17 C, light wind, 10% chance of rain"


TOOLS: dict[str, Any] = {t.name: t for t in (search_flights, book_flight, search_hotels, get_weather)}


def _tool_node(max_attempts: int = 2) -> Callable[[MessagesState], dict[str, list[BaseMessage]]]:
    """Runs the requested tools; a failing call is retried once, as production agents do."""

    def run_tools(state: MessagesState) -> dict[str, list[BaseMessage]]:
        results: list[BaseMessage] = []
        for call in state["messages"][-1].tool_calls:
            for attempt in range(1, max_attempts + 1):
                try:
                    results.append(TOOLS[call["name"]].invoke({**call, "type": "tool_call"}))
                    break
                except TimeoutError as error:
                    if attempt == max_attempts:
                        results.append(ToolMessage(content=f"error: {error}", tool_call_id=call["id"], status="error"))
        return {"messages": results}

    return run_tools


def _agent_graph(name: str, model: DemoChatModel) -> Any:
    """A ReAct-style LangGraph agent: model -> tools -> model ... until the model answers."""

    def call_model(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [model.invoke(state["messages"])]}

    def route(state: MessagesState) -> str:
        return "tools" if getattr(state["messages"][-1], "tool_calls", None) else END

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", _tool_node())
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", route, ["tools", END])
    graph.add_edge("tools", "model")
    return graph.compile(name=name)


def run_conversation(pipeline: DemoPipeline, index: int, rng: random.Random) -> None:
    """One user request, end to end."""
    city, date, nights = TRIPS[index % len(TRIPS)]
    conversation_id = f"demo-session-{index + 1:03d}"
    handler = TracekitCallbackHandler(pipeline.tracer_provider, pipeline.meter_provider)
    config = {"callbacks": [handler], "configurable": {"thread_id": conversation_id}}
    mini = _Responses(rng, "gpt-4o-mini")
    large = _Responses(rng, "gpt-4o")
    request = f"Plan a {nights}-night trip to {city} from {date}; I prefer morning flights. Reach me at traveler@example.com."

    planner = DemoChatModel(model_name="gpt-4o", responses=[large.text(
        f"Plan: 1) flight-agent finds and books a flight to {city} on {date}. 2) hotel-agent books {nights} nights. "
        "3) Summarize with the weather.")])
    flights = _agent_graph("flight-agent", DemoChatModel(responses=[
        mini.call("search_flights", {"destination": city, "date": date}),
        mini.call("book_flight", {"flight": "TK 1752"}),
        mini.text(f"Booked TK 1752 at 09:40 on {date} to {city} (EUR 214)."),
    ]))
    hotels = _agent_graph("hotel-agent", DemoChatModel(responses=[
        mini.call("search_hotels", {"city": city, "nights": nights}),
        mini.call("get_weather", {"city": city, "date": date}),
        mini.text(f"Reserved Casa Azul in {city} for {nights} nights (EUR {95 * nights}); expect 17 C."),
    ]))
    summarizer = DemoChatModel(model_name="gpt-4o", responses=[large.text(
        f"Your trip to {city} is set: TK 1752 on {date} at 09:40 and {nights} nights at Casa Azul. Pack a light jacket.")])

    with tracekit.task("plan_trip", agent="orchestrator", conversation_id=conversation_id):
        with tracekit.agent("orchestrator", conversation_id=conversation_id, model="gpt-4o", provider="openai",
                            description="Plans trips and delegates to specialist agents") as orchestrator:
            with tracekit.agent_state("load_profile"):
                pass
            with tracekit.agent_planning("plan"):
                planner.invoke([SystemMessage("You plan trips and delegate to specialists."), HumanMessage(request)],
                               config=config)
            with tracekit.agent_orchestration("delegate"):
                for name, graph, ask in (("flight-agent", flights, f"Find and book a morning flight to {city} on {date}."),
                                         ("hotel-agent", hotels, f"Book {nights} nights in {city} from {date}.")):
                    with tracekit.agent_to_agent(name):
                        graph.invoke({"messages": [HumanMessage(ask)]}, config=config)
            answer = summarizer.invoke([HumanMessage(f"Summarize the bookings for: {request}")], config=config)
            with tracekit.agent_state("save_itinerary"):
                pass
            response_id = answer.response_metadata.get("id")
            orchestrator.set_response_id(response_id)
            tracekit.record_evaluation(
                "relevance", score=round(rng.uniform(3.5, 5.0), 1), label="pass", response_id=response_id,
                explanation="The answer covers flight, hotel and weather as requested.",
                logger_provider=pipeline.logger_provider)


def run_conversations(pipeline: DemoPipeline, count: int, on_progress: Callable[[int], None] | None = None) -> None:
    """`count` independent conversations (different cities, ids and token counts); `on_progress(done)` after each."""
    rng = random.Random(20261122)
    _hotel_failures.clear()
    for index in range(count):
        run_conversation(pipeline, index, rng)
        if on_progress is not None:
            on_progress(index + 1)
