"""OpenAI SDK instrumentation: Chat Completions and Responses, sync and async, streaming and not.

Patches `create` (and `parse`) on `chat.completions` and `responses`. Each call becomes a `chat {model}` CLIENT
span with the request parameters, `gen_ai.response.id` / `gen_ai.response.model`, finish reasons, token usage
(cached input and reasoning output included), the tool calls the model asked for, `gen_ai.request.previous_response.id`
and `gen_ai.conversation.id` when the request carries them (or the enclosing `tracekit.agent` has one), messages and
system instructions under the content policy, and the GenAI client metrics. Streams (returned directly, or by the
parse() of `with_streaming_response` / `with_raw_response`) are wrapped so the span ends when the stream is
exhausted, closed or fails, with the output reassembled from the chunks/events.

When a framework instrumentor already records the model call (a LangChain chat model, the Agents SDK), this one
stays out of the way (see `inference_recorded_by`), so one request is one span.
"""

from __future__ import annotations

import inspect
import time
from typing import Any, Callable, Collection, Mapping

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.trace import SpanKind, Status, StatusCode
from wrapt import ObjectProxy, wrap_function_wrapper

from tracekit import semconv
from tracekit.api import current_conversation_id
from tracekit.content import get_content_settings
from tracekit.instrumentors._common import (Instruments, add_masked_count, emit_content_event,
                                            inference_recorded_by, normalize_finish_reason, set_messages,
                                            silenced_request, token_detail_attributes)
from tracekit.instrumentors._openai_messages import (chat_content_parts, chat_input_messages, get_field,
                                                     responses_input_messages, usage_details)
from tracekit.messages import function_tool_definition, output_message, reasoning_part, text_part, tool_call_part
from tracekit.tracing import error_type_of, record_error, redacted_text

__all__ = ["OpenAIInstrumentor"]

_INSTRUMENTS = ("openai >= 1.60",)

# (module, class, method, api) patched while instrumented.
_TARGETS = (
    ("openai.resources.chat.completions", "Completions", "create", "chat_completions"),
    ("openai.resources.chat.completions", "AsyncCompletions", "create", "chat_completions"),
    ("openai.resources.chat.completions", "Completions", "parse", "chat_completions"),
    ("openai.resources.chat.completions", "AsyncCompletions", "parse", "chat_completions"),
    ("openai.resources.responses", "Responses", "create", "responses"),
    ("openai.resources.responses", "AsyncResponses", "create", "responses"),
    ("openai.resources.responses", "Responses", "parse", "responses"),
    ("openai.resources.responses", "AsyncResponses", "parse", "responses"),
)


def _given(value: Any) -> bool:
    """False for None and the SDK's NOT_GIVEN / Omit sentinels."""
    return value is not None and type(value).__name__ not in ("NotGiven", "Omit")


# --- requests -----------------------------------------------------------------------------------------------------------


def _tool_definitions(tools: Any) -> list[dict[str, Any]]:
    definitions = []
    for tool in tools or ():
        tool_type = get_field(tool, "type", "function")
        function = get_field(tool, "function") if get_field(tool, "function") is not None else tool
        name = get_field(function, "name")
        if tool_type == "function" and name:
            definitions.append(function_tool_definition(str(name), get_field(function, "description"),
                                                        get_field(function, "parameters")))
        else:  # built-in tools (web_search, file_search, code_interpreter, ...)
            definitions.append({"type": str(tool_type), "name": str(name or tool_type)})
    return definitions


def _output_type(value: Any) -> str | None:
    kind = get_field(value, "type")
    if kind in ("json_object", "json_schema"):
        return "json"
    if kind == "text":
        return "text"
    return None


def _server_attributes(instance: Any) -> dict[str, Any]:
    client = getattr(instance, "_client", None)
    base_url = getattr(client, "base_url", None)
    attributes: dict[str, Any] = {}
    host = getattr(base_url, "host", None)
    if host:
        attributes[semconv.SERVER_ADDRESS] = host
        port = getattr(base_url, "port", None)
        if port and port != 443:
            attributes[semconv.SERVER_PORT] = int(port)
    return attributes


def _provider(instance: Any) -> str:
    client = getattr(instance, "_client", None)
    name = type(client).__name__ if client is not None else ""
    return semconv.PROVIDER_AZURE_OPENAI if "Azure" in name else semconv.PROVIDER_OPENAI


def _request_attributes(instruments: Instruments, api: str, instance: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    model = kwargs.get("model")
    model = str(model) if _given(model) else None
    attributes: dict[str, Any] = {semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT,
                                  **instruments.provider_attributes(_provider(instance)),
                                  semconv.OPENAI_API_TYPE: api}
    if model:  # a Responses call may name a stored prompt instead of a model
        attributes[semconv.GEN_AI_REQUEST_MODEL] = model
    attributes.update(_server_attributes(instance))
    max_tokens = kwargs.get("max_completion_tokens", kwargs.get("max_tokens", kwargs.get("max_output_tokens")))
    simple = {
        semconv.GEN_AI_REQUEST_TEMPERATURE: kwargs.get("temperature"),
        semconv.GEN_AI_REQUEST_TOP_P: kwargs.get("top_p"),
        semconv.GEN_AI_REQUEST_MAX_TOKENS: max_tokens,
        semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY: kwargs.get("frequency_penalty"),
        semconv.GEN_AI_REQUEST_PRESENCE_PENALTY: kwargs.get("presence_penalty"),
        semconv.GEN_AI_REQUEST_SEED: kwargs.get("seed"),
        semconv.OPENAI_REQUEST_SERVICE_TIER: kwargs.get("service_tier"),
        semconv.GEN_AI_REQUEST_PREVIOUS_RESPONSE_ID: kwargs.get("previous_response_id"),
    }
    for key, value in simple.items():
        if _given(value):
            attributes[key] = value
    choices = kwargs.get("n")
    if _given(choices) and choices != 1:
        attributes[semconv.GEN_AI_REQUEST_CHOICE_COUNT] = int(choices)
    stop = kwargs.get("stop")
    if _given(stop):
        attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = [stop] if isinstance(stop, str) else list(stop)
    if kwargs.get("stream") is True:
        attributes[semconv.GEN_AI_REQUEST_STREAM] = True
    effort = kwargs.get("reasoning_effort")
    if not _given(effort):
        effort = get_field(kwargs.get("reasoning"), "effort") if _given(kwargs.get("reasoning")) else None
    if _given(effort):
        attributes[semconv.GEN_AI_REQUEST_REASONING_LEVEL] = str(effort)
    output_format = kwargs.get("response_format")
    if not _given(output_format) and _given(kwargs.get("text")):
        output_format = get_field(kwargs.get("text"), "format")
    output_type = _output_type(output_format) if _given(output_format) else None
    if output_type:
        attributes[semconv.GEN_AI_OUTPUT_TYPE] = output_type
    conversation = kwargs.get("conversation")
    conversation_id = (get_field(conversation, "id", conversation) if _given(conversation) else None) \
        or current_conversation_id()
    if conversation_id:
        attributes[semconv.GEN_AI_CONVERSATION_ID] = str(conversation_id)
    return attributes


# --- one call -----------------------------------------------------------------------------------------------------------


class _Call:
    """The span, timing and accumulated output of one API call (streamed or not)."""

    def __init__(self, instruments: Instruments, api: str, instance: Any, kwargs: Mapping[str, Any]) -> None:
        self.instruments = instruments
        self.api = api
        self.attributes = _request_attributes(instruments, api, instance, kwargs)
        self.settings = get_content_settings()
        self.started = time.perf_counter()
        self.first_chunk: float | None = None
        self.done = False
        model = self.attributes.get(semconv.GEN_AI_REQUEST_MODEL)
        name = f"{semconv.OP_CHAT} {model}" if model else semconv.OP_CHAT
        self.span = instruments.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=self.attributes)
        # Streaming accumulators: choice index -> text pieces / tool calls / finish reason.
        self.texts: dict[int, list[str]] = {}
        self.tool_calls: dict[int, dict[int, dict[str, Any]]] = {}
        self.finish: dict[int, str | None] = {}
        self.input_messages: list[dict[str, Any]] = []
        if api == "chat_completions":
            self.input_messages = chat_input_messages(kwargs.get("messages"))
            system: list[dict[str, Any]] = []
        else:
            items = kwargs.get("input")
            self.input_messages = responses_input_messages(items) if _given(items) else []
            instructions = kwargs.get("instructions")
            system = [text_part(str(instructions))] if _given(instructions) and instructions else []
        masked = set_messages(self.span, semconv.GEN_AI_INPUT_MESSAGES, self.input_messages, self.settings)
        masked += set_messages(self.span, semconv.GEN_AI_SYSTEM_INSTRUCTIONS, system, self.settings)
        tools = kwargs.get("tools")
        if _given(tools) and tools:
            masked += set_messages(self.span, semconv.GEN_AI_TOOL_DEFINITIONS, _tool_definitions(tools), self.settings)
        add_masked_count(self.span, self.attributes, masked)
        self.system = system

    def set(self, key: str, value: Any) -> None:
        if value is not None:
            self.span.set_attribute(key, value)
            self.attributes[key] = value

    # -- outcomes -------------------------------------------------------------------------------------------------------

    def fail(self, error: BaseException) -> None:
        if self.done:
            return
        self.done = True
        error_type = getattr(error, "code", None) if isinstance(getattr(error, "code", None), str) else None
        error_type = error_type or error_type_of(error)
        record_error(self.span, error, error_type=error_type)
        self.instruments.record_metrics(self.attributes, time.perf_counter() - self.started, None, None, error_type)
        self.span.end()

    def _finish(self, outputs: list[dict[str, Any]], reasons: list[str], usage: Any) -> None:
        if self.done:
            return
        self.done = True
        if reasons:
            self.set(semconv.GEN_AI_RESPONSE_FINISH_REASONS, reasons)
        input_tokens = output_tokens = cached = cache_write = reasoning = None
        if usage is not None:
            input_tokens = get_field(usage, "prompt_tokens", get_field(usage, "input_tokens"))
            output_tokens = get_field(usage, "completion_tokens", get_field(usage, "output_tokens"))
            cached, cache_write, reasoning = usage_details(usage)
            self.set(semconv.GEN_AI_USAGE_INPUT_TOKENS, input_tokens)
            self.set(semconv.GEN_AI_USAGE_OUTPUT_TOKENS, output_tokens)
            for key, value in token_detail_attributes(cached, cache_write, reasoning).items():
                self.set(key, value)
        masked = set_messages(self.span, semconv.GEN_AI_OUTPUT_MESSAGES, outputs, self.settings)
        add_masked_count(self.span, self.attributes, masked)
        emit_content_event(self.span, {semconv.GEN_AI_INPUT_MESSAGES: self.input_messages,
                                       semconv.GEN_AI_SYSTEM_INSTRUCTIONS: self.system,
                                       semconv.GEN_AI_OUTPUT_MESSAGES: outputs}, self.settings)
        self.instruments.record_metrics(
            self.attributes, time.perf_counter() - self.started, input_tokens, output_tokens,
            self.attributes.get(semconv.ERROR_TYPE), cache_read=cached, cache_write=cache_write,
            reasoning=reasoning,
            time_to_first_chunk=self.first_chunk - self.started if self.first_chunk is not None else None)
        self.span.end()

    def finish_chat(self, completion: Any) -> None:
        """A whole ChatCompletion."""
        self.set(semconv.GEN_AI_RESPONSE_ID, get_field(completion, "id"))
        self.set(semconv.GEN_AI_RESPONSE_MODEL, get_field(completion, "model"))
        self.set(semconv.OPENAI_RESPONSE_SERVICE_TIER, get_field(completion, "service_tier"))
        self.set(semconv.OPENAI_RESPONSE_SYSTEM_FINGERPRINT, get_field(completion, "system_fingerprint"))
        outputs, reasons = [], []
        for choice in get_field(completion, "choices") or ():
            msg = get_field(choice, "message")
            parts = chat_content_parts(get_field(msg, "content"))
            if get_field(msg, "refusal"):
                parts.append(text_part(str(get_field(msg, "refusal"))))
            for call in get_field(msg, "tool_calls") or ():
                function = get_field(call, "function")
                parts.append(tool_call_part(get_field(call, "id"), str(get_field(function, "name", "")),
                                            get_field(function, "arguments")))
            reason = normalize_finish_reason(get_field(choice, "finish_reason")) or semconv.FINISH_ERROR
            outputs.append(output_message("assistant", parts, reason))
            reasons.append(reason)
        self._finish(outputs, reasons, get_field(completion, "usage"))

    def finish_response(self, response: Any) -> None:
        """A whole Responses-API Response."""
        self.set(semconv.GEN_AI_RESPONSE_ID, get_field(response, "id"))
        self.set(semconv.GEN_AI_RESPONSE_MODEL, get_field(response, "model"))
        self.set(semconv.OPENAI_RESPONSE_SERVICE_TIER, get_field(response, "service_tier"))
        conversation = get_field(response, "conversation")
        if conversation is not None and semconv.GEN_AI_CONVERSATION_ID not in self.attributes:
            self.set(semconv.GEN_AI_CONVERSATION_ID, get_field(conversation, "id"))
        status = get_field(response, "status")
        if status == "failed":
            error = get_field(response, "error")
            self.set(semconv.ERROR_TYPE, str(get_field(error, "code") or "failed"))
            message = redacted_text(str(get_field(error, "message") or "response failed"))
            self.span.set_status(Status(StatusCode.ERROR, message))
        parts: list[dict[str, Any]] = []
        has_tool_call = False
        for item in get_field(response, "output") or ():
            item_type = get_field(item, "type")
            if item_type == "message":
                parts.extend(chat_content_parts(get_field(item, "content")))
            elif item_type == "function_call":
                has_tool_call = True
                parts.append(tool_call_part(get_field(item, "call_id"), str(get_field(item, "name", "")),
                                            get_field(item, "arguments")))
            elif item_type == "reasoning":
                summary = " ".join(str(get_field(s, "text", "")) for s in get_field(item, "summary") or ())
                if summary:
                    parts.append(reasoning_part(summary))
            elif item_type:
                parts.append({"type": "server_tool_call", "id": get_field(item, "id"), "name": str(item_type),
                              "server_tool_call": {"type": str(item_type)}})
        if status == "incomplete":
            incomplete = get_field(response, "incomplete_details")
            reason = normalize_finish_reason(get_field(incomplete, "reason")) or semconv.FINISH_LENGTH
            reason = semconv.FINISH_LENGTH if reason == "max_output_tokens" else reason
        elif status == "failed":
            reason = semconv.FINISH_ERROR
        else:
            reason = semconv.FINISH_TOOL_CALL if has_tool_call else semconv.FINISH_STOP
        self._finish([output_message("assistant", parts, reason)], [reason], get_field(response, "usage"))

    # -- streaming ------------------------------------------------------------------------------------------------------

    def _first(self) -> None:
        if self.first_chunk is None:
            self.first_chunk = time.perf_counter()
            self.set(semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, self.first_chunk - self.started)

    def observe_chat_chunk(self, chunk: Any) -> None:
        """Fold one ChatCompletionChunk into the accumulated output."""
        self._first()
        if semconv.GEN_AI_RESPONSE_ID not in self.attributes:
            self.set(semconv.GEN_AI_RESPONSE_ID, get_field(chunk, "id"))
            self.set(semconv.GEN_AI_RESPONSE_MODEL, get_field(chunk, "model"))
            self.set(semconv.OPENAI_RESPONSE_SYSTEM_FINGERPRINT, get_field(chunk, "system_fingerprint"))
            self.set(semconv.OPENAI_RESPONSE_SERVICE_TIER, get_field(chunk, "service_tier"))
        if get_field(chunk, "usage") is not None:
            self.usage = get_field(chunk, "usage")
        for choice in get_field(chunk, "choices") or ():
            index = int(get_field(choice, "index", 0))
            delta = get_field(choice, "delta")
            content = get_field(delta, "content")
            if content:
                self.texts.setdefault(index, []).append(content)
            for call in get_field(delta, "tool_calls") or ():
                calls = self.tool_calls.setdefault(index, {})
                entry = calls.setdefault(int(get_field(call, "index", 0)), {"id": None, "name": "", "arguments": []})
                if get_field(call, "id"):
                    entry["id"] = get_field(call, "id")
                function = get_field(call, "function")
                if get_field(function, "name"):
                    entry["name"] = get_field(function, "name")
                if get_field(function, "arguments"):
                    entry["arguments"].append(get_field(function, "arguments"))
            if get_field(choice, "finish_reason"):
                self.finish[index] = get_field(choice, "finish_reason")
            else:
                self.finish.setdefault(index, None)

    def finish_chat_stream(self) -> None:
        outputs, reasons = [], []
        for index in sorted(self.finish):
            parts = [text_part("".join(self.texts[index]))] if index in self.texts else []
            for _, call in sorted(self.tool_calls.get(index, {}).items()):
                parts.append(tool_call_part(call["id"], call["name"], "".join(call["arguments"])))
            reason = normalize_finish_reason(self.finish[index]) or semconv.FINISH_ERROR
            outputs.append(output_message("assistant", parts, reason))
            reasons.append(reason)
        self._finish(outputs, reasons, getattr(self, "usage", None))

    def observe_response_event(self, event: Any) -> None:
        """Fold one Responses-API stream event; the final `response.completed` carries everything."""
        event_type = get_field(event, "type", "")
        if event_type.endswith(".delta"):
            self._first()
        response = get_field(event, "response")
        if response is not None:
            if semconv.GEN_AI_RESPONSE_ID not in self.attributes:
                self.set(semconv.GEN_AI_RESPONSE_ID, get_field(response, "id"))
                self.set(semconv.GEN_AI_RESPONSE_MODEL, get_field(response, "model"))
            if event_type in ("response.completed", "response.incomplete", "response.failed"):
                self.final_response = response
        if event_type == "error":
            self.stream_error = event

    def finish_response_stream(self) -> None:
        final = getattr(self, "final_response", None)
        if final is not None:
            self.finish_response(final)
            return
        error = getattr(self, "stream_error", None)
        if error is not None:
            self.set(semconv.ERROR_TYPE, str(get_field(error, "code") or "stream_error"))
            message = redacted_text(str(get_field(error, "message") or "stream error"))
            self.span.set_status(Status(StatusCode.ERROR, message))
        # Stream ended (or was closed) before the final event: keep what is known, mark the output unfinished.
        self._finish([], [semconv.FINISH_ERROR], None)

    def observe(self, item: Any) -> None:
        if self.api == "chat_completions":
            self.observe_chat_chunk(item)
        else:
            self.observe_response_event(item)

    def finish_stream(self) -> None:
        if self.api == "chat_completions":
            self.finish_chat_stream()
        else:
            self.finish_response_stream()


class _FirstChunkOnly:
    """In place of a _Call while a framework records the model call: notes only when the first chunk arrived, into
    what the silenced call saw, which the framework's span merges when it ends (the framework cannot see the
    stream's first chunk itself)."""

    __slots__ = ("api", "seen", "started")

    def __init__(self, api: str, seen: dict[str, Any], started: float) -> None:
        self.api = api
        self.seen = seen
        self.started = started

    def observe(self, item: Any) -> None:
        if semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in self.seen:
            return
        if self.api == "chat_completions" or str(get_field(item, "type", "")).endswith(".delta"):
            self.seen[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] = time.perf_counter() - self.started

    def finish_stream(self) -> None:
        return None

    def fail(self, error: BaseException) -> None:
        return None


class _SyncStream(ObjectProxy):  # type: ignore[misc]
    """The SDK's Stream, observed: every chunk is folded into the span, which ends with the stream."""

    def __init__(self, stream: Any, call: _Call) -> None:
        super().__init__(stream)
        self._self_call = call

    def __iter__(self) -> _SyncStream:
        return self

    def __next__(self) -> Any:
        try:
            item = self.__wrapped__.__next__()
        except StopIteration:
            self._self_call.finish_stream()
            raise
        except Exception as error:
            self._self_call.fail(error)
            raise
        self._self_call.observe(item)
        return item

    def __enter__(self) -> _SyncStream:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(*exc)
        finally:
            self._self_call.finish_stream()

    def close(self) -> None:
        """Close the HTTP stream; the span ends with what was received."""
        try:
            self.__wrapped__.close()
        finally:
            self._self_call.finish_stream()


class _AsyncStream(ObjectProxy):  # type: ignore[misc]
    """The SDK's AsyncStream, observed like _SyncStream."""

    def __init__(self, stream: Any, call: _Call) -> None:
        super().__init__(stream)
        self._self_call = call

    def __aiter__(self) -> _AsyncStream:
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            self._self_call.finish_stream()
            raise
        except Exception as error:
            self._self_call.fail(error)
            raise
        self._self_call.observe(item)
        return item

    async def __aenter__(self) -> _AsyncStream:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, *exc: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(*exc)
        finally:
            self._self_call.finish_stream()

    async def close(self) -> None:
        """Close the HTTP stream; the span ends with what was received."""
        try:
            await self.__wrapped__.close()
        finally:
            self._self_call.finish_stream()


class _StreamingResponse(ObjectProxy):  # type: ignore[misc]
    """`with_streaming_response.create(stream=True)`'s raw response (the Agents SDK streams this way, and so can an
    application): what its `parse()` hands back is the stream, observed; closing it (as leaving its `with` block
    does) ends a span whose stream was never read to the end with what arrived."""

    def __init__(self, response: Any, stream_type: type, call: Any) -> None:
        super().__init__(response)
        self._self_stream_type = stream_type
        self._self_call = call

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        parsed = self.__wrapped__.parse(*args, **kwargs)
        if inspect.isawaitable(parsed):
            async def observed() -> Any:
                stream = await parsed
                return self._self_stream_type(stream, self._self_call) if _is_stream(stream) else stream

            return observed()
        return self._self_stream_type(parsed, self._self_call) if _is_stream(parsed) else parsed

    def close(self) -> Any:
        closed = self.__wrapped__.close()
        if inspect.isawaitable(closed):
            async def finished() -> Any:
                try:
                    return await closed
                finally:
                    self._self_call.finish_stream()

            return finished()
        self._self_call.finish_stream()
        return closed


def _observed(result: Any, stream_type: type, call: _Call | _FirstChunkOnly, kwargs: Mapping[str, Any]) -> Any:
    """`result` with its stream (direct, or behind a streaming raw response) observed by `call`; None when the
    result is no stream."""
    if _is_stream(result):
        return stream_type(result, call)
    if kwargs.get("stream") is True and callable(getattr(result, "parse", None)):
        return _StreamingResponse(result, stream_type, call)
    return None


def _is_stream(result: Any) -> bool:
    return type(result).__name__ in ("Stream", "AsyncStream") or (
        hasattr(result, "__next__") and hasattr(result, "response") and not hasattr(result, "choices"))


def _finish_whole(call: _Call, result: Any) -> None:
    if not hasattr(result, "choices") and not hasattr(result, "output") and callable(getattr(result, "parse", None)):
        # `with_raw_response.create()`: the SDK hands back the HTTP response; its parse() is cached, so reading the
        # parsed body here costs the caller nothing.
        try:
            result = result.parse()
        except Exception:  # noqa: BLE001 - never break the caller over telemetry
            pass
    if call.api == "chat_completions":
        call.finish_chat(result)
    else:
        call.finish_response(result)


def _sync_wrapper(instruments: Instruments, api: str) -> Callable[..., Any]:
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if inference_recorded_by.get() is not None:
            seen = _request_attributes(instruments, api, instance, kwargs)
            silenced_request.set(seen)
            started = time.perf_counter()
            result = wrapped(*args, **kwargs)
            observed = _observed(result, _SyncStream, _FirstChunkOnly(api, seen, started), kwargs)
            return result if observed is None else observed
        call = _Call(instruments, api, instance, kwargs)
        try:
            with trace.use_span(call.span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
                result = wrapped(*args, **kwargs)
        except Exception as error:
            call.fail(error)
            raise
        observed = _observed(result, _SyncStream, call, kwargs)
        if observed is not None:
            return observed
        _finish_whole(call, result)
        return result

    return wrapper


def _async_wrapper(instruments: Instruments, api: str) -> Callable[..., Any]:
    async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if inference_recorded_by.get() is not None:
            seen = _request_attributes(instruments, api, instance, kwargs)
            silenced_request.set(seen)
            started = time.perf_counter()
            result = await wrapped(*args, **kwargs)
            observed = _observed(result, _AsyncStream, _FirstChunkOnly(api, seen, started), kwargs)
            return result if observed is None else observed
        call = _Call(instruments, api, instance, kwargs)
        try:
            with trace.use_span(call.span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
                result = await wrapped(*args, **kwargs)
        except Exception as error:
            call.fail(error)
            raise
        observed = _observed(result, _AsyncStream, call, kwargs)
        if observed is not None:
            return observed
        _finish_whole(call, result)
        return result

    return wrapper


class OpenAIInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments the `openai` package (Chat Completions and Responses; sync, async, streaming).

    >>> OpenAIInstrumentor().instrument(tracer_provider=provider, meter_provider=meters)
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        """The package this instrumentor patches."""
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        import importlib

        instruments = Instruments("tracekit.instrumentors.openai", kwargs.get("tracer_provider"),
                                  kwargs.get("meter_provider"))
        for module_name, class_name, method, api in _TARGETS:
            module = importlib.import_module(module_name)
            cls = getattr(module, class_name, None)
            if cls is None or not hasattr(cls, method):
                continue
            factory = _async_wrapper if class_name.startswith("Async") else _sync_wrapper
            wrap_function_wrapper(module_name, f"{class_name}.{method}", factory(instruments, api))

    def _uninstrument(self, **kwargs: Any) -> None:
        import importlib

        for module_name, class_name, method, _ in _TARGETS:
            cls = getattr(importlib.import_module(module_name), class_name, None)
            if cls is not None and hasattr(cls, method):
                unwrap(cls, method)
