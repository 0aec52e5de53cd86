"""The processor list as the decode workers run it (collector/processors/__init__.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from tracekit.collector import processors
from tracekit.collector.pipeline import build_processors
from tracekit.collector.processors.decode import Received
from tracekit.collector.processors.redaction import BatchRedactor
from tracekit.collector.settings import CollectorSettings


def test_each_decode_thread_runs_its_own_copy_of_the_processors(tmp_path) -> None:
    """Redaction keeps caches and a masked counter: two threads (the protobuf and the OTLP/JSON decode threads)
    must not share them, and what each request masked is counted on its own batch."""
    span = Span(trace_id=b"\x01" * 16, span_id=b"\x02" * 8, name="chat", start_time_unix_nano=1,
                end_time_unix_nano=2, attributes=[KeyValue(key="gen_ai.input.messages", value=AnyValue(
                    string_value='[{"role":"user","content":"mail ann@example.com"}]'))])
    payload = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[ScopeSpans(spans=[span])])])
    original = build_processors(CollectorSettings(db_path=tmp_path / "unused.duckdb"))
    pools = [ThreadPoolExecutor(1, initializer=processors.install, initargs=(original,)) for _ in range(2)]
    try:
        batches = [pool.submit(processors.run_installed, "traces", Received(payload.SerializeToString())).result()
                   for pool in pools]
        lists = [pool.submit(lambda: processors._installed.processors).result() for pool in pools]
    finally:
        for pool in pools:
            pool.shutdown()
    assert [batch.masked for batch in batches] == [1, 1]
    assert "ann@example.com" not in batches[0].tables["spans"].column("attributes")[0].as_py()
    redactors = [next(p for p in processor_list if isinstance(p, BatchRedactor)) for processor_list in lists]
    original_redactor = next(p for p in original if isinstance(p, BatchRedactor))
    assert len({id(redactors[0]), id(redactors[1]), id(original_redactor)}) == 3
    assert len({id(redactors[0].policy), id(redactors[1].policy)}) == 2
