"""Agent runs for the conversation and TUI tests, sent to a real collector over OTLP/gRPC.

Two kinds: runs built here with the real OpenTelemetry SDK in the GenAI conventions tracekit writes (the travel
conversation, the Responses API chain, hostile content, orphans), and third-party instrumentations' output
recorded from the real packages by tests/recordings/record.py (OpenInference, OpenLLMetry, azure-ai-inference,
OpenTelemetry's openai-v2 in three modes), replayed from their OTLP/JSON captures with times moved onto this
module's clock. Ids and timestamps are deterministic so snapshot tests are stable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import grpc

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.logs.v1.logs_service_pb2_grpc import LogsServiceStub
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc import TraceServiceStub
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from tests.conversation.sequential_ids import SequentialIds
from tracekit.export.otlp_json import from_json_object

BASE_NS = 1_768_471_200_000_000_000  # 2026-01-15 10:00:00 UTC
MS = 1_000_000
HOSTILE_MARKUP = "[bold red]pwned[/bold red]"
HOSTILE_ESCAPE = "\x1b]52;c;SGVsbG8=\x07\x1b[2J"
HUGE = 5_000_000
RECORDINGS = Path(__file__).resolve().parents[1] / "recordings"


@dataclass
class Telemetry:
    """A tracer and an event logger exporting over OTLP/gRPC to a collector."""

    endpoint: str
    service: str = "travel-app"
    seed: int = 1
    tracer_provider: TracerProvider = field(init=False)
    logger_provider: LoggerProvider = field(init=False)

    def __post_init__(self) -> None:
        resource = Resource.create({"service.name": self.service})
        self.tracer_provider = TracerProvider(resource=resource, id_generator=SequentialIds(self.seed))
        self.tracer_provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=self.endpoint, insecure=True)))
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(
            BatchLogRecordProcessor(OTLPLogExporter(endpoint=self.endpoint, insecure=True)))
        self.tracer = self.tracer_provider.get_tracer("tests.scenarios")
        self.logger = self.logger_provider.get_logger("tests.scenarios")

    def span(self, name: str, start_ms: float, end_ms: float, attributes: dict[str, Any] | None = None,
             parent: trace.Span | None = None, kind: SpanKind = SpanKind.INTERNAL, error: str | None = None,
             events: list[tuple[str, dict[str, Any]]] = ()) -> trace.Span:
        """One finished span at BASE + start_ms .. BASE + end_ms."""
        context = trace.set_span_in_context(parent) if parent is not None else Context()
        span = self.tracer.start_span(name, context=context, kind=kind, attributes=attributes or {},
                                      start_time=BASE_NS + int(start_ms * MS))
        for offset, (event_name, event_attributes) in enumerate(events):
            span.add_event(event_name, event_attributes, timestamp=BASE_NS + int(start_ms * MS) + offset)
        if error:
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=BASE_NS + int(end_ms * MS))
        return span

    def open_span(self, name: str, start_ms: float, attributes: dict[str, Any] | None = None,
                  parent: trace.Span | None = None, kind: SpanKind = SpanKind.INTERNAL) -> trace.Span:
        """A span left open for the caller to end (parents that outlive their children)."""
        context = trace.set_span_in_context(parent) if parent is not None else Context()
        return self.tracer.start_span(name, context=context, kind=kind, attributes=attributes or {},
                                      start_time=BASE_NS + int(start_ms * MS))

    def event(self, name: str, span: trace.Span, at_ms: float, body: Any = None,
              attributes: dict[str, Any] | None = None) -> None:
        """A log record correlated with `span` (how OTel's event-based instrumentations record content)."""
        self.logger.emit(event_name=name, body=body, attributes={"event.name": name, **(attributes or {})},
                         context=trace.set_span_in_context(span), timestamp=BASE_NS + int(at_ms * MS))

    def send_recording(self, name: str, start_ms: float) -> None:
        """Send tests/recordings/NAME.jsonl as it was recorded, its earliest time moved to BASE + start_ms."""
        lines = [json.loads(line) for line in (RECORDINGS / f"{name}.jsonl").read_text().splitlines() if line]
        times = [(node, key) for line in lines for node, key in _nanosecond_fields(line) if int(node[key])]
        shift = BASE_NS + int(start_ms * MS) - min(int(node[key]) for node, key in times)
        for node, key in times:
            node[key] = str(int(node[key]) + shift)
        with grpc.insecure_channel(self.endpoint) as channel:
            for line in lines:
                request = from_json_object(line)
                stub = TraceServiceStub(channel) if isinstance(request, ExportTraceServiceRequest) \
                    else LogsServiceStub(channel)
                stub.Export(request, timeout=30)

    def flush(self) -> None:
        """Send everything now; the collector acknowledges only committed data."""
        self.tracer_provider.force_flush()
        self.logger_provider.force_flush()

    def shutdown(self) -> None:
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()


def _nanosecond_fields(node: Any) -> Iterator[tuple[dict[str, Any], str]]:
    """(object, key) of every `...UnixNano` time in an OTLP/JSON object."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key.endswith("UnixNano"):
                yield node, key
            else:
                yield from _nanosecond_fields(value)
    elif isinstance(node, list):
        for item in node:
            yield from _nanosecond_fields(item)


def recorded(name: str, start_ms: float) -> Callable[..., None]:
    """A scenario replaying the capture tests/recordings/NAME.jsonl from BASE + start_ms."""
    def scenario(t: Telemetry, **_options: Any) -> None:
        t.send_recording(name, start_ms)
    scenario.__name__ = name
    return scenario


def end(span: trace.Span, end_ms: float) -> None:
    span.end(end_time=BASE_NS + int(end_ms * MS))


def _text(role: str, content: str) -> dict[str, Any]:
    return {"role": role, "parts": [{"type": "text", "content": content}]}


def _call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"role": "assistant", "parts": [{"type": "tool_call", "id": call_id, "name": name, "arguments": arguments}]}


def _result(call_id: str, response: Any, key: str = "response") -> dict[str, Any]:
    return {"role": "tool", "parts": [{"type": "tool_call_response", "id": call_id, key: response}]}


def _structure_only(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages as recorded with content off (Azure SDK style): roles, part types, tool names and ids stay."""
    stripped = []
    for message in messages:
        parts = []
        for part in message["parts"]:
            kept = {key: value for key, value in part.items() if key in ("type", "id", "name")}
            parts.append(kept)
        stripped.append({**{k: v for k, v in message.items() if k != "parts"}, "parts": parts})
    return stripped


CONVERSATION = "conv-travel-42"
USER_1 = "Book me a flight to Paris next Friday"
USER_2 = "Yes, book it"
ANSWER_1 = "I found AF123 for €420. Shall I book it?"
ANSWER_2 = "The payment was declined, so nothing was booked."
SEARCH_RESULT = {"flights": [{"id": "AF123", "price": 420}]}


def travel_conversation(t: Telemetry, content: str = "on", conversation: str = CONVERSATION) -> None:
    """A two-request multi-agent conversation in the GenAI v1.37+ attribute shape.

    content: "on" (messages, tool arguments and results recorded), "structure" (roles and part types only, as the
    Azure SDKs record with content off), or "off" (no content attributes at all, as the spec says).
    """
    def chat_attributes(model: str, agent: str, inputs: list[dict[str, Any]], outputs: list[dict[str, Any]],
                        usage: tuple[int, int], response_id: str, system: str | None = None) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.system": "openai",
            "gen_ai.request.model": model, "gen_ai.response.model": model, "gen_ai.response.id": response_id,
            "gen_ai.usage.input_tokens": usage[0], "gen_ai.usage.output_tokens": usage[1],
            "gen_ai.conversation.id": conversation, "gen_ai.agent.name": agent,
        }
        if content == "on":
            attributes["gen_ai.input.messages"] = json.dumps(inputs)
            attributes["gen_ai.output.messages"] = json.dumps(outputs)
            if system:
                attributes["gen_ai.system_instructions"] = json.dumps([{"type": "text", "content": system}])
        elif content == "structure":
            attributes["gen_ai.input.messages"] = json.dumps(_structure_only(inputs))
            attributes["gen_ai.output.messages"] = json.dumps(_structure_only(outputs))
        return attributes

    def tool_attributes(name: str, call_id: str, arguments: Any, result: Any, **extra: Any) -> dict[str, Any]:
        attributes = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.type": "function",
                      "gen_ai.tool.call.id": call_id, "gen_ai.conversation.id": conversation, **extra}
        if content == "on":
            attributes["gen_ai.tool.call.arguments"] = json.dumps(arguments)
            if result is not None:
                attributes["gen_ai.tool.call.result"] = json.dumps(result)
        return attributes

    agent = {"gen_ai.operation.name": "invoke_agent", "gen_ai.provider.name": "openai",
             "gen_ai.conversation.id": conversation}
    # Request 1: triage hands off to the booker, which searches flights.
    workflow = t.open_span("invoke_workflow travel_planner", 0, {
        "gen_ai.operation.name": "invoke_workflow", "gen_ai.workflow.name": "travel_planner",
        "gen_ai.conversation.id": conversation})
    task = t.open_span("execute_task plan_trip", 1, {"gen_ai.operation.name": "execute_task",
                                                     "gen_ai.task.description": "Book a trip to Paris"}, workflow)
    triage = t.open_span("invoke_agent triage", 2, {**agent, "gen_ai.agent.name": "triage",
                                                     "gen_ai.agent.description": "Routes requests"}, task)
    u1 = _text("user", USER_1)
    t_call = _call("call_t1", "transfer_to_booker", {})
    t.span("chat gpt-4o", 3, 10, chat_attributes("gpt-4o", "triage", [u1], [t_call], (120, 15), "resp_a1",
                                                  system="Route the request to the right agent."),
           parent=triage, kind=SpanKind.CLIENT)
    t.span("execute_tool transfer_to_booker", 11, 12, tool_attributes(
        "transfer_to_booker", "call_t1", {}, "handed off", **{"gen_ai.transfer.target.name": "booker"}), triage)
    t.span("agent_to_agent_interaction", 13, 14, {"gen_ai.operation.name": "agent_to_agent_interaction",
                                                  "gen_ai.handoff.from_agent": "triage",
                                                  "gen_ai.handoff.to_agent": "booker"}, triage)
    end(triage, 20)
    booker = t.open_span("invoke_agent booker", 21, {**agent, "gen_ai.agent.name": "booker"}, task)
    t.span("agent_planning", 22, 25, {"gen_ai.operation.name": "agent_planning", "gen_ai.agent.name": "booker"},
           booker)
    search = _call("call_1", "search_flights", {"to": "Paris", "date": "2026-01-16"})
    t.span("chat gpt-4o", 26, 35, chat_attributes("gpt-4o", "booker", [u1], [search], (300, 40), "resp_b1",
                                                   system="You book flights."), booker, SpanKind.CLIENT)
    t.span("execute_tool search_flights", 36, 50, tool_attributes(
        "search_flights", "call_1", {"to": "Paris", "date": "2026-01-16"}, SEARCH_RESULT), booker)
    t.span("agent.state.management", 51, 52, {"gen_ai.operation.name": "agent.state.management"}, booker)
    answer_1 = {**_text("assistant", ANSWER_1), "finish_reason": "stop"}
    history_1 = [u1, search, _result("call_1", SEARCH_RESULT)]
    t.span("chat gpt-4o", 53, 90, chat_attributes("gpt-4o", "booker", history_1, [answer_1], (380, 20),
                                                   "resp_b2", system="You book flights."), booker, SpanKind.CLIENT)
    end(booker, 98)
    end(task, 99)
    end(workflow, 100)
    # Request 2: the user confirms; the booking tool fails.
    booker2 = t.open_span("invoke_agent booker", 200, {**agent, "gen_ai.agent.name": "booker"})
    u2 = _text("user", USER_2)
    book = _call("call_2", "book_flight", {"flight": "AF123"})
    history_2 = [*history_1, _text("assistant", ANSWER_1), u2]
    t.span("chat gpt-4o", 201, 220, chat_attributes("gpt-4o", "booker", history_2, [book], (450, 12), "resp_c1",
                                                     system="You book flights."), booker2, SpanKind.CLIENT)
    t.span("execute_tool book_flight", 221, 240, tool_attributes("book_flight", "call_2", {"flight": "AF123"}, None),
           booker2, error="payment declined")
    final = t.span("chat gpt-4o", 241, 260, chat_attributes(
        "gpt-4o", "booker", [*history_2, book, _result("call_2", "error: payment declined")],
        [_text("assistant", ANSWER_2)], (480, 14), "resp_c2", system="You book flights."), booker2, SpanKind.CLIENT)
    t.event("gen_ai.evaluation.result", final, 261, attributes={
        "gen_ai.evaluation.name": "Relevance", "gen_ai.evaluation.score.value": 4.0,
        "gen_ai.evaluation.score.label": "pass", "gen_ai.evaluation.explanation": "answers the question"})
    end(booker2, 300)


# Third-party shapes, recorded from the real packages (tests/recordings/README.md). Each is one question ("Who
# wrote Dune?"), one `lookup` tool call answered "Frank Herbert", and the answer, under its own conversation id.
RECORDED_QUESTION = "Who wrote Dune?"
RECORDED_ANSWER = "Dune was written by Frank Herbert."
azure_ai_inference = recorded("azure_ai_inference", 1000)     # content as span events (gen_ai.event.content)
openai_v2_legacy = recorded("openai_v2_legacy", 2000)         # content as one log record per message
openai_v2_events = recorded("openai_v2_events", 3000)         # content as one operation.details log record
openinference = recorded("openinference", 4000)               # llm.input_messages.N.* and AGENT/TOOL spans
openllmetry_indexed = recorded("openllmetry_indexed", 5000)   # gen_ai.prompt.N.* / gen_ai.completion.N.*
openllmetry = recorded("openllmetry", 5400)                   # gen_ai.input/output.messages
openai_v2_spans = recorded("openai_v2_spans", 5800)           # gen_ai.input/output.messages on the span


def v137_shape(t: Telemetry) -> None:
    """The v1.37 shape some libraries still write: `result` in tool responses, `finish_reason` on outputs."""
    inputs = [_text("user", "Add 2 and 3"), _call("call_add", "add", {"a": 2, "b": 3}),
              _result("call_add", 5, key="result")]
    t.span("chat gpt-4o", 6000, 6010, {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.conversation.id": "conv-v137", "gen_ai.input.messages": json.dumps(inputs),
        "gen_ai.output.messages": json.dumps([{**_text("assistant", "2 + 3 = 5"), "finish_reason": "stop"}])},
        kind=SpanKind.CLIENT)


def response_chain(t: Telemetry) -> None:
    """Three Responses API turns chained by previous_response.id, each its own trace, no conversation id."""
    previous = None
    for index, (question, answer) in enumerate([("Hi", "Hello!"), ("What's 1+1?", "2"), ("Thanks", "Any time.")]):
        attributes = {"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                      "gen_ai.request.model": "gpt-5", "gen_ai.response.id": f"resp_chain_{index + 1}",
                      "gen_ai.input.messages": json.dumps([_text("user", question)]),
                      "gen_ai.output.messages": json.dumps([_text("assistant", answer)])}
        if previous:
            attributes["gen_ai.request.previous_response.id"] = previous
        t.span("chat gpt-5", 7000 + index * 100, 7000 + index * 100 + 20, attributes, kind=SpanKind.CLIENT)
        previous = f"resp_chain_{index + 1}"


def hostile(t: Telemetry) -> None:
    """Content that tries to style or control the terminal, and a 5 MB prompt."""
    inputs = [_text("user", f"{HOSTILE_MARKUP} {HOSTILE_ESCAPE} please")]
    outputs = [_text("assistant", "A" * HUGE)]
    t.span(f"chat {HOSTILE_MARKUP}", 8000, 8010, {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o",
        "gen_ai.conversation.id": "conv-hostile", "gen_ai.agent.name": f"agent{HOSTILE_ESCAPE}",
        "gen_ai.input.messages": json.dumps(inputs), "gen_ai.output.messages": json.dumps(outputs),
        "note": f"{HOSTILE_MARKUP}{HOSTILE_ESCAPE}"}, kind=SpanKind.CLIENT)


RECORDED_SHAPES = (azure_ai_inference, openai_v2_legacy, openai_v2_events, openinference, openllmetry_indexed,
                   openllmetry, openai_v2_spans)
ALL_SHAPES = (*RECORDED_SHAPES, v137_shape, response_chain)


def record(endpoint: str, *scenarios: Any, seed: int = 1, **kwargs: Any) -> None:
    """Run scenarios against the collector at `endpoint` and wait until the collector has committed them."""
    telemetry = Telemetry(endpoint, seed=seed)
    try:
        for scenario in scenarios:
            scenario(telemetry, **kwargs)
        telemetry.flush()
    finally:
        telemetry.shutdown()


def iter_entries_text(transcript: Any) -> Iterator[str]:
    """Every entry rendered as plain text (what a user would read), for order assertions."""
    from tracekit.conversation.render import render_entry

    for entry in transcript.entries:
        yield render_entry(transcript, entry).plain


def orphans(t: Telemetry) -> None:
    """A trace whose middle span never arrives: its children must hang under a placeholder, not vanish."""
    root = t.open_span("handle_request", 9000, {"gen_ai.conversation.id": "conv-orphans"})
    middle = t.open_span("invoke_agent lost", 9001, {"gen_ai.operation.name": "invoke_agent",
                                                     "gen_ai.agent.name": "lost"}, root)
    t.span("chat gpt-4o", 9002, 9005, {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"},
           middle, SpanKind.CLIENT)
    end(root, 9010)  # `middle` is never ended, so never exported
