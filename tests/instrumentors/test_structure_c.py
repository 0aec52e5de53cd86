"""The compiled content-off message JSON (instrumentors/_structure.c) against the Python functions and the general
conversion, text for text, on generated LangChain messages of every kind and odd shape; and its handling of errors
and of messages that change under it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.messages import (AIMessage, AIMessageChunk, ChatMessage, FunctionMessage, HumanMessage,
                                     SystemMessage, ToolMessage)

from tracekit.instrumentors import _langchain_messages as lcm
from tracekit.messages import output_message, to_json

structure = pytest.importorskip("tracekit.instrumentors._structure",
                                reason="the C module is optional: built only where a compiler is present")

# Texts that take every branch of the string check: identifiers, printable ASCII, quotes and backslashes, control
# characters, non-ASCII (printable or not), and lone surrogates (which orjson refuses).
texts = st.one_of(st.sampled_from(["", "call_1", "search_flights", 'quo"te', "back\\slash", "tab\there", "caf\u00e9",
                                   "line\u2028sep", "\ud800", "\x7f", "a b-c.d"]),
                  st.text(max_size=12))
ids = st.one_of(texts, st.none(), st.integers(-(2**70), 2**70))


@st.composite
def tool_calls(draw: Any) -> list[dict[str, Any]]:
    calls = []
    for _ in range(draw(st.integers(0, 3))):
        call: dict[str, Any] = {"args": {}}
        if draw(st.booleans()):
            call["id"] = draw(ids)
        if draw(st.booleans()):
            call["name"] = draw(ids)
        calls.append(call)
    return calls


contents = st.one_of(texts, st.lists(st.one_of(
    texts, st.fixed_dictionaries({"type": st.just("text"), "text": texts}),
    st.fixed_dictionaries({"type": st.just("image_url"), "image_url": st.fixed_dictionaries({"url": texts})}),
    st.fixed_dictionaries({"type": st.sampled_from(["reasoning", "tool_use", "audio"])})), max_size=3))


@st.composite
def messages(draw: Any) -> Any:
    """A LangChain message (built without validation, so any field may hold any shape), or a prompt string."""
    kind = draw(st.sampled_from([SystemMessage, HumanMessage, AIMessage, AIMessageChunk, ToolMessage, ChatMessage,
                                 FunctionMessage, str]))
    if kind is str:
        return draw(texts)
    fields: dict[str, Any] = {"content": draw(contents)}
    if draw(st.integers(0, 3)) == 0:
        fields["name"] = draw(st.one_of(texts, st.none()))
    if kind is ToolMessage:
        fields["tool_call_id"] = draw(ids)
    if kind is ChatMessage:
        fields["role"] = draw(st.sampled_from(["critic", "assistant", "user"]))
    if kind in (AIMessage, AIMessageChunk):
        calls = draw(tool_calls())
        fields["tool_calls"] = draw(st.sampled_from([list, tuple]))(calls) if calls else draw(
            st.sampled_from([[], (), None]))
    msg = kind.model_construct(**fields)
    if draw(st.integers(0, 9)) == 0:  # a type LangChain does not have
        msg.__dict__["type"] = draw(st.sampled_from(["custom", "developer", "chat"]))
    return msg


def general(messages_: list[Any]) -> str | None:
    return to_json(lcm.to_otel_messages(messages_, False)) if messages_ else None


def assert_same_json(pieces: str | None, whole: str | None) -> None:
    """Text built from pieces is the general conversion's text, byte for byte; except where the serializer refuses a
    value (a lone surrogate, an integer beyond 64 bits) and its fallback escapes everything outside printable ASCII
    in the whole document, while pieces escape only their own value: there the two must mean the same JSON."""
    if pieces != whole:
        assert whole is not None and pieces is not None and whole.isascii()
        assert json.loads(pieces) == json.loads(whole)


@settings(max_examples=400, deadline=None)
@given(st.lists(messages(), max_size=6))
def test_input_json_is_the_python_and_the_general_conversion(history):
    compiled = structure.structure_json(history)
    assert compiled == lcm.structure_json_python(history)
    assert_same_json(compiled, general(history))


@settings(max_examples=400, deadline=None)
@given(messages(), st.one_of(st.sampled_from(["stop", "tool_call", "length"]), texts))
def test_output_json_is_the_python_and_the_general_conversion(msg, reason):
    compiled = structure.output_structure_json(msg, reason)
    assert compiled == lcm.output_structure_json_python(msg, reason)
    assert_same_json(compiled, to_json(output_message("assistant", lcm.message_parts(msg, False), reason)))


def test_the_instrumentor_uses_the_compiled_functions():
    assert lcm.structure_json is structure.structure_json
    assert lcm.output_structure_json is structure.output_structure_json
    assert not structure.not_set_up()


def test_long_histories_grow_the_buffer():
    """Past the 2 KB kept on the stack the text moves to the heap; non-ASCII pieces make it decode as UTF-8."""
    history = [AIMessage("", tool_calls=[{"name": f"tool_{i}", "args": {}, "id": f"call_{i}_\u00e9"}])
               for i in range(300)]
    text = structure.structure_json(history)
    assert len(text) > 20_000 and text == general(history)


def test_tuples_and_non_list_iterables():
    assert structure.structure_json((HumanMessage("a"), AIMessage("b"))) == general([HumanMessage("a"), AIMessage("b")])
    assert structure.structure_json(iter([HumanMessage("a")])) == general([HumanMessage("a")])
    assert structure.structure_json(()) is None


def test_errors_propagate_instead_of_passing_wrong_text():
    class Broken:
        @property
        def __dict__(self) -> Any:  # type: ignore[override]
            raise RuntimeError("no fields for you")

    with pytest.raises(RuntimeError, match="no fields for you"):
        structure.structure_json([Broken()])
    with pytest.raises(RuntimeError, match="no fields for you"):
        structure.output_structure_json(Broken(), "stop")
    with pytest.raises(TypeError):
        structure.structure_json(42)
    unhashable = HumanMessage.model_construct(content="x")
    unhashable.__dict__["type"] = ["not", "hashable"]
    with pytest.raises(TypeError):  # as the Python function does: the role table cannot look a list up
        structure.structure_json([unhashable])
    with pytest.raises(TypeError):
        structure.output_structure_json(unhashable, "stop")
    with pytest.raises(TypeError):
        structure.output_structure_json(AIMessage("x"))


def test_a_fallback_that_changes_the_message_is_survived():
    """A non-string id is handed to Python, whose code could change the very list being read (here its __str__
    empties it); the C code holds what it reads and reads the length afresh, instead of reading freed memory."""
    calls: list[dict[str, Any]] = []

    class Meddler:
        def __str__(self) -> str:
            calls.clear()
            return "meddled"

    calls.extend([{"name": "a", "args": {}, "id": Meddler()}, {"name": "b", "args": {}, "id": "call_2"}])
    msg = AIMessage.model_construct(content="", tool_calls=calls)
    assert structure.structure_json([msg]) == \
        '[{"role":"assistant","parts":[{"type":"tool_call","id":"meddled","name":"a"}]}]'


# --- reading an LLMResult (content off) ---------------------------------------------------------------------------

reasons = st.sampled_from([None, "", "stop", "tool_calls", "length", "end_turn", "content_filter", 5, 'we"ird'])
counts = st.one_of(st.none(), st.integers(0, 10**6), st.sampled_from([True, 3.0, "12", "x"]))
optional = st.one_of(st.none(), st.just(""), texts)


@st.composite
def usages(draw: Any) -> Any:
    if draw(st.integers(0, 3)) == 0:
        return draw(st.sampled_from([None, {}]))
    usage: dict[str, Any] = {"input_tokens": draw(counts), "output_tokens": draw(counts), "total_tokens": 1}
    if draw(st.booleans()):
        usage["input_token_details"] = draw(st.sampled_from([None, {}, {"cache_read": 0}, {"cache_read": 7},
                                                             {"audio": 1}]))
    if draw(st.booleans()):
        usage["output_token_details"] = draw(st.sampled_from([None, {"reasoning": 0}, {"reasoning": 9}]))
    return usage


@st.composite
def llm_results(draw: Any) -> Any:
    """LLMResults of chat models (built without validation, so any field may hold any shape)."""
    from langchain_core.outputs import ChatGeneration, Generation, LLMResult

    batches = []
    for _ in range(draw(st.integers(0, 2))):
        batch = []
        for _ in range(draw(st.integers(0, 2))):
            if draw(st.integers(0, 9)) == 0:  # a text LLM's generation: the Python path
                batch.append(Generation(text="t"))
                continue
            metadata: dict[str, Any] = {}
            for key in ("finish_reason", "stop_reason"):
                if draw(st.booleans()):
                    metadata[key] = draw(reasons)
            for key in ("id", "model_name", "model"):
                if draw(st.booleans()):
                    metadata[key] = draw(optional)
            fields: dict[str, Any] = {"content": draw(st.sampled_from(["", "answer", [{"type": "text", "text": "x"}]])),
                                      "response_metadata": metadata, "usage_metadata": draw(usages())}
            calls = draw(tool_calls())
            fields["tool_calls"] = calls
            msg = draw(st.sampled_from([AIMessage, AIMessageChunk, HumanMessage])).model_construct(**fields)
            info = draw(st.sampled_from([None, {}, {"finish_reason": "length"}, {"finish_reason": None}]))
            batch.append(ChatGeneration.model_construct(message=msg, generation_info=info, text=""))
        batches.append(batch)
    llm_output: Any = draw(st.sampled_from([None, {}]))
    if draw(st.booleans()):
        llm_output = {key: draw(optional) for key in draw(st.sets(st.sampled_from(["id", "model_name", "model"])))}
        reported = {"prompt_tokens": draw(counts), "completion_tokens": draw(counts)} if draw(st.booleans()) else \
            {"input_tokens": draw(counts), "output_tokens": draw(counts)}
        llm_output[draw(st.sampled_from(["token_usage", "usage"]))] = reported
    return LLMResult.model_construct(generations=batches, llm_output=llm_output)


def outcome(read: Any, *args: Any) -> Any:
    """What a reader returns, with the found attributes in order; or the type of what it raised."""
    try:
        found, outputs, outputs_json, input_tokens, output_tokens = read(*args)
    except Exception as error:  # noqa: BLE001 - the two readers must fail alike
        return type(error)
    return list(found.items()), outputs, outputs_json, input_tokens, output_tokens


@settings(max_examples=500, deadline=None)
@given(llm_results())
def test_response_reading_is_the_python_function(result):
    from tracekit.instrumentors import langchain

    compiled = outcome(lambda r: structure.read_response(r) or langchain._read_response(r, False), result)
    assert compiled == outcome(langchain._read_response, result, False)


def test_the_common_responses_are_read_in_c():
    """The shapes chat models return are read by the C code itself (None would mean the Python path)."""
    from langchain_core.outputs import ChatGeneration, LLMResult

    answer = AIMessage("Take TK 1752.", response_metadata={"finish_reason": "stop", "model_name": "gpt-4o-mini",
                                                           "id": "chatcmpl-1"},
                       usage_metadata={"input_tokens": 412, "output_tokens": 31, "total_tokens": 443,
                                       "input_token_details": {"cache_read": 400},
                                       "output_token_details": {"reasoning": 12}})
    calling = AIMessage("", tool_calls=[{"name": "search", "args": {}, "id": "call_1"}])
    for llm_output in (None, {"token_usage": {"prompt_tokens": 5, "completion_tokens": 2}, "model_name": "m"}):
        result = LLMResult(generations=[[ChatGeneration(message=answer)], [ChatGeneration(message=calling)]],
                           llm_output=llm_output)
        read = structure.read_response(result)
        assert read is not None
        found, outputs, outputs_json, input_tokens, output_tokens = read
        assert found["gen_ai.response.finish_reasons"] == ["stop", "tool_call"]
        assert found["gen_ai.usage.cache_read.input_tokens"] == 400
        assert found["gen_ai.usage.reasoning.output_tokens"] == 12
        assert (input_tokens, output_tokens, outputs) == (412, 31, [])
        assert json.loads(outputs_json)[1]["parts"] == [{"type": "tool_call", "id": "call_1", "name": "search"}]


# --- request attributes -----------------------------------------------------------------------------------------------

param_values = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False), texts,
                         st.lists(texts, max_size=2), st.tuples(texts), st.just(5))
param_names = st.sampled_from(["temperature", "max_tokens", "top_p", "top_k", "frequency_penalty", "presence_penalty",
                               "seed", "n", "stop", "stream", "streaming", "model", "other"])
metadata_names = st.sampled_from(["ls_provider", "ls_temperature", "ls_max_tokens", "ls_stop", "thread_id"])


@settings(max_examples=500, deadline=None)
@given(st.sampled_from(["chat", "text_completion"]), st.one_of(st.none(), st.just(""), texts),
       st.dictionaries(param_names, param_values, max_size=6),
       st.dictionaries(metadata_names, st.one_of(param_values, st.sampled_from(["openai", "Azure", "bedrock"])),
                       max_size=4))
def test_request_attributes_are_the_python_function(operation, model, params, metadata):
    from tracekit.instrumentors import langchain

    def attributes(read: Any) -> Any:
        try:
            return list(read(operation, model, params, metadata).items())
        except Exception as error:  # noqa: BLE001 - the two must fail alike
            return type(error)

    assert attributes(structure.request_attributes) == attributes(langchain._request_attributes)


def test_request_attributes_leave_other_mappings_to_python():
    from types import MappingProxyType

    assert structure.request_attributes("chat", "m", MappingProxyType({"temperature": 1.0}), {}) is None
    assert structure.request_attributes("chat", "m", {}, MappingProxyType({})) is None
    assert structure.request_attributes("chat", "m", {"temperature": 1.0}, {"ls_provider": "openai"}) == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.system": "openai",
        "gen_ai.request.model": "m", "gen_ai.request.temperature": 1.0}


def test_spans_are_the_same_without_the_compiled_module(monkeypatch):
    """A real chat model run through the handler, with the C functions and with the Python ones they stand in for
    (as an install without a compiler has them): the same span, attribute for attribute, in the same order."""
    from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from tracekit.instrumentors import langchain
    from tracekit.instrumentors.langchain import TracekitCallbackHandler

    reply = AIMessage("", tool_calls=[{"name": "search_flights", "args": {"to": "KIX"}, "id": "call_\u00e9"}],
                      response_metadata={"finish_reason": "tool_calls", "model_name": "gpt-4o-mini", "id": "r-1"},
                      usage_metadata={"input_tokens": 40, "output_tokens": 9, "total_tokens": 49})
    history = [SystemMessage("be brief"), HumanMessage('find "cheap" flights'),
               AIMessage("", tool_calls=[{"name": "lookup", "args": {}, "id": "c1"}]),
               ToolMessage("3 options", tool_call_id="c1")]

    def run() -> list[tuple[str, Any]]:
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        model = FakeMessagesListChatModel(responses=[reply])
        model.invoke(history, config={"callbacks": [TracekitCallbackHandler(provider)],
                                      "metadata": {"thread_id": "t-1", "ls_temperature": 0.3}}, stop=["END"])
        (span,) = exporter.get_finished_spans()
        return [(key, value) for key, value in span.attributes.items()]

    compiled = run()
    monkeypatch.setattr(langchain, "structure_json", lcm.structure_json_python)
    monkeypatch.setattr(langchain, "output_structure_json", lcm.output_structure_json_python)
    monkeypatch.setattr(langchain, "_read_structure", langchain._no_compiled_reader)
    monkeypatch.setattr(langchain, "_request_structure", langchain._no_compiled_request)
    assert compiled == run()
    found = dict(compiled)
    assert found["gen_ai.response.finish_reasons"] == ("tool_call",)
    assert json.loads(found["gen_ai.output.messages"])[0]["parts"] == [
        {"type": "tool_call", "id": "call_\u00e9", "name": "search_flights"}]
    assert found["gen_ai.request.stop_sequences"] == ("END",)


def test_calls_before_setup_raise_instead_of_crashing():
    """The tables come from Python at import of _langchain_messages; the module loaded on its own must refuse."""
    import subprocess
    import sys

    script = ("import importlib.util, sys\n"
              f"spec = importlib.util.spec_from_file_location('_structure', {structure.__file__!r})\n"
              "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
              "for call in (lambda: module.structure_json([1]), lambda: module.output_structure_json(1, 'stop'),\n"
              "             lambda: module.read_response(1), lambda: module.request_attributes('chat', 'm', {}, {})):\n"
              "    try:\n        call()\n    except RuntimeError as error:\n        print('refused:', error)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("refused: _structure.setup") == 4, done.stdout
