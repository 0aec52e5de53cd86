"""Pieces every tracekit instrumentor shares: tracers, the GenAI client metrics, content attributes, and the
flag that stops two instrumentors from recording the same model call twice."""

from __future__ import annotations

import contextvars
from typing import Any, Mapping, Sequence

from opentelemetry.trace import Span

from tracekit import semconv
from tracekit.content import ContentSettings, get_content_settings
from tracekit.genai_metrics import GenAIMetrics
from tracekit.messages import render, to_json
from tracekit.tracing import get_tracer, read_latest_conventions

# Set while a framework-level instrumentor (LangChain chat model, Agents SDK model call) already records the model
# call, so the OpenAI SDK instrumentor underneath does not add a second `chat` span for the same request.
inference_recorded_by: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "tracekit_inference_recorded_by", default=None
)

# What the silenced OpenAI SDK instrumentor saw of the request (model, parameters, server address): the framework's
# span for the same call adds what it lacks from here when it ends.
silenced_request: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "tracekit_silenced_request", default=None
)

# Request attributes worth copying from the silenced SDK call onto the framework's span (and the time to the first
# chunk of a stream, which only the SDK call sees).
_MERGEABLE = (
    semconv.GEN_AI_REQUEST_MODEL, semconv.GEN_AI_REQUEST_TEMPERATURE, semconv.GEN_AI_REQUEST_TOP_P,
    semconv.GEN_AI_REQUEST_MAX_TOKENS, semconv.GEN_AI_REQUEST_SEED, semconv.GEN_AI_REQUEST_STOP_SEQUENCES,
    semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY, semconv.GEN_AI_REQUEST_PRESENCE_PENALTY,
    semconv.GEN_AI_REQUEST_REASONING_LEVEL, semconv.GEN_AI_REQUEST_PREVIOUS_RESPONSE_ID, semconv.GEN_AI_OUTPUT_TYPE,
    semconv.GEN_AI_REQUEST_STREAM, semconv.SERVER_ADDRESS, semconv.SERVER_PORT, semconv.OPENAI_API_TYPE,
    semconv.OPENAI_REQUEST_SERVICE_TIER, semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK,
)


def merge_silenced_request(span: Span, attributes: dict[str, Any]) -> None:
    """Copy request details the silenced OpenAI SDK instrumentor saw onto `span`, where `attributes` (what the span
    already has) lacks them; then forget them."""
    seen = silenced_request.get()
    if not seen:
        return
    silenced_request.set(None)
    extra = {key: seen[key] for key in _MERGEABLE if key in seen and key not in attributes}
    if extra:
        span.set_attributes(extra)
        attributes.update(extra)


def token_detail_attributes(cache_read: Any, cache_write: Any, reasoning: Any) -> dict[str, int]:
    """The token-detail attributes a provider reported (cache read and write are part of the input tokens,
    reasoning part of the output), in both convention modes; absent or zero counts are left out."""
    found = {}
    for key, value in ((semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, cache_read),
                       (semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS, cache_write),
                       (semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, reasoning)):
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            found[key] = int(value)
    return found


FINISH_REASON_MAP = {
    "tool_calls": semconv.FINISH_TOOL_CALL,
    "function_call": semconv.FINISH_TOOL_CALL,
    "tool_call": semconv.FINISH_TOOL_CALL,
    "stop": semconv.FINISH_STOP,
    "end_turn": semconv.FINISH_STOP,
    "completed": semconv.FINISH_STOP,
    "length": semconv.FINISH_LENGTH,
    "max_tokens": semconv.FINISH_LENGTH,
    "incomplete": semconv.FINISH_LENGTH,
    "content_filter": semconv.FINISH_CONTENT_FILTER,
    "failed": semconv.FINISH_ERROR,
}


def normalize_finish_reason(reason: Any) -> str | None:
    """A provider's finish reason in the v1.37 enum (unknown values pass through as strings)."""
    if reason is None:
        return None
    text = str(reason)
    return FINISH_REASON_MAP.get(text, text)


class Instruments:
    """The tracer and GenAI metric instruments of one instrumentor, honouring `tracer_provider=` / `meter_provider=`.

    Which convention names it emits (`latest`) is decided once, when it is made at `instrument()` time."""

    def __init__(self, scope: str, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self.scope = scope
        self.tracer_provider = tracer_provider
        self.latest = read_latest_conventions()
        self._tracer = get_tracer(scope, tracer_provider) if tracer_provider is not None else None
        self.metrics = GenAIMetrics(scope, meter_provider, latest=self.latest)
        self.record_metrics = self.metrics.record_inference
        self._provider_attributes: dict[str, dict[str, str]] = {}

    @property
    def tracer(self) -> Any:
        """The tracer: the given provider's (made once), else looked up per use, so a context-local provider
        override applies."""
        if self._tracer is None:
            return get_tracer(self.scope)
        return self._tracer

    def provider_attributes(self, provider: str) -> dict[str, str]:
        """`gen_ai.provider.name`, and beside it the deprecated `gen_ai.system` that Application Insights' agent
        views still key on, unless the latest conventions were asked for. Made once per provider; not to be changed
        (callers copy it)."""
        attributes = self._provider_attributes.get(provider)
        if attributes is None:
            attributes = {semconv.GEN_AI_PROVIDER_NAME: provider}
            if not self.latest:
                attributes[semconv.GEN_AI_SYSTEM] = provider
            if len(self._provider_attributes) < 64:  # a handful of providers; never grows with odd values
                self._provider_attributes[provider] = attributes
        return attributes


def set_messages(span: Span, key: str, items: Sequence[Mapping[str, Any]], settings: ContentSettings | None = None,
                 *, structure_ready: bool = False) -> int:
    """Put a messages/instructions/definitions attribute on `span` under the content policy; returns masks made."""
    settings = settings or get_content_settings()
    value, masked = render(key, items, settings, structure_ready=structure_ready)
    if value is not None:
        span.set_attribute(key, value)
    return masked


def set_opt_in(span: Span, key: str, value: Any, settings: ContentSettings | None = None) -> int:
    """Put an opt-in content value (tool arguments/result, retrieval query) on `span` if content is on."""
    settings = settings or get_content_settings()
    if not settings.on_spans or value is None:
        return 0
    text = value if isinstance(value, str) else to_json(value)
    text, masked = settings.redact(key, text)
    span.set_attribute(key, text)
    return masked


def add_masked_count(span: Span, attributes: dict[str, Any], masked: int) -> None:
    """Keep `tracekit.redaction.masked_count` up to date on a span we are building."""
    if masked:
        total = int(attributes.get(semconv.TRACEKIT_REDACTED_COUNT, 0)) + masked
        attributes[semconv.TRACEKIT_REDACTED_COUNT] = total
        span.set_attribute(semconv.TRACEKIT_REDACTED_COUNT, total)


def emit_content_event(span: Span, content: Mapping[str, Any], settings: ContentSettings | None = None) -> None:
    """In EVENT_ONLY / SPAN_AND_EVENT mode: the `gen_ai.client.inference.operation.details` event, structured,
    as a span event (JSON strings: span events cannot hold nested values in the Python SDK)."""
    settings = settings or get_content_settings()
    if not settings.on_events or not span.is_recording():
        return
    attributes: dict[str, Any] = {}
    for key, items in content.items():
        if not items:
            continue
        text, _ = settings.redact(key, to_json(list(items)))
        attributes[key] = text
    if attributes:
        span.add_event(semconv.EVENT_INFERENCE_DETAILS, attributes)
