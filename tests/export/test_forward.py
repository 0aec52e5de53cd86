"""Live forwarding from a running collector: to Application Insights (fake ingestion) and to another collector."""

from __future__ import annotations

import time
from pathlib import Path

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.export.fake_ingestion import FakeIngestion, Planned
from tests.export.helpers import RESOURCE, agent_run
from tracekit.collector.exporters.forwarders import Forwarder
from tracekit.collector.service import Collector
from tracekit.collector.settings import CollectorSettings
from tracekit.export.azure import AzureMonitorSender
from tracekit.export.cursor import TableCursorStore


def send_turns(collector, turns: int) -> None:
    """Real SDK spans over OTLP/gRPC into the collector."""
    provider = TracerProvider(resource=RESOURCE)
    exporter = OTLPSpanExporter(endpoint=collector.grpc_endpoint, insecure=True)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    for _ in range(turns):
        agent_run(provider)
    provider.shutdown()


def wait_for(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def stored(collector, sql: str = "SELECT count(*) FROM spans") -> int:
    return collector.reader().sql(sql).column(0)[0].as_py()


def test_forward_to_azure_survives_a_down_destination_and_delivers_once(collector) -> None:
    send_turns(collector, 2)   # stored before forwarding starts: history is not forwarded
    wait_for(lambda: stored(collector) == 6)
    with FakeIngestion() as fake:
        fake.plan.extend([Planned(503)] * 6)  # the destination is down for a while
        reader = collector.new_reader() if hasattr(collector, "new_reader") else collector.reader()
        forwarder = Forwarder(reader, AzureMonitorSender(fake.connection_string, initial_backoff=0.01,
                                                         max_backoff=0.02, max_attempts=1),
                              TableCursorStore(collector.writer.run_exclusive, reader), poll_interval=0.05)
        forwarder.start()
        try:
            started = time.monotonic()
            send_turns(collector, 10)
            # Ingest is not slowed down by the failing destination.
            assert time.monotonic() - started < 10
            wait_for(lambda: stored(collector) == 36)
            wait_for(lambda: len([e for e in fake.telemetry("RemoteDependencyData")]) == 30)
            assert forwarder.failures >= 1
        finally:
            forwarder.stop()
        ids = [e["data"]["baseData"]["id"] for e in fake.telemetry("RemoteDependencyData")]
    assert len(ids) == len(set(ids)) == 30
    # The cursor lives in the store, so a restarted forwarder would continue from here.
    row = collector.reader().sql("SELECT destination, ingest_seq FROM export_cursors").to_pylist()
    assert row and row[0]["destination"].startswith("azure-monitor:")


def test_collector_forwards_to_an_upstream_otlp_collector(collector_settings, tmp_path: Path) -> None:
    upstream_settings = CollectorSettings(db_path=tmp_path / "upstream.duckdb", grpc="127.0.0.1:0",
                                          http="127.0.0.1:0")
    with Collector(upstream_settings).running() as upstream:
        collector_settings.forward_otlp = upstream.http_endpoint
        collector_settings.forward_interval = 0.1
        with Collector(collector_settings).running() as local:
            send_turns(local, 5)
            wait_for(lambda: stored(upstream) == 15)
            local_rows = local.reader().sql(
                "SELECT trace_id, span_id, name, attributes::VARCHAR FROM spans ORDER BY ALL").to_pylist()
        upstream_rows = upstream.reader().sql(
            "SELECT trace_id, span_id, name, attributes::VARCHAR FROM spans ORDER BY ALL").to_pylist()
    assert upstream_rows == local_rows


def test_export_and_status_while_a_collector_owns_the_store(collector, tmp_path: Path, capsys) -> None:
    """The store is locked by the collector: export reads through its read API, the cursor lives beside the file."""
    import json

    from tracekit.cli import main

    send_turns(collector, 3)
    wait_for(lambda: stored(collector) == 9)
    out = tmp_path / "live.jsonl"
    assert main(["export", "otlp-json", "--db", str(collector.db_path), "-o", str(out), "--no-progress"]) == 0
    assert sum(len(s["spans"]) for line in out.read_bytes().splitlines()
               for r in json.loads(line).get("resourceSpans", ()) for s in r["scopeSpans"]) == 9
    with FakeIngestion() as fake:
        command = ["export", "azure-monitor", "--db", str(collector.db_path), "--connection-string",
                   fake.connection_string, "--no-progress", "--json"]
        assert main(command) == 0
        first = json.loads(capsys.readouterr().out)
        assert first["items_delivered"] == 9 + 6 and first["complete"]  # spans + their events
        assert main(["export", "status", "--db", str(collector.db_path), "--json"]) == 0
        status = json.loads(capsys.readouterr().out)
        assert [record["destination"] for record in status.values()] == [
            f"azure-monitor:00000000-0000-4000-8000-000000000001@{fake.endpoint}"]
        assert main(command) == 0
        assert json.loads(capsys.readouterr().out)["selected_spans"] == 0
