"""The canned OpenAI exchanges in tests/fixtures/openai/ are what the real `openai` SDK accepts: every body
validates against the SDK's own response models, so the instrumentor tests run against well-formed shapes."""

from __future__ import annotations

import json

import pytest
from openai.types import ErrorObject
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

from .fake_openai import FIXTURES, load_exchanges


def _sse_data(body: str) -> list[dict]:
    return [json.loads(line[len("data: "):]) for line in body.splitlines()
            if line.startswith("data: ") and line != "data: [DONE]"]


@pytest.mark.parametrize("name", sorted(path.name for path in FIXTURES.glob("*.json")))
def test_every_canned_body_validates_against_the_sdk_models(name: str) -> None:
    exchanges = load_exchanges(name)
    assert exchanges
    stream_events = TypeAdapter(ResponseStreamEvent)
    for request, canned in exchanges:
        assert request["model"]
        if canned.status >= 400:
            ErrorObject.model_validate(json.loads(canned.body)["error"])
        elif canned.content_type.startswith("text/event-stream"):
            events = _sse_data(canned.body)
            assert events and canned.body.rstrip().endswith(("data: [DONE]", "}"))
            for event in events:
                if "responses" in name:
                    assert stream_events.validate_python(event).type == event["type"]
                else:
                    ChatCompletionChunk.model_validate(event)
        elif "responses" in name:
            Response.model_validate(json.loads(canned.body))
        else:
            ChatCompletion.model_validate(json.loads(canned.body))


def test_streamed_tool_call_fragments_join_into_the_non_streamed_calls() -> None:
    """The streamed and the plain fixture describe the same turn, so both instrumentor paths see one answer."""
    ((_, streamed),) = load_exchanges("chat_tool_calls_streaming.json")
    (_, plain), _ = load_exchanges("chat_tool_calls.json")
    arguments: dict[int, str] = {}
    for chunk in _sse_data(streamed.body):
        for choice in chunk["choices"]:
            for call in choice["delta"].get("tool_calls") or []:
                arguments[call["index"]] = arguments.get(call["index"], "") + call["function"]["arguments"]
    expected = [call["function"]["arguments"] for call in json.loads(plain.body)["choices"][0]["message"]["tool_calls"]]
    assert [arguments[index] for index in sorted(arguments)] == expected
    assert _sse_data(streamed.body)[-1]["choices"] == [] and _sse_data(streamed.body)[-1]["usage"]
