"""OpenAI Agents SDK instrumentation through its tracing-processor interface.

The SDK reports its own traces and spans to registered `TracingProcessor`s; `OpenAIAgentsInstrumentor` registers
one that turns them into OpenTelemetry GenAI spans, live (each OTel span starts when the SDK span starts, so
timings and parents are real):

| Agents SDK             | OpenTelemetry span                                    | with the latest conventions        |
|------------------------|-------------------------------------------------------|------------------------------------|
| trace (a `Runner.run`) | `invoke_workflow {workflow name}` (INTERNAL)           | `handle_conversation_turn {name}`  |
| agent                  | `invoke_agent {agent}` (INTERNAL)                      | same                               |
| handoff                | `agent_to_agent_interaction {to agent}` (Foundry name) | `execute_tool {tool} {to agent}` ⁺ |
| function tool          | `execute_tool {tool}`                                  | same                               |
| generation / response  | `chat {model}` (CLIENT), usage and messages            | same, without `gen_ai.system`      |
| guardrail, custom, ... | `guardrail {name}` / the span's own name               | same                               |
| task, turn             | none: their children attach to the enclosing span      | same                               |

⁺ the conventions' transfer refinement: `gen_ai.transfer.target.name`, `gen_ai.transfer.mode=pass_control`.

The trace's `group_id` (the SDK's conversation/thread grouping) becomes `gen_ai.conversation.id` on every span.
While a generation/response span is open, the OpenAI SDK instrumentor stays silent so each model call is one span.
By default the SDK's own exporter (to the OpenAI dashboard) keeps running beside ours; `instrument(exclusive=True)`
replaces it, for offline use.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any, Collection, Mapping

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from tracekit import semconv
from tracekit.content import get_content_settings
from tracekit.instrumentors._common import (Instruments, add_masked_count, inference_recorded_by,
                                            merge_silenced_request, normalize_finish_reason, set_messages,
                                            set_opt_in, silenced_request, token_detail_attributes)
from tracekit.instrumentors._openai_messages import (chat_input_messages, get_field, responses_input_messages,
                                                     usage_details)
from tracekit.messages import output_message, text_part, tool_call_part
from tracekit.tracing import redacted_text

__all__ = ["OpenAIAgentsInstrumentor", "TracekitAgentsProcessor"]

_INSTRUMENTS = ("openai-agents >= 0.1",)
# SDK span types that only group others (a Runner.run task inside the trace, one model turn): no OTel span of their
# own, their children attach to the enclosing span. The trace already stands for the run.
_TRANSPARENT = frozenset({"task", "turn"})


class _Open:
    """One OpenTelemetry span we opened for an Agents SDK trace or span."""

    __slots__ = ("span", "context", "agent_name", "attributes", "conversation_id")

    def __init__(self, span: Span | None, context: Any, agent_name: str | None, attributes: dict[str, Any],
                 conversation_id: str | None) -> None:
        self.span = span
        self.context = context
        self.agent_name = agent_name
        self.attributes = attributes
        self.conversation_id = conversation_id


class TracekitAgentsProcessor:
    """An Agents SDK `TracingProcessor` that records OpenTelemetry GenAI spans (see the module docstring)."""

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self._instruments = Instruments("tracekit.instrumentors.openai_agents", tracer_provider, meter_provider)
        self._open: dict[str, _Open] = {}
        self._lock = threading.Lock()
        self.enabled = True

    # -- traces ----------------------------------------------------------------------------------------------------------

    def on_trace_start(self, agents_trace: Any) -> None:
        """A run starts: the root span of the run. By default `invoke_workflow {name}`; with the latest conventions
        the runner's entry point is an internal `handle_conversation_turn` span instead (#571: Runner.run is no
        longer a workflow), so the agents it runs stay in one trace."""
        if not self.enabled:
            return
        name = str(getattr(agents_trace, "name", None) or "Agent workflow")
        conversation_id = getattr(agents_trace, "group_id", None)
        if self._instruments.latest:
            attributes: dict[str, Any] = {semconv.GEN_AI_OPERATION_NAME: semconv.OP_HANDLE_CONVERSATION_TURN}
            span_name = f"{semconv.OP_HANDLE_CONVERSATION_TURN} {name}"
        else:
            attributes = {semconv.GEN_AI_OPERATION_NAME: semconv.OP_INVOKE_WORKFLOW, semconv.GEN_AI_WORKFLOW_NAME: name}
            span_name = f"{semconv.OP_INVOKE_WORKFLOW} {name}"
        if conversation_id:
            attributes[semconv.GEN_AI_CONVERSATION_ID] = str(conversation_id)
        span = self._instruments.tracer.start_span(span_name, context=otel_context.get_current(),
                                                   attributes=attributes)
        self._remember(agents_trace.trace_id, span, None, attributes, conversation_id)

    def on_trace_end(self, agents_trace: Any) -> None:
        """The run finished."""
        opened = self._forget(agents_trace.trace_id)
        if opened is not None:
            if self._instruments.latest:
                duration = _seconds_since(opened.span)
                if duration is not None:
                    self._instruments.metrics.record_agent(opened.attributes, duration)
            opened.span.end()

    # -- spans -----------------------------------------------------------------------------------------------------------

    def on_span_start(self, agents_span: Any) -> None:
        """Open the OTel span now (start time and parent are real); attributes come at the end."""
        if not self.enabled:
            return
        data = agents_span.span_data
        kind_name = getattr(data, "type", "custom")
        parent = self._open.get(agents_span.parent_id or "") or self._open.get(agents_span.trace_id)
        parent_context = parent.context if parent is not None else otel_context.get_current()
        conversation_id = parent.conversation_id if parent is not None else None
        agent_name = parent.agent_name if parent is not None else None
        if kind_name in _TRANSPARENT:
            with self._lock:
                self._open[agents_span.span_id] = _Open(None, parent_context, agent_name, {},
                                                        str(conversation_id) if conversation_id else None)
            return
        attributes: dict[str, Any] = {}
        kind = SpanKind.INTERNAL
        if kind_name == "agent":
            agent_name = str(data.name)
            name = f"{semconv.OP_INVOKE_AGENT} {agent_name}"
            attributes.update({semconv.GEN_AI_OPERATION_NAME: semconv.OP_INVOKE_AGENT,
                               semconv.GEN_AI_AGENT_NAME: agent_name})
        elif kind_name == "function":
            name = f"{semconv.OP_EXECUTE_TOOL} {data.name}"
            attributes.update({semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL,
                               semconv.GEN_AI_TOOL_NAME: str(data.name),
                               semconv.GEN_AI_TOOL_TYPE: semconv.TOOL_TYPE_FUNCTION})
        elif kind_name in ("generation", "response"):
            model = getattr(data, "model", None)
            name = f"{semconv.OP_CHAT} {model}" if model else semconv.OP_CHAT
            kind = SpanKind.CLIENT
            attributes.update({semconv.GEN_AI_OPERATION_NAME: semconv.OP_CHAT,
                               **self._instruments.provider_attributes(semconv.PROVIDER_OPENAI)})
            if model:
                attributes[semconv.GEN_AI_REQUEST_MODEL] = str(model)
            inference_recorded_by.set("openai_agents")
            silenced_request.set(None)  # only what the SDK sees during this call may be merged at its end
        elif kind_name == "handoff" and self._instruments.latest:
            # The conventions' transfer refinement of execute_tool: the model called the handoff tool and the
            # target agent takes over the conversation. Named and completed when the SDK names the target.
            name = semconv.OP_EXECUTE_TOOL
            attributes.update({semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL,
                               semconv.GEN_AI_TOOL_TYPE: semconv.TOOL_TYPE_FUNCTION,
                               semconv.GEN_AI_TRANSFER_MODE: semconv.TRANSFER_MODE_PASS_CONTROL})
            if getattr(data, "from_agent", None):
                agent_name = str(data.from_agent)
        elif kind_name == "handoff":
            name = semconv.OP_AGENT_TO_AGENT
            attributes[semconv.GEN_AI_OPERATION_NAME] = semconv.OP_AGENT_TO_AGENT
        elif kind_name == "guardrail":
            name = f"guardrail {data.name}"
        else:
            name = str(getattr(data, "name", None) or kind_name)
        if agent_name and kind_name != "agent":
            attributes[semconv.GEN_AI_AGENT_NAME] = agent_name
        if conversation_id:
            attributes[semconv.GEN_AI_CONVERSATION_ID] = str(conversation_id)
        span = self._instruments.tracer.start_span(name, context=parent_context, kind=kind, attributes=attributes)
        self._remember(agents_span.span_id, span, agent_name, attributes, conversation_id)

    def on_span_end(self, agents_span: Any) -> None:
        """Fill in what the SDK learned during the span, then end it."""
        opened = self._forget(agents_span.span_id)
        if opened is None or opened.span is None:
            return
        data = agents_span.span_data
        kind_name = getattr(data, "type", "custom")
        span = opened.span
        settings = get_content_settings()
        masked = 0
        if kind_name == "agent":
            tools = [{"type": "function", "name": str(tool)} for tool in (data.tools or ())]
            tools += [{"type": "handoff", "name": str(target)} for target in (data.handoffs or ())]
            masked += set_messages(span, semconv.GEN_AI_TOOL_DEFINITIONS, tools, settings)
        elif kind_name == "function":
            masked += set_opt_in(span, semconv.GEN_AI_TOOL_CALL_ARGUMENTS, data.input, settings)
            if agents_span.error is None:
                masked += set_opt_in(span, semconv.GEN_AI_TOOL_CALL_RESULT, data.output, settings)
            if getattr(data, "mcp_data", None):
                span.set_attribute(semconv.GEN_AI_TOOL_TYPE, semconv.TOOL_TYPE_EXTENSION)
        elif kind_name == "generation":
            merge_silenced_request(span, opened.attributes)
            masked += self._end_generation(span, opened, data, settings)
        elif kind_name == "response":
            merge_silenced_request(span, opened.attributes)
            masked += self._end_response(span, opened, data, settings)
        elif kind_name == "handoff" and self._instruments.latest:
            target = getattr(data, "to_agent", None)
            if target:
                tool_name = _handoff_tool_name(str(target))
                span.update_name(f"{semconv.OP_EXECUTE_TOOL} {tool_name} {target}")
                transfer = {semconv.GEN_AI_TOOL_NAME: tool_name, semconv.GEN_AI_TRANSFER_TARGET_NAME: str(target)}
                span.set_attributes(transfer)
                opened.attributes.update(transfer)
        elif kind_name == "handoff":
            target = getattr(data, "to_agent", None)
            if target:
                span.update_name(f"{semconv.OP_AGENT_TO_AGENT} {target}")
                span.set_attribute(semconv.GEN_AI_TRANSFER_TARGET_NAME, str(target))
            if getattr(data, "from_agent", None):
                span.set_attribute(semconv.GEN_AI_TRANSFER_SOURCE_NAME, str(data.from_agent))
        elif kind_name == "guardrail":
            span.set_attribute(semconv.OPENAI_AGENTS_GUARDRAIL_TRIGGERED, bool(data.triggered))
        add_masked_count(span, opened.attributes, masked)
        error = agents_span.error
        error_type = None
        if error:
            # The SDK reports errors as {"message", "data"} without an exception type: OTel's fallback value.
            error_type = "_OTHER"
            span.set_attribute(semconv.ERROR_TYPE, error_type)
            span.set_status(Status(StatusCode.ERROR, redacted_text(str(get_field(error, "message") or "error"))))
        if kind_name in ("generation", "response"):
            inference_recorded_by.set(None)
        elif self._instruments.latest:
            operation = opened.attributes.get(semconv.GEN_AI_OPERATION_NAME)
            duration = _seconds_since(span)
            if duration is not None and operation == semconv.OP_INVOKE_AGENT:
                self._instruments.metrics.record_agent(opened.attributes, duration, error_type)
            elif duration is not None and operation == semconv.OP_EXECUTE_TOOL:
                self._instruments.metrics.record_tool(opened.attributes, duration, error_type)
        span.end()

    def _end_generation(self, span: Span, opened: _Open, data: Any, settings: Any) -> int:
        model = getattr(data, "model", None)
        if model:
            span.update_name(f"{semconv.OP_CHAT} {model}")
            span.set_attribute(semconv.GEN_AI_REQUEST_MODEL, str(model))
            opened.attributes[semconv.GEN_AI_REQUEST_MODEL] = str(model)
        config: Mapping[str, Any] = getattr(data, "model_config", None) or {}
        for key, attribute in (("temperature", semconv.GEN_AI_REQUEST_TEMPERATURE),
                               ("top_p", semconv.GEN_AI_REQUEST_TOP_P),
                               ("max_tokens", semconv.GEN_AI_REQUEST_MAX_TOKENS)):
            if isinstance(config.get(key), (int, float)):
                span.set_attribute(attribute, config[key])
        usage = getattr(data, "usage", None) or {}
        input_tokens, output_tokens = usage.get("input_tokens"), usage.get("output_tokens")
        if input_tokens is not None:
            span.set_attribute(semconv.GEN_AI_USAGE_INPUT_TOKENS, int(input_tokens))
        if output_tokens is not None:
            span.set_attribute(semconv.GEN_AI_USAGE_OUTPUT_TOKENS, int(output_tokens))
        details = usage_details(usage)
        span.set_attributes(token_detail_attributes(*details))
        masked = set_messages(span, semconv.GEN_AI_INPUT_MESSAGES, chat_input_messages(data.input or ()), settings)
        outputs = []
        reasons = []
        for item in data.output or ():
            parts = []
            content = get_field(item, "content")
            if content:
                parts.append(text_part(str(content)))
            for call in get_field(item, "tool_calls") or ():
                function = get_field(call, "function") or {}
                parts.append(tool_call_part(get_field(call, "id"), str(get_field(function, "name", "")),
                                            get_field(function, "arguments")))
            reason = normalize_finish_reason(get_field(item, "finish_reason")) or (
                semconv.FINISH_TOOL_CALL if get_field(item, "tool_calls") else semconv.FINISH_STOP)
            outputs.append(output_message(str(get_field(item, "role", "assistant")), parts, reason))
            reasons.append(reason)
        if reasons:
            span.set_attribute(semconv.GEN_AI_RESPONSE_FINISH_REASONS, reasons)
        masked += set_messages(span, semconv.GEN_AI_OUTPUT_MESSAGES, outputs, settings)
        self._record_metrics(span, opened, input_tokens, output_tokens, details)
        return masked

    def _end_response(self, span: Span, opened: _Open, data: Any, settings: Any) -> int:
        response = getattr(data, "response", None)
        masked = 0
        if data.input is not None:
            masked += set_messages(span, semconv.GEN_AI_INPUT_MESSAGES, responses_input_messages(data.input), settings)
        input_tokens = output_tokens = None
        details: tuple[Any, Any, Any] = (None, None, None)
        if response is not None:
            model = get_field(response, "model")
            if model:
                # Name after the requested model when the OpenAI SDK call revealed it, as direct calls are named.
                span.update_name(f"{semconv.OP_CHAT} {opened.attributes.get(semconv.GEN_AI_REQUEST_MODEL) or model}")
                span.set_attribute(semconv.GEN_AI_RESPONSE_MODEL, str(model))
                opened.attributes[semconv.GEN_AI_RESPONSE_MODEL] = str(model)
            if get_field(response, "id"):
                span.set_attribute(semconv.GEN_AI_RESPONSE_ID, str(get_field(response, "id")))
            usage = get_field(response, "usage")
            input_tokens, output_tokens = get_field(usage, "input_tokens"), get_field(usage, "output_tokens")
            if input_tokens is not None:
                span.set_attribute(semconv.GEN_AI_USAGE_INPUT_TOKENS, int(input_tokens))
            if output_tokens is not None:
                span.set_attribute(semconv.GEN_AI_USAGE_OUTPUT_TOKENS, int(output_tokens))
            details = usage_details(usage)
            span.set_attributes(token_detail_attributes(*details))
            parts = []
            has_call = False
            for item in get_field(response, "output") or ():
                if get_field(item, "type") == "message":
                    for block in get_field(item, "content") or ():
                        if get_field(block, "text") is not None:
                            parts.append(text_part(str(get_field(block, "text"))))
                elif get_field(item, "type") == "function_call":
                    has_call = True
                    parts.append(tool_call_part(get_field(item, "call_id"), str(get_field(item, "name", "")),
                                                get_field(item, "arguments")))
            reason = semconv.FINISH_TOOL_CALL if has_call else semconv.FINISH_STOP
            span.set_attribute(semconv.GEN_AI_RESPONSE_FINISH_REASONS, [reason])
            masked += set_messages(span, semconv.GEN_AI_OUTPUT_MESSAGES,
                                   [output_message("assistant", parts, reason)], settings)
        self._record_metrics(span, opened, input_tokens, output_tokens, details)
        return masked

    def _record_metrics(self, span: Span, opened: _Open, input_tokens: Any, output_tokens: Any,
                        details: tuple[Any, Any, Any]) -> None:
        duration = _seconds_since(span)
        if duration is None:
            return
        cache_read, cache_write, reasoning = details
        self._instruments.record_metrics(
            opened.attributes, duration, int(input_tokens) if input_tokens is not None else None,
            int(output_tokens) if output_tokens is not None else None, cache_read=cache_read,
            cache_write=cache_write, reasoning=reasoning,
            time_to_first_chunk=opened.attributes.get(semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK))

    # -- bookkeeping -----------------------------------------------------------------------------------------------------

    def _remember(self, key: str, span: Span, agent_name: str | None, attributes: dict[str, Any],
                  conversation_id: Any) -> None:
        with self._lock:
            self._open[key] = _Open(span, trace.set_span_in_context(span), agent_name, attributes,
                                    str(conversation_id) if conversation_id else None)

    def _forget(self, key: str) -> _Open | None:
        with self._lock:
            return self._open.pop(key, None)

    def shutdown(self) -> None:
        """End whatever is still open (the process is exiting)."""
        with self._lock:
            still_open = list(self._open.values())
            self._open.clear()
        for opened in still_open:
            if opened.span is not None:
                opened.span.end()

    def force_flush(self) -> None:
        """Nothing is buffered here; the OTel span processors flush on their own."""
        return None


def _seconds_since(span: Span) -> float | None:
    """How long the span has been open (the SDK span's own duration: the OTel span started with it)."""
    start = getattr(span, "start_time", None)
    return (time.time_ns() - start) / 1e9 if start is not None else None


def _handoff_tool_name(target: str) -> str:
    """The name of the tool the model called to hand off to `target`: the SDK's default handoff tool name (the
    tracing processor is not told about a `tool_name_override`)."""
    try:
        from agents.handoffs import Handoff

        return str(Handoff.default_tool_name(SimpleNamespace(name=target)))  # type: ignore[arg-type]
    except (ImportError, AttributeError):  # an SDK without it
        return f"transfer_to_{target}"


class OpenAIAgentsInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Registers `TracekitAgentsProcessor` with the OpenAI Agents SDK.

    `instrument(exclusive=True)` also removes the SDK's default exporter to the OpenAI platform (no network).
    """

    _processor: TracekitAgentsProcessor | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        """The package this instrumentor hooks into."""
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        from agents import add_trace_processor, set_trace_processors

        processor = TracekitAgentsProcessor(kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        # The SDK has no "remove processor": an old, disabled instance of ours stays registered but silent.
        if type(self)._processor is not None:
            type(self)._processor.enabled = False
        type(self)._processor = processor
        if kwargs.get("exclusive"):
            set_trace_processors([processor])
        else:
            add_trace_processor(processor)

    def _uninstrument(self, **kwargs: Any) -> None:
        if type(self)._processor is not None:
            type(self)._processor.enabled = False
            type(self)._processor = None

    @property
    def processor(self) -> TracekitAgentsProcessor | None:
        """The processor currently recording."""
        return type(self)._processor
