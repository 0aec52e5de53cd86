"""Applying a RedactionPolicy inside the in-process OpenTelemetry SDK pipeline, before any exporter.

Kept apart from the policy so the policy itself imports no SDK code (the collector uses it on plain dicts). Every
value goes through the policy's one value function, as on the collector and export paths.
"""

from __future__ import annotations

from typing import Any, Sequence

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk._logs import LogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, SpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, Status, TraceState

from tracekit.redaction.policy import RedactionPolicy
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
    """Mask everything a finished SDK span carries that its sender controls: name, status description, trace_state,
    attributes (keys too), event names and attributes, link trace_states and attributes, resource and
    instrumentation scope. Returns the number of values masked."""
    total = 0
    name, name_masks = policy.redact_text(span.name)
    if name_masks:
        span._name = name  # e.g. an HTTP span named after a URL with a key in it
        total += name_masks
    status = span.status
    if status is not None and status.description:
        description, status_masks = policy.redact_text(status.description)
        if status_masks:
            span._status = Status(status.status_code, description)  # error statuses often quote the exception text
            total += status_masks
    context, context_masks = _redact_context(span.context, policy)
    if context_masks:
        span._context = context
        total += context_masks
    attributes = span.attributes
    new_attrs, attribute_masks = policy.redact_attributes(attributes) if attributes else ({}, 0)
    total += attribute_masks
    new_events, event_masks = _redact_events(span.events, policy)
    if event_masks:
        span._events = tuple(new_events)
        total += event_masks
    new_links, link_masks = _redact_links(span.links, policy)
    if link_masks:
        span._links = tuple(new_links)
        total += link_masks
    resource, resource_masks = _redact_resource(span.resource, policy)
    if resource_masks:
        span._resource = resource
    scope, scope_masks = _redact_scope(span.instrumentation_scope, policy)
    if scope_masks:
        span._instrumentation_scope = scope
    total += resource_masks + scope_masks
    if total:
        new_attrs[TRACEKIT_REDACTED_COUNT] = int(new_attrs.get(TRACEKIT_REDACTED_COUNT) or 0) + total
        span._attributes = BoundedAttributes(getattr(attributes, "maxlen", None), new_attrs, immutable=True)
    return total


def _redact_context(context: SpanContext | None, policy: RedactionPolicy) -> tuple[Any, int]:
    if context is None or not context.trace_state:
        return context, 0
    items, total = [], 0
    for key, value in context.trace_state.items():
        value, count = policy.redact_text(value)
        items.append((key, value))
        total += count
    if not total:
        return context, 0
    return SpanContext(context.trace_id, context.span_id, context.is_remote, context.trace_flags,
                       TraceState(items)), total


def _redact_events(events: Sequence[Any], policy: RedactionPolicy) -> tuple[list[Any], int]:
    result, total = [], 0
    for event in events:
        name, name_masks = policy.redact_text(event.name)
        attributes, count = policy.redact_attributes(event.attributes) if event.attributes else (event.attributes, 0)
        if name_masks or count:
            event = Event(name, attributes, event.timestamp)
            total += name_masks + count
        result.append(event)
    return result, total


def _redact_links(links: Sequence[Any], policy: RedactionPolicy) -> tuple[list[Any], int]:
    result, total = [], 0
    for link in links:
        context, context_masks = _redact_context(link.context, policy)
        attributes, count = policy.redact_attributes(link.attributes) if link.attributes else (link.attributes, 0)
        if context_masks or count:
            link = Link(context, attributes)
            total += context_masks + count
        result.append(link)
    return result, total


# Resources and scopes are shared by every span of a provider: redact each once.
def _redact_resource(resource: Any, policy: RedactionPolicy) -> tuple[Any, int]:
    if resource is None or not resource.attributes:
        return resource, 0
    cached = _resource_cache.get(id(resource))
    if cached is None or cached[0] is not resource or cached[1] is not policy:
        attributes, count = policy.redact_attributes(resource.attributes)
        cached = (resource, policy, Resource(attributes, resource.schema_url) if count else resource, count)
        if len(_resource_cache) >= 64:
            _resource_cache.clear()
        _resource_cache[id(resource)] = cached
    return cached[2], cached[3]


_resource_cache: dict[int, tuple[Any, RedactionPolicy, Any, int]] = {}


def _redact_scope(scope: Any, policy: RedactionPolicy) -> tuple[Any, int]:
    if scope is None:
        return scope, 0
    name, name_masks = policy.redact_text(scope.name or "")
    version, version_masks = policy.redact_text(scope.version or "")
    attributes, count = policy.redact_attributes(scope.attributes) if scope.attributes else (scope.attributes, 0)
    total = name_masks + version_masks + count
    if not total:
        return scope, 0
    return InstrumentationScope(name, version or scope.version, scope.schema_url, attributes), total


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
    """The log-side twin of RedactingSpanProcessor: masks a record's body (any shape), attributes, severity text,
    event name, resource and scope on emit."""

    def __init__(self, policy: RedactionPolicy) -> None:
        self.policy = policy

    def on_emit(self, log_record: Any) -> None:
        """Redact the record in place (ReadWriteLogRecord is mutable by design)."""
        if self.policy.is_noop:
            return
        policy = self.policy
        record = getattr(log_record, "log_record", log_record)
        if record.attributes:
            attrs, count = policy.redact_attributes(record.attributes)
            if count:
                record.attributes = attrs
        if record.body is not None:
            body, count = policy.redact_value_counted("body", record.body)
            if count:
                record.body = body
        for field in ("severity_text", "event_name"):
            text = getattr(record, field, None)
            if text:
                masked, count = policy.redact_text(text)
                if count:
                    setattr(record, field, masked)
        if log_record is not record:
            resource, count = _redact_resource(getattr(log_record, "resource", None), policy)
            if count:
                log_record.resource = resource
            scope, count = _redact_scope(getattr(log_record, "instrumentation_scope", None), policy)
            if count:
                log_record.instrumentation_scope = scope

    def shutdown(self) -> None:  # noqa: D102
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:  # noqa: D102
        return True
