"""Where tracekit's spans come from and how errors are recorded on them: shared by the user API (tracekit.api)
and the instrumentors, and not part of the public API.

`using_tracer_provider(provider)` makes tracekit's helpers and instrumentors use `provider` in one context only
(the demo and the tests use it so they never replace an application's global provider).
"""

from __future__ import annotations

import contextvars
import weakref
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode

from tracekit import semconv
from tracekit.content import get_content_settings

__all__ = ["get_tracer", "using_tracer_provider", "record_error", "redacted_text", "error_type_of"]

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
