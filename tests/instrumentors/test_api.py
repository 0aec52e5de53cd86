"""tracekit's own helpers: agents, tools, tasks, multi-agent spans, content policy, evaluations."""

from __future__ import annotations

import asyncio
import json

import pytest
from opentelemetry.trace import SpanKind, StatusCode

import tracekit
from tracekit.content import ContentMode, settings_from_env
from tracekit.messages import message, render, text_part, tool_call_part, tool_call_response_part
from tracekit.content import ContentSettings
from tracekit.redaction import RedactionPolicy

SECRET_ARG = "Zanzibar-7731"
SECRET_RESULT = "sunny-and-31-degrees"


@tracekit.tool
def get_weather(city: str, unit: str = "C") -> str:
    """Current weather for a city."""
    return f"{SECRET_RESULT} in {city}"


@tracekit.tool(name="book_hotel")
async def book(city: str) -> dict:
    await asyncio.sleep(0)
    return {"confirmation": "H-1", "city": city}


def test_multi_agent_tree_names_kinds_attributes_and_parents(telemetry, content_off) -> None:
    with tracekit.task("plan_trip", agent="orchestrator", conversation_id="conv-1"):
        with tracekit.agent_planning("decompose"):
            pass
        with tracekit.agent_orchestration("delegate"):
            with tracekit.agent_to_agent("flight-agent"):
                with tracekit.agent("flight-agent", description="books flights", model="gpt-4o-mini", provider="openai"):
                    with tracekit.agent_state("load_memory"):
                        pass
                    get_weather("Paris")

    task = telemetry.span("execute_task plan_trip")
    planning = telemetry.span("agent_planning decompose")
    orchestration = telemetry.span("agent_orchestration delegate")
    a2a = telemetry.span("agent_to_agent_interaction flight-agent")
    agent = telemetry.span("invoke_agent flight-agent")
    state = telemetry.span("agent.state.management load_memory")
    tool = telemetry.span("execute_tool get_weather")

    assert task.parent is None
    assert planning.parent.span_id == task.context.span_id
    assert orchestration.parent.span_id == task.context.span_id
    assert a2a.parent.span_id == orchestration.context.span_id
    assert agent.parent.span_id == a2a.context.span_id
    assert state.parent.span_id == agent.context.span_id
    assert tool.parent.span_id == agent.context.span_id
    assert {span.context.trace_id for span in telemetry.spans} == {task.context.trace_id}
    assert all(span.kind is SpanKind.INTERNAL for span in telemetry.spans)

    assert dict(task.attributes) == {
        "gen_ai.operation.name": "execute_task", "gen_ai.task.name": "plan_trip",
        "gen_ai.agent.name": "orchestrator", "gen_ai.conversation.id": "conv-1",
    }
    assert dict(a2a.attributes) == {
        "gen_ai.operation.name": "agent_to_agent_interaction", "gen_ai.transfer.target.name": "flight-agent",
        "gen_ai.transfer.source.name": "orchestrator", "gen_ai.agent.name": "orchestrator",
        "gen_ai.conversation.id": "conv-1",
    }
    assert dict(agent.attributes) == {
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "flight-agent",
        "gen_ai.agent.description": "books flights", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.provider.name": "openai", "gen_ai.system": "openai", "gen_ai.conversation.id": "conv-1",
    }
    assert state.attributes["gen_ai.agent.name"] == "flight-agent"
    assert dict(tool.attributes) == {
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather", "gen_ai.tool.type": "function",
        "gen_ai.tool.description": "Current weather for a city.", "gen_ai.agent.name": "flight-agent",
        "gen_ai.conversation.id": "conv-1",
    }
    # Content off: no arguments, no result anywhere.
    exported = telemetry.everything_exported()
    assert "Paris" not in exported and SECRET_RESULT not in exported


def test_tool_records_arguments_and_result_with_content_on(telemetry, content_on) -> None:
    get_weather("Paris", unit="F")
    span = telemetry.span("execute_tool get_weather")
    assert json.loads(span.attributes["gen_ai.tool.call.arguments"]) == {"city": "Paris", "unit": "F"}
    assert span.attributes["gen_ai.tool.call.result"] == f"{SECRET_RESULT} in Paris"


def test_tool_arguments_orjson_refuses_are_still_recorded(telemetry, content_on) -> None:
    """orjson rejects integers beyond 64 bits and lone surrogates; the span must still get its arguments, as JSON
    that parses and encodes as UTF-8 (the OTLP exporter would fail on a surrogate)."""

    @tracekit.tool
    def lookup(order: int, note: str) -> str:
        return "found"

    lookup(2**70, "bad \ud800 half")
    arguments = telemetry.span("execute_tool lookup").attributes["gen_ai.tool.call.arguments"]
    arguments.encode("utf-8")
    assert json.loads(arguments) == {"order": 2**70, "note": "bad \ud800 half"}


async def test_async_tool_and_async_agent_nest_across_awaits(telemetry, content_on) -> None:
    async def run_agent(name: str) -> None:
        async with tracekit.agent(name, conversation_id=f"conv-{name}"):
            await asyncio.sleep(0.01)
            await book(name)

    await asyncio.gather(run_agent("a"), run_agent("b"))
    agents = {span.attributes["gen_ai.agent.name"]: span for span in telemetry.spans if span.name.startswith("invoke_agent")}
    tools = [span for span in telemetry.spans if span.name == "execute_tool book_hotel"]
    assert len(tools) == 2
    for tool_span in tools:
        city = json.loads(tool_span.attributes["gen_ai.tool.call.arguments"])["city"]
        assert tool_span.parent.span_id == agents[city].context.span_id
        assert tool_span.attributes["gen_ai.conversation.id"] == f"conv-{city}"
        assert json.loads(tool_span.attributes["gen_ai.tool.call.result"]) == {"confirmation": "H-1", "city": city}


def test_exceptions_set_error_type_and_status(telemetry, content_off) -> None:
    @tracekit.tool
    def flaky() -> None:
        raise TimeoutError("upstream timed out")

    with pytest.raises(TimeoutError):
        with tracekit.agent("hotel-agent"):
            flaky()
    for name in ("execute_tool flaky", "invoke_agent hotel-agent"):
        span = telemetry.span(name)
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes["error.type"] == "TimeoutError"
        assert span.events[0].name == "exception"


def test_planted_secrets_in_tool_io_are_redacted(telemetry, content_on) -> None:
    key = "sk-proj-Abc123Def456Ghi789Jkl012Mno345"

    @tracekit.tool
    def lookup(api_key: str, email: str) -> str:
        return f"found card 4111 1111 1111 1111 for {email}"

    lookup(key, "ann@example.com")
    span = telemetry.span("execute_tool lookup")
    exported = telemetry.everything_exported()
    for secret in (key, "ann@example.com", "4111 1111 1111 1111"):
        assert secret not in exported
    assert span.attributes["tracekit.redaction.masked_count"] == 4


def test_evaluation_goes_through_logs_under_the_evaluated_span(telemetry, content_on) -> None:
    with tracekit.agent("answerer") as agent:
        agent.set_response_id("resp_1")
        tracekit.record_evaluation("relevance", score=4.0, label="pass", explanation="on topic, mail x@y.org",
                                   response_id="resp_1", logger_provider=telemetry.logger_provider)
    (record,) = [r.log_record for r in telemetry.log_exporter.get_finished_logs()]
    span = telemetry.span("invoke_agent answerer")
    assert record.event_name == "gen_ai.evaluation.result"
    assert record.trace_id == span.context.trace_id and record.span_id == span.context.span_id
    assert dict(record.attributes) == {
        "gen_ai.evaluation.name": "relevance", "microsoft.custom_event.name": "gen_ai.evaluation.result",
        "gen_ai.evaluation.score.value": 4.0, "gen_ai.evaluation.score.label": "pass",
        "gen_ai.response.id": "resp_1", "gen_ai.evaluation.explanation": "on topic, mail [REDACTED:email]",
    }


def test_evaluation_falls_back_to_a_span_event_without_a_logger_provider(telemetry, content_off) -> None:
    class NoSdk:  # what the API's default provider looks like: no add_log_record_processor
        pass

    with tracekit.agent("answerer"):
        tracekit.record_evaluation("groundedness", score=1.0, explanation="secret reasoning", logger_provider=NoSdk())
    event = telemetry.span("invoke_agent answerer").events[0]
    assert event.name == "gen_ai.evaluation.result"
    assert event.attributes["gen_ai.evaluation.score.value"] == 1.0
    assert "gen_ai.evaluation.explanation" not in event.attributes  # content off


@pytest.mark.parametrize(
    ("env", "mode"),
    [
        ({}, ContentMode.NO_CONTENT),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}, ContentMode.SPAN_ONLY),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "span_and_event"}, ContentMode.SPAN_AND_EVENT),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "EVENT_ONLY"}, ContentMode.EVENT_ONLY),
        ({"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "bogus"}, ContentMode.NO_CONTENT),
        ({"AZURE_TRACING_GEN_AI_CONTENT_RECORDING_ENABLED": "True"}, ContentMode.SPAN_ONLY),
        ({"AZURE_TRACING_GEN_AI_CONTENT_RECORDING_ENABLED": "true",
          "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "false"}, ContentMode.NO_CONTENT),
    ],
)
def test_content_mode_from_environment(env, mode) -> None:
    assert settings_from_env(env).mode is mode


def test_messages_follow_the_schema_and_drop_content_when_off() -> None:
    messages = [
        message("user", [text_part("Weather in Paris?")]),
        message("assistant", [tool_call_part("call_1", "get_weather", '{"location": "Paris"}')]),
        message("tool", [tool_call_response_part("call_1", "rainy, 57°F")]),
    ]
    on, _ = render("gen_ai.input.messages", messages, ContentSettings(ContentMode.SPAN_ONLY, RedactionPolicy.default()))
    assert json.loads(on) == [
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1", "name": "get_weather",
                                          "arguments": {"location": "Paris"}}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1", "response": "rainy, 57°F"}]},
    ]
    off, _ = render("gen_ai.input.messages", messages, ContentSettings())
    assert json.loads(off) == [
        {"role": "user", "parts": [{"type": "text"}]},
        {"role": "assistant", "parts": [{"type": "tool_call", "id": "call_1", "name": "get_weather"}]},
        {"role": "tool", "parts": [{"type": "tool_call_response", "id": "call_1"}]},
    ]
    assert render("gen_ai.system_instructions", [text_part("be nice")], ContentSettings()) == (None, 0)


def test_import_tracekit_is_light() -> None:
    import subprocess
    import sys

    code = "import sys, tracekit; print(any(m.startswith(('opentelemetry', 'langchain', 'openai')) for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


async def test_streaming_agents_keep_their_span_open_while_iterated(telemetry, content_off) -> None:
    @tracekit.agent("streamer")
    async def stream_answer(question: str):
        for word in ("it", "is", "sunny"):
            await asyncio.sleep(0)
            yield word

    @tracekit.agent("sync-streamer")
    def sync_stream():
        yield 1
        get_weather("Oslo")
        yield 2

    assert [word async for word in stream_answer("weather?")] == ["it", "is", "sunny"]
    assert list(sync_stream()) == [1, 2]
    streamer = telemetry.span("invoke_agent streamer")
    assert streamer.end_time > streamer.start_time and streamer.status.status_code is StatusCode.UNSET
    tool_span = telemetry.span("execute_tool get_weather")
    assert tool_span.parent.span_id == telemetry.span("invoke_agent sync-streamer").context.span_id

    gen = stream_answer("stop early")
    assert await gen.__anext__() == "it"
    await gen.aclose()
    early = [s for s in telemetry.spans if s.name == "invoke_agent streamer"][-1]
    assert early.status.status_code is StatusCode.UNSET


def test_exception_text_is_redacted_at_the_source_even_without_the_processor(content_off) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from tracekit.tracing import using_tracer_provider

    exporter = InMemorySpanExporter()
    provider = TracerProvider()  # no RedactingSpanProcessor: as under `opentelemetry-instrument`
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    key = "sk-proj-Abc123Def456Ghi789Jkl012Mno345"
    with using_tracer_provider(provider), pytest.raises(PermissionError):
        with tracekit.agent("payments"):
            raise PermissionError(f"401 for key {key} (owner ann@example.com)")
    (span,) = exporter.get_finished_spans()
    assert key not in span.to_json() and "ann@example.com" not in span.to_json()
    assert span.status.description == "PermissionError: 401 for key [REDACTED:openai_key] (owner [REDACTED:email])"
    assert span.events[0].attributes["exception.type"] == "PermissionError"


def test_every_public_name_resolves() -> None:
    assert set(tracekit.__all__) - {"__version__"} == set(tracekit._EXPORTS)
    for name in tracekit.__all__:
        assert getattr(tracekit, name) is not None
    assert callable(tracekit.configure) and callable(tracekit.instrument)  # functions, not the modules
