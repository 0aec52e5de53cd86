"""Application Insights' limits, applied before anything is sent, so nothing is cut or refused silently.

* Age: ingestion refuses items whose time is more than 48 hours old (a per-item 400, "103: ... older than the
  allowed min date"). Without `--retime` such spans are refused here, counted and named in the summary; with it the
  whole selection is shifted so its newest span ends now, keeping relative timing, and each item keeps its
  original start time in `tracekit.original_start_time`.
* Size: a property value is cut at 8,192 characters (the GenAI content keys at 256 KiB) and ingestion keeps about
  64 KB of customDimensions per item, dropping whatever comes after the cut. Properties are therefore ordered so the
  keys Foundry and the agent workbooks need (ids, operation, model, agent, token usage) come first, and the largest
  values (message content, tool arguments) are trimmed until the item fits. Every trimmed key is listed in
  `tracekit.trimmed` on the item and counted in the summary.
* Shape: values that are not plain strings or numbers (lists, maps) become JSON text, which KQL can parse
  (the exporter would otherwise write Python reprs such as "('stop',)"); `gen_ai.system` is added beside
  `gen_ai.provider.name` because the exporter and the Foundry workbooks key on it; the status description, which
  the exporter drops, is kept in `otel.status_description`.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

import orjson
from opentelemetry.sdk._logs import ReadableLogRecord
from opentelemetry._logs import LogRecord

from tracekit import semconv
from tracekit.export.rebuild import StoredSpan

MAX_AGE_NS = 48 * 3600 * 10**9
AGE_MARGIN_NS = 10 * 60 * 10**9          # items within 10 minutes of the limit could age out in flight
PROPERTY_LIMIT = 8192
CONTENT_LIMIT = 256 * 1024
ITEM_BUDGET = 60_000                      # characters of properties per item, under ingestion's ~64 KB cut
# Spans per Azure request: each page pays a few ms of fixed cost (statements, one POST, one cursor write); 1,000
# measured 4,857-6,193 spans/s against 4,300-5,352 at 500 (docs/export.md), still far under 64,000 items.
AZURE_PAGE_SIZE = 1000
TOO_OLD = "older than 48 hours: Application Insights refuses it (use --retime)"   # the reason in the summary
TRIM_MARKER = "…[trimmed by tracekit]"
ORIGINAL_START = "tracekit.original_start_time"
TRIMMED_KEYS = "tracekit.trimmed"
STATUS_DESCRIPTION = "otel.status_description"
MEASUREMENTS = "microsoft.custom_measurements"

# Kept first, and never trimmed: what dashboards group and sum on.
PROTECTED_KEYS = (
    semconv.GEN_AI_OPERATION_NAME, semconv.GEN_AI_SYSTEM, semconv.GEN_AI_PROVIDER_NAME,
    semconv.GEN_AI_REQUEST_MODEL, semconv.GEN_AI_RESPONSE_MODEL, semconv.GEN_AI_AGENT_NAME, semconv.GEN_AI_AGENT_ID,
    semconv.GEN_AI_AGENT_VERSION, semconv.GEN_AI_CONVERSATION_ID, semconv.GEN_AI_RESPONSE_ID,
    semconv.GEN_AI_USAGE_INPUT_TOKENS, semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
    semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, semconv.GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
    semconv.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, semconv.GEN_AI_TOOL_NAME, semconv.GEN_AI_TOOL_CALL_ID,
    semconv.GEN_AI_EVALUATION_NAME, semconv.GEN_AI_EVALUATION_SCORE_VALUE, semconv.GEN_AI_EVALUATION_SCORE_LABEL,
    semconv.MICROSOFT_CUSTOM_EVENT_NAME, ORIGINAL_START,
)
_PROTECTED = frozenset(PROTECTED_KEYS)
_PROTECTED_PREFIXES = ("gen_ai.usage.", "microsoft.gen_ai.")


@dataclass
class LimitReport:
    """What the limits changed or refused, for the summary."""

    too_old: int = 0
    retimed: int = 0
    trimmed_items: int = 0
    trimmed_keys: Counter[str] = field(default_factory=Counter)

    def merge(self, other: "LimitReport") -> None:
        self.too_old += other.too_old
        self.retimed += other.retimed
        self.trimmed_items += other.trimmed_items
        self.trimmed_keys.update(other.trimmed_keys)


def _text(value: Any) -> Any:
    """Attribute values as ingestion should see them: scalars as they are, anything else as JSON text."""
    if isinstance(value, (str, bool, int, float)) or value is None:
        return value
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _is_protected(key: str) -> bool:
    return key in _PROTECTED or key.startswith(_PROTECTED_PREFIXES)


# Per key: (value limit, rank among the protected keys or None). Keys repeat across items, so each is classified once.
_PROTECTED_RANK = {key: rank for rank, key in enumerate(PROTECTED_KEYS)}
_key_rules: dict[str, tuple[int, int | None]] = {}


def _key_rule(key: str) -> tuple[int, int | None]:
    rule = _key_rules.get(key)
    if rule is None:
        if len(_key_rules) > 100_000:  # bounded: an export with unbounded key names must not grow it forever
            _key_rules.clear()
        rank = _PROTECTED_RANK.get(key, len(PROTECTED_KEYS)) if _is_protected(key) else None
        rule = _key_rules[key] = (CONTENT_LIMIT if key in semconv.CONTENT_ATTRIBUTES else PROPERTY_LIMIT, rank)
    return rule


def fit_properties(attributes: Mapping[str, Any], budget: int = ITEM_BUDGET) -> tuple[dict[str, Any], list[str]]:
    """Order and trim one item's properties to Application Insights' limits; return them and the trimmed keys.

    Order: the protected keys (PROTECTED_KEYS' order, then other `gen_ai.usage.*` / `microsoft.gen_ai.*` keys as
    they come), then the others from the shortest value to the longest, so ingestion's ~64 KB cut falls on content.
    """
    trimmed: list[str] = []
    protected: list[tuple[int, int, str, Any]] = []   # (rank, position, key, value)
    others: list[list[Any]] = []                      # [size, key, value], in attribute order
    total = 0
    rules = _key_rules
    for position, (key, value) in enumerate(attributes.items()):
        if value is None:
            continue
        limit, rank = rules.get(key) or _key_rule(key)
        kind = value.__class__
        if kind is not str:
            if kind is int or kind is float or kind is bool:
                size = len(str(value))
                limit = 0   # nothing to cut
            else:
                value = _text(value)
                size = len(value) if isinstance(value, str) else len(str(value))
        else:
            size = len(value)
        if limit and size > limit and isinstance(value, str):
            value = value[: limit - len(TRIM_MARKER)] + TRIM_MARKER
            size = len(value)
            trimmed.append(key)
        total += len(key) + size + 6
        if rank is None:
            others.append([size, key, value])
        else:
            protected.append((rank, position, key, value))
    if total > budget:
        _trim_largest(others, total, budget, trimmed)
    ordered: dict[str, Any] = {TRIMMED_KEYS: ",".join(trimmed)} if trimmed else {}
    protected.sort()
    for _, _, key, value in protected:
        ordered[key] = value
    others.sort(key=_size_of)   # stable: equal sizes keep their order
    for _, key, value in others:
        ordered[key] = value
    return ordered, trimmed


def _size_of(entry: list[Any]) -> int:
    return entry[0]


def _trim_largest(entries: list[list[Any]], total: int, budget: int, trimmed: list[str]) -> None:
    """Cut the largest unprotected values first (in place) until the item's total fits `budget`."""
    for entry in sorted(entries, key=lambda entry: -entry[0]):
        if total <= budget:
            break
        size, key, value = entry
        keep = max(0, size - (total - budget) - len(TRIM_MARKER))
        new_value = (str(value)[:keep] + TRIM_MARKER) if keep > 64 else TRIM_MARKER
        total -= size - len(new_value)
        entry[0], entry[2] = len(new_value), new_value
        if key not in trimmed:
            trimmed.append(key)


def with_measurement(current: Any, name: str, value: float) -> str:
    """`microsoft.custom_measurements` (the exporter's only source of an envelope's measurements, a JSON object of
    numbers) with `name` set to `value`, keeping what the span already measured."""
    measurements: dict[str, Any] = {}
    if isinstance(current, str):
        try:
            current = orjson.loads(current)
        except orjson.JSONDecodeError:
            current = None
    if isinstance(current, Mapping):
        measurements.update(current)
    measurements[name] = value
    return orjson.dumps(measurements).decode()


def iso(ns: int) -> str:
    """Unix ns as an ISO 8601 UTC string with microseconds."""
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass
class AzureShaper:
    """Turns rebuilt spans and log records into what Application Insights accepts (see the module docstring)."""

    retime_offset_ns: int | None = None    # None: keep times, refuse what is too old
    now_ns: int | None = None

    def _min_time(self) -> int:
        return (self.now_ns or time.time_ns()) - MAX_AGE_NS + AGE_MARGIN_NS

    def span(self, span: StoredSpan, report: LimitReport,
             main_agent: Mapping[str, Any] | None = None, cost_usd: float | None = None) -> StoredSpan | None:
        """The span as it will be sent, or None when ingestion would refuse it for its age.

        `main_agent` (from StoreSource.main_agents) fills `microsoft.gen_ai.main_agent.*` unless the span has them;
        `cost_usd` (the store's price of the call) becomes the `tracekit.cost_usd` measurement.
        """
        attributes = dict(span.attributes)
        if cost_usd is not None:
            attributes[MEASUREMENTS] = with_measurement(attributes.get(MEASUREMENTS), semconv.TRACEKIT_COST_USD,
                                                        cost_usd)
        if main_agent and semconv.MICROSOFT_MAIN_AGENT_NAME not in attributes:
            for key, column in ((semconv.MICROSOFT_MAIN_AGENT_NAME, "agent_name"),
                                (semconv.MICROSOFT_MAIN_AGENT_ID, "agent_id"),
                                (semconv.MICROSOFT_MAIN_AGENT_VERSION, "agent_version"),
                                (semconv.MICROSOFT_MAIN_AGENT_CONVERSATION_ID, "conversation_id")):
                if main_agent.get(column) is not None:
                    attributes[key] = main_agent[column]
        shift = self.retime_offset_ns or 0
        if shift:
            attributes[ORIGINAL_START] = iso(span.start_time or 0)
            report.retimed += 1
        elif (span.start_time or 0) < self._min_time():
            report.too_old += 1
            return None
        provider = attributes.get(semconv.GEN_AI_PROVIDER_NAME)
        if provider and semconv.GEN_AI_SYSTEM not in attributes:
            attributes[semconv.GEN_AI_SYSTEM] = provider
        if span.status.description:
            attributes[STATUS_DESCRIPTION] = span.status.description
        fitted, trimmed = fit_properties(attributes)
        if trimmed:
            report.trimmed_items += 1
            report.trimmed_keys.update(trimmed)
        def fit_event(event_attributes: Mapping[str, Any]) -> Mapping[str, Any]:
            fitted_event, trimmed_event = fit_properties(event_attributes)
            if trimmed_event:
                report.trimmed_items += 1
                report.trimmed_keys.update(trimmed_event)
            return fitted_event

        return span.replace(attributes=fitted, shift_ns=shift, event_attributes=fit_event)

    def log(self, record: ReadableLogRecord, report: LimitReport) -> ReadableLogRecord | None:
        """The log record as it will be sent, or None when it is too old."""
        original = record.log_record
        timestamp = original.timestamp or original.observed_timestamp or 0
        attributes = dict(original.attributes or {})
        shift = self.retime_offset_ns or 0
        if shift:
            attributes[ORIGINAL_START] = iso(timestamp)
        elif timestamp < self._min_time():
            report.too_old += 1
            return None
        fitted, trimmed = fit_properties(attributes)
        if trimmed:
            report.trimmed_items += 1
            report.trimmed_keys.update(trimmed)
        record_copy = LogRecord(
            timestamp=timestamp + shift, observed_timestamp=(original.observed_timestamp or timestamp) + shift,
            context=original.context, trace_id=original.trace_id, span_id=original.span_id,
            trace_flags=original.trace_flags, severity_text=original.severity_text,
            severity_number=original.severity_number, body=original.body, attributes=fitted,
            event_name=original.event_name)
        return ReadableLogRecord(log_record=record_copy, resource=record.resource,
                                 instrumentation_scope=record.instrumentation_scope)


def retime_offset(latest_end_ns: int, now_ns: int | None = None) -> int:
    """The shift that moves a selection whose newest span ends at `latest_end_ns` to end now."""
    return max(0, (now_ns or time.time_ns()) - latest_end_ns)
