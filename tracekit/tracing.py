"""Where tracekit's spans come from and how errors are recorded on them: shared by the user API (tracekit.api)
and the instrumentors, and not part of the public API.

`using_tracer_provider(provider)` makes tracekit's helpers and instrumentors use `provider` in one context only
(the demo and the tests use it so they never replace an application's global provider).

`latest_conventions()` says which GenAI convention names to emit: the latest experimental ones when
`OTEL_SEMCONV_STABILITY_OPT_IN` lists `gen_ai_latest_experimental`, else the shape Application Insights reads today.
"""

from __future__ import annotations

import contextvars
import os
import weakref
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from tracekit import semconv
from tracekit.content import get_content_settings

__all__ = ["get_tracer", "using_tracer_provider", "record_error", "redacted_text", "error_type_of",
           "latest_conventions", "read_latest_conventions"]

TRACER_NAME = "tracekit"
SCHEMA_URL = "https://opentelemetry.io/schemas/1.37.0"  # the semantic-conventions schema our attributes follow

# A TracerProvider for this context only.
_provider_override: contextvars.ContextVar[Any] = contextvars.ContextVar("tracekit_tracer_provider", default=None)
# Tracers per (provider, scope name). Keyed by the provider object itself (weakly), never by id(): a new provider can
# reuse a dead one's id, and its spans must not go to the old pipeline.
_global_tracers: dict[str, trace.Tracer] = {}
_provider_tracers: "weakref.WeakKeyDictionary[Any, dict[str, trace.Tracer]]" = weakref.WeakKeyDictionary()


def get_tracer(name: str = TRACER_NAME, tracer_provider: Any = None) -> trace.Tracer:
    """The tracer tracekit's spans come from: `tracer_provider`, else this context's override, else the global."""
    provider = tracer_provider if tracer_provider is not None else _provider_override.get()
    if provider is None:
        cache = _global_tracers
    else:
        cache = _provider_tracers.get(provider)
        if cache is None:
            cache = _provider_tracers[provider] = {}
    tracer = cache.get(name)
    if tracer is None:
        from tracekit import __version__

        tracer = trace.get_tracer(name, __version__, tracer_provider=provider, schema_url=SCHEMA_URL)
        cache[name] = tracer
    return tracer


OPT_IN_VARIABLE = "OTEL_SEMCONV_STABILITY_OPT_IN"
OPT_IN_GEN_AI_LATEST = "gen_ai_latest_experimental"
_latest: bool | None = None  # read once: by read_latest_conventions() (instrument(), configure()) or at first use


def _opt_in_requests_latest() -> bool:
    """Whether OTEL_SEMCONV_STABILITY_OPT_IN asks for the latest GenAI conventions, decided as the OpenTelemetry
    Python contrib instrumentations decide it: through opentelemetry-instrumentation's own parser when it has one
    (so tracekit and, say, opentelemetry-instrumentation-openai-v2 in one process always agree; like them, it reads
    the variable once per process), else the same rule: a comma-separated list holding `gen_ai_latest_experimental`."""
    try:
        from opentelemetry.instrumentation._semconv import (_OpenTelemetrySemanticConventionStability,
                                                            _OpenTelemetryStabilitySignalType, _StabilityMode)

        mode = _StabilityMode.GEN_AI_LATEST_EXPERIMENTAL
        signal = _OpenTelemetryStabilitySignalType.GEN_AI
    except (ImportError, AttributeError):  # an opentelemetry-instrumentation without the GenAI opt-in
        return OPT_IN_GEN_AI_LATEST in (item.strip() for item in os.environ.get(OPT_IN_VARIABLE, "").split(","))
    _OpenTelemetrySemanticConventionStability._initialize()
    return _OpenTelemetrySemanticConventionStability._get_opentelemetry_stability_opt_in_mode(signal) is mode


def read_latest_conventions() -> bool:
    """Decide (again) which convention names tracekit emits; `instrument()` and `configure()` call this, so the
    per-call code only reads a flag."""
    global _latest
    _latest = _opt_in_requests_latest()
    return _latest


def latest_conventions() -> bool:
    """True: emit the latest semantic-conventions-genai names; False (default): the shape Application Insights'
    agent views read today (gen_ai.system beside gen_ai.provider.name, gen_ai.client.operation.duration, ...)."""
    return read_latest_conventions() if _latest is None else _latest


class using_tracer_provider:  # noqa: N801 - used like a function: `with using_tracer_provider(p): ...`
    """Within this block (this context only), tracekit helpers and instrumentors use `provider`."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider
        self._token: contextvars.Token[Any] | None = None

    def __enter__(self) -> Any:
        self._token = _provider_override.set(self.provider)
        return self.provider

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        _provider_override.reset(self._token)


def error_type_of(error: BaseException) -> str:
    """`error.type` for an exception: the class name, qualified unless it is a builtin."""
    cls = type(error)
    module = cls.__module__
    return cls.__qualname__ if module == "builtins" else f"{module}.{cls.__qualname__}"


def redacted_text(text: str) -> str:
    """`text` with the content policy's redaction applied (the built-in rules when none is configured): exception
    messages quote prompts, URLs and keys as often as anything else does."""
    policy = get_content_settings().redaction
    if policy is None:
        from tracekit.redaction import RedactionPolicy

        policy = RedactionPolicy.default()
    return policy.redact_text(text)[0]


def record_error(span: Span, error: BaseException, *, error_type: str | None = None) -> None:
    """Record `error` on `span` as OTel's "Recording Errors" says: exception event, error.type, ERROR status.

    The message and stack trace are redacted here, at the source, so even a pipeline without tracekit's redaction
    processor (e.g. `opentelemetry-instrument`) never exports a secret an exception happened to quote.
    """
    import traceback

    message = redacted_text(str(error))
    stacktrace = redacted_text("".join(traceback.format_exception(type(error), error, error.__traceback__)))
    span.record_exception(error, attributes={"exception.message": message, "exception.stacktrace": stacktrace})
    span.set_attribute(semconv.ERROR_TYPE, error_type or error_type_of(error))
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {message}"))
