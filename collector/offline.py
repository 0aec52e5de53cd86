"""Store OTLP requests without a running collector: the collector's decoders and writer, one process, one file.

`tracekit import` uses it when no collector owns the store. Each chunk of requests is decoded and redacted exactly as
the receivers' requests are (the same decoders, the same redaction processor) and committed in one transaction, so
an interrupted import leaves whole chunks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracekit.collector.exporters.store_writer import next_sequence, write_batches
from tracekit.collector.processors.normalize import Batch, decode_logs, decode_metrics, decode_traces
from tracekit.collector.processors.redaction import BatchRedactor
from tracekit.redaction import RedactionPolicy
from tracekit.store.database import open_store

REQUESTS_PER_COMMIT = 64
_DECODERS: dict[type, Callable[[Any], Batch]] = {
    ExportTraceServiceRequest: decode_traces, ExportLogsServiceRequest: decode_logs,
    ExportMetricsServiceRequest: decode_metrics}


def write_requests(requests: Iterable[Any], db_path: Path,
                   observe: Callable[[Any, Batch], None] | None = None, *,
                   policy: RedactionPolicy | None = None) -> None:
    """Decode OTLP export requests, mask them with `policy`, and write them into the store at `db_path`,
    `REQUESTS_PER_COMMIT` a transaction.

    `observe(request, batch)` sees each request with its decoded, redacted batch (counts, rejected items, masked).
    """
    redactor = BatchRedactor(policy) if policy is not None and not policy.is_noop else None
    con = open_store(db_path)
    try:
        known = {row[0] for row in con.execute("SELECT DISTINCT resource_id FROM resources").fetchall()}
        for chunk in _chunks(requests, REQUESTS_PER_COMMIT):
            batches = []
            for request in chunk:
                batch = _DECODERS[type(request)](request)
                if redactor is not None:
                    redactor.process("", batch)
                if observe is not None:
                    observe(request, batch)
                batches.append(batch)
            sequence = next_sequence(con)
            con.execute("BEGIN TRANSACTION")
            try:
                known |= write_batches(con, batches, sequence, known)
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
    finally:
        con.close()


def _chunks(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
