"""Applying a RedactionPolicy inside the in-process OpenTelemetry SDK pipeline, before any exporter.

Kept apart from tracekit.redaction so the policy itself imports no SDK code (the collector uses it on plain dicts).
"""

from __future__ import annotations

from typing import Any, Sequence

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk._logs import LogRecordProcessor
from opentelemetry.sdk.trace import Event, SpanProcessor
from opentelemetry.trace import Status

from tracekit.redaction import RedactionPolicy
from tracekit.semconv import TRACEKIT_REDACTED_COUNT


class RedactingSpanProcessor(SpanProcessor):
    """Masks the attributes and event attributes (exception messages included) of every span as it ends, before any
    exporter. It covers tracekit's own spans too: their content was redacted when recorded, but exception messages
    and attributes set by user code were not.

    Why a processor and not only an exporter wrapper: `configure()` adds it FIRST on the TracerProvider, so it runs
    before every later processor, including ones other libraries or the user add afterwards (Azure Monitor's,
    a console exporter, a second OTLP pipeline). An exporter wrapper protects only the exporter it wraps.
    ReadableSpan attributes are immutable, so on_end swaps in new attribute containers (the SDK's
    `_attributes` / `_events` fields, stable since 1.0); it counts what it masked in
    `tracekit.redaction.masked_count`. `RedactingSpanExporter` is offered as well for pipelines built by hand.
    """

    def __init__(self, policy: RedactionPolicy) -> None:
        self.policy = policy

    def on_start(self, span: Any, parent_context: Any = None) -> None:  # noqa: D102 - nothing to do at start
        return None

    def on_end(self, span: Any) -> None:
        """Redact `span` in place (its containers are replaced, not mutated)."""
        if self.policy.is_noop:
            return
        redact_readable_span_in_place(span, self.policy)

    def shutdown(self) -> None:  # noqa: D102
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:  # noqa: D102
        return True


def redact_readable_span_in_place(span: Any, policy: RedactionPolicy) -> int:
    """Mask a finished SDK span's name, status description, attributes and event attributes. Returns the number of
    values masked."""
    total = 0
    name, name_masks = policy.redact_text(span.name)
    if name_masks:
        span._name = name  # e.g. an HTTP span named after a URL path with an e-mail address in it
        total += name_masks
    status = span.status
    if status is not None and status.description:
        description, status_masks = policy.redact_text(status.description)
        if status_masks:
            span._status = Status(status.status_code, description)  # error statuses often quote the exception text
            total += status_masks
    attributes = span.attributes
    if attributes:
        new_attrs, count = policy.redact_attributes(attributes)
        if count:
            total += count
    else:
        new_attrs = {}
    events = span.events
    new_events = []
    events_changed = False
    for event in events:
        if event.attributes:
            event_attrs, count = policy.redact_attributes(event.attributes)
            if count:
                total += count
                events_changed = True
                event = Event(event.name, event_attrs, event.timestamp)
        new_events.append(event)
    if total:
        new_attrs[TRACEKIT_REDACTED_COUNT] = int(new_attrs.get(TRACEKIT_REDACTED_COUNT) or 0) + total
        limit = getattr(attributes, "maxlen", None)
        span._attributes = BoundedAttributes(limit, new_attrs, immutable=True)
        if events_changed:
            span._events = tuple(new_events)
    return total


class RedactingSpanExporter:
    """Wraps a SpanExporter: redacts each span of a batch, then hands the batch on."""

    def __init__(self, inner: Any, policy: RedactionPolicy) -> None:
        self.inner = inner
        self.policy = policy

    def export(self, spans: Sequence[Any]) -> Any:
        """Redact and forward."""
        for span in spans:
            redact_readable_span_in_place(span, self.policy)
        return self.inner.export(spans)

    def shutdown(self) -> None:
        """Shut the wrapped exporter down."""
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush the wrapped exporter."""
        return self.inner.force_flush(timeout_millis)


class RedactingLogRecordProcessor(LogRecordProcessor):
    """The log-side twin of RedactingSpanProcessor: masks log record attributes and string bodies on emit."""

    def __init__(self, policy: RedactionPolicy) -> None:
        self.policy = policy

    def on_emit(self, log_record: Any) -> None:
        """Redact the record in place (ReadWriteLogRecord is mutable by design)."""
        record = getattr(log_record, "log_record", log_record)
        if record.attributes:
            attrs, count = self.policy.redact_attributes(record.attributes)
            if count:
                record.attributes = attrs
        body = record.body
        if isinstance(body, str):
            record.body = self.policy.redact_text(body)[0]
        elif isinstance(body, dict):
            record.body = self.policy.redact_attributes(body)[0]

    def shutdown(self) -> None:  # noqa: D102
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:  # noqa: D102
        return True
