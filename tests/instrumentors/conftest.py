"""Fixtures for the instrumentation tests: a private SDK pipeline per test, captured in memory.

Nothing here touches the global TracerProvider (it can be set only once per process and other test folders share the
process): tracekit's helpers use `using_tracer_provider`, instrumentors get `tracer_provider=` explicitly.
"""

from __future__ import annotations

from typing import Iterator

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

try:
    from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter
except ImportError:  # older SDK name
    from opentelemetry.sdk._logs.export import InMemoryLogExporter as InMemoryLogRecordExporter  # type: ignore
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tracekit.configuration import genai_metric_views
from tracekit.content import reset_content_settings, set_content_recording
from tracekit.redaction import RedactionPolicy
from tracekit.redaction.sdk import RedactingSpanProcessor
from tracekit.tracing import using_tracer_provider


class Telemetry:
    """One test's pipeline: spans, logs and metrics in memory."""

    def __init__(self, *, redact: bool = True) -> None:
        self.span_exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        if redact:
            self.tracer_provider.add_span_processor(RedactingSpanProcessor(RedactionPolicy.default()))
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.span_exporter))
        self.log_exporter = InMemoryLogRecordExporter()
        self.logger_provider = LoggerProvider()
        self.logger_provider.add_log_record_processor(SimpleLogRecordProcessor(self.log_exporter))
        self.metric_reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.metric_reader], views=genai_metric_views())

    @property
    def spans(self) -> list:
        return list(self.span_exporter.get_finished_spans())

    def span(self, name: str):
        matches = [span for span in self.spans if span.name == name]
        assert len(matches) == 1, f"expected one span named {name!r}, got {[s.name for s in self.spans]}"
        return matches[0]

    def metrics(self) -> dict[str, list]:
        data = self.metric_reader.get_metrics_data()
        found: dict[str, list] = {}
        if data is None:
            return found
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found

    def everything_exported(self) -> str:
        """Every exported byte of spans and logs as text, for "this must not appear anywhere" checks."""
        texts = [span.to_json() for span in self.spans]
        texts += [record.log_record.to_json() if hasattr(record, "log_record") else str(record)
                  for record in self.log_exporter.get_finished_logs()]
        return "\n".join(texts)


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    reset_content_settings()
    tel = Telemetry()
    with using_tracer_provider(tel.tracer_provider):
        yield tel
    reset_content_settings()


@pytest.fixture
def content_on() -> Iterator[None]:
    set_content_recording(True, redaction=RedactionPolicy.default())
    yield
    reset_content_settings()


@pytest.fixture
def content_off(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    monkeypatch.delenv("AZURE_TRACING_GEN_AI_CONTENT_RECORDING_ENABLED", raising=False)
    set_content_recording(False)
    yield
    reset_content_settings()
