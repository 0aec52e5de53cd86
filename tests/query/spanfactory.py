"""Real OpenTelemetry SDK spans and log records for the query tests, and a way to put them in a store.

The spans are made by the SDK (a TracerProvider with an in-memory exporter), encoded with the OTLP encoder and
decoded by the collector's normalizer, so the store holds exactly what the collector would write.
"""

from __future__ import annotations

import itertools
from contextlib import contextmanager
from pathlib import Path
from typing import Sequence

import pyarrow as pa
from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan

from tracekit.collector.ingest.normalize import decode_logs, decode_traces
from tracekit.store.database import open_store

_seq = itertools.count(1)


def insert_batch(con, tables: dict[str, pa.Table]) -> None:
    """Insert one normalized batch the way the collector's writer does (each table by column name)."""
    seq = next(_seq)
    for name, table in tables.items():
        con.register("tk_batch", table)
        if name == "resources":
            con.execute("INSERT INTO resources BY NAME SELECT * FROM tk_batch "
                        "WHERE resource_id NOT IN (SELECT resource_id FROM resources)")
        else:
            con.execute(f"INSERT INTO {name} BY NAME SELECT {seq} AS ingest_seq, * FROM tk_batch")
        con.unregister("tk_batch")


def write_store(path: Path, spans: Sequence[ReadableSpan] = (), logs: Sequence = ()) -> None:
    """Create a store at `path` holding these SDK spans and log records."""
    con = open_store(path)
    try:
        if spans:
            insert_batch(con, decode_traces(encode_spans(spans)).tables)
        if logs:
            insert_batch(con, decode_logs(encode_logs(logs)).tables)
    finally:
        con.close()


@contextmanager
def collector_store(tmp_dir: Path, spans: Sequence[ReadableSpan] = (), logs: Sequence = ()):
    """A running real collector over a store under `tmp_dir`, fed these spans and logs over OTLP/gRPC.

    Yields the collector (its `.reader()` reads through the same LocalReader its read API serves).
    """
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk._logs.export import LogRecordExportResult
    from opentelemetry.sdk.trace.export import SpanExportResult

    from tracekit.collector.service import Collector
    from tracekit.collector.settings import CollectorSettings

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
