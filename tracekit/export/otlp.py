"""Sending rebuilt spans and log records to an OTLP endpoint with the OpenTelemetry SDK's own exporters.

`http://host:4317` or `grpc://host:4317` (or `--protocol grpc`) use OTLP/gRPC; `http(s)://host:4318` (or
`--protocol http/protobuf`) use OTLP/HTTP with `/v1/traces` and `/v1/logs` appended, as `OTEL_EXPORTER_OTLP_ENDPOINT`
does. Headers come from `--header` or `OTEL_EXPORTER_OTLP_HEADERS`. The exporters retry transient failures
themselves (with backoff, honouring the server's throttling hints) until their timeout; a batch they give up on
stays pending in the cursor for the next run. OTLP acknowledges a request as a whole, so items are delivered or
pending per batch.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence
from urllib.parse import urlparse

from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.trace.export import SpanExportResult

from tracekit.errors import TracekitError
from tracekit.export.azure import span_item_keys
from tracekit.export.cursor import CursorRecord
from tracekit.export.rebuild import StoredSpan

PROTOCOLS = ("grpc", "http/protobuf")


class OtlpEndpointError(TracekitError):
    """An OTLP endpoint or protocol that cannot be used."""


def choose_protocol(endpoint: str, protocol: str | None) -> str:
    """The OTLP protocol for `endpoint`: as given, else gRPC for port 4317 or a grpc:// URL, else HTTP."""
    if protocol:
        if protocol not in PROTOCOLS:
            raise OtlpEndpointError(f"unknown OTLP protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
        return protocol
    parsed = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
    if parsed.scheme == "grpc" or parsed.port == 4317:
        return "grpc"
    return "http/protobuf"


def _http_url(endpoint: str, signal: str) -> str:
    base = endpoint.rstrip("/")
    for suffix in ("/v1/traces", "/v1/logs"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return f"{base}/v1/{signal}"


class _LastReason(logging.Handler):
    """Keeps the last warning the SDK exporters logged (why a batch failed), for the summary."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.text = ""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.text = record.getMessage()[:300]
        except Exception:  # noqa: BLE001 - a bad log call must not break the export
            pass


class OtlpSender:
    """Delivers spans and log records to one OTLP endpoint."""

    kind = "otlp"

    def __init__(self, endpoint: str, *, protocol: str | None = None, headers: dict[str, str] | None = None,
                 insecure: bool | None = None, timeout: float = 30.0) -> None:
        if not endpoint:
            raise OtlpEndpointError("no OTLP endpoint: pass --endpoint or set OTEL_EXPORTER_OTLP_ENDPOINT")
        self.protocol = choose_protocol(endpoint, protocol)
        self.destination = f"otlp:{self.protocol}:{endpoint}"
        parsed = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
        if self.protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            target = parsed.netloc or endpoint
            plain = insecure if insecure is not None else parsed.scheme in ("http", "grpc")
            self.traces: Any = OTLPSpanExporter(endpoint=target, insecure=plain, headers=headers, timeout=timeout)
            self.logs: Any = OTLPLogExporter(endpoint=target, insecure=plain, headers=headers, timeout=timeout)
        else:
            from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpLogExporter
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter

            base = endpoint if "://" in endpoint else f"http://{endpoint}"
            self.traces = HttpSpanExporter(endpoint=_http_url(base, "traces"), headers=headers, timeout=timeout)
            self.logs = HttpLogExporter(endpoint=_http_url(base, "logs"), headers=headers, timeout=timeout)
        self.requests = 0
        self.retries = 0
        self.last_error = ""
        self._reason = _LastReason()
        # The SDK exporters log each failure; we keep the last reason for the summary instead of printing them.
        exporter_log = logging.getLogger("opentelemetry.exporter.otlp")
        exporter_log.addHandler(self._reason)
        exporter_log.propagate = False

    def send(self, spans: Sequence[StoredSpan], logs: Sequence[Any], log_keys: Sequence[str],
             state: CursorRecord, on_progress: Callable[[], None] | None = None) -> None:
        """Export what is not delivered yet; a batch the exporter could not deliver stays pending."""
        done = state.delivered
        fresh = [span for span in spans if span_item_keys(span)[0] not in done]
        fresh_logs = [(key, record) for key, record in zip(log_keys, logs) if key not in done]
        if fresh:
            self.requests += 1
            keys = [key for span in fresh for key in span_item_keys(span)]
            if self.traces.export(fresh) == SpanExportResult.SUCCESS:
                self._delivered(keys, state)
            else:
                self.last_error = f"{len(fresh)} spans not accepted: {self._reason.text or 'no reason given'}"
                state.pending.update((key, None) for key in keys)
                # The destination is failing: keep the log records for the next attempt too.
                state.pending.update((key, None) for key, _ in fresh_logs)
                return
        if fresh_logs:
            self.requests += 1
            result = self.logs.export([record for _, record in fresh_logs])
            keys = [key for key, _ in fresh_logs]
            if result == LogRecordExportResult.SUCCESS:
                self._delivered(keys, state)
            else:
                self.last_error = (f"{len(fresh_logs)} log records not accepted: "
                                   f"{self._reason.text or 'no reason given'}")
                state.pending.update((key, None) for key in keys)

    @staticmethod
    def _delivered(keys: list[str], state: CursorRecord) -> None:
        for key in keys:
            state.pending.pop(key, None)
            state.delivered.add(key)

    def close(self) -> None:
        logging.getLogger("opentelemetry.exporter.otlp").removeHandler(self._reason)
        for exporter in (self.traces, self.logs):
            try:
                exporter.shutdown()
            except Exception:  # noqa: BLE001
                pass
