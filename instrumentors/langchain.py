"""LangChain / LangGraph instrumentation through langchain-core callbacks.

`LangChainInstrumentor().instrument()` makes every callback manager LangChain creates carry one
`TracekitCallbackHandler` (inherited by child runs), unless the caller already passed one explicitly; so nothing is
recorded twice. The handler maps runs to spans:

* LangGraph graphs and subgraphs (the root graph, and every compiled graph used as a node) -> `invoke_agent {name}`
  (INTERNAL). Plain chains, graph nodes and routing functions get no span of their own: their children are parented
  to the nearest recorded ancestor, which keeps the tree readable. `metadata={"otel_agent_span": True/False}` forces
  the choice for a run, as in langchain-azure-ai.
* chat models -> `chat {model}` (CLIENT) with request parameters, response id and model, finish reasons, token usage
  (cache read and reasoning included), tool definitions and messages under the content policy;
  text LLMs -> `text_completion {model}`.
* tools -> `execute_tool {name}` with the tool call id, arguments and result.
* retrievers -> `retrieval {name}` (CLIENT) with the query and document ids/scores as opt-in content.

Parents come from LangChain's own run tree (parent_run_id), so async runs, threads and streaming nest correctly
without relying on the OpenTelemetry context; a run with no parent nests under the span current when it started
(e.g. a `tracekit.agent(...)` block). The conversation id comes from `thread_id` / `session_id` / `conversation_id`
in the run metadata (LangGraph copies `configurable.thread_id` there), else from the enclosing tracekit scope.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Mapping, Sequence
from uuid import UUID

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.trace import Span, SpanKind
from wrapt import wrap_function_wrapper

try:
    from langchain_core.callbacks import BaseCallbackHandler
except ImportError:  # not installed: the module still imports, so entry-point loading reports a dependency
    BaseCallbackHandler = object  # type: ignore[assignment,misc]  # conflict instead of failing with a traceback

from tracekit import semconv
from tracekit.api import current_agent_name, current_conversation_id
from tracekit.content import ContentSettings, get_content_settings
from tracekit.instrumentors._common import (Instruments, add_masked_count, emit_content_event, inference_recorded_by,
                                            merge_silenced_request, normalize_finish_reason, set_messages, set_opt_in,
                                            silenced_request, token_detail_attributes)
from tracekit.instrumentors._langchain_messages import (message_parts, message_role, output_structure_json,
                                                        structure_json, to_otel_messages)
from tracekit.messages import function_tool_definition, output_message, render, text_part
from tracekit.tracing import error_type_of, record_error

__all__ = ["LangChainInstrumentor", "TracekitCallbackHandler"]

_INSTRUMENTS = ("langchain-core >= 0.3",)

_CONVERSATION_KEYS = ("thread_id", "session_id", "conversation_id")
_GENERIC_GRAPH_NAMES = {"LangGraph", ""}
# LangChain's `ls_provider` values -> gen_ai.provider.name
_PROVIDER_MAP = {"openai": "openai", "azure": "azure.ai.openai", "azure_openai": "azure.ai.openai",
                 "anthropic": "anthropic", "bedrock": "aws.bedrock", "amazon_bedrock": "aws.bedrock",
                 "google_genai": "gcp.gemini", "google_vertexai": "gcp.vertex_ai", "mistralai": "mistral_ai",
                 "groq": "groq", "cohere": "cohere", "deepseek": "deepseek", "xai": "x_ai", "ollama": "ollama"}


@dataclass(slots=True)
class _Run:
    """What the handler remembers about one LangChain run."""

    span: Span | None  # None: the run is not recorded; children attach to `parent_context`
    parent_context: Any  # the OTel context children of this run start in
    conversation_id: str | None
    agent_name: str | None
    attributes: dict[str, Any] = field(default_factory=dict)
    started: float = 0.0
    first_token: float | None = None
    suppress_token: Any = None
    inputs: Sequence[Any] = ()  # an inference run's input messages (or prompts) as LangChain gave them
    context_token: Any = None
    pending: _PendingAgent | None = None


@dataclass
class _PendingAgent:
    """A run that may be a subgraph: what its `invoke_agent` span needs if the first child confirms it."""

    agent_name: str
    start_ns: int
    namespace_prefix: str
    inputs: Any


def _conversation_from(metadata: Mapping[str, Any] | None) -> str | None:
    if not metadata:
        return None
    for key in _CONVERSATION_KEYS:
        value = metadata.get(key)
        if value:
            return str(value)
    return None


def _model_name(invocation_params: Mapping[str, Any], metadata: Mapping[str, Any], serialized: Any) -> str | None:
    for key in ("model", "model_name", "azure_deployment", "deployment_name", "deployment", "model_id"):
        value = invocation_params.get(key)
        if value:
            return str(value)
    if metadata.get("ls_model_name"):
        return str(metadata["ls_model_name"])
    kwargs = (serialized or {}).get("kwargs") if isinstance(serialized, Mapping) else None
    if isinstance(kwargs, Mapping):
        for key in ("model", "model_name"):
            if kwargs.get(key):
                return str(kwargs[key])
    return None


def _tool_definitions(tools: Any) -> list[dict[str, Any]]:
    """Tool schemas as bound to the model (OpenAI's nested format or flat) in the OTel flat form."""
    definitions = []
    for entry in tools or ():
        if not isinstance(entry, Mapping):
            continue
        function = entry.get("function") if isinstance(entry.get("function"), Mapping) else entry
        name = function.get("name")
        if name:
            definitions.append(function_tool_definition(str(name), function.get("description"),
                                                        function.get("parameters")))
    return definitions


# Numeric request parameters: invocation-params key -> attribute.
_REQUEST_NUMBERS = {
    "temperature": semconv.GEN_AI_REQUEST_TEMPERATURE,
    "max_tokens": semconv.GEN_AI_REQUEST_MAX_TOKENS,
    "top_p": semconv.GEN_AI_REQUEST_TOP_P,
    "top_k": semconv.GEN_AI_REQUEST_TOP_K,
    "frequency_penalty": semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY,
    "presence_penalty": semconv.GEN_AI_REQUEST_PRESENCE_PENALTY,
    "seed": semconv.GEN_AI_REQUEST_SEED,
}
# LangSmith metadata that stands in for an absent invocation param: metadata key -> (param, attribute).
_REQUEST_NUMBERS_FROM_METADATA = {
    "ls_temperature": ("temperature", semconv.GEN_AI_REQUEST_TEMPERATURE),
    "ls_max_tokens": ("max_tokens", semconv.GEN_AI_REQUEST_MAX_TOKENS),
}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _stop_sequences(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _request_attributes(instruments: Instruments, operation: str, model: str | None, params: Mapping[str, Any],
                        metadata: Mapping[str, Any]) -> dict[str, Any]:
    """Operation, provider, model and request parameters of an inference run."""
    ls_provider = metadata.get("ls_provider")
    provider = _PROVIDER_MAP.get(str(ls_provider or "").lower(), str(ls_provider or "langchain"))
    attributes: dict[str, Any] = {semconv.GEN_AI_OPERATION_NAME: operation,
                                  **instruments.provider_attributes(provider)}
    if model:
        attributes[semconv.GEN_AI_REQUEST_MODEL] = model
    for param, value in params.items():  # the few params given, not every known one
        key = _REQUEST_NUMBERS.get(param)
        if key is not None and _is_number(value):
            attributes[key] = value
    for ls_key, (param, key) in _REQUEST_NUMBERS_FROM_METADATA.items():
        value = metadata.get(ls_key)
        if value is not None and param not in params and _is_number(value):
            attributes[key] = value
    choices = params.get("n")
    if isinstance(choices, int) and choices != 1:
        attributes[semconv.GEN_AI_REQUEST_CHOICE_COUNT] = choices
    stop = params.get("stop") or metadata.get("ls_stop")
    if stop:
        attributes[semconv.GEN_AI_REQUEST_STOP_SEQUENCES] = _stop_sequences(stop)
    if params.get("stream") or params.get("streaming"):
        attributes[semconv.GEN_AI_REQUEST_STREAM] = True
    return attributes


def _finish_reason(generation: Any, msg: Any, metadata: Mapping[str, Any]) -> str:
    """A generation's finish reason in the OTel enum: from the message's response `metadata` (OpenAI's
    `finish_reason`, Anthropic's `stop_reason`) or the generation info; else inferred from the message."""
    info = generation.generation_info or {}
    reason = normalize_finish_reason(metadata.get("finish_reason") or metadata.get("stop_reason")
                                     or info.get("finish_reason"))
    if reason:
        return reason
    return semconv.FINISH_TOOL_CALL if getattr(msg, "tool_calls", None) else semconv.FINISH_STOP


def _read_response(response: Any) -> tuple[dict[str, Any], list[tuple[Any, str]], Any, Any]:
    """From an LLMResult: the response attributes (id, model, finish reasons, token usage), the answers (each
    generation's message, or a text LLM's text, with its finish reason), and the input and output token counts as
    reported."""
    llm_output = response.llm_output or {}
    response_id = llm_output.get("id")
    response_model = llm_output.get("model_name") or llm_output.get("model")
    answers: list[tuple[Any, str]] = []
    usage: Mapping[str, Any] = {}
    for batch in response.generations or ():
        for generation in batch:
            msg = getattr(generation, "message", None)  # a ChatGeneration's; a text LLM's Generation has none
            metadata = getattr(msg, "response_metadata", None) or {}
            reason = _finish_reason(generation, msg, metadata)
            if msg is not None:
                answers.append((msg, reason))
                usage = getattr(msg, "usage_metadata", None) or usage
                response_id = response_id or metadata.get("id")
                response_model = response_model or metadata.get("model_name") or metadata.get("model")
            else:
                answers.append((generation.text, reason))
    if not usage:
        token_usage = llm_output.get("token_usage") or llm_output.get("usage") or {}
        usage = {"input_tokens": token_usage.get("prompt_tokens", token_usage.get("input_tokens")),
                 "output_tokens": token_usage.get("completion_tokens", token_usage.get("output_tokens"))}
    input_tokens = usage.get("input_tokens")
    output_tokens = usage.get("output_tokens")
    found: dict[str, Any] = {}
    if response_id:
        found[semconv.GEN_AI_RESPONSE_ID] = str(response_id)
    if response_model:
        found[semconv.GEN_AI_RESPONSE_MODEL] = str(response_model)
    if answers:
        found[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = [reason for _, reason in answers]
    if input_tokens is not None:
        found[semconv.GEN_AI_USAGE_INPUT_TOKENS] = int(input_tokens)
    if output_tokens is not None:
        found[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = int(output_tokens)
    inputs = usage.get("input_token_details")
    outputs_details = usage.get("output_token_details")
    if inputs or outputs_details:  # UsageMetadata's names: cache_read, cache_creation (a cache write), reasoning
        inputs, outputs_details = inputs or {}, outputs_details or {}
        found.update(token_detail_attributes(inputs.get("cache_read"), inputs.get("cache_creation"),
                                             outputs_details.get("reasoning")))
    return found, answers, input_tokens, output_tokens


def _output_messages(answers: Sequence[tuple[Any, str]]) -> list[dict[str, Any]]:
    """The answers as OTel output messages with their content."""
    return [output_message("assistant", [text_part(answer)] if isinstance(answer, str) else message_parts(answer),
                           reason) for answer, reason in answers]


def _add_messages(attributes: dict[str, Any], key: str, messages: list[dict[str, Any]],
                  settings: ContentSettings) -> int:
    """Put messages built with their content into `attributes` under the content policy; returns how many values
    redaction masked."""
    value, masked = render(key, messages, settings)
    if value is not None:
        attributes[key] = value
    return masked


def _set_message_attribute(span: Span, attributes: dict[str, Any], key: str, items: Sequence[Any],
                           structure_of: Callable[[Any], str], messages_of: Callable[[Any], list[dict[str, Any]]]
                           ) -> None:
    """Input or output messages (`key`) on `span` from `items` under the content policy (`attributes`: what the
    span has, for the masked count): with content off `structure_of(items)`, the structure written straight as
    JSON; else the messages `messages_of(items)` builds, rendered."""
    if not items:
        return
    settings = get_content_settings()
    if not settings.enabled:
        span.set_attribute(key, structure_of(items))
        return
    add_masked_count(span, attributes, set_messages(span, key, messages_of(items), settings))


class TracekitCallbackHandler(BaseCallbackHandler):  # type: ignore[misc]
    """A LangChain callback handler that records GenAI spans (see the module docstring).

    Pass it explicitly (`config={"callbacks": [TracekitCallbackHandler()]}`) or let `LangChainInstrumentor` add it to
    every run; both together still record each run once.
    """

    # Attributes LangChain's callback manager reads from handlers.
    raise_error = False
    run_inline = True  # run in the caller's thread/task: keeps start/end ordering and context with the run
    ignore_llm = ignore_chain = ignore_agent = ignore_retriever = ignore_chat_model = ignore_retry = False
    ignore_custom_event = True

    def __init__(self, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        super().__init__()
        self._instruments = Instruments("tracekit.instrumentors.langchain", tracer_provider, meter_provider)
        # Callbacks of one run may come from several threads; a single dict store, get or pop is atomic, so the
        # table needs no lock of its own.
        self._runs: dict[UUID, _Run] = {}

    # -- bookkeeping -----------------------------------------------------------------------------------------------------

    def _parent(self, parent_run_id: UUID | None) -> _Run | None:
        return self._runs.get(parent_run_id) if parent_run_id is not None else None

    def _start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        metadata: Mapping[str, Any] | None,
        name: str | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        *,
        agent_name: str | None = None,
        make_current: bool = False,
    ) -> _Run:
        parent = self._runs.get(parent_run_id) if parent_run_id is not None else None
        if parent is not None and parent.pending is not None:
            self._confirm_pending(parent, metadata)
        parent_context = parent.parent_context if parent is not None else otel_context.get_current()
        conversation_id = _conversation_from(metadata) or (parent.conversation_id if parent else None) \
            or current_conversation_id()
        inherited_agent = parent.agent_name if parent is not None else current_agent_name()
        if conversation_id:
            attributes[semconv.GEN_AI_CONVERSATION_ID] = conversation_id
        span = None
        if name is not None:
            span = self._instruments.tracer.start_span(name, context=parent_context, kind=kind, attributes=attributes)
            parent_context = trace.set_span_in_context(span, parent_context)
        run = _Run(span, parent_context, conversation_id, agent_name or inherited_agent, attributes, time.perf_counter())
        if make_current and span is not None:
            # Tool and model runs start and end around the call in the same thread or task, so making the span
            # current is safe there; spans other instrumentations create inside (HTTP clients, @tracekit.tool
            # functions used as LangChain tools) then nest under it. Chains are not made current: graph nodes
            # start and end in different tasks.
            run.context_token = otel_context.attach(parent_context)
        self._runs[run_id] = run
        return run

    def _finish(self, run_id: UUID, error: BaseException | None = None) -> _Run | None:
        run = self._runs.pop(run_id, None)
        if run is not None:
            self._close(run, error)
        return run

    def _close(self, run: _Run, error: BaseException | None = None) -> None:
        """End a run taken out of the table: restore the context, re-open the OpenAI instrumentor, end the span
        (with the latest conventions, agent and tool runs also record their duration metric)."""
        if run.context_token is not None:
            try:
                run.context_token.var.reset(run.context_token)
            except (ValueError, AttributeError):
                pass  # ended from another context (callbacks hopped threads): nothing of ours is current there
        if run.suppress_token is not None:
            # Re-open the OpenAI instrumentor for later calls in this context (a plain set: the token may belong
            # to another context when callbacks hop threads).
            inference_recorded_by.set(None)
        if run.span is not None:
            if error is not None:
                record_error(run.span, error)
            if self._instruments.latest:
                self._record_duration(run, error)
            run.span.end()

    def _record_duration(self, run: _Run, error: BaseException | None) -> None:
        operation = run.attributes.get(semconv.GEN_AI_OPERATION_NAME)
        if operation == semconv.OP_INVOKE_AGENT:
            record = self._instruments.metrics.record_agent
        elif operation == semconv.OP_EXECUTE_TOOL:
            record = self._instruments.metrics.record_tool
        else:
            return
        record(run.attributes, time.perf_counter() - run.started, error_type_of(error) if error else None)

    # -- chains / graphs -------------------------------------------------------------------------------------------------

    @staticmethod
    def _agent_decision(metadata: Mapping[str, Any], parent_run_id: UUID | None, name: str | None) -> str:
        """"yes", "no", or "maybe" (a run directly inside a graph node: a subgraph, or just a runnable the node
        calls; settled when its first child shows whether it opened a checkpoint namespace of its own)."""
        forced = metadata.get("otel_agent_span")
        if forced is not None:
            return "yes" if forced else "no"
        if metadata.get("otel_trace") is False:
            return "no"
        if metadata.get("ls_integration") != "langgraph":
            # Plain LangChain: only a top-level AgentExecutor-style run is an agent.
            return "yes" if parent_run_id is None and name and "agent" in str(name).lower() else "no"
        if "langgraph_node" not in metadata:
            return "yes"  # the root graph
        namespace = metadata.get("checkpoint_ns")
        return "maybe" if namespace and namespace == metadata.get("langgraph_checkpoint_ns") else "no"

    def _agent_attributes(self, metadata: Mapping[str, Any], name: str | None) -> tuple[str, dict[str, Any]]:
        agent_name = str(metadata.get("agent_name") or name or "LangGraph")
        if agent_name in _GENERIC_GRAPH_NAMES and metadata.get("langgraph_node"):
            agent_name = str(metadata["langgraph_node"])
        attributes: dict[str, Any] = {
            semconv.GEN_AI_OPERATION_NAME: semconv.OP_INVOKE_AGENT,
            semconv.GEN_AI_AGENT_NAME: agent_name,
        }
        if metadata.get("agent_id"):
            attributes[semconv.GEN_AI_AGENT_ID] = str(metadata["agent_id"])
        if metadata.get("agent_description"):
            attributes[semconv.GEN_AI_AGENT_DESCRIPTION] = str(metadata["agent_description"])
        return agent_name, attributes

    def _set_agent_input(self, run: _Run, inputs: Any) -> None:
        messages = inputs.get("messages") if isinstance(inputs, Mapping) else None
        if messages and run.span is not None and isinstance(messages, (list, tuple)):
            _set_message_attribute(run.span, run.attributes, semconv.GEN_AI_INPUT_MESSAGES,
                                   [m for m in messages if hasattr(m, "content")], structure_json, to_otel_messages)

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None,
                       tags: list[str] | None = None, metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """Graphs and subgraphs become `invoke_agent` spans; other chains only pass their parent on."""
        metadata = metadata or {}
        name = kwargs.get("name") or (serialized.get("name") if isinstance(serialized, Mapping) else None)
        decision = self._agent_decision(metadata, parent_run_id, name)
        if decision == "no":
            self._start(run_id, parent_run_id, metadata, None, SpanKind.INTERNAL, {})
            return
        agent_name, attributes = self._agent_attributes(metadata, name)
        if decision == "maybe":
            run = self._start(run_id, parent_run_id, metadata, None, SpanKind.INTERNAL, attributes)
            run.pending = _PendingAgent(agent_name, time.time_ns(), str(metadata["checkpoint_ns"]) + "|", inputs)
            return
        run = self._start(run_id, parent_run_id, metadata, f"{semconv.OP_INVOKE_AGENT} {agent_name}",
                          SpanKind.INTERNAL, attributes, agent_name=agent_name)
        self._set_agent_input(run, inputs)

    def _confirm_pending(self, parent: _Run, metadata: Mapping[str, Any] | None) -> None:
        """A child of a "maybe" run: if it runs in a namespace below the run's own, the run was a subgraph; give it
        its `invoke_agent` span now, backdated to when it started."""
        pending = parent.pending
        if pending is None or not metadata:
            return
        parent.pending = None
        if not str(metadata.get("langgraph_checkpoint_ns", "")).startswith(pending.namespace_prefix):
            return
        span = self._instruments.tracer.start_span(
            f"{semconv.OP_INVOKE_AGENT} {pending.agent_name}", context=parent.parent_context, kind=SpanKind.INTERNAL,
            attributes=parent.attributes, start_time=pending.start_ns)
        parent.span = span
        parent.parent_context = trace.set_span_in_context(span, parent.parent_context)
        parent.agent_name = pending.agent_name
        self._set_agent_input(parent, pending.inputs)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Close an agent span with its final answer as output message."""
        run = self._runs.get(run_id)
        if run is not None and run.span is not None and isinstance(outputs, Mapping):
            messages = outputs.get("messages")
            if isinstance(messages, (list, tuple)) and messages and message_role(messages[-1]) == "assistant":
                last = messages[-1]
                reason = semconv.FINISH_TOOL_CALL if getattr(last, "tool_calls", None) else semconv.FINISH_STOP
                _set_message_attribute(run.span, run.attributes, semconv.GEN_AI_OUTPUT_MESSAGES, [(last, reason)],
                                       output_structure_json, _output_messages)
        self._finish(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close with error.type and ERROR status. LangGraph's control-flow interrupts are not errors."""
        if type(error).__name__ in ("GraphInterrupt", "ParentCommand", "GraphBubbleUp"):
            self._finish(run_id)
            return
        self._finish(run_id, error)

    # -- chat models / LLMs ----------------------------------------------------------------------------------------------

    def _start_inference(self, operation: str, serialized: Any, run_id: UUID, parent_run_id: UUID | None,
                         metadata: Mapping[str, Any] | None, kwargs: Mapping[str, Any], inputs: Sequence[Any]) -> None:
        """Start the inference span with every request attribute at once. The input messages are only kept here:
        they become `gen_ai.input.messages` when the run ends, in the same `set_attributes` call as the response
        (one attribute pass instead of two, and no work at all for a span the sampler dropped)."""
        metadata = metadata or {}
        params: Mapping[str, Any] = kwargs.get("invocation_params") or {}
        model = _model_name(params, metadata, serialized)
        attributes = _request_attributes(self._instruments, operation, model, params, metadata)
        tools = params.get("tools")
        definitions = _tool_definitions(tools) if tools else None
        if definitions:
            value, masked = render(semconv.GEN_AI_TOOL_DEFINITIONS, definitions, get_content_settings())
            attributes[semconv.GEN_AI_TOOL_DEFINITIONS] = value
            if masked:
                attributes[semconv.TRACEKIT_REDACTED_COUNT] = masked
        # The spec's name is "{operation} {model}", or the operation alone when the model is not known.
        run = self._start(run_id, parent_run_id, metadata, f"{operation} {model}" if model else operation,
                          SpanKind.CLIENT, attributes, make_current=True)
        run.suppress_token = inference_recorded_by.set("langchain")
        if silenced_request.get() is not None:  # only what the SDK sees during this call may be merged at its end
            silenced_request.set(None)
        run.inputs = inputs

    def on_chat_model_start(self, serialized: Any, messages: list[list[Any]], *, run_id: UUID,
                            parent_run_id: UUID | None = None, tags: list[str] | None = None,
                            metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """A `chat {model}` span with the request parameters (input messages are added when the run ends)."""
        self._start_inference(semconv.OP_CHAT, serialized, run_id, parent_run_id, metadata, kwargs,
                              messages[0] if messages else ())

    def on_llm_start(self, serialized: Any, prompts: list[str], *, run_id: UUID, parent_run_id: UUID | None = None,
                     tags: list[str] | None = None, metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """A `text_completion {model}` span for plain-text LLMs."""
        if run_id in self._runs:  # a chat model that LangChain reported through both callbacks
            return
        self._start_inference(semconv.OP_TEXT_COMPLETION, serialized, run_id, parent_run_id, metadata, kwargs,
                              prompts or ())

    def on_llm_new_token(self, token: str, *, run_id: UUID, **kwargs: Any) -> None:
        """Streaming: note the time to the first chunk."""
        run = self._runs.get(run_id)
        if run is not None and run.first_token is None:
            run.first_token = time.perf_counter()
            if run.span is not None:
                streaming = {semconv.GEN_AI_REQUEST_STREAM: True,
                             semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK: run.first_token - run.started}
                run.span.set_attributes(streaming)
                run.attributes.update(streaming)  # what the silenced OpenAI SDK call measured is not merged over it

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Response id and model, finish reasons, token usage, input and output messages; then the metrics."""
        run = self._runs.pop(run_id, None)
        if run is None:
            return
        found, answers, input_tokens, output_tokens = _read_response(response)
        if semconv.GEN_AI_RESPONSE_MODEL in found:  # the metrics carry it too
            run.attributes[semconv.GEN_AI_RESPONSE_MODEL] = found[semconv.GEN_AI_RESPONSE_MODEL]
        span = run.span
        if span is not None and span.is_recording():
            settings = get_content_settings()
            masked = 0
            if not settings.enabled:  # structure only, written straight as JSON
                if run.inputs:
                    found[semconv.GEN_AI_INPUT_MESSAGES] = structure_json(run.inputs)
                if answers:
                    found[semconv.GEN_AI_OUTPUT_MESSAGES] = output_structure_json(answers)
            else:
                inputs, outputs = to_otel_messages(run.inputs), _output_messages(answers)
                masked = _add_messages(found, semconv.GEN_AI_INPUT_MESSAGES, inputs, settings)
                masked += _add_messages(found, semconv.GEN_AI_OUTPUT_MESSAGES, outputs, settings)
                if settings.on_events:
                    emit_content_event(span, {semconv.GEN_AI_INPUT_MESSAGES: inputs,
                                              semconv.GEN_AI_OUTPUT_MESSAGES: outputs}, settings)
            span.set_attributes(found)
            merge_silenced_request(span, run.attributes)
            add_masked_count(span, run.attributes, masked)
        self._instruments.record_metrics(
            run.attributes, time.perf_counter() - run.started, _int_or_none(input_tokens),
            _int_or_none(output_tokens), cache_read=found.get(semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS),
            cache_write=found.get(semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS),
            reasoning=found.get(semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS),
            time_to_first_chunk=run.first_token - run.started if run.first_token is not None else None,
            context=run.parent_context)
        self._close(run)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close with the input messages and error.type; the duration metric carries the error type too."""
        run = self._runs.get(run_id)
        if run is not None:
            span = run.span
            if span is not None and span.is_recording():
                _set_message_attribute(span, run.attributes, semconv.GEN_AI_INPUT_MESSAGES, run.inputs,
                                       structure_json, to_otel_messages)
            self._instruments.record_metrics(run.attributes, time.perf_counter() - run.started, None, None,
                                             error_type_of(error), context=run.parent_context)
        self._finish(run_id, error)

    # -- tools -----------------------------------------------------------------------------------------------------------

    def on_tool_start(self, serialized: Any, input_str: str, *, run_id: UUID, parent_run_id: UUID | None = None,
                      tags: list[str] | None = None, metadata: dict[str, Any] | None = None,
                      inputs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        """An `execute_tool {name}` span with the call id and (content on) the arguments."""
        serialized = serialized or {}
        name = str(kwargs.get("name") or serialized.get("name") or "tool")
        attributes: dict[str, Any] = {
            semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL,
            semconv.GEN_AI_TOOL_NAME: name,
            semconv.GEN_AI_TOOL_TYPE: semconv.TOOL_TYPE_FUNCTION,
        }
        if serialized.get("description"):
            attributes[semconv.GEN_AI_TOOL_DESCRIPTION] = str(serialized["description"])
        call_id = kwargs.get("tool_call_id") or (metadata or {}).get("tool_call_id")
        if call_id:
            attributes[semconv.GEN_AI_TOOL_CALL_ID] = str(call_id)
        parent = self._parent(parent_run_id)
        agent_name = parent.agent_name if parent is not None else current_agent_name()
        if agent_name:
            attributes[semconv.GEN_AI_AGENT_NAME] = agent_name
        run = self._start(run_id, parent_run_id, metadata, f"{semconv.OP_EXECUTE_TOOL} {name}", SpanKind.INTERNAL,
                          attributes, make_current=True)
        if run.span is not None:
            add_masked_count(run.span, run.attributes, set_opt_in(
                run.span, semconv.GEN_AI_TOOL_CALL_ARGUMENTS, inputs if inputs is not None else input_str))

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """Record the result (content on) and the call id LangChain only reveals in the ToolMessage."""
        run = self._runs.get(run_id)
        if run is not None and run.span is not None:
            result = output
            if hasattr(output, "tool_call_id") and hasattr(output, "content"):
                if semconv.GEN_AI_TOOL_CALL_ID not in run.attributes and output.tool_call_id:
                    run.span.set_attribute(semconv.GEN_AI_TOOL_CALL_ID, str(output.tool_call_id))
                result = output.content
            add_masked_count(run.span, run.attributes,
                             set_opt_in(run.span, semconv.GEN_AI_TOOL_CALL_RESULT, result))
        self._finish(run_id)

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close with error.type and ERROR status."""
        self._finish(run_id, error)

    # -- retrievers ------------------------------------------------------------------------------------------------------

    def on_retriever_start(self, serialized: Any, query: str, *, run_id: UUID, parent_run_id: UUID | None = None,
                           tags: list[str] | None = None, metadata: dict[str, Any] | None = None,
                           **kwargs: Any) -> None:
        """A `retrieval {name}` span; the query is opt-in content."""
        name = str(kwargs.get("name") or (serialized or {}).get("name") or "retriever")
        attributes: dict[str, Any] = {
            semconv.GEN_AI_OPERATION_NAME: semconv.OP_RETRIEVAL,
            semconv.GEN_AI_DATA_SOURCE_ID: name,
        }
        run = self._start(run_id, parent_run_id, metadata, f"{semconv.OP_RETRIEVAL} {name}", SpanKind.CLIENT,
                          attributes)
        if run.span is not None:
            add_masked_count(run.span, run.attributes,
                             set_opt_in(run.span, semconv.GEN_AI_RETRIEVAL_QUERY_TEXT, query))

    def on_retriever_end(self, documents: Sequence[Any], *, run_id: UUID, **kwargs: Any) -> None:
        """Document ids and scores (opt-in content); never the page text."""
        run = self._runs.get(run_id)
        if run is not None and run.span is not None:
            found = []
            for document in documents:
                doc_metadata = getattr(document, "metadata", None) or {}
                entry: dict[str, Any] = {"id": getattr(document, "id", None) or doc_metadata.get("id")}
                if doc_metadata.get("score") is not None:
                    entry["score"] = doc_metadata["score"]
                found.append(entry)
            add_masked_count(run.span, run.attributes,
                             set_opt_in(run.span, semconv.GEN_AI_RETRIEVAL_DOCUMENTS, found))
        self._finish(run_id)

    def on_retriever_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        """Close with error.type and ERROR status."""
        self._finish(run_id, error)

    # -- callbacks we do not turn into spans -----------------------------------------------------------------------------

    def on_agent_action(self, *args: Any, **kwargs: Any) -> None:  # noqa: D102
        return None

    def on_agent_finish(self, *args: Any, **kwargs: Any) -> None:  # noqa: D102
        return None

    def on_text(self, *args: Any, **kwargs: Any) -> None:  # noqa: D102
        return None

    def on_retry(self, *args: Any, **kwargs: Any) -> None:  # noqa: D102
        return None

    def on_custom_event(self, *args: Any, **kwargs: Any) -> None:  # noqa: D102
        return None


def _int_or_none(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) else None


def _register_handler(handler: TracekitCallbackHandler):  # type: ignore[no-untyped-def]
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> None:
        wrapped(*args, **kwargs)
        # An explicitly passed handler (ours or another instance of ours) wins: never add a second one.
        if any(isinstance(existing, TracekitCallbackHandler) for existing in instance.handlers):
            return
        instance.add_handler(handler, inherit=True)

    return wrapper


class LangChainInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Instruments LangChain and LangGraph through langchain-core's callback managers.

    >>> LangChainInstrumentor().instrument(tracer_provider=provider)
    """

    _handler: TracekitCallbackHandler | None = None

    def instrumentation_dependencies(self) -> Collection[str]:
        """The packages this instrumentor patches."""
        return _INSTRUMENTS

    def _instrument(self, **kwargs: Any) -> None:
        handler = TracekitCallbackHandler(kwargs.get("tracer_provider"), kwargs.get("meter_provider"))
        type(self)._handler = handler
        wrap_function_wrapper("langchain_core.callbacks.base", "BaseCallbackManager.__init__",
                              _register_handler(handler))

    def _uninstrument(self, **kwargs: Any) -> None:
        from langchain_core.callbacks import base

        init = base.BaseCallbackManager.__init__
        original = getattr(init, "__wrapped__", None)
        if original is not None:
            base.BaseCallbackManager.__init__ = original  # type: ignore[method-assign]
        type(self)._handler = None

    @property
    def handler(self) -> TracekitCallbackHandler | None:
        """The handler every callback manager gets while instrumented."""
        return type(self)._handler
