"""`tracekit demo` end to end: the workload lands in the real collector's store, over gRPC and over HTTP."""

from __future__ import annotations

import pytest

from tracekit.cli import main
from tracekit.demo import run_demo
from tracekit.errors import CollectorUnavailable


def _rows(collector, sql: str) -> list[dict]:
    return collector.reader().sql(sql).to_pylist()


def _wait_for_spans(collector, expected: int) -> None:
    import time

    deadline = time.monotonic() + 60  # returns once stored; a busy machine commits slowly
    while time.monotonic() < deadline:
        if _rows(collector, "SELECT count(*) AS n FROM spans")[0]["n"] >= expected:
            return
        time.sleep(0.1)


def test_run_demo_over_grpc_lands_a_multi_agent_trace(collector) -> None:
    sent = run_demo(f"http://{collector.grpc_endpoint}", conversations=1)
    _wait_for_spans(collector, sent)
    rows = _rows(collector, "SELECT name, operation_name, conversation_id, error_type, attributes FROM spans")
    assert len(rows) == sent
    names = sorted(row["name"] for row in rows)
    for expected in ("execute_task plan_trip", "invoke_agent orchestrator", "agent_planning plan",
                     "agent_orchestration delegate", "agent_to_agent_interaction flight-agent",
                     "agent_to_agent_interaction hotel-agent", "invoke_agent flight-agent", "invoke_agent hotel-agent",
                     "execute_tool search_flights", "execute_tool book_flight", "execute_tool get_weather",
                     "agent.state.management save_itinerary", "chat gpt-4o", "chat gpt-4o-mini"):
        assert expected in names, expected
    # One tool failure, then the retry that succeeded.
    hotel_calls = [row for row in rows if row["name"] == "execute_tool search_hotels"]
    assert sorted(str(row["error_type"]) for row in hotel_calls) == ["None", "TimeoutError"]
    assert {row["conversation_id"] for row in rows if row["operation_name"]} == {"demo-session-001"}
    # The traveler's e-mail in the request was redacted in-process.
    assert not any("traveler@example.com" in (row["attributes"] or "") for row in rows)
    assert any("[REDACTED:email]" in (row["attributes"] or "") for row in rows)


def test_cli_demo_over_http(collector, capsys) -> None:
    assert main(["demo", "--protocol", "http", "--endpoint", collector.http_endpoint, "--conversations", "2"]) == 0
    out = capsys.readouterr().out
    sent = int(out.split()[1])
    _wait_for_spans(collector, sent)
    conversations = _rows(collector, "SELECT DISTINCT conversation_id FROM spans WHERE conversation_id IS NOT NULL")
    assert sorted(row["conversation_id"] for row in conversations) == ["demo-session-001", "demo-session-002"]


def test_demo_without_a_collector_fails_clearly() -> None:
    with pytest.raises(CollectorUnavailable, match="nothing accepts OTLP at http://127.0.0.1:9"):
        run_demo("http://127.0.0.1:9", protocol="http", conversations=1, timeout_s=1)


def test_cli_reports_a_missing_collector_in_one_line(capsys) -> None:
    assert main(["demo", "--endpoint", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tracekit: error: nothing accepts OTLP") and "Traceback" not in err


def test_cli_demo_into_a_store_with_no_collector_running(tmp_path, capsys) -> None:
    """--db with no collector: one is started for the run, the spans are stored, and it leaves no state file."""
    from tracekit.store.reader import open_reader

    db = tmp_path / "demo.duckdb"
    assert main(["demo", "--db", str(db), "--conversations", "1"]) == 0
    sent = int(capsys.readouterr().out.split()[1])
    assert sent > 10
    assert not (tmp_path / "demo.duckdb.collector.json").exists()
    reader = open_reader(str(db))
    try:
        assert reader.sql("SELECT count(*) AS n FROM spans").column("n")[0].as_py() == sent
    finally:
        reader.close()


def test_cli_demo_into_a_store_whose_collector_runs(collector, capsys) -> None:
    """--db with a collector running for that store: the demo goes to that collector's receiver."""
    assert main(["demo", "--db", str(collector.db_path), "--conversations", "1", "--protocol", "http"]) == 0
    out = capsys.readouterr().out
    assert collector.http_endpoint in out
    _wait_for_spans(collector, int(out.split()[1]))
    assert _rows(collector, "SELECT count(DISTINCT conversation_id) AS n FROM spans")[0]["n"] == 1


def test_cli_demo_refuses_db_and_endpoint_together(tmp_path, capsys) -> None:
    assert main(["demo", "--db", str(tmp_path / "x.duckdb"), "--endpoint", "http://127.0.0.1:9"]) == 2
    assert "not both" in capsys.readouterr().err
