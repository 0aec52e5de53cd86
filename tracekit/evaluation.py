"""Evaluation results as `gen_ai.evaluation.result` events, correlated with the operation they judge.

Emitted through the OpenTelemetry Logs API with the evaluated span as the log record's context (so the record
carries its trace and span id), and with `microsoft.custom_event.name` so Azure Monitor's log exporter puts it in the
`customEvents` table where Foundry looks. When the application has no SDK LoggerProvider, the result becomes a span
event on the evaluated span instead, so it is never silently lost.
"""

from __future__ import annotations

from typing import Any, Mapping

from opentelemetry import _logs, trace
from opentelemetry.trace import Span

from tracekit import semconv
from tracekit.content import get_content_settings

__all__ = ["record_evaluation"]


def _has_sdk_logger_provider(provider: Any) -> bool:
    # The API's default is a proxy/no-op provider; only an SDK provider actually exports records.
    return hasattr(provider, "add_log_record_processor")


def record_evaluation(
    name: str,
    *,
    score: float | None = None,
    label: str | None = None,
    explanation: str | None = None,
    response_id: str | None = None,
    span: Span | None = None,
    error_type: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    logger_provider: Any = None,
) -> None:
    """Record the result of evaluating a GenAI operation.

    `span` is the evaluated operation's span (default: the current span). `response_id` correlates the result
    when the span is not at hand (e.g. evaluating later from stored responses). `explanation` is free text and is
    recorded only when content recording is on, after redaction.

    >>> tracekit.record_evaluation("relevance", score=4.0, label="pass", response_id="resp_123")
    """
    if not name:
        raise ValueError("an evaluation needs a name, e.g. 'relevance'")
    target = span if span is not None else trace.get_current_span()
    attrs: dict[str, Any] = {
        semconv.GEN_AI_EVALUATION_NAME: name,
        semconv.MICROSOFT_CUSTOM_EVENT_NAME: semconv.EVENT_EVALUATION_RESULT,
    }
    if score is not None:
        attrs[semconv.GEN_AI_EVALUATION_SCORE_VALUE] = float(score)
    if label is not None:
        attrs[semconv.GEN_AI_EVALUATION_SCORE_LABEL] = label
    if response_id is not None:
        attrs[semconv.GEN_AI_RESPONSE_ID] = response_id
    if error_type is not None:
        attrs[semconv.ERROR_TYPE] = error_type
    if explanation is not None:
        settings = get_content_settings()
        if settings.enabled:
            attrs[semconv.GEN_AI_EVALUATION_EXPLANATION] = settings.redact(
                semconv.GEN_AI_EVALUATION_EXPLANATION, explanation
            )[0]
    if attributes:
        attrs.update(attributes)

    provider = logger_provider if logger_provider is not None else _logs.get_logger_provider()
    if _has_sdk_logger_provider(provider):
        from tracekit import __version__

        logger = provider.get_logger("tracekit", __version__)
        logger.emit(
            context=trace.set_span_in_context(target),
            event_name=semconv.EVENT_EVALUATION_RESULT,
            attributes=attrs,
        )
        return
    if target.get_span_context().is_valid and target.is_recording():
        target.add_event(semconv.EVENT_EVALUATION_RESULT, attrs)
