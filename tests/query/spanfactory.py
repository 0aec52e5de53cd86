"""A real collector fed with SDK spans and log records over OTLP/gRPC, for the query and dashboard tests."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs.export import LogRecordExportResult
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult

from tracekit.collector.service import Collector
from tracekit.collector.settings import CollectorSettings


@contextmanager
def collector_store(tmp_dir: Path, spans: Sequence[ReadableSpan] = (), logs: Sequence = ()) -> Iterator[Collector]:
    """A running real collector over `tmp_dir/traces.duckdb`, fed these spans and logs over OTLP/gRPC.

    An export returns only once the collector has committed the data, so the store holds it all on entry. Yields the
    collector; its `.reader()` is the same LocalReader its read API serves. The file stays after the collector stops.
    """
    settings = CollectorSettings(db_path=tmp_dir / "traces.duckdb", grpc="127.0.0.1:0", http="127.0.0.1:0")
    with Collector(settings).running() as collector:
        if spans:
            exporter = OTLPSpanExporter(endpoint=collector.grpc_endpoint, insecure=True)
            assert exporter.export(list(spans)) == SpanExportResult.SUCCESS
            exporter.shutdown()
        if logs:
            log_exporter = OTLPLogExporter(endpoint=collector.grpc_endpoint, insecure=True)
            assert log_exporter.export(list(logs)) == LogRecordExportResult.SUCCESS
            log_exporter.shutdown()
        yield collector
