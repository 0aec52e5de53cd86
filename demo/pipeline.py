"""The demo's own OpenTelemetry pipeline: private providers, OTLP exporters, a count of what was delivered."""

from __future__ import annotations

import os
import threading
from typing import Any, Sequence

from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from tracekit.configuration import _otlp_exporters, genai_metric_views
from tracekit.content import ContentMode, ContentSettings, using_content_settings
from tracekit.errors import CollectorUnavailable
from tracekit.redaction import RedactionPolicy
from tracekit.redaction.sdk import RedactingLogRecordProcessor, RedactingSpanProcessor
from tracekit.tracing import using_tracer_provider

DEMO_SERVICE_NAME = "tracekit-demo"


def default_endpoint(protocol: str = "grpc") -> str:
    """`OTEL_EXPORTER_OTLP_ENDPOINT`, else the local collector's port for `protocol`."""
    configured = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if configured:
        return configured
    return "http://127.0.0.1:4318" if protocol.startswith("http") else "http://127.0.0.1:4317"


def _check_reachable(endpoint: str, protocol: str) -> None:
    """Fail in a second, with a clear message, when nothing listens at the endpoint (the exporters would retry
    for many seconds and then only log)."""
    import socket
    from urllib.parse import urlparse

    parsed = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
    host = parsed.hostname or "127.0.0.1"
    port = parsed.port or (443 if parsed.scheme == "https" else 4318 if protocol.startswith("http") else 4317)
    try:
        with socket.create_connection((host, port), timeout=1.0):
            pass
    except OSError as error:
        raise CollectorUnavailable(
            f"nothing accepts OTLP at {endpoint} ({error.strerror or error}); start a collector with "
            "`tracekit collect` (or run `tracekit`), or pass --endpoint"
        ) from None


class _CountingExporter(SpanExporter):
    """Forwards to the real exporter and counts the spans it accepted and refused."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.delivered = 0
        self.failed = 0
        self._lock = threading.Lock()

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        result = self.inner.export(spans)
        with self._lock:
            if result is SpanExportResult.SUCCESS:
                self.delivered += len(spans)
            else:
                self.failed += len(spans)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class DemoPipeline:
    """Providers for the demo only; entering it makes tracekit's helpers use them in this context, with content
    recording on (the demo's content is synthetic) and the default redaction policy."""

    def __init__(self, endpoint: str, *, protocol: str = "grpc", timeout_s: float = 10.0) -> None:
        protocol = "http/protobuf" if protocol.lower() in ("http", "http/protobuf") else protocol.lower()
        if protocol not in ("grpc", "http/protobuf"):
            raise CollectorUnavailable(f"unknown OTLP protocol {protocol!r}: use grpc or http")
        self.endpoint = endpoint
        self.protocol = protocol
        _check_reachable(endpoint, protocol)
        span_exporter, log_exporter, metric_exporter = _otlp_exporters(endpoint, protocol, None)
        for exporter in (span_exporter, log_exporter, metric_exporter):
            if hasattr(exporter, "_timeout"):
                exporter._timeout = timeout_s  # fail fast instead of the exporters' long default retry window
        self.counter = _CountingExporter(span_exporter)
        resource = Resource.create({"service.name": DEMO_SERVICE_NAME, "service.version": "1.0"})
        policy = RedactionPolicy.default()
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(RedactingSpanProcessor(policy))
        self.tracer_provider.add_span_processor(BatchSpanProcessor(self.counter, schedule_delay_millis=200))
        self.logger_provider = LoggerProvider(resource=resource)
        self.logger_provider.add_log_record_processor(RedactingLogRecordProcessor(policy))
        self.logger_provider.add_log_record_processor(BatchLogRecordProcessor(log_exporter))
        self.meter_provider = MeterProvider(resource=resource, views=genai_metric_views(),
                                            metric_readers=[PeriodicExportingMetricReader(metric_exporter)])
        self.content = ContentSettings(ContentMode.SPAN_ONLY, policy)
        self._scopes: list[Any] = []

    @property
    def spans_sent(self) -> int:
        """Spans the collector accepted."""
        return self.counter.delivered

    def __enter__(self) -> DemoPipeline:
        self._scopes = [using_tracer_provider(self.tracer_provider), using_content_settings(self.content)]
        for scope in self._scopes:
            scope.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        for scope in reversed(self._scopes):
            scope.__exit__(exc_type, exc, tb)
        self.tracer_provider.force_flush()
        self.logger_provider.force_flush()
        self.tracer_provider.shutdown()
        self.logger_provider.shutdown()
        self.meter_provider.shutdown()
        if exc_type is None and (self.counter.failed or not self.counter.delivered):
            raise CollectorUnavailable(
                f"the collector at {self.endpoint} ({self.protocol}) did not accept the demo's spans "
                f"({self.counter.failed} refused); start one with `tracekit collect` or pass --endpoint"
            )
