"""The content-recording policy: whether message text, tool arguments and results are recorded, and where.

Off by default. Turned on in code (`tracekit.set_content_recording(True)` or `configure(content=...)`) or by the
environment, code winning over environment:

* `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`: `true` (content on span attributes), or one of the OTel
  experimental modes `NO_CONTENT`, `SPAN_ONLY`, `EVENT_ONLY`, `SPAN_AND_EVENT` (case-insensitive);
* `AZURE_TRACING_GEN_AI_CONTENT_RECORDING_ENABLED=true` (the Azure SDKs' and Foundry docs' switch): like `true`.

With content off the structure stays (roles, part types, tool names and call ids, token counts) and the text goes,
so a replay still shows who spoke and which tool ran. With content on, every recorded value passes through the
redaction policy first.
"""

from __future__ import annotations

import contextvars
import logging
import os
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Mapping

from tracekit.redaction import RedactionPolicy

__all__ = [
    "ContentMode",
    "ContentSettings",
    "get_content_settings",
    "set_content_recording",
    "reset_content_settings",
    "using_content_settings",
    "ENV_CAPTURE_MESSAGE_CONTENT",
    "ENV_AZURE_CONTENT_RECORDING",
]

ENV_CAPTURE_MESSAGE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
ENV_AZURE_CONTENT_RECORDING = "AZURE_TRACING_GEN_AI_CONTENT_RECORDING_ENABLED"

_log = logging.getLogger(__name__)

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


class ContentMode(str, Enum):
    """Where content goes (OTel's `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` values)."""

    NO_CONTENT = "NO_CONTENT"
    SPAN_ONLY = "SPAN_ONLY"
    EVENT_ONLY = "EVENT_ONLY"
    SPAN_AND_EVENT = "SPAN_AND_EVENT"


def parse_content_mode(value: str | bool | ContentMode | None) -> ContentMode | None:
    """A ContentMode from a bool, a mode, or an environment-style string; None when `value` means nothing."""
    if value is None:
        return None
    if isinstance(value, ContentMode):
        return value
    if isinstance(value, bool):
        return ContentMode.SPAN_ONLY if value else ContentMode.NO_CONTENT
    text = str(value).strip()
    if text.lower() in _TRUE:
        return ContentMode.SPAN_ONLY
    if text.lower() in _FALSE:
        return ContentMode.NO_CONTENT
    try:
        return ContentMode(text.upper())
    except ValueError:
        return None


@dataclass(frozen=True)
class ContentSettings:
    """The content policy instrumentors consult on every span."""

    mode: ContentMode = ContentMode.NO_CONTENT
    redaction: RedactionPolicy | None = None

    @property
    def enabled(self) -> bool:
        """Whether any content is recorded."""
        return self.mode is not ContentMode.NO_CONTENT

    @property
    def on_spans(self) -> bool:
        """Content goes on span attributes (JSON strings)."""
        return self.mode in (ContentMode.SPAN_ONLY, ContentMode.SPAN_AND_EVENT)

    @property
    def on_events(self) -> bool:
        """Content goes on a `gen_ai.client.inference.operation.details` log event."""
        return self.mode in (ContentMode.EVENT_ONLY, ContentMode.SPAN_AND_EVENT)

    def redact(self, key: str, value: Any) -> tuple[Any, int]:
        """`value` with the redaction policy applied, and how many values were masked."""
        if self.redaction is None:
            return value, 0
        return self.redaction.redact_value_counted(key, value)


def settings_from_env(environ: Mapping[str, str] | None = None) -> ContentSettings:
    """The settings the environment asks for (the OTel variable wins over the Azure one)."""
    env = os.environ if environ is None else environ
    mode = ContentMode.NO_CONTENT
    azure = env.get(ENV_AZURE_CONTENT_RECORDING)
    if azure is not None and azure.strip().lower() in _TRUE:
        mode = ContentMode.SPAN_ONLY
    otel = env.get(ENV_CAPTURE_MESSAGE_CONTENT)
    if otel is not None:
        parsed = parse_content_mode(otel)
        if parsed is None:
            _log.warning(
                "%s=%r is not one of true, false, NO_CONTENT, SPAN_ONLY, EVENT_ONLY, SPAN_AND_EVENT; content recording stays off",
                ENV_CAPTURE_MESSAGE_CONTENT,
                otel,
            )
            parsed = ContentMode.NO_CONTENT
        mode = parsed
    return ContentSettings(mode, RedactionPolicy.from_env(env))


_current: ContentSettings | None = None
# Settings for one context only (the demo records its synthetic content without changing the process-wide policy).
_override: contextvars.ContextVar[ContentSettings | None] = contextvars.ContextVar("tracekit_content", default=None)


def get_content_settings() -> ContentSettings:
    """The settings in force (read from the environment the first time, unless set in code)."""
    global _current
    override = _override.get()
    if override is not None:
        return override
    if _current is None:
        _current = settings_from_env()
    return _current


class using_content_settings:  # noqa: N801 - used like a function
    """Within this block (this context only), use `settings` instead of the process-wide ones."""

    def __init__(self, settings: ContentSettings) -> None:
        self.settings = settings
        self._token: contextvars.Token[ContentSettings | None] | None = None

    def __enter__(self) -> ContentSettings:
        self._token = _override.set(self.settings)
        return self.settings

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        _override.reset(self._token)


def set_content_recording(
    enabled: bool | str | ContentMode, *, redaction: RedactionPolicy | None = None
) -> ContentSettings:
    """Turn content recording on or off in code (this overrides the environment).

    `enabled` is a bool (True = content on span attributes) or a ContentMode / mode name. `redaction` replaces the
    policy (default: the one from the environment, i.e. the built-in rules unless TRACEKIT_REDACTION=off).

    >>> import tracekit
    >>> tracekit.set_content_recording(True).enabled
    True
    """
    global _current
    mode = parse_content_mode(enabled)
    if mode is None:
        raise ValueError(f"content recording {enabled!r}: use True/False or one of {[m.value for m in ContentMode]}")
    base = get_content_settings()
    _current = replace(base, mode=mode, redaction=redaction if redaction is not None else base.redaction)
    return _current


def reset_content_settings() -> None:
    """Forget settings made in code; the next use re-reads the environment."""
    global _current
    _current = None
