"""Application Insights envelopes as plain JSON dicts, built fast, with the real exporter as oracle and fallback.

`AzureMonitorTraceExporter._span_to_envelope` builds each envelope through its generated `model_base` layer, where
every field get/set serializes or deserializes, which caps the exporter at a few thousand spans/s a core
(docs/export.md). `EnvelopeBuilder` follows the exporter's `_convert_span_to_envelope` / `_convert_span_events_to_envelopes`
for the spans tracekit exports (GenAI agent, chat and tool spans of every kind, with events, exceptions, links,
status, sample rate, resource tags), writing plain dicts, and reuses the exporter's own helpers wherever they are
plain functions (resource tags, durations, measurements, synthetic source, which keys are "standard").

What keeps it honest:

* Spans with attributes that steer the exporter into its HTTP, database, messaging, RPC, Azure SDK or client-IP
  mappings are not claimed: the exporter converts them itself.
* The first span of each shape (kind, attribute keys and value types, parent, status, scope, resource, links,
  the events' kinds and keys, value lengths, and the value tests the mapping makes) is converted both ways and the
  JSON the client would put on the wire is compared, text for text. Equal: the shape takes the fast path from then
  on. Different: the shape is converted by the exporter for the rest of the run, and a warning says where they
  differ. An exporter upgrade that changes its mapping can therefore never make us send something else than it
  would have sent.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from azure.monitor.opentelemetry.exporter import _utils as exporter_utils
from azure.monitor.opentelemetry.exporter._constants import (
    _AZURE_SDK_NAMESPACE_NAME,
    _EXCEPTION_ENVELOPE_NAME,
    _EXPORTER_DOMAIN_SCHEMA_VERSION,
    _GEN_AI_ATTRIBUTES,
    _INSTRUMENTATION_SUPPORTING_METRICS_LIST,
    _MESSAGE_ENVELOPE_NAME,
    _REMOTE_DEPENDENCY_ENVELOPE_NAME,
    _REQUEST_ENVELOPE_NAME,
    _SAMPLE_RATE_KEY,
)
from azure.monitor.opentelemetry.exporter._generated.exporter._utils.model_base import SdkJSONEncoder
from azure.monitor.opentelemetry.exporter.export.trace import _exporter as trace_exporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

_logger = logging.getLogger(__name__)

# Keys that send `_convert_span_to_envelope` down its HTTP / database / messaging / RPC / peer-target branches,
# its Azure SDK branch, or (for requests) the client-IP tag. Spans carrying any of them are left to the exporter.
UNCLAIMED_PREFIXES = ("http.", "db.", "messaging.", "rpc.", "net.", "peer.")
UNCLAIMED_KEYS = frozenset({_AZURE_SDK_NAMESPACE_NAME, "client.address"})

GEN_AI_SYSTEM = "gen_ai.system"
SESSION_ID = "session.id"
ENDUSER_ID = trace_exporter._ENDUSER_ID_ATTRIBUTE
ENDUSER_PSEUDO_ID = trace_exporter._ENDUSER_PSEUDO_ID_ATTRIBUTE
PROPERTY_LIMIT = 8 * 1024          # the exporter's `_filter_custom_properties` limits
GEN_AI_PROPERTY_LIMIT = 256 * 1024
MAX_LINKS = 102                    # the exporter stops after the 103rd link (`len(links) > 102`)

_GEN_AI_CONTENT = frozenset(_GEN_AI_ATTRIBUTES)
_METRIC_SCOPES = frozenset(_INSTRUMENTATION_SUPPORTING_METRICS_LIST)
_REQUEST_KINDS = (SpanKind.SERVER, SpanKind.CONSUMER)
_VERSION = _EXPORTER_DOMAIN_SCHEMA_VERSION
_UTC = timezone.utc

_duration = exporter_utils.ns_to_duration
_measurements = exporter_utils._filter_custom_measurements
_is_synthetic = exporter_utils._is_any_synthetic_source
_is_standard = trace_exporter._is_standard_attribute


def wire_json(envelopes: Sequence[Any]) -> str:
    """The request body the exporter's client posts for `envelopes` (TelemetryItems or plain dicts)."""
    return json.dumps(envelopes, cls=SdkJSONEncoder, exclude_readonly=True)


def _key_rule(key: str) -> tuple[bool, int]:
    """For one attribute key: whether the fast path may build a span carrying it (False: the key steers the
    exporter into a special mapping), and the length its property value is cut at (0: kept out of properties)."""
    claimed = not (key in UNCLAIMED_KEYS or key.startswith(UNCLAIMED_PREFIXES))
    if _is_standard(key) or not key or len(key) > 150:
        return claimed, 0
    return claimed, GEN_AI_PROPERTY_LIMIT if key in _GEN_AI_CONTENT else PROPERTY_LIMIT


def _time(ns: int) -> str:
    # As `_create_telemetry_item` (float seconds, microsecond rounding) and the model's rfc3339 serializer.
    return datetime.fromtimestamp(ns / 1e9, tz=_UTC).isoformat().replace("+00:00", "Z")


def _length_class(longest: int) -> int:
    """Which of the exporter's length limits (1,024 / 8,192 / 32,768 / 256 KiB) a text of this length reaches."""
    return 0 if longest <= 1024 else 1 if longest <= PROPERTY_LIMIT else 2 if longest <= 32768 else 3


def _longest_event_text(events: Sequence[Any]) -> int:
    """The longest event name or string attribute value (messages and exception texts are cut at 32,768)."""
    longest = 0
    for event in events:
        longest = max(longest, len(str(event.name)), *(len(value) for value in (event.attributes or {}).values()
                                                        if value.__class__ is str))
    return longest


def first_difference(ours: Any, theirs: Any, path: str = "$") -> str:
    """Where two JSON values first differ, as a short path with both values (for the mismatch warning)."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        if list(ours) != list(theirs):
            return f"{path}: keys {list(ours)} != {list(theirs)}"
        for key in ours:
            if ours[key] != theirs[key]:
                return first_difference(ours[key], theirs[key], f"{path}.{key}")
    elif isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        for index, (a, b) in enumerate(zip(ours, theirs)):
            if a != b:
                return first_difference(a, b, f"{path}[{index}]")
    return f"{path}: {str(ours)[:120]!r} != {str(theirs)[:120]!r}"


class EnvelopeBuilder:
    """Envelopes (plain dicts) for spans, identical to what `exporter` would send; see the module docstring.

    Example::

        builder = EnvelopeBuilder(sender.traces)
        body = [envelope for span in spans for envelope in builder.envelopes(span)]
    """

    def __init__(self, exporter: Any) -> None:
        self._exporter = exporter
        self._ikey = exporter._instrumentation_key
        self._verified: set[tuple[Any, ...]] = set()
        self._rejected: set[tuple[Any, ...]] = set()
        self._key_rules: dict[str, tuple[bool, int]] = {}    # attribute key -> _key_rule(key)
        self._resources: dict[int, tuple[Any, dict[str, Any], int]] = {}  # id -> (resource, base tags, index)
        self.fast = 0          # spans built here
        self.converted = 0     # spans converted by the exporter (unclaimed, first of a shape, or rejected shape)
        self.mismatches: list[str] = []   # one line per rejected shape
        self._warned = False

    # --- the public entry -------------------------------------------------------------------------------------
    def envelopes(self, span: ReadableSpan) -> list[dict[str, Any]]:
        """The span's envelope followed by one per event, as the exporter orders them."""
        attributes = span.attributes or {}
        properties, longest = self._properties(attributes, claim=True)
        if properties is None:
            return self.convert(span)
        base_tags, resource_index = self._resource_tags(span.resource)
        synthetic = _is_synthetic(attributes)
        shape = self._shape(span, attributes, resource_index, synthetic, longest)
        if shape in self._verified:
            self.fast += 1
            return self._build(span, attributes, properties, base_tags, synthetic)
        if shape in self._rejected:
            return self.convert(span)
        ours = self._build(span, attributes, properties, base_tags, synthetic)
        theirs_items = self._exporter_items(span)
        theirs_text = wire_json(theirs_items)
        if wire_json(ours) == theirs_text:
            self._verified.add(shape)
            self.fast += 1
            return ours
        theirs = json.loads(theirs_text)
        self._rejected.add(shape)
        difference = first_difference(ours, theirs)
        self.mismatches.append(f"{span.kind.name} span {span.name!r}: {difference}")
        (_logger.debug if self._warned else _logger.warning)(
            "the fast envelope builder differs from azure-monitor-opentelemetry-exporter for spans shaped like %r "
            "(%s); the exporter converts that shape from now on", span.name, difference)
        self._warned = True
        self.converted += 1
        return theirs

    def convert(self, span: ReadableSpan) -> list[dict[str, Any]]:
        """The exporter's own envelopes for the span, as the JSON dicts its client would post."""
        self.converted += 1
        return json.loads(wire_json(self._exporter_items(span)))

    def _exporter_items(self, span: ReadableSpan) -> list[Any]:
        return [self._exporter._span_to_envelope(span), *self._exporter._span_events_to_envelopes(span)]

    # --- shapes ------------------------------------------------------------------------------------------------
    def _shape(self, span: ReadableSpan, attributes: Mapping[str, Any], resource_index: int, synthetic: bool,
               longest: int) -> tuple[Any, ...]:
        """Everything the exporter's mapping branches on, so one checked span vouches for all of its shape."""
        parent = span.parent
        scope = span.instrumentation_scope
        links = span.links
        events = span.events
        return (
            span.kind,
            frozenset(zip(attributes, map(type, attributes.values()))),
            bool(parent and parent.span_id),
            span.status.is_ok,
            scope.name if scope is not None else None,
            resource_index,
            0 if not links else 1 if len(links) <= MAX_LINKS + 1 else 2,   # none, all sent, cut
            frozenset((event.name == "exception", frozenset(zip(event.attributes or (), map(
                type, (event.attributes or {}).values())))) for event in events) if events else None,
            _length_class(max(longest, len(span.name or ""), _longest_event_text(events) if events else 0)),
            bool(attributes.get(GEN_AI_SYSTEM)),
            synthetic,
        )

    def _resource_tags(self, resource: Any) -> tuple[dict[str, Any], int]:
        """The process context tags plus the resource's part A, as `_create_telemetry_item` + `tags.update`."""
        cached = self._resources.get(id(resource))
        if cached is None or cached[0] is not resource:
            tags = dict(exporter_utils.azure_monitor_context)
            tags.update(exporter_utils._populate_part_a_fields(resource))
            cached = self._resources[id(resource)] = (resource, tags, len(self._resources))
        return cached[1], cached[2]

    # --- building ------------------------------------------------------------------------------------------
    def _properties(self, attributes: Mapping[str, Any] | None, claim: bool = False,
                    ) -> tuple[dict[str, str] | None, int]:
        """`_filter_custom_properties(attributes, not _is_standard_attribute)`, with the per-key rules memoized, and
        the longest value text. With `claim`, None instead of properties when a key is one the fast path leaves to
        the exporter (UNCLAIMED_KEYS / UNCLAIMED_PREFIXES)."""
        properties: dict[str, str] = {}
        longest = 0
        if not attributes:
            return properties, longest
        rules = self._key_rules
        for key, value in attributes.items():
            rule = rules.get(key)
            if rule is None:
                if len(rules) > 100_000:  # bounded: an export with unbounded key names must not grow it forever
                    rules.clear()
                rule = rules[key] = _key_rule(key)
            claimed, limit = rule
            if not claimed and claim:
                return None, longest
            if not limit or value is None:
                continue
            text = value if value.__class__ is str else str(value)
            size = len(text)
            if size > longest:
                longest = size
            properties[key] = text if size <= limit else text[:limit]
        return properties, longest

    def _build(self, span: ReadableSpan, attributes: Mapping[str, Any], properties: dict[str, str],
               base_tags: dict[str, Any], synthetic: bool) -> list[dict[str, Any]]:
        context = span.context
        trace_hex = f"{context.trace_id:032x}"
        span_hex = f"{context.span_id:016x}"
        start = span.start_time or 0
        end = span.end_time
        duration = _duration(end - start if start and end else 0)
        tags = dict(base_tags)
        tags["ai.operation.id"] = trace_hex
        if ENDUSER_ID in attributes:
            tags["ai.user.authUserId"] = attributes[ENDUSER_ID]
        if ENDUSER_PSEUDO_ID in attributes:
            tags["ai.user.id"] = attributes[ENDUSER_PSEUDO_ID]
        if synthetic:
            tags["ai.operation.syntheticSource"] = "True"
        parent = span.parent
        if parent and parent.span_id:
            tags["ai.operation.parentId"] = f"{parent.span_id:016x}"
        session_id = attributes.get(SESSION_ID)
        if isinstance(session_id, str):
            tags["ai.session.id"] = session_id
        measurements = _measurements(attributes)
        name = span.name
        kind = span.kind
        success = span.status.is_ok
        tags["ai.operation.name"] = name
        short_name = name[:1024] if name else name
        if kind in _REQUEST_KINDS:
            envelope_name, base_type = _REQUEST_ENVELOPE_NAME, "RequestData"
            data: dict[str, Any] = {
                "ver": _VERSION, "name": short_name, "id": span_hex, "duration": duration, "responseCode": "0",
                "success": success, "properties": {}, "measurements": measurements}
        else:
            envelope_name, base_type = _REMOTE_DEPENDENCY_ENVELOPE_NAME, "RemoteDependencyData"
            data = {"ver": _VERSION, "name": short_name, "id": span_hex, "resultCode": "0", "duration": duration,
                    "success": success, "properties": {}, "measurements": measurements}
            target: Any = ""
            has_system = GEN_AI_SYSTEM in attributes
            system = attributes[GEN_AI_SYSTEM] if has_system else ""
            if kind is SpanKind.CLIENT:
                data["type"] = f"GenAI | {system}" if has_system else "N/A"
                if system:
                    target = system
            elif kind is SpanKind.PRODUCER:
                data["type"] = "Queue Message"
            else:
                data["type"] = f"GenAI | {system}" if has_system else "InProc"
            data["type"] = data["type"][:1024]
            if target:
                data["target"] = str(target)[:1024]
        data["properties"] = properties
        scope = span.instrumentation_scope
        if scope is not None and scope.name in _METRIC_SCOPES:
            properties["_MS.ProcessedByMetricExtractors"] = "True"
        if span.links:
            links = []
            for link in span.links:
                if len(links) > MAX_LINKS:
                    break
                links.append({"operation_Id": f"{link.context.trace_id:032x}", "id": f"{link.context.span_id:016x}"})
            properties["_MS.links"] = json.dumps(links)
        envelope: dict[str, Any] = {"name": envelope_name, "iKey": self._ikey, "tags": tags, "time": _time(start),
                                    "data": {"baseData": data, "baseType": base_type}}
        if _SAMPLE_RATE_KEY in attributes:
            envelope["sampleRate"] = attributes[_SAMPLE_RATE_KEY]
        if not span.events:
            return [envelope]
        return [envelope, *self._event_envelopes(span, attributes, base_tags, trace_hex, span_hex)]

    def _event_envelopes(self, span: ReadableSpan, attributes: Mapping[str, Any], base_tags: dict[str, Any],
                         trace_hex: str, span_hex: str) -> list[dict[str, Any]]:
        envelopes = []
        span_session = attributes.get(SESSION_ID)
        for event in span.events:
            event_attributes = event.attributes or {}
            tags = dict(base_tags)
            tags["ai.operation.id"] = trace_hex
            session_id = event_attributes.get(SESSION_ID)
            if not isinstance(session_id, str):
                session_id = span_session
            if isinstance(session_id, str):
                tags["ai.session.id"] = session_id
            if span.context and span.context.span_id:
                tags["ai.operation.parentId"] = span_hex
            envelope: dict[str, Any] = {"name": "", "iKey": self._ikey, "tags": tags, "time": _time(event.timestamp)}
            if _SAMPLE_RATE_KEY in attributes:
                envelope["sampleRate"] = attributes[_SAMPLE_RATE_KEY]
            properties = self._properties(event_attributes)[0]
            measurements = _measurements(event_attributes)
            if event.name == "exception":
                envelope["name"] = _EXCEPTION_ENVELOPE_NAME
                exception_type = event_attributes.get("exception.type") or "Exception"
                message = event_attributes.get("exception.message") or "Exception"
                stack = event_attributes.get("exception.stacktrace")
                details = {"typeName": str(exception_type)[:1024], "message": str(message)[:32768],
                           "hasFullStack": stack is not None, "stack": str(stack)[:32768]}
                envelope["data"] = {"baseData": {"ver": _VERSION, "properties": properties,
                                                 "measurements": measurements, "exceptions": [details]},
                                    "baseType": "ExceptionData"}
            else:
                envelope["name"] = _MESSAGE_ENVELOPE_NAME
                envelope["data"] = {"baseData": {"ver": _VERSION, "message": str(event.name)[:32768],
                                                 "properties": properties, "measurements": measurements},
                                    "baseType": "MessageData"}
            envelopes.append(envelope)
        return envelopes
