"""The real `openai` client against a local server that answers with canned OpenAI responses (tests/fixtures/openai)."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest
from opentelemetry.trace import SpanKind, StatusCode

import tracekit
from tracekit.instrumentors._common import inference_recorded_by
from tracekit.instrumentors.openai import OpenAIInstrumentor

from .fake_openai import Canned, FakeOpenAI, load_exchanges


@pytest.fixture
def server():
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def instrumented(telemetry):
    instrumentor = OpenAIInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider, meter_provider=telemetry.meter_provider)
    yield telemetry
    instrumentor.uninstrument()


@pytest.fixture
def client(server) -> openai.OpenAI:
    return openai.OpenAI(api_key="test-key", base_url=server.base_url, max_retries=0)


@pytest.fixture
def async_client(server) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="test-key", base_url=server.base_url, max_retries=0)


def _json(canned: Canned) -> dict[str, Any]:
    return json.loads(canned.body)


def test_chat_tool_calls_two_turns(instrumented, server, client, content_on) -> None:
    (request1, response1), (request2, response2) = load_exchanges("chat_tool_calls.json")
    server.enqueue(response1)
    server.enqueue(response2)
    first = client.chat.completions.create(**request1)
    client.chat.completions.create(**request2)
    assert first.choices[0].message.tool_calls  # the client still gets the real response

    spans = sorted(instrumented.spans, key=lambda s: s.start_time)
    assert [s.name for s in spans] == ["chat gpt-4o-mini", "chat gpt-4o-mini"]
    span = spans[0]
    recorded = _json(response1)
    assert span.kind is SpanKind.CLIENT and span.parent is None
    attrs = dict(span.attributes)
    assert json.loads(attrs.pop("gen_ai.input.messages")) == [
        {"role": "system", "parts": [{"type": "text", "content": request1["messages"][0]["content"]}]},
        {"role": "user", "parts": [{"type": "text", "content": "What's the weather in Lisbon and Oslo today?"}]},
    ]
    calls = recorded["choices"][0]["message"]["tool_calls"]
    assert json.loads(attrs.pop("gen_ai.output.messages")) == [{
        "role": "assistant", "finish_reason": "tool_call",
        "parts": [{"type": "tool_call", "id": call["id"], "name": "get_current_weather",
                   "arguments": json.loads(call["function"]["arguments"])} for call in calls],
    }]
    tool = request1["tools"][0]["function"]
    assert json.loads(attrs.pop("gen_ai.tool.definitions")) == [
        {"type": "function", "name": tool["name"], "description": tool["description"], "parameters": tool["parameters"]}]
    assert attrs == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.system": "openai",
        "gen_ai.request.model": "gpt-4o-mini", "openai.api.type": "chat_completions",
        "server.address": "127.0.0.1", "server.port": server.port,
        "gen_ai.response.id": recorded["id"], "gen_ai.response.model": recorded["model"],
        "openai.response.system_fingerprint": recorded["system_fingerprint"],
        "openai.response.service_tier": recorded["service_tier"],
        "gen_ai.response.finish_reasons": ("tool_call",),
        "gen_ai.usage.input_tokens": recorded["usage"]["prompt_tokens"],
        "gen_ai.usage.output_tokens": recorded["usage"]["completion_tokens"],
    }
    second_input = json.loads(spans[1].attributes["gen_ai.input.messages"])
    assert second_input[2]["parts"][0]["type"] == "tool_call"
    assert second_input[3] == {"role": "tool", "parts": [{"type": "tool_call_response", "id": calls[0]["id"],
                                                          "response": request2["messages"][3]["content"]}]}
    assert spans[1].attributes["gen_ai.response.finish_reasons"] == ("stop",)

    metrics = instrumented.metrics()
    assert sorted(p.sum for p in metrics["gen_ai.client.token.usage"]) == sorted([
        81 + _json(response2)["usage"]["prompt_tokens"], 49 + _json(response2)["usage"]["completion_tokens"]])
    (duration,) = metrics["gen_ai.client.operation.duration"]
    assert duration.count == 2 and list(duration.explicit_bounds)[:2] == [0.01, 0.02]


def test_chat_streaming_reassembles_tool_call_fragments(instrumented, server, client, content_on) -> None:
    ((request, response),) = load_exchanges("chat_tool_calls_streaming.json")
    server.enqueue(response)
    stream = client.chat.completions.create(**request)
    chunks = list(stream)
    assert chunks
    span = instrumented.span("chat gpt-4o-mini")
    assert span.attributes["gen_ai.request.stream"] is True
    assert span.attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert span.attributes["gen_ai.usage.input_tokens"] == 81
    assert span.attributes["gen_ai.usage.output_tokens"] == 49
    assert span.attributes["gen_ai.response.finish_reasons"] == ("tool_call",)
    (output,) = json.loads(span.attributes["gen_ai.output.messages"])
    assert [(p["name"], p["arguments"]) for p in output["parts"]] == [
        ("get_current_weather", {"location": "Lisbon, Portugal"}),
        ("get_current_weather", {"location": "Oslo, Norway"})]
    assert all(p["id"].startswith("call_") for p in output["parts"])


def test_chat_error_sets_error_type_and_metric(instrumented, server, client, content_off) -> None:
    ((request, response),) = load_exchanges("chat_unknown_model.json")
    server.enqueue(response)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(**request)
    span = instrumented.span("chat no-such-model")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"] == "model_not_found"
    (duration,) = instrumented.metrics()["gen_ai.client.operation.duration"]
    assert duration.attributes["error.type"] == "model_not_found"


def test_responses_tool_call_with_chaining_and_conversation(instrumented, server, client, content_on) -> None:
    ((request, response),) = load_exchanges("responses_tool_call.json")
    server.enqueue(response)
    client.responses.create(**request, previous_response_id="resp_prev_1", conversation="conv_abc")
    recorded = _json(response)
    sent = server.requests[0][1]
    assert server.requests[0][0] == "/v1/responses" and sent["conversation"] == "conv_abc"
    span = instrumented.span("chat gpt-4o-mini")
    call = next(item for item in recorded["output"] if item["type"] == "function_call")
    assert span.attributes["gen_ai.response.id"] == recorded["id"]
    assert span.attributes["gen_ai.request.previous_response.id"] == "resp_prev_1"
    assert span.attributes["gen_ai.conversation.id"] == "conv_abc"
    assert span.attributes["openai.api.type"] == "responses"
    assert span.attributes["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert json.loads(span.attributes["gen_ai.output.messages"]) == [{
        "role": "assistant", "finish_reason": "tool_call",
        "parts": [{"type": "tool_call", "id": call["call_id"], "name": call["name"],
                   "arguments": json.loads(call["arguments"])}]}]
    assert json.loads(span.attributes["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": request["input"]}]}]
    assert span.attributes["gen_ai.usage.input_tokens"] == recorded["usage"]["input_tokens"]


def test_responses_streaming_sync(instrumented, server, client, content_on) -> None:
    ((request, response),) = load_exchanges("responses_streaming.json")
    server.enqueue(response)
    with client.responses.create(**request) as stream:
        events = [event.type for event in stream]
    assert events[-1] == "response.completed"
    span = instrumented.span("chat gpt-4o-mini")
    assert span.attributes["gen_ai.response.id"].startswith("resp_")
    assert json.loads(span.attributes["gen_ai.system_instructions"]) == [
        {"type": "text", "content": "You are a cheerful assistant."}]
    assert json.loads(span.attributes["gen_ai.output.messages"]) == [
        {"role": "assistant", "parts": [{"type": "text", "content": "Ready when you are!"}], "finish_reason": "stop"}]
    assert span.attributes["gen_ai.usage.output_tokens"] == 6
    assert span.attributes["openai.request.service_tier"] == "default"


async def test_async_streaming_and_async_chat_nest_under_agent(instrumented, server, async_client, content_off) -> None:
    ((request, response),) = load_exchanges("responses_streaming.json")
    (chat_request, chat_response), _ = load_exchanges("chat_tool_calls.json")
    server.enqueue(response)
    server.enqueue(chat_response)
    async with tracekit.agent("writer", conversation_id="conv-7"):
        stream = await async_client.responses.create(**request)
        async for _ in stream:
            pass
        await async_client.chat.completions.create(**chat_request)
    agent = instrumented.span("invoke_agent writer")
    chats = [s for s in instrumented.spans if s.name == "chat gpt-4o-mini"]
    assert len(chats) == 2
    for span in chats:
        assert span.parent.span_id == agent.context.span_id
        assert span.attributes["gen_ai.conversation.id"] == "conv-7"
        assert "gen_ai.usage.input_tokens" in span.attributes


def test_content_off_leaks_no_text_arguments_or_instructions(instrumented, server, client, content_off) -> None:
    (request1, response1), (request2, response2) = load_exchanges("chat_tool_calls.json")
    ((r_request, r_response),) = load_exchanges("responses_streaming.json")
    for canned in (response1, response2, r_response):
        server.enqueue(canned)
    client.chat.completions.create(**request1)
    client.chat.completions.create(**request2)
    for _ in client.responses.create(**r_request):
        pass
    exported = instrumented.everything_exported()
    for text in ("Lisbon", "Oslo", "travel assistant", "cheerful assistant", "snowing", "Ready when", "Rome, Italy"):
        assert text not in exported
    span = sorted(instrumented.spans, key=lambda s: s.start_time)[0]
    assert json.loads(span.attributes["gen_ai.output.messages"])[0]["parts"][0] == {
        "type": "tool_call", "id": "call_Lx4tQ9wNb2Rk7JmVd3sHa8Ye", "name": "get_current_weather"}
    assert json.loads(span.attributes["gen_ai.tool.definitions"]) == [{"type": "function", "name": "get_current_weather"}]


def test_planted_secrets_in_prompts_are_redacted(instrumented, server, client, content_on) -> None:
    (request, response), _ = load_exchanges("chat_tool_calls.json")
    server.enqueue(response)
    key = "sk-proj-Abc123Def456Ghi789Jkl012Mno345"
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
    request["messages"][1]["content"] = f"use key {key} and token {jwt}, mail bob@example.org"
    client.chat.completions.create(**request)
    assert key in json.dumps(server.requests[0][1])  # the model still got the real prompt
    exported = instrumented.everything_exported()
    for secret in (key, jwt, "bob@example.org"):
        assert secret not in exported
    assert instrumented.span("chat gpt-4o-mini").attributes["tracekit.redaction.masked_count"] == 3


def test_no_second_span_when_a_framework_already_records_the_call(instrumented, server, client, content_off) -> None:
    (request, response), _ = load_exchanges("chat_tool_calls.json")
    server.enqueue(response)
    token = inference_recorded_by.set("langchain")
    try:
        client.chat.completions.create(**request)
    finally:
        inference_recorded_by.reset(token)
    assert instrumented.spans == []


def test_stream_helper_is_covered_through_create(instrumented, server, client, content_on) -> None:
    ((request, response),) = load_exchanges("chat_tool_calls_streaming.json")
    server.enqueue(response)
    request = {key: value for key, value in request.items() if key != "stream"}
    with client.chat.completions.stream(**request) as stream:
        for _ in stream:
            pass
    span = instrumented.span("chat gpt-4o-mini")
    assert span.attributes["gen_ai.usage.output_tokens"] == 49
    assert span.attributes["gen_ai.response.finish_reasons"] == ("tool_call",)


def test_with_raw_response_still_records_the_response(instrumented, server, client, content_off) -> None:
    (request, response), _ = load_exchanges("chat_tool_calls.json")
    server.enqueue(response)
    raw = client.chat.completions.with_raw_response.create(**request)
    assert raw.parse().id == _json(response)["id"]
    span = instrumented.span("chat gpt-4o-mini")
    assert span.attributes["gen_ai.response.id"] == _json(response)["id"]
    assert span.attributes["gen_ai.usage.input_tokens"] == 81


def _assert_streamed_span(telemetry: Any, request: dict[str, Any]) -> None:
    """What a streamed chat call's span carries (chat_tool_calls_streaming.json, content on)."""
    span = telemetry.span("chat gpt-4o-mini")
    assert span.end_time is not None
    assert span.attributes["gen_ai.request.stream"] is True
    assert span.attributes["gen_ai.response.id"].startswith("chatcmpl-")
    assert span.attributes["gen_ai.response.time_to_first_chunk"] > 0
    assert (span.attributes["gen_ai.usage.input_tokens"], span.attributes["gen_ai.usage.output_tokens"]) == (81, 49)
    assert span.attributes["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert json.loads(span.attributes["gen_ai.input.messages"])[-1]["parts"][0]["content"] == \
        request["messages"][-1]["content"]
    (output,) = json.loads(span.attributes["gen_ai.output.messages"])
    assert [part["arguments"] for part in output["parts"]] == [{"location": "Lisbon, Portugal"},
                                                               {"location": "Oslo, Norway"}]
    (duration,) = telemetry.metrics()["gen_ai.client.operation.duration"]
    assert duration.count == 1
    (first_chunk,) = telemetry.metrics()["gen_ai.client.operation.time_to_first_chunk"]
    assert first_chunk.count == 1


def test_with_streaming_response_stream_gets_the_streamed_span(instrumented, server, client, content_on) -> None:
    ((request, response),) = load_exchanges("chat_tool_calls_streaming.json")
    server.enqueue(response)
    with client.chat.completions.with_streaming_response.create(**request) as raw:
        assert instrumented.spans == []  # open until the stream is read
        chunks = list(raw.parse())
    assert chunks and all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    _assert_streamed_span(instrumented, request)


async def test_async_with_streaming_response_stream_gets_the_streamed_span(instrumented, server, async_client,
                                                                           content_on) -> None:
    ((request, response),) = load_exchanges("chat_tool_calls_streaming.json")
    server.enqueue(response)
    async with async_client.chat.completions.with_streaming_response.create(**request) as raw:
        chunks = [chunk async for chunk in await raw.parse()]
    assert chunks
    _assert_streamed_span(instrumented, request)


def test_with_streaming_response_left_unread_ends_the_span_on_close(instrumented, server, client,
                                                                    content_off) -> None:
    ((request, response),) = load_exchanges("chat_tool_calls_streaming.json")
    server.enqueue(response)
    with client.chat.completions.with_streaming_response.create(**request) as raw:
        assert raw.http_response.status_code == 200
    span = instrumented.span("chat gpt-4o-mini")
    assert span.end_time is not None and "gen_ai.usage.input_tokens" not in span.attributes


def test_stream_closed_early_ends_the_span_with_what_arrived(instrumented, server, client, content_on) -> None:
    ((request, response),) = load_exchanges("chat_tool_calls_streaming.json")
    server.enqueue(response)
    stream = client.chat.completions.create(**request)
    next(iter(stream))
    next(iter(stream))
    stream.close()
    span = instrumented.span("chat gpt-4o-mini")
    assert span.end_time is not None
    assert span.attributes["gen_ai.response.finish_reasons"] == ("error",)  # no finish_reason ever arrived
    assert span.attributes["gen_ai.response.id"].startswith("chatcmpl-")
    assert "gen_ai.usage.input_tokens" not in span.attributes


async def test_async_stream_error_mid_way_isload_exchanges(instrumented, server, async_client, content_off) -> None:
    server.enqueue(Canned(200, 'data: {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, '
                               '"model": "gpt-4o-mini", "choices": []}\n\ndata: {not json\n\n', "text/event-stream"))
    stream = await async_client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                                        messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(ValueError):  # the SDK's JSON decoding error
        async for _ in stream:
            pass
    span = instrumented.span("chat gpt-4o-mini")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"]
