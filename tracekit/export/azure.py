"""Sending pages of stored spans and log records to Application Insights through the real Azure Monitor exporters.

Each page of rows (rows.RowPage) is adapted on the prefetch thread (`prepare`): rebuilt as the exporters' SDK objects
(rebuild.py), shaped to Application Insights' limits (limits.py), and turned into envelopes. Span envelopes are the
exporter's own mapping: `envelopes.EnvelopeBuilder` writes them as plain JSON dicts (about ten times cheaper than
the exporter's generated model layer), checks the first span of every shape against
`AzureMonitorTraceExporter._span_to_envelope` and leaves any shape it does not claim, or that ever differs, to the
exporter. The dicts are posted by the exporter's own `_transmit` (its generated client's `track`, the same JSON
body, redirects followed), exactly as `export()` posts what it builds. Log records go through
`AzureMonitorLogExporter.export`. What the exporters cannot give us is per-item outcomes: they answer SUCCESS or
FAILURE for a whole batch, and partial successes (206) are dropped or parked in the exporter's own offline storage,
which knows nothing of our cursor. So:

* offline storage is off and the exporters' own retries are off (`retry_total=0`): the export cursor is the
  durable queue, and this module owns the retry loop, so retries, their backoff and the cursor agree;
* azure-core's public `raw_request_hook` / `raw_response_hook` let us see each request (the envelopes) and
  each answer (`itemsReceived/itemsAccepted/errors[index, statusCode, message]`), so every envelope ends as
  delivered, refused for good (reported item by item), or pending (retryable: 408, 429, 500, 502, 503, 504,
  timeouts), and only the pending envelopes are posted again, exactly as they were first built, through the
  exporter's own client (as its offline storage would);
* the exporter's client-side rate limiter drops overflow when offline storage is off, so it is off too and we pace
  requests ourselves with a token bucket at the same 10,000 envelopes/s.

The background chatter these exporters start by default (statsbeat and SDK stats posted to Microsoft, the remote
control plane, the `_OTELRESOURCE_` metric describing *this* process rather than the exported spans) is switched off
unless the user has set those variables.
"""

from __future__ import annotations

import logging
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import orjson

from tracekit.errors import TracekitError
from tracekit.export.cursor import CursorRecord
from tracekit.export.limits import TOO_OLD, AzureShaper, LimitReport
from tracekit.export.rebuild import ResourceCache, StoredSpan, rebuild_log_records, rebuild_spans
from tracekit.export.rows import PreparedPage, RowPage

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
AUTH_STATUS = frozenset({401, 403})
SAMPLED_OUT = "Telemetry sampled out."
DEFAULT_RATE = 10_000   # envelopes/s: the exporter's own client-side limit

QUIET_ENV = {
    "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
    "APPLICATIONINSIGHTS_SDKSTATS_DISABLED": "true",
    "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
    "APPLICATIONINSIGHTS_OPENTELEMETRY_RESOURCE_METRIC_DISABLED": "true",
}


class AzureMonitorError(TracekitError):
    """Application Insights cannot be used as asked (bad connection string, credentials refused)."""


def span_item_keys(span: StoredSpan) -> list[str]:
    """The keys of the envelopes one span becomes: the span itself, then one per event, in the exporter's order."""
    seq, trace_id, span_id = span.store_key
    base = f"{seq}:{trace_id}:{span_id}"
    return [base] + [f"{base}#e{index}" for index in range(len(span.events))]


def parse_connection_string(text: str) -> dict[str, str]:
    """The connection string's fields by lower-case key, with a clear error for what the exporter would refuse."""
    text = (text or "").strip().rstrip(";")  # the exporter's parser refuses a trailing ';' (the docs show one)
    if not text:
        raise AzureMonitorError(
            "no connection string: pass --connection-string or set APPLICATIONINSIGHTS_CONNECTION_STRING "
            "(Azure portal > Application Insights > Overview > Connection String)")
    fields: dict[str, str] = {}
    for part in text.split(";"):
        key, sep, value = part.partition("=")
        if not sep or not key.strip():
            raise AzureMonitorError(f"the connection string has a part without key=value: {part[:40]!r}")
        fields[key.strip().lower()] = value.strip()
    if "instrumentationkey" not in fields:
        raise AzureMonitorError("the connection string has no InstrumentationKey")
    return fields


@dataclass
class AzurePayload:
    """A page as this sender posts it: the shaped spans and their envelopes (or the error building them), and the
    shaped log records with their item keys."""

    spans: list[StoredSpan]
    envelopes: list[list[dict[str, Any]] | Exception]
    logs: list[Any]                   # ReadableLogRecord
    log_keys: list[str]


@dataclass
class Exchange:
    """One POST to /v2.1/track as the hooks saw it."""

    envelopes: list[dict[str, Any]]
    keys: list[str] | None = None
    status: int | None = None                       # None: no answer (connection error, timeout)
    errors: dict[int, tuple[int, str]] = field(default_factory=dict)
    retry_after: float | None = None
    message: str = ""


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class TokenBucket:
    """Paces envelopes to `rate` per second with one second of burst."""

    def __init__(self, rate: float, sleep: Callable[[float], None] = time.sleep) -> None:
        self.rate = rate
        self._tokens = rate
        self._stamp = time.monotonic()
        self._sleep = sleep

    def take(self, count: int) -> None:
        if self.rate <= 0:
            return
        while True:
            now = time.monotonic()
            self._tokens = min(self.rate, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            need = min(count, self.rate)
            if self._tokens >= need:
                self._tokens -= count
                return
            self._sleep((need - self._tokens) / self.rate)


class AzureMonitorSender:
    """Delivers spans and log records to one Application Insights resource, item by item (see module docstring)."""

    kind = "azure-monitor"
    wants_main_agents = True  # pages carry each span's main agent (microsoft.gen_ai.main_agent.*)

    def __init__(self, connection_string: str, *, max_attempts: int = 8, initial_backoff: float = 1.0,
                 max_backoff: float = 60.0, timeout: float = 30.0, max_envelopes_per_second: float = DEFAULT_RATE,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        fields = parse_connection_string(connection_string)
        cleaned = (connection_string or "").strip().rstrip(";")
        for name, value in QUIET_ENV.items():
            os.environ.setdefault(name, value)
        from azure.monitor.opentelemetry.exporter import AzureMonitorLogExporter, AzureMonitorTraceExporter

        from tracekit.export.envelopes import EnvelopeBuilder

        common: dict[str, Any] = dict(
            connection_string=cleaned, disable_offline_storage=True, max_envelopes_per_second=0, retry_total=0,
            timeout=timeout, raw_request_hook=self._on_request, raw_response_hook=self._on_response)
        try:
            self.traces = AzureMonitorTraceExporter(**common)
            self.logs = AzureMonitorLogExporter(**common)
        except ValueError as error:
            raise AzureMonitorError(f"the connection string was refused: {error}") from None
        # Envelopes as plain JSON dicts, identical to the exporter's own and checked against it (envelopes.py).
        self.envelope_builder = EnvelopeBuilder(self.traces)
        self.shaper = AzureShaper()           # Application Insights' limits (limits.py)
        self.resources = ResourceCache()      # one Resource object per stored resource, across pages
        endpoint = fields.get("ingestionendpoint", "https://dc.services.visualstudio.com").rstrip("/")
        self.destination = f"azure-monitor:{fields['instrumentationkey']}@{endpoint}"
        self.max_attempts = max_attempts
        self.initial_backoff = initial_backoff
        self.max_backoff = max_backoff
        self._sleep = sleep
        self._bucket = TokenBucket(max_envelopes_per_second, sleep)
        self._exchanges: list[Exchange] = []
        self._posting: list[dict[str, Any]] | None = None  # the envelopes being posted, when built here
        self.requests = 0
        self.retries = 0
        self.last_error = ""
        # The exporters log every refusal with the whole envelope; our summary reports them instead.
        logging.getLogger("azure.monitor.opentelemetry.exporter").setLevel(logging.CRITICAL)
        logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)

    # --- hooks (called by azure-core for every request and response) ------------------------------------------
    def _on_request(self, pipeline_request: Any) -> None:
        envelopes = self._posting
        if envelopes is None:  # built inside the exporter (log records): read them back from the body
            body = pipeline_request.http_request.body
            try:
                envelopes = orjson.loads(body) if body else []
            except orjson.JSONDecodeError:
                envelopes = []
        self._exchanges.append(Exchange(envelopes=envelopes if isinstance(envelopes, list) else []))
        self.requests += 1

    def _on_response(self, pipeline_response: Any) -> None:
        if not self._exchanges:
            return
        exchange = self._exchanges[-1]
        response = pipeline_response.http_response
        exchange.status = response.status_code
        exchange.retry_after = _retry_after_seconds(response.headers.get("Retry-After"))
        try:
            answer = orjson.loads(response.body() or b"{}")
        except (orjson.JSONDecodeError, Exception):  # noqa: BLE001 - any unreadable body is "no details"
            answer = {}
        if isinstance(answer, dict):
            for error in answer.get("errors") or ():
                if isinstance(error, dict) and isinstance(error.get("index"), int):
                    exchange.errors[error["index"]] = (int(error.get("statusCode") or 0), str(error.get("message")))
            exchange.message = str(answer.get("message") or answer.get("error") or "")

    # --- preparing and sending -----------------------------------------------------------------------------------
    def retime(self, offset_ns: int | None) -> None:
        """Shift every item by `offset_ns` from now on (`--retime`; the runner keeps the shift in the cursor), or
        keep the stored times and refuse what is too old (None)."""
        self.shaper.retime_offset_ns = offset_ns

    def prepare(self, page: RowPage) -> PreparedPage:
        """The page as Application Insights takes it: rows rebuilt as the exporter's SDK objects, shaped to the
        service's limits (items too old are refused here), and each span's envelopes. Runs on the prefetch thread
        while `send` posts the previous page (each page is prepared by one thread at a time)."""
        report = LimitReport()
        refused: dict[str, tuple[int, str]] = {}
        spans: list[StoredSpan] = []
        main_agents, costs = page.main_agents, page.costs
        for span in rebuild_spans(page, self.resources):
            key = (span.trace_id_hex, span.span_id_hex)
            shaped = self.shaper.span(span, report, main_agents.get(key), costs.get(key))
            if shaped is None:
                refused.update((key, (400, TOO_OLD)) for key in span_item_keys(span))
            else:
                spans.append(shaped)
        logs: list[Any] = []
        log_keys: list[str] = []
        for key, record in zip(page.log_keys, rebuild_log_records(page, self.resources)):
            shaped_log = self.shaper.log(record, report)
            if shaped_log is None:
                refused[key] = (400, TOO_OLD)
            else:
                logs.append(shaped_log)
                log_keys.append(key)
        payload = AzurePayload(spans=spans, envelopes=self._envelopes(spans), logs=logs, log_keys=log_keys)
        return PreparedPage(rows=page, payload=payload, refused=refused, limits=report)

    def _envelopes(self, spans: Sequence[StoredSpan]) -> list[list[dict[str, Any]] | Exception]:
        """Each span's envelopes (JSON dicts), or the error that kept them from being built."""
        prepared: list[list[dict[str, Any]] | Exception] = []
        for span in spans:
            try:
                prepared.append(self.envelope_builder.envelopes(span))
            except Exception as error:  # noqa: BLE001 - one unbuildable span must not stop the batch
                prepared.append(error)
        return prepared

    def send(self, prepared: PreparedPage, state: CursorRecord, on_retry: Callable[[], None] | None = None) -> None:
        """Deliver what of a prepared page `state` does not know yet; record each item as delivered, refused or
        pending in `state`.

        Pending items are retried with backoff up to `max_attempts`; whatever is still pending afterwards stays in
        `state.pending` (with its envelope) for the next run.
        """
        payload: AzurePayload = prepared.payload
        envelopes, keys = self._span_envelopes(payload.spans, state, payload.envelopes)
        if envelopes:
            self._bucket.take(len(keys))
            envelopes = self._resource_metric() + envelopes
            # The exporter's own transmission (its client's `track`, JSON body, redirects followed), as `export()`
            # would do after building the same envelopes.
            self._run(lambda: self.traces._transmit(envelopes), keys, state, envelopes)
        fresh_logs = [(key, record) for key, record in zip(payload.log_keys, payload.logs) if not state.known(key)]
        if fresh_logs:
            self._bucket.take(len(fresh_logs))
            self._run(lambda: self.logs.export([record for _, record in fresh_logs]),
                      [key for key, _ in fresh_logs], state)
        attempt = 0
        while state.pending and attempt < self.max_attempts:
            delay = self._delay(attempt)
            attempt += 1
            self.retries += 1
            if on_retry:
                on_retry()
            self._sleep(delay)
            self._resend(state)

    def _span_envelopes(self, spans: Sequence[StoredSpan], state: CursorRecord,
                        prepared: Sequence[list[dict[str, Any]] | Exception],
                        ) -> tuple[list[dict[str, Any]], list[str]]:
        """The envelopes of the spans `state` does not know yet, and their item keys, in order.

        A span whose envelopes could not be built (the exporter raised) is refused for good here, item by item.
        """
        envelopes: list[dict[str, Any]] = []
        keys: list[str] = []
        for span, built in zip(spans, prepared):
            span_keys = span_item_keys(span)
            if any(state.known(key) for key in span_keys):
                continue
            if isinstance(built, Exception):
                self.last_error = f"{type(built).__name__}: {built}"
                for key in span_keys:
                    state.refused[key] = [0, f"the exporter could not build this item ({self.last_error})"]
                continue
            if len(built) != len(span_keys):
                raise AzureMonitorError(
                    f"internal: {len(built)} envelopes were built for {len(span_keys)} items; the exporter's "
                    "mapping changed, please report this")
            envelopes.extend(built)
            keys.extend(span_keys)
        return envelopes, keys

    def _resource_metric(self) -> list[dict[str, Any]]:
        """The `_OTELRESOURCE_` metric envelope `export()` puts in front of each request, when the user turned it
        back on (QUIET_ENV turns it off by default); `_settle` leaves it out of the item accounting."""
        exporter = self.traces
        if not exporter._should_collect_otel_resource_metric():
            return []
        from opentelemetry.trace import get_tracer_provider

        from tracekit.export.envelopes import wire_json

        resource = getattr(exporter._tracer_provider or get_tracer_provider(), "resource", None)
        if resource is None:  # the exporter logs this case and sends the spans without it
            return []
        return orjson.loads(wire_json([exporter._get_otel_resource_envelope(resource, exporter.application_id)]))

    def _delay(self, attempt: int) -> float:
        backoff = min(self.max_backoff, self.initial_backoff * (2 ** attempt))
        backoff *= random.uniform(0.8, 1.2)
        retry_after = max((e.retry_after or 0.0 for e in self._exchanges), default=0.0)
        return max(backoff, min(retry_after, 300.0))

    def _resend(self, state: CursorRecord) -> None:
        pending = [(key, envelope) for key, envelope in state.pending.items() if envelope is not None]
        unbuilt = [key for key, envelope in state.pending.items() if envelope is None]
        for key in unbuilt:  # the exporter could not turn the item into envelopes: retrying cannot help
            state.pending.pop(key)
            state.refused[key] = [0, f"the exporter could not build this item ({self.last_error or 'unknown'})"]
        if not pending:
            return
        self._bucket.take(len(pending))
        envelopes = [envelope for _, envelope in pending]
        self._run(lambda: self.traces._transmit(envelopes), [key for key, _ in pending], state, envelopes)

    def _run(self, send: Callable[[], Any], keys: list[str], state: CursorRecord,
             envelopes: list[dict[str, Any]] | None = None) -> bool:
        """Send, then record each item's outcome; False when nothing was posted at all. `envelopes`: what `send`
        posts, when known (the request hook then need not parse the body back)."""
        self._exchanges.clear()
        self._posting = envelopes
        try:
            send()
        except Exception as error:  # noqa: BLE001 - the exporter raises on envelopes it cannot build
            self.last_error = f"{type(error).__name__}: {error}"
        finally:
            self._posting = None
        posted = bool(self._exchanges)
        self._settle(keys, state)
        return posted

    def _settle(self, keys: list[str], state: CursorRecord) -> None:
        """Attribute each envelope of the last request to its item and record the outcome."""
        if not self._exchanges:
            # Nothing was posted (the exporter failed before sending): the whole lot stays pending.
            for key in keys:
                state.pending.setdefault(key, None)
            return
        # One export is one POST, except after a 307/308 redirect, which the exporter follows by posting the same
        # envelopes again to the new host: the last answer is the outcome.
        exchange = self._exchanges[-1]
        # Positions in the posted body (the ones ingestion's errors[].index refer to), minus the exporter's own
        # `_OTELRESOURCE_` metric when the user turned it back on.
        positions = [i for i, e in enumerate(exchange.envelopes) if not _is_resource_metric(e)]
        if len(positions) != len(keys):
            raise AzureMonitorError(
                f"internal: {len(positions)} envelopes were posted for {len(keys)} items; the exporter's mapping "
                "changed, please report this")
        self._record(exchange, positions, keys, state)

    def _record(self, exchange: Exchange, positions: list[int], keys: list[str], state: CursorRecord) -> None:
        status = exchange.status
        if status in AUTH_STATUS:
            raise AzureMonitorError(
                f"Application Insights refused the request ({status}): check the connection string, and for Entra "
                "ID-only resources sign in with a credential that has 'Monitoring Metrics Publisher'")
        whole_retryable = status is None or (status in RETRYABLE_STATUS and not exchange.errors)
        if status is None:
            self.last_error = self.last_error or "no answer (connection error or timeout)"
        elif status not in (200, 206):
            self.last_error = f"HTTP {status}" + (f": {exchange.message}" if exchange.message else "")
        for index, key in zip(positions, keys):
            envelope = exchange.envelopes[index]
            if whole_retryable:
                state.pending[key] = envelope
                continue
            error = exchange.errors.get(index)
            if error is None and status in (200, 206):
                state.pending.pop(key, None)
                state.delivered.add(key)
                continue
            code, message = error if error else (status or 0, exchange.message or f"HTTP {status}")
            if code in RETRYABLE_STATUS:
                state.pending[key] = envelope
                if status in (200, 206):
                    self.last_error = f"item {code}: {message}"
            else:
                state.pending.pop(key, None)
                state.refused[key] = [code, "sampled out by ingestion" if message == SAMPLED_OUT else message]

    def close(self) -> None:
        """Stop the exporters' background threads."""
        for exporter in (self.traces, self.logs):
            try:
                exporter.shutdown()
            except Exception:  # noqa: BLE001 - shutting down must not mask the export's own outcome
                pass


def _is_resource_metric(envelope: dict[str, Any]) -> bool:
    if envelope.get("data", {}).get("baseType") != "MetricData":
        return False
    metrics = envelope.get("data", {}).get("baseData", {}).get("metrics") or []
    return any(metric.get("name") == "_OTELRESOURCE_" for metric in metrics)
