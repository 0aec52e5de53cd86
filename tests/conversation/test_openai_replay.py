"""Replay of a real `openai` client run (canned OpenAI responses served locally), traced by tracekit's OpenAI
instrumentor and exported over OTLP to the collector: parallel tool calls paired with the results sent back."""

from __future__ import annotations

import json

import openai
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from tests.instrumentors.fake_openai import FakeOpenAI, load_exchanges
from tracekit.content import reset_content_settings, set_content_recording
from tracekit.conversation import EntryKind, load_transcript
from tracekit.instrumentors.openai import OpenAIInstrumentor
from tracekit.tracing import using_tracer_provider

EXCHANGES = "chat_tool_calls.json"


def test_openai_tool_calls_replay_paired_with_results(collector):
    (request1, response1), (request2, response2) = load_exchanges(EXCHANGES)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=collector.grpc_endpoint, insecure=True)))
    instrumentor = OpenAIInstrumentor()
    set_content_recording(True)
    try:
        with FakeOpenAI() as server, using_tracer_provider(provider):
            instrumentor.instrument(tracer_provider=provider)
            try:
                server.enqueue(response1)
                server.enqueue(response2)
                client = openai.OpenAI(api_key="test-key", base_url=server.base_url, max_retries=0)
                with provider.get_tracer("test").start_as_current_span("weather_assistant") as root:
                    client.chat.completions.create(**request1)
                    client.chat.completions.create(**request2)
                trace_id = format(root.get_span_context().trace_id, "032x")
            finally:
                instrumentor.uninstrument()
        provider.force_flush()
    finally:
        reset_content_settings()
        provider.shutdown()

    transcript = load_transcript(collector.reader(), trace_id)
    calls = json.loads(response1.body)["choices"][0]["message"]["tool_calls"]
    tools = [entry.tool for entry in transcript.entries if entry.kind is EntryKind.TOOL]
    assert [(tool.call_id, tool.name) for tool in tools] == [(call["id"], "get_current_weather") for call in calls]
    results = {message["tool_call_id"]: message["content"] for message in request2["messages"]
               if message.get("role") == "tool"}
    assert [tool.result for tool in tools] == [results[call["id"]] for call in calls]
    assert [tool.arguments for tool in tools] == [json.loads(call["function"]["arguments"]) for call in calls]
    messages = [(entry.message.role, entry.message.parts[0].content) for entry in transcript.entries
                if entry.kind is EntryKind.MESSAGE]
    assert messages[0] == ("user", request1["messages"][1]["content"])
    assert messages[-1] == ("assistant", json.loads(response2.body)["choices"][0]["message"]["content"])
    assert len(messages) == 2  # the history resent in the second call is not repeated
    assert [turn.input_tokens for turn in transcript.turns] == [
        json.loads(response1.body)["usage"]["prompt_tokens"], json.loads(response2.body)["usage"]["prompt_tokens"]]
