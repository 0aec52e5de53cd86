"""OTLP export to our own collector, and the OTLP JSON round trip (export -> import -> identical rows)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tracekit.cli import main
from tracekit.export.cursor import SidecarCursorStore, sidecar_path
from tracekit.export.otlp import OtlpSender, choose_protocol
from tracekit.export.otlp_json import OtlpJsonError, read_json_lines
from tracekit.export.runner import run_export
from tracekit.export.selection import Selection, StoreSource
from tracekit.store.reader import LocalReader

SPAN_COLUMNS = ("trace_id, span_id, parent_span_id, trace_state, flags, name, kind, start_time_ns, end_time_ns, "
                "duration_ns, start_time, end_time, status_code, status_message, service_name, scope_name, "
                "scope_version, operation_name, provider_name, request_model, response_model, response_id, agent_name, "
                "agent_id, conversation_id, tool_name, tool_call_id, error_type, input_tokens, output_tokens, "
                "attributes::VARCHAR AS attributes, event_count, link_count, dropped_attributes_count, "
                "dropped_events_count, dropped_links_count")


def snapshot(reader) -> dict[str, list]:
    """Every stored row that export/import must keep, in a stable order (ingest_seq and first_seen excluded)."""
    return {
        "spans": reader.sql(f"SELECT {SPAN_COLUMNS} FROM spans ORDER BY trace_id, span_id").to_pylist(),
        "events": reader.sql("SELECT trace_id, span_id, event_index, time_ns, name, attributes::VARCHAR AS a "
                             "FROM span_events ORDER BY ALL").to_pylist(),
        "links": reader.sql("SELECT trace_id, span_id, link_index, linked_trace_id, linked_span_id, "
                            "attributes::VARCHAR AS a FROM span_links ORDER BY ALL").to_pylist(),
        "logs": reader.sql("SELECT time_ns, observed_time_ns, severity_number, severity_text, body::VARCHAR AS b, "
                           "event_name, trace_id, span_id, service_name, scope_name, attributes::VARCHAR AS a "
                           "FROM logs ORDER BY ALL").to_pylist(),
        "resources": reader.sql("SELECT DISTINCT resource_id, service_name, service_namespace, service_instance_id, "
                                "service_version, attributes::VARCHAR AS a FROM resources ORDER BY ALL").to_pylist(),
    }


def open_snapshot(db: Path) -> dict[str, list]:
    reader = LocalReader.open_file(db)
    try:
        return snapshot(reader)
    finally:
        reader.close()


def test_protocol_choice() -> None:
    assert choose_protocol("http://gw:4317", None) == "grpc"
    assert choose_protocol("grpc://gw:9000", None) == "grpc"
    assert choose_protocol("https://gw:4318", None) == "http/protobuf"
    assert choose_protocol("http://gw:4317", "http/protobuf") == "http/protobuf"


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_otlp_export_to_our_collector_keeps_every_row(store: Path, collector, protocol: str) -> None:
    expected = open_snapshot(store)
    endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
    reader = LocalReader.open_file(store)
    sender = OtlpSender(f"http://{endpoint}" if protocol == "grpc" else endpoint, protocol=protocol)
    try:
        summary = run_export(StoreSource(reader, Selection()), sender, SidecarCursorStore(sidecar_path(store)),
                             page_size=25)
        again = run_export(StoreSource(reader, Selection()), sender, SidecarCursorStore(sidecar_path(store)))
    finally:
        sender.close()
        reader.close()
    assert summary.complete and summary.spans_done == 60 and summary.delivered == 60 + 40 + 20
    assert again.selected == 0  # the cursor: a re-run sends nothing
    target = collector.reader()
    deadline = time.monotonic() + 10
    while target.sql("SELECT count(*) FROM logs").column(0)[0].as_py() < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert snapshot(target) == expected


def test_otlp_json_round_trip_gives_identical_rows(store: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "incident.jsonl"
    assert main(["export", "otlp-json", "--db", str(store), "-o", str(out), "--no-progress"]) == 0
    lines = out.read_bytes().splitlines()
    first = json.loads(lines[0])
    span = first["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert len(span["traceId"]) == 32 and len(span["spanId"]) == 16 and isinstance(span["kind"], int)
    assert isinstance(span["startTimeUnixNano"], str)
    assert any("resourceLogs" in json.loads(line) for line in lines)
    copy = tmp_path / "copy.duckdb"
    assert main(["import", str(out), "--db", str(copy)]) == 0
    assert "imported 60 spans, 20 log records" in capsys.readouterr().err
    assert open_snapshot(copy) == open_snapshot(store)


def test_export_one_trace_and_import_through_a_running_collector(store: Path, tmp_path: Path, collector) -> None:
    reader = LocalReader.open_file(store)
    trace_id = reader.sql("SELECT trace_id FROM spans ORDER BY trace_id LIMIT 1").column(0)[0].as_py()
    reader.close()
    out = tmp_path / "one.jsonl"
    assert main(["export", "otlp-json", "--db", str(store), "--trace", trace_id, "-o", str(out),
                 "--no-progress"]) == 0
    # The collector owns its store: import must go through it (OTLP/HTTP), not open the file.
    assert main(["import", str(out), "--db", str(collector.db_path)]) == 0
    target = collector.reader()
    rows = target.sql("SELECT DISTINCT trace_id FROM spans").column(0).to_pylist()
    assert rows == [trace_id]
    assert target.sql("SELECT count(*) FROM logs").column(0)[0].as_py() == 1


def test_import_applies_redaction(tmp_path: Path, store: Path) -> None:
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from tests.export.helpers import make_providers

    from tracekit.export.otlp_json import to_json_line

    tracer_provider, _, spans, _ = make_providers()
    with tracer_provider.get_tracer("t").start_as_current_span(
            "chat", attributes={"gen_ai.input.messages": "mail ann@example.com, key sk-abcdefghijklmnopqrstuvwx"}):
        pass
    path = tmp_path / "secret.jsonl"
    path.write_bytes(to_json_line(encode_spans(spans.get_finished_spans())))
    db = tmp_path / "r.duckdb"
    assert main(["import", str(path), "--db", str(db)]) == 0
    reader = LocalReader.open_file(db)
    stored = reader.sql("SELECT attributes->>'gen_ai.input.messages' FROM spans").column(0)[0].as_py()
    reader.close()
    assert "ann@example.com" not in stored and "[REDACTED:email]" in stored


def test_bad_json_lines_name_the_line_and_the_reason(tmp_path: Path, capsys) -> None:
    with pytest.raises(OtlpJsonError, match=r"f.jsonl:2: not JSON"):
        list(read_json_lines([b'{"resourceSpans": []}', b"{oops"], "f.jsonl"))
    with pytest.raises(OtlpJsonError, match=r"f.jsonl:1: a trace or span id is not hexadecimal"):
        list(read_json_lines([b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz"}]}]}]}'], "f.jsonl"))
    with pytest.raises(OtlpJsonError, match="resourceSpans, resourceLogs or resourceMetrics"):
        list(read_json_lines([b'{"hello": 1}'], "f.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"resourceSpans": []}\nnot json\n')
    assert main(["import", str(bad), "--db", str(tmp_path / "x.duckdb")]) == 2
    assert capsys.readouterr().err.strip().startswith("tracekit: error: ")


def test_cli_errors_are_one_line(store: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", raising=False)
    assert main(["export", "otlp-json", "--db", str(store), "--trace", "nothex"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a trace id" in err
    assert main(["export", "otlp-json", "--db", str(store), "--since", "yesterday-ish"]) == 2
    assert "cannot read the time" in capsys.readouterr().err
    assert main(["export", "azure-monitor", "--db", str(store), "--connection-string", ""]) == 2
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in capsys.readouterr().err
    assert main(["export", "otlp", "--db", str(store)]) == 2
    assert "no OTLP endpoint" in capsys.readouterr().err


def test_help_explains_each_destination() -> None:
    result = subprocess.run([sys.executable, "-m", "tracekit.cli", "export", "azure-monitor", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for option in ("--connection-string", "--retime", "--where", "--since", "--restart", "--redaction-policy"):
        assert option in result.stdout


def _exported_spans(path: Path) -> list[dict]:
    spans = []
    for line in path.read_bytes().splitlines():
        for resource_spans in json.loads(line).get("resourceSpans", ()):
            for scope_spans in resource_spans["scopeSpans"]:
                spans.extend(scope_spans["spans"])
    return spans


def test_where_selects_by_kql_over_the_app_insights_views(store: Path, tmp_path: Path) -> None:
    query = 'dependencies | where customDimensions["gen_ai.agent.name"] == "planner"'
    out = tmp_path / "planner.jsonl"
    assert main(["export", "otlp-json", "--db", str(store), "--where", query, "-o", str(out), "--no-progress"]) == 0
    spans = _exported_spans(out)
    assert len(spans) == 10 and {s["name"] for s in spans} == {"invoke_agent planner"}
    whole = tmp_path / "planner-traces.jsonl"
    assert main(["export", "otlp-json", "--db", str(store), "--where", query, "--whole-traces", "-o", str(whole),
                 "--no-progress"]) == 0
    traces = _exported_spans(whole)
    assert len(traces) == 30 and {s["traceId"] for s in traces} == {s["traceId"] for s in spans}


def test_where_with_bad_kql_reports_the_position(store: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "never.jsonl"
    assert main(["export", "otlp-json", "--db", str(store), "--where", "dependencies | wher x == 1", "-o",
                 str(out), "--no-progress"]) == 2
    assert not out.exists() and not list(tmp_path.glob("*.partial"))
    err = capsys.readouterr().err
    assert err.startswith("tracekit: error: line 1, column") and err.count("\n") == 1


def test_import_reads_metrics_and_gzip(tmp_path: Path) -> None:
    import gzip

    from opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder import encode_metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from tests.export.helpers import RESOURCE
    from tracekit.export.otlp_json import to_json_line

    metric_reader = InMemoryMetricReader()
    provider = MeterProvider(resource=RESOURCE, metric_readers=[metric_reader])
    histogram = provider.get_meter("t").create_histogram("gen_ai.client.token.usage", unit="{token}")
    histogram.record(120, {"gen_ai.token.type": "input"})
    histogram.record(42, {"gen_ai.token.type": "output"})
    path = tmp_path / "metrics.jsonl.gz"
    path.write_bytes(gzip.compress(to_json_line(encode_metrics(metric_reader.get_metrics_data()))))
    db = tmp_path / "m.duckdb"
    assert main(["import", str(path), "--db", str(db)]) == 0
    reader = LocalReader.open_file(db)
    rows = reader.sql("SELECT metric_name, count, sum, attributes->>'gen_ai.token.type' AS t FROM metric_points "
                      "ORDER BY t").to_pylist()
    reader.close()
    assert [(r["metric_name"], r["count"], r["sum"], r["t"]) for r in rows] == [
        ("gen_ai.client.token.usage", 1, 120.0, "input"), ("gen_ai.client.token.usage", 1, 42.0, "output")]


def test_import_refuses_a_record_past_the_size_limit_without_reading_it_whole(tmp_path: Path, capsys) -> None:
    """A small gzip file can hold one enormous line: it is cut at the limit with an error naming the line."""
    import gzip
    import tracemalloc

    path = tmp_path / "bomb.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"resourceSpans": []}\n{"resourceSpans": "' + b"x" * (64 * 1024 * 1024) + b'"}\n'))
    assert path.stat().st_size < 200 * 1024
    tracemalloc.start()
    try:
        code = main(["import", str(path), "--db", str(tmp_path / "b.duckdb"), "--max-record-size", "1MiB"])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code != 0
    assert "bomb.jsonl.gz:2: a record longer than 1,048,576 bytes" in capsys.readouterr().err
    assert peak < 16 * 1024 * 1024  # the 64 MiB line was never held
