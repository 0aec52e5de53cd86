"""Pieces every tracekit instrumentor shares: tracers, the GenAI client metrics, content attributes, and the
flag that stops two instrumentors from recording the same model call twice."""

from __future__ import annotations

import contextvars
from typing import Any, Mapping, Sequence

from opentelemetry import metrics
from opentelemetry.metrics import NoOpHistogram
from opentelemetry.trace import Span

from tracekit import semconv
from tracekit.content import ContentSettings, get_content_settings
from tracekit.messages import render, to_json
from tracekit.tracing import get_tracer

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

try:  # the API's stand-in until a MeterProvider is set; private, so only its absence is planned for
    from opentelemetry.metrics._internal.instrument import _ProxyHistogram as _PROXY_HISTOGRAM
except ImportError:  # pragma: no cover
    _PROXY_HISTOGRAM = ()  # type: ignore[assignment,misc]

# Request attributes worth copying from the silenced SDK call onto the framework's span.
_MERGEABLE = (
    semconv.GEN_AI_REQUEST_MODEL, semconv.GEN_AI_REQUEST_TEMPERATURE, semconv.GEN_AI_REQUEST_TOP_P,
    semconv.GEN_AI_REQUEST_MAX_TOKENS, semconv.GEN_AI_REQUEST_SEED, semconv.GEN_AI_REQUEST_STOP_SEQUENCES,
    semconv.GEN_AI_REQUEST_FREQUENCY_PENALTY, semconv.GEN_AI_REQUEST_PRESENCE_PENALTY,
    semconv.GEN_AI_REQUEST_REASONING_LEVEL, semconv.GEN_AI_REQUEST_PREVIOUS_RESPONSE_ID, semconv.GEN_AI_OUTPUT_TYPE,
    semconv.GEN_AI_REQUEST_STREAM, semconv.SERVER_ADDRESS, semconv.SERVER_PORT, semconv.OPENAI_API_TYPE,
    semconv.OPENAI_REQUEST_SERVICE_TIER,
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
    """The tracer and GenAI metric instruments of one instrumentor, honouring `tracer_provider=` / `meter_provider=`."""

    def __init__(self, scope: str, tracer_provider: Any = None, meter_provider: Any = None) -> None:
        self.scope = scope
        self.tracer_provider = tracer_provider
        self._tracer = get_tracer(scope, tracer_provider) if tracer_provider is not None else None
        meter = metrics.get_meter(scope, meter_provider=meter_provider)
        self.token_usage = meter.create_histogram(
            semconv.METRIC_TOKEN_USAGE, unit="{token}", description="Number of input and output tokens used",
            explicit_bucket_boundaries_advisory=list(semconv.TOKEN_USAGE_BUCKETS),
        )
        self.duration = meter.create_histogram(
            semconv.METRIC_OPERATION_DURATION, unit="s", description="GenAI operation duration",
            explicit_bucket_boundaries_advisory=list(semconv.OPERATION_DURATION_BUCKETS),
        )

    @property
    def tracer(self) -> Any:
        """The tracer: the given provider's (made once), else looked up per use, so a context-local provider
        override applies."""
        if self._tracer is None:
            return get_tracer(self.scope)
        return self._tracer

    def record_metrics(
        self,
        span_attributes: Mapping[str, Any],
        duration_s: float,
        input_tokens: int | None,
        output_tokens: int | None,
        error_type: str | None = None,
    ) -> None:
        """Record `gen_ai.client.operation.duration` and `gen_ai.client.token.usage` for one inference."""
        if _records_nowhere(self.duration):
            return  # no MeterProvider yet (or a no-op one): skip building the attribute sets on every call
        attrs = {
            key: span_attributes[key]
            for key in (semconv.GEN_AI_OPERATION_NAME, semconv.GEN_AI_PROVIDER_NAME, semconv.GEN_AI_REQUEST_MODEL,
                        semconv.GEN_AI_RESPONSE_MODEL, semconv.SERVER_ADDRESS, semconv.SERVER_PORT)
            if span_attributes.get(key) is not None
        }
        duration_attrs = dict(attrs)
        if error_type:
            duration_attrs[semconv.ERROR_TYPE] = error_type
        self.duration.record(duration_s, duration_attrs)
        if input_tokens is not None:
            self.token_usage.record(input_tokens, {**attrs, semconv.GEN_AI_TOKEN_TYPE: "input"})
        if output_tokens is not None:
            self.token_usage.record(output_tokens, {**attrs, semconv.GEN_AI_TOKEN_TYPE: "output"})


def _records_nowhere(instrument: Any) -> bool:
    """Whether recording on `instrument` is a no-op: the API's NoOp instruments, or the proxy the global meter hands
    out before any MeterProvider is set (it starts recording once one is; `_real_instrument` is how it knows)."""
    if instrument.__class__ is _PROXY_HISTOGRAM:
        return getattr(instrument, "_real_instrument", True) is None
    return isinstance(instrument, NoOpHistogram)


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
