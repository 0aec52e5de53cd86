"""Spans for agent code that no framework instruments: agents, tools, tasks and the multi-agent child spans.

Each helper works as a context manager (`with` / `async with`) and as a decorator (sync or async functions), and
records exceptions with `error.type` and ERROR status. The agent name and conversation id of the innermost
`agent(...)` / `task(...)` are carried in context variables, so every span of a turn (ours and the
instrumentors') carries the same `gen_ai.conversation.id` without the caller repeating it.

    with tracekit.task("plan a trip", agent="orchestrator"):
        with tracekit.agent("flight-agent", conversation_id=cid) as agent:
            ...

    @tracekit.tool
    def get_weather(city: str) -> str: ...
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import time
from typing import Any, Callable, Mapping, Sequence, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind

from tracekit import semconv
from tracekit.content import get_content_settings
from tracekit.genai_metrics import GenAIMetrics
from tracekit.messages import render, to_json
from tracekit.tracing import TRACER_NAME, error_type_of, get_tracer, latest_conventions, record_error

__all__ = [
    "agent",
    "tool",
    "task",
    "agent_to_agent",
    "agent_state",
    "agent_planning",
    "agent_orchestration",
    "GenAISpan",
    "current_agent_name",
    "current_conversation_id",
]

F = TypeVar("F", bound=Callable[..., Any])

_agent_name: contextvars.ContextVar[str | None] = contextvars.ContextVar("tracekit_agent_name", default=None)
_conversation_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("tracekit_conversation_id", default=None)


def current_agent_name() -> str | None:
    """The name of the innermost `tracekit.agent(...)` (or task agent) in this context."""
    return _agent_name.get()


def current_conversation_id() -> str | None:
    """The conversation id given to the innermost agent/task in this context, if any (never invented)."""
    return _conversation_id.get()


class GenAISpan:
    """The handle a tracekit context manager yields: the OTel span plus GenAI-aware setters."""

    __slots__ = ("span", "masked")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.masked = 0

    def set_attribute(self, key: str, value: Any) -> GenAISpan:
        """Set any attribute (content keys should go through the typed setters so the content policy applies)."""
        self.span.set_attribute(key, value)
        return self

    def _set_content(self, key: str, messages: Sequence[Mapping[str, Any]]) -> None:
        value, masked = render(key, messages, get_content_settings())
        if value is not None:
            self.span.set_attribute(key, value)
        self._count(masked)

    def _count(self, masked: int) -> None:
        if masked:
            self.masked += masked
            self.span.set_attribute(semconv.TRACEKIT_REDACTED_COUNT, self.masked)

    def set_input_messages(self, messages: Sequence[Mapping[str, Any]]) -> GenAISpan:
        """`gen_ai.input.messages` from messages built with tracekit.messages (content policy applied)."""
        self._set_content(semconv.GEN_AI_INPUT_MESSAGES, messages)
        return self

    def set_output_messages(self, messages: Sequence[Mapping[str, Any]]) -> GenAISpan:
        """`gen_ai.output.messages` (content policy applied)."""
        self._set_content(semconv.GEN_AI_OUTPUT_MESSAGES, messages)
        return self

    def set_system_instructions(self, parts: Sequence[Mapping[str, Any]]) -> GenAISpan:
        """`gen_ai.system_instructions` (recorded only with content on)."""
        self._set_content(semconv.GEN_AI_SYSTEM_INSTRUCTIONS, parts)
        return self

    def set_tool_definitions(self, definitions: Sequence[Mapping[str, Any]]) -> GenAISpan:
        """`gen_ai.tool.definitions` (type and name always; description and parameters only with content on)."""
        self._set_content(semconv.GEN_AI_TOOL_DEFINITIONS, definitions)
        return self

    def set_arguments(self, arguments: Any) -> GenAISpan:
        """`gen_ai.tool.call.arguments` (recorded only with content on, redacted)."""
        self._set_opt_in(semconv.GEN_AI_TOOL_CALL_ARGUMENTS, arguments)
        return self

    def set_result(self, result: Any) -> GenAISpan:
        """`gen_ai.tool.call.result` (recorded only with content on, redacted)."""
        self._set_opt_in(semconv.GEN_AI_TOOL_CALL_RESULT, result)
        return self

    def _set_opt_in(self, key: str, value: Any) -> None:
        settings = get_content_settings()
        if not settings.on_spans:
            return
        text = value if isinstance(value, str) else to_json(value)
        text, masked = settings.redact(key, text)
        self.span.set_attribute(key, text)
        self._count(masked)

    def set_usage(self, input_tokens: int | None = None, output_tokens: int | None = None) -> GenAISpan:
        """Token usage of the operation."""
        if input_tokens is not None:
            self.span.set_attribute(semconv.GEN_AI_USAGE_INPUT_TOKENS, int(input_tokens))
        if output_tokens is not None:
            self.span.set_attribute(semconv.GEN_AI_USAGE_OUTPUT_TOKENS, int(output_tokens))
        return self

    def set_response_id(self, response_id: str) -> GenAISpan:
        """`gen_ai.response.id` (lets evaluations and replays find this operation)."""
        self.span.set_attribute(semconv.GEN_AI_RESPONSE_ID, response_id)
        return self


_latest_metrics: GenAIMetrics | None = None


def _duration_metrics() -> GenAIMetrics | None:
    """The instruments agent and tool scopes record their duration on (the global MeterProvider's); only the
    latest conventions define those metrics, so None by default."""
    global _latest_metrics
    if not latest_conventions():
        return None
    if _latest_metrics is None:
        _latest_metrics = GenAIMetrics(TRACER_NAME, latest=True)
    return _latest_metrics


class _ActiveScope:
    """One entered scope: the span, the attached context and the context-variable tokens to undo."""

    __slots__ = ("handle", "_context_token", "_agent_token", "_conversation_token", "_attributes", "_started")

    def __init__(self, scope: _Scope) -> None:
        conversation_id = scope.conversation_id or _conversation_id.get()
        attributes = dict(scope.attributes)
        if conversation_id:
            attributes[semconv.GEN_AI_CONVERSATION_ID] = conversation_id
        if scope.inherit_agent and semconv.GEN_AI_AGENT_NAME not in attributes:
            parent_agent = _agent_name.get()
            if parent_agent:
                attributes[semconv.GEN_AI_AGENT_NAME] = parent_agent
        span = get_tracer().start_span(scope.span_name, kind=scope.kind, attributes=attributes)
        self._attributes = attributes
        self._started = time.perf_counter()
        self.handle = GenAISpan(span)
        self._context_token = otel_context.attach(trace.set_span_in_context(span))
        self._agent_token = _agent_name.set(scope.sets_agent) if scope.sets_agent else None
        self._conversation_token = (
            _conversation_id.set(conversation_id) if scope.conversation_id and conversation_id else None
        )

    def close(self, error: BaseException | None) -> None:
        span = self.handle.span
        if error is not None:
            record_error(span, error)
        operation = self._attributes.get(semconv.GEN_AI_OPERATION_NAME)
        # A remote agent (CLIENT) is a client operation, not an in-process invocation: no invocation duration.
        if operation in (semconv.OP_INVOKE_AGENT, semconv.OP_EXECUTE_TOOL) \
                and getattr(span, "kind", SpanKind.INTERNAL) is SpanKind.INTERNAL:
            metrics = _duration_metrics()
            if metrics is not None:
                record = metrics.record_agent if operation == semconv.OP_INVOKE_AGENT else metrics.record_tool
                record(self._attributes, time.perf_counter() - self._started,
                       error_type_of(error) if error is not None else None)
        try:
            if self._conversation_token is not None:
                _conversation_id.reset(self._conversation_token)
            if self._agent_token is not None:
                _agent_name.reset(self._agent_token)
        except ValueError:
            pass  # closed from another context (a generator finalized elsewhere): nothing of ours is current there
        otel_context.detach(self._context_token)
        span.end()


class _Scope:
    """A span-to-be: usable once as a context manager, or any number of times as a decorator."""

    def __init__(
        self,
        span_name: str,
        attributes: Mapping[str, Any],
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        conversation_id: str | None = None,
        sets_agent: str | None = None,
        inherit_agent: bool = False,
        capture_io: bool = False,
    ) -> None:
        self.span_name = span_name
        self.attributes = attributes
        self.kind = kind
        self.conversation_id = conversation_id
        self.sets_agent = sets_agent
        self.inherit_agent = inherit_agent
        self.capture_io = capture_io
        self._active: list[_ActiveScope] = []

    # -- context manager -------------------------------------------------------------------------------------------------

    def __enter__(self) -> GenAISpan:
        active = _ActiveScope(self)
        self._active.append(active)
        return active.handle

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._active.pop().close(exc)

    async def __aenter__(self) -> GenAISpan:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- decorator -------------------------------------------------------------------------------------------------------

    def __call__(self, func: F) -> F:
        signature = inspect.signature(func) if self.capture_io else None

        def arguments_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
            assert signature is not None
            try:
                bound = signature.bind(*args, **kwargs)
            except TypeError:
                return {"args": list(args), **kwargs}
            return {name: value for name, value in bound.arguments.items() if name not in ("self", "cls")}

        if inspect.isasyncgenfunction(func):

            @functools.wraps(func)
            async def async_gen_wrapper(*args: Any, **kwargs: Any) -> Any:
                # The span stays open while the caller iterates (a streaming agent), and ends with the stream.
                active = _ActiveScope(self)
                capture = self.capture_io and get_content_settings().on_spans
                if capture:
                    active.handle.set_arguments(arguments_of(args, kwargs))
                try:
                    async for item in func(*args, **kwargs):
                        yield item
                except GeneratorExit:  # the caller stopped early: not an error
                    active.close(None)
                    raise
                except BaseException as error:
                    active.close(error)
                    raise
                active.close(None)

            return async_gen_wrapper  # type: ignore[return-value]

        if inspect.isgeneratorfunction(func):

            @functools.wraps(func)
            def gen_wrapper(*args: Any, **kwargs: Any) -> Any:
                active = _ActiveScope(self)
                capture = self.capture_io and get_content_settings().on_spans
                if capture:
                    active.handle.set_arguments(arguments_of(args, kwargs))
                try:
                    yield from func(*args, **kwargs)
                except GeneratorExit:
                    active.close(None)
                    raise
                except BaseException as error:
                    active.close(error)
                    raise
                active.close(None)

            return gen_wrapper  # type: ignore[return-value]

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                active = _ActiveScope(self)
                capture = self.capture_io and get_content_settings().on_spans
                if capture:
                    active.handle.set_arguments(arguments_of(args, kwargs))
                try:
                    result = await func(*args, **kwargs)
                except BaseException as error:
                    active.close(error)
                    raise
                if capture:
                    active.handle.set_result(result)
                active.close(None)
                return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            active = _ActiveScope(self)
            capture = self.capture_io and get_content_settings().on_spans  # binding arguments costs: only if kept
            if capture:
                active.handle.set_arguments(arguments_of(args, kwargs))
            try:
                result = func(*args, **kwargs)
            except BaseException as error:
                active.close(error)
                raise
            if capture:
                active.handle.set_result(result)
            active.close(None)
            return result

        return wrapper  # type: ignore[return-value]


def _agent_attributes(
    name: str, agent_id: str | None, description: str | None, model: str | None, provider: str | None,
    operation: str = semconv.OP_INVOKE_AGENT,
) -> dict[str, Any]:
    attributes: dict[str, Any] = {semconv.GEN_AI_OPERATION_NAME: operation, semconv.GEN_AI_AGENT_NAME: name}
    if agent_id:
        attributes[semconv.GEN_AI_AGENT_ID] = agent_id
    if description:
        attributes[semconv.GEN_AI_AGENT_DESCRIPTION] = description
    if model:
        attributes[semconv.GEN_AI_REQUEST_MODEL] = model
    if provider:
        attributes[semconv.GEN_AI_PROVIDER_NAME] = provider
        if not latest_conventions():  # the deprecated name Application Insights' agent views still key on
            attributes[semconv.GEN_AI_SYSTEM] = provider
    return attributes


def agent(
    name: str | Callable[..., Any],
    *,
    conversation_id: str | None = None,
    agent_id: str | None = None,
    description: str | None = None,
    model: str | None = None,
    provider: str | None = None,
    remote: bool = False,
) -> Any:
    """An `invoke_agent {name}` span (INTERNAL; CLIENT with `remote=True` for an agent behind a service).

    `conversation_id` is the application's real conversation/thread/session id; it is put on this span and on every
    GenAI span inside it. Use as `with tracekit.agent("flight-agent") as span:` or `@tracekit.agent("flight-agent")`.
    """
    if callable(name):  # bare @tracekit.agent
        return agent(name.__name__)(name)
    return _Scope(
        f"{semconv.OP_INVOKE_AGENT} {name}",
        _agent_attributes(name, agent_id, description, model, provider),
        kind=SpanKind.CLIENT if remote else SpanKind.INTERNAL,
        conversation_id=conversation_id,
        sets_agent=name,
    )


def task(
    name: str | Callable[..., Any], *, agent: str | None = None, conversation_id: str | None = None
) -> Any:
    """An `execute_task {name}` span: a unit of work an orchestrating `agent` plans and hands out (Foundry's
    multi-agent convention). `name` should be low-cardinality (a kind of task, not a user's request text)."""
    if callable(name):
        return task(name.__name__)(name)
    attributes: dict[str, Any] = {semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TASK, semconv.GEN_AI_TASK_NAME: name}
    if agent:
        attributes[semconv.GEN_AI_AGENT_NAME] = agent
    return _Scope(
        f"{semconv.OP_EXECUTE_TASK} {name}",
        attributes,
        conversation_id=conversation_id,
        sets_agent=agent,
        inherit_agent=agent is None,
    )


@overload
def tool(func: F, /) -> F: ...


@overload
def tool(
    func: str | None = None, /, *, name: str | None = None, description: str | None = None,
    tool_type: str = semconv.TOOL_TYPE_FUNCTION, call_id: str | None = None, arguments: Any = None,
) -> Any: ...


def tool(
    func: Any = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    tool_type: str = semconv.TOOL_TYPE_FUNCTION,
    call_id: str | None = None,
    arguments: Any = None,
) -> Any:
    """An `execute_tool {name}` span.

    As a decorator (`@tracekit.tool` or `@tracekit.tool(name=...)`) it records the call's arguments and return value
    as `gen_ai.tool.call.arguments` / `gen_ai.tool.call.result` when content recording is on. As a context manager
    (`with tracekit.tool("search", call_id=id, arguments=args) as span: span.set_result(r)`) it records what you give.
    """
    if callable(func):
        return tool(name=name or func.__name__, description=description or _first_doc_line(func),
                    tool_type=tool_type, call_id=call_id)(func)
    tool_name = func if isinstance(func, str) else name
    if tool_name is None:
        # @tracekit.tool(description=...) without a name: named after the function it decorates.
        return lambda f: tool(name=f.__name__, description=description or _first_doc_line(f), tool_type=tool_type,
                              call_id=call_id)(f)
    attributes: dict[str, Any] = {
        semconv.GEN_AI_OPERATION_NAME: semconv.OP_EXECUTE_TOOL,
        semconv.GEN_AI_TOOL_NAME: tool_name,
        semconv.GEN_AI_TOOL_TYPE: tool_type,
    }
    if description:
        attributes[semconv.GEN_AI_TOOL_DESCRIPTION] = description
    if call_id:
        attributes[semconv.GEN_AI_TOOL_CALL_ID] = call_id
    scope = _ToolScope(
        f"{semconv.OP_EXECUTE_TOOL} {tool_name}", attributes, inherit_agent=True, capture_io=True
    )
    scope.initial_arguments = arguments
    return scope


class _ToolScope(_Scope):
    initial_arguments: Any = None

    def __enter__(self) -> GenAISpan:
        handle = super().__enter__()
        if self.initial_arguments is not None:
            handle.set_arguments(self.initial_arguments)
        return handle


def _first_doc_line(func: Callable[..., Any]) -> str | None:
    doc = inspect.getdoc(func)
    return doc.strip().splitlines()[0] if doc else None


def _multi_agent(operation: str, suffix: str | None, attributes: dict[str, Any]) -> _Scope:
    attributes = {semconv.GEN_AI_OPERATION_NAME: operation, **attributes}
    return _Scope(f"{operation} {suffix}" if suffix else operation, attributes, inherit_agent=True)


def agent_to_agent(target: str, *, source: str | None = None) -> Any:
    """An `agent_to_agent_interaction {target}` span: the current agent (or `source`) talks to / hands off to
    `target`. Put the target's `tracekit.agent(target)` inside it to show the delegated run as its child."""
    attributes: dict[str, Any] = {semconv.GEN_AI_TRANSFER_TARGET_NAME: target}
    source = source or _agent_name.get()
    if source:
        attributes[semconv.GEN_AI_TRANSFER_SOURCE_NAME] = source
        attributes[semconv.GEN_AI_AGENT_NAME] = source
    return _multi_agent(semconv.OP_AGENT_TO_AGENT, target, attributes)


def agent_state(operation: str | None = None) -> Any:
    """An `agent.state.management` span: loading, saving or compacting the agent's memory / context."""
    return _multi_agent(semconv.OP_AGENT_STATE, operation, {})


def agent_planning(step: str | None = None) -> Any:
    """An `agent_planning` span: the agent's internal planning (the model call that plans goes inside it)."""
    return _multi_agent(semconv.OP_AGENT_PLANNING, step, {})


def agent_orchestration(name: str | None = None) -> Any:
    """An `agent_orchestration` span: the agent coordinating other agents (their runs go inside it)."""
    return _multi_agent(semconv.OP_AGENT_ORCHESTRATION, name, {})
