"""Nothing acknowledged is lost: back-pressure makes exporters retry, kill -9 keeps every acknowledged span,
SIGTERM drains what was accepted."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tracekit.collector.service import Collector
from tracekit.store.reader import RemoteReader

TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _recorded_spans(count: int) -> list:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("burst")
    for index in range(count):
        with tracer.start_as_current_span(f"span-{index}", attributes={"index": index, "pad": "p" * 200}):
            pass
    return list(memory.get_finished_spans())


@contextlib.contextmanager
def _budget_held(collector: Collector) -> Iterator[socket.socket]:
    """An HTTP body that arrives in part and then stalls, holding more than the whole admission budget until the
    block ends (its connection is closed: the client is gone and its bytes are returned)."""
    capacity = collector.pipeline.admission.capacity
    host, port = collector.http_endpoint.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as holder:
        holder.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
                       + f"Content-Length: {2 * capacity}\r\n\r\n".encode() + bytes(capacity + 1))
        deadline = time.monotonic() + 60
        while collector.pipeline.admission.used <= capacity:
            assert time.monotonic() < deadline, "the stalled body never took the budget"
            time.sleep(0.02)
        yield holder


@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_a_full_queue_makes_the_standard_exporters_retry_and_everything_lands(collector_settings, protocol):
    """Six exporters of the OpenTelemetry SDK send at once while the queue is full: each is refused with a retryable
    answer, retries after the delay the collector gave, and every span lands once. The queue is full because a
    stalled body holds the budget until the refusals are seen (not because the exporters race each other for one
    slot: a sender that loses six races in a row on a busy machine gives up, which is the SDK's limit, not a fault)."""
    collector_settings.queue_bytes = 1024 * 1024  # room for all six exporters' requests once the stalled body is gone
    spans = _recorded_spans(1200)
    chunks = [spans[i:i + 100] for i in range(0, len(spans), 100)]
    senders = 6
    with Collector(collector_settings).running() as collector:
        admission = collector.pipeline.admission
        results: list[SpanExportResult] = []
        ready = threading.Barrier(senders + 1)

        def send(my_chunks: list) -> None:
            exporter = (OTLPSpanExporter(endpoint=collector.grpc_endpoint, insecure=True, timeout=60)
                        if protocol == "grpc" else
                        HttpSpanExporter(endpoint=collector.http_endpoint + "/v1/traces", timeout=60))
            ready.wait(60)
            for chunk in my_chunks:
                results.append(exporter.export(chunk))
            exporter.shutdown()

        threads = [threading.Thread(target=send, args=(chunks[i::senders],)) for i in range(senders)]
        with _budget_held(collector):
            for thread in threads:
                thread.start()
            ready.wait(60)
            # Hold the budget until every exporter was refused once; a refused one asks again after the collector's
            # delay (1 s here), up to six times, so a few seconds do not make it give up.
            deadline = time.monotonic() + 3
            while admission.refused < senders and time.monotonic() < deadline:
                time.sleep(0.01)
            refused_while_full = admission.refused
        for thread in threads:
            thread.join()
        stored = collector.reader().sql("SELECT count(*) AS n, count(DISTINCT span_id) AS d FROM spans").to_pylist()
    assert refused_while_full > 0, "no exporter met the full queue, so nothing was tested"
    assert results == [SpanExportResult.SUCCESS] * len(chunks)
    assert stored == [{"n": len(spans), "d": len(spans)}]


def _start_collector_process(db: Path, *extra: str) -> tuple[subprocess.Popen, dict]:
    state_path = db.with_name(db.name + ".collector.json")
    if state_path.exists():
        state_path.unlink()  # a kill -9 leaves it behind; the new process must write its own
    process = subprocess.Popen(
        [sys.executable, "-m", "tracekit.cli", "collect", "--db", str(db), "--grpc", "127.0.0.1:0",
         "--http", "127.0.0.1:0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if state_path.exists():
            try:
                state = json.loads(state_path.read_text())
            except ValueError:
                continue
            if state.get("pid") == process.pid:
                return process, state
        if process.poll() is not None:
            raise AssertionError(f"collector exited: {process.stderr.read()}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError("collector did not start")


def _request(batch: int, size: int) -> tuple[bytes, list[str]]:
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    ids = []
    for index in range(size):
        span = scope.spans.add()
        span.trace_id = (batch + 1).to_bytes(8, "big") + index.to_bytes(8, "big")  # never the invalid all-zero id
        span.span_id = (batch * 100_000 + index + 1).to_bytes(8, "big")
        span.name = f"b{batch}-{index}"
        span.start_time_unix_nano, span.end_time_unix_nano = time.time_ns(), time.time_ns() + 1000
        span.attributes.add(key="payload", value={"string_value": "z" * 300})
        ids.append(span.span_id.hex())
    return request.SerializeToString(), ids


def _send_until_failure(endpoint: str, acknowledged: list[str], start_batch: int, stop: threading.Event) -> None:
    channel = grpc.insecure_channel(endpoint)
    export = channel.unary_unary(TRACE_METHOD)
    batch = start_batch
    try:
        while not stop.is_set():
            payload, ids = _request(batch, 200)
            try:
                export(payload, timeout=10)
            except grpc.RpcError:
                return  # the collector died: this request was not acknowledged
            acknowledged.extend(ids)
            batch += 1
    finally:
        channel.close()


def test_kill_9_under_load_loses_no_acknowledged_span(tmp_path):
    db = tmp_path / "crash.duckdb"
    acknowledged: list[str] = []
    for round_number in range(3):
        process, state = _start_collector_process(db)
        stop = threading.Event()
        senders = [threading.Thread(target=_send_until_failure,
                                    args=(state["grpc"], acknowledged, (round_number * 10 + i) * 1000, stop))
                   for i in range(3)]
        for sender in senders:
            sender.start()
        # Kill once this round's requests are being acknowledged (however slowly this machine starts them), at a
        # different point of the commit/checkpoint cycle each round.
        enough = len(acknowledged) + 3 * 200 * (round_number + 1)
        deadline = time.monotonic() + 60
        while len(acknowledged) < enough and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2 * round_number)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        stop.set()
        for sender in senders:
            sender.join()
    assert len(acknowledged) > 1000, "too little was sent for the test to mean anything"

    process, state = _start_collector_process(db)  # restart recovers from the WAL
    try:
        reader = RemoteReader(state["read_api"], state["token"], str(db))
        stored = set(reader.sql("SELECT span_id FROM spans").column("span_id").to_pylist())
    finally:
        process.terminate()
        process.wait(timeout=60)
    missing = set(acknowledged) - stored
    assert not missing, f"{len(missing)} acknowledged spans were lost"


def test_sigterm_drains_accepted_requests_and_removes_the_state_file(tmp_path):
    db = tmp_path / "graceful.duckdb"
    process, state = _start_collector_process(db)
    acknowledged: list[str] = []
    stop = threading.Event()
    sender = threading.Thread(target=_send_until_failure, args=(state["grpc"], acknowledged, 1, stop))
    sender.start()
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    stop.set()
    sender.join()
    assert not db.with_name(db.name + ".collector.json").exists()
    from tracekit.store.reader import open_reader

    reader = open_reader(db)  # no collector now: the file is opened read-only
    stored = set(reader.sql("SELECT span_id FROM spans").column("span_id").to_pylist())
    reader.close()
    assert acknowledged and set(acknowledged) <= stored


_COMMIT_AND_DIE = """
import os, signal, sys, threading
from pathlib import Path
from tests.collector.test_durability import _request
from tracekit.collector.exporters.store_writer import StoreWriter
from tracekit.collector.processors.decode import decode_payload
from tracekit.store.database import COLLECTOR_CHECKPOINT_THRESHOLD, open_store

con = open_store(Path(sys.argv[1]), checkpoint_threshold=COLLECTOR_CHECKPOINT_THRESHOLD)
writer = StoreWriter(con)
committed = threading.Event()
writer._checkpointer.start = lambda: None  # no checkpoint: what is stored is what the commits wrote
batches = [decode_payload("traces", _request(number, size)[0]) for number, size in enumerate((2000, 2000, 396))]
errors = []
done = lambda error: (errors.append(error), len(errors) == len(batches) and committed.set())
for batch in batches:
    writer.submit(batch, done)  # queued before the writer starts: one commit group
writer.start()
committed.wait(300)
print(repr(errors), flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_whole_row_groups_written_at_commit_survive_kill_9(tmp_path):
    """A commit group of at least a row group is written straight into the file at commit (no WAL): a kill -9 right
    after the acknowledgement, before any checkpoint, keeps it."""
    db = tmp_path / "whole.duckdb"
    died = subprocess.run([sys.executable, "-c", _COMMIT_AND_DIE, str(db)], capture_output=True, text=True,
                          timeout=360, cwd=Path(__file__).resolve().parents[2])
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert died.stdout.strip() == "[None, None, None]", died.stdout + died.stderr
    wal = db.with_name(db.name + ".wal")
    # The WAL holds where the rows are, not the rows: through it the 4,396 spans would take ~2 MB.
    assert 0 < wal.stat().st_size < 200_000, wal.stat().st_size
    import duckdb

    con = duckdb.connect(str(db), read_only=True)  # replays the WAL, as any open after a crash does
    groups = con.execute("SELECT ingest_seq, count(*) FROM spans GROUP BY 1 ORDER BY 1").fetchall()
    stored = {row[0] for row in con.execute("SELECT span_id FROM spans").fetchall()}
    con.close()
    assert groups == [(1, 4396)]
    expected = {span_id for number, size in enumerate((2000, 2000, 396)) for span_id in _request(number, size)[1]}
    assert stored == expected
