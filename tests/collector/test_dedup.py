"""A sender retries after its acknowledgement got lost: each span, log record and metric point is stored, and seen, once.

The real OTLP/HTTP exporters of the OpenTelemetry SDK send through a TCP proxy that forwards each request to the real
collector but drops the collector's answer to the first request of each signal and closes the connection: the
request is committed, the sender does not know, and the exporter retries (it retries a broken connection at once).
The copies are counted everywhere people see them: the store, the KQL views, the TUI's trace view, the OTLP/JSON
export; and once more with a collector restart between the two deliveries.
"""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path

from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind

from tests.tui.conftest import NamedReader
from tests.tui.test_trace_view import open_trace, outline
from tracekit.cli import main
from tracekit.collector.service import Collector
from tracekit.collector.settings import CollectorSettings
from tracekit.tui.app import TracekitApp
from tracekit.tui.widgets.span_tree import SpanTree

RESOURCE = Resource.create({"service.name": "dedup-service"})


class AckDroppingProxy:
    """127.0.0.1 TCP proxy to the collector's OTLP/HTTP port. The first request on each path (/v1/traces, /v1/logs,
    /v1/metrics) is forwarded, its response (sent only after the commit) read and thrown away, and the client's
    connection closed. Retries wait while `hold` is clear (to restart the collector in between)."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.dropped: list[str] = []
        self.first_dropped = threading.Event()
        self.hold = threading.Event()
        self.hold.set()
        self._seen: set[str] = set()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def endpoint(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        with client:
            first = client.recv(1 << 16)  # the request line comes in the first segment
            if not first:
                return
            path = first.split(b" ", 2)[1].decode()
            with self._lock:
                drop = path not in self._seen
                self._seen.add(path)
            if not drop:
                self.hold.wait(60)
            with socket.create_connection(("127.0.0.1", self.upstream_port)) as upstream:
                upstream.sendall(first)
                threading.Thread(target=_pump, args=(client, upstream), daemon=True).start()
                if drop:
                    assert upstream.recv(1 << 16), "the collector answered nothing"
                    self.dropped.append(path)
                    self.first_dropped.set()
                    for side in (client, upstream):  # shutdown, not just close: the pump thread sits in recv
                        try:
                            side.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                    return
                _pump(upstream, client)


def _pump(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(1 << 16):
            target.sendall(data)
    except OSError:
        pass
    try:
        target.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _port(collector: Collector) -> int:
    return int(collector.http_endpoint.rsplit(":", 1)[1])


def _trace(tracer_provider: TracerProvider, logger=None) -> None:
    """invoke_agent (SERVER) > chat (CLIENT, with an event, and two log records when given a logger) and execute_tool
    (INTERNAL, with a link)."""
    tracer = tracer_provider.get_tracer("tests.dedup")
    with tracer.start_as_current_span("invoke_agent dedup-agent", kind=SpanKind.SERVER,
                                      attributes={"gen_ai.operation.name": "invoke_agent",
                                                  "gen_ai.agent.name": "dedup-agent"}) as root:
        with tracer.start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT,
                                          attributes={"gen_ai.operation.name": "chat"}) as chat:
            chat.add_event("gen_ai.choice", {"index": 0})
            if logger is not None:  # in the span: the OTLP/JSON export takes the logs of the traces it exports
                logger.emit(body="first", severity_number=SeverityNumber.INFO)
                logger.emit(body="second", severity_number=SeverityNumber.WARN)
        with tracer.start_as_current_span("execute_tool search", links=[Link(root.get_span_context())],
                                          attributes={"gen_ai.operation.name": "execute_tool"}):
            pass


def _count(collector: Collector, sql: str) -> int:
    return collector.reader().sql(sql).column(0)[0].as_py()


def _kql_count(db: Path, capsys, query: str) -> int:
    assert main(["query", "--db", str(db), "--format", "json", f"{query} | count"]) == 0
    rows = json.loads(capsys.readouterr().out)
    return rows[0]["Count"]


async def test_a_retried_request_is_stored_and_seen_once(collector, tmp_path: Path, capsys) -> None:
    proxy = AckDroppingProxy(_port(collector))
    try:
        tracer_provider = TracerProvider(resource=RESOURCE)
        tracer_provider.add_span_processor(BatchSpanProcessor(
            OTLPSpanExporter(endpoint=proxy.endpoint("/v1/traces"), timeout=30)))
        logger_provider = LoggerProvider(resource=RESOURCE)
        logger_provider.add_log_record_processor(BatchLogRecordProcessor(
            OTLPLogExporter(endpoint=proxy.endpoint("/v1/logs"), timeout=30)))
        _trace(tracer_provider, logger_provider.get_logger("tests.dedup"))
        tracer_provider.shutdown()
        logger_provider.shutdown()
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=proxy.endpoint("/v1/metrics"), timeout=30), export_interval_millis=3_600_000)
        meter_provider = MeterProvider(resource=RESOURCE, metric_readers=[reader])
        meter = meter_provider.get_meter("tests.dedup")
        meter.create_counter("gen_ai.tokens").add(12, {"gen_ai.token.type": "input"})
        meter.create_histogram("gen_ai.duration", unit="s").record(0.25)
        meter_provider.shutdown()
    finally:
        proxy.close()

    # every signal's first request was committed, its answer lost, and the request sent again
    assert sorted(proxy.dropped) == ["/v1/logs", "/v1/metrics", "/v1/traces"]
    assert collector.writer.stats.duplicates == {"spans": 3, "span_events": 1, "span_links": 1, "logs": 2,
                                                 "metric_points": 2}
    # the store
    assert _count(collector, "SELECT count(*) FROM spans") == 3
    assert _count(collector, "SELECT count(*) FROM span_events") == 1
    assert _count(collector, "SELECT count(*) FROM span_links") == 1
    assert _count(collector, "SELECT count(*) FROM logs") == 2
    assert _count(collector, "SELECT count(*) FROM metric_points") == 2
    # the KQL views
    db = collector.db_path
    assert _kql_count(db, capsys, "requests") == 1
    assert _kql_count(db, capsys, "dependencies") == 2
    assert _kql_count(db, capsys, "traces") == 3  # the two log records and the chat span's event
    # the OTLP/JSON export
    out = tmp_path / "export.jsonl"
    assert main(["export", "otlp-json", "--db", str(db), "-o", str(out), "--no-progress"]) == 0
    documents = [json.loads(line) for line in out.read_bytes().splitlines()]
    spans = [span for document in documents for owner in document.get("resourceSpans", [])
             for scope in owner["scopeSpans"] for span in scope["spans"]]
    records = [record for document in documents for owner in document.get("resourceLogs", [])
               for scope in owner["scopeLogs"] for record in scope["logRecords"]]
    assert len(spans) == 3 and len({(span["traceId"], span["spanId"]) for span in spans}) == 3
    assert len(records) == 2
    # the TUI's trace view
    app = TracekitApp(NamedReader(collector.reader()), live=False)
    async with app.run_test(size=(200, 50)) as pilot:
        screen = await open_trace(pilot, app, "agent:dedup-agent")
        assert outline(screen.query_one(SpanTree)) == ["0:invoke_agent dedup-agent", "1:chat gpt-4o",
                                                       "1:execute_tool search"]


def test_a_retry_that_arrives_after_a_collector_restart_is_stored_once(tmp_path: Path) -> None:
    capture = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(capture))
    _trace(provider)
    provider.shutdown()
    spans = capture.get_finished_spans()

    settings = CollectorSettings(db_path=tmp_path / "traces.duckdb", grpc="127.0.0.1:0", http="127.0.0.1:0")
    with Collector(settings).running() as first:
        proxy = AckDroppingProxy(_port(first))
        proxy.hold.clear()  # the retry waits in the proxy until the collector is back
        exporter = OTLPSpanExporter(endpoint=proxy.endpoint("/v1/traces"), timeout=60)
        results = []
        sender = threading.Thread(target=lambda: results.append(exporter.export(spans)))
        sender.start()
        assert proxy.first_dropped.wait(30)
    # the first delivery is committed, the collector has stopped; a new one starts on the same store
    try:
        with Collector(settings).running() as second:
            proxy.upstream_port = _port(second)
            proxy.hold.set()
            sender.join(60)
            assert results and results[0].name == "SUCCESS"
            assert second.writer.stats.duplicates == {"spans": 3, "span_events": 1, "span_links": 1}
            assert second.status()["duplicates_left_out"] == {"spans": 3, "span_events": 1, "span_links": 1}
            assert _count(second, "SELECT count(*) FROM spans") == 3
            assert _count(second, "SELECT count(*) FROM span_events") == 1
            assert _count(second, "SELECT count(*) FROM span_links") == 1
    finally:
        proxy.close()
        exporter.shutdown()


def test_copies_within_one_commit_and_a_file_imported_twice_are_stored_once(tmp_path: Path) -> None:
    """Without a collector (`tracekit import`'s path) the check covers the whole store; within one commit group,
    repeats are left out too. Log records and metric points, which have no id, are compared by their whole content."""
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
    from opentelemetry.exporter.otlp.proto.common.metrics_encoder import encode_metrics
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk._logs import export as log_export
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from tracekit.collector.offline import write_requests
    from tracekit.store.database import open_store_readonly

    logs = (getattr(log_export, "InMemoryLogRecordExporter", None) or log_export.InMemoryLogExporter)()
    spans = InMemorySpanExporter()
    tracer_provider, logger_provider = TracerProvider(resource=RESOURCE), LoggerProvider(resource=RESOURCE)
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    logger_provider.add_log_record_processor(log_export.SimpleLogRecordProcessor(logs))
    _trace(tracer_provider, logger_provider.get_logger("tests.dedup"))
    metrics = InMemoryMetricReader()
    meter = MeterProvider(resource=RESOURCE, metric_readers=[metrics]).get_meter("tests.dedup")
    meter.create_counter("gen_ai.tokens").add(3)
    requests = [encode_spans(spans.get_finished_spans()), encode_logs(logs.get_finished_logs()),
                encode_metrics(metrics.get_metrics_data())]
    db = tmp_path / "traces.duckdb"
    write_requests(requests + requests, db)  # twice in one transaction
    write_requests(requests, db)  # and again later
    # a genuinely new record with the same text is a new record (another time)
    logger_provider.get_logger("tests.dedup").emit(body="first", severity_number=SeverityNumber.INFO)
    write_requests([encode_logs(logs.get_finished_logs()[-1:])], db)
    con = open_store_readonly(db)
    try:
        counts = {table: con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0]
                  for table in ("spans", "span_events", "span_links", "logs", "metric_points")}
    finally:
        con.close()
    assert counts == {"spans": 3, "span_events": 1, "span_links": 1, "logs": 3, "metric_points": 1}


def test_the_check_covers_the_groups_of_the_last_ten_minutes_up_to_its_row_bound() -> None:
    import pyarrow as pa

    from tracekit.collector.exporters.dedup import RecentGroups

    now = [1000.0]
    window = RecentGroups(seconds=600, rows=100, clock=lambda: now[0])
    assert window.first_sequence(1) == 1  # nothing committed: nothing to check against
    for sequence in range(1, 5):
        window.committed(sequence, 30, pa.array([sequence], pa.int64()))
        now[0] += 100
    assert window.first_sequence(5) == 2  # 4 x 30 rows: the oldest group falls out of the 100-row bound
    assert window.start_times().to_pylist() == [2, 3, 4]
    now[0] += 500  # groups 2 and 3 were committed 800 and 700 s ago, group 4 600 s ago
    assert window.first_sequence(5) == 4
    now[0] += 1000
    assert window.first_sequence(5) == 5 and window.start_times().to_pylist() == []
