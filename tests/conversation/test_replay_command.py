"""`tracekit replay` end to end: through the running collector's read API, and on the file once it stopped."""

from __future__ import annotations

from pathlib import Path

from tests.conversation import scenarios
from tracekit.cli import main
from tracekit.collector.service import Collector
from tracekit.collector.settings import CollectorSettings


def test_replay_through_the_running_collector_prints_plain_text(recorded, capsys):
    assert main(["replay", scenarios.CONVERSATION, "--db", str(recorded.db_path)]) == 0
    out = capsys.readouterr().out
    assert "\x1b[" not in out  # piped: no colour codes
    lines = out.splitlines()
    assert lines[0].startswith(f"conversation {scenarios.CONVERSATION} · 2 traces · 5 model calls")
    assert out.index(scenarios.USER_1) < out.index("⚙ search_flights") < out.index(scenarios.ANSWER_1) \
        < out.index(scenarios.USER_2) < out.index(scenarios.ANSWER_2)


def test_replay_on_a_stopped_store_reads_the_file(tmp_path: Path, capsys):
    path = tmp_path / "traces.duckdb"
    with Collector(CollectorSettings(db_path=path, grpc="127.0.0.1:0", http="127.0.0.1:0")).running() as collector:
        scenarios.record(collector.grpc_endpoint, scenarios.openllmetry_indexed)
    assert main(["replay", "conv-openllmetry-indexed", "--db", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.index("Use the tools.") < out.index(scenarios.RECORDED_QUESTION) < out.index("Frank Herbert") \
        < out.index(scenarios.RECORDED_ANSWER)


def test_replay_of_an_unknown_id_is_one_line_on_stderr(recorded, capsys):
    assert main(["replay", "does-not-exist", "--db", str(recorded.db_path)]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().count("\n") == 0
    assert "no conversation, response or trace with id 'does-not-exist'" in captured.err
    assert "Traceback" not in captured.err


def test_replay_cuts_long_values_unless_full(recorded, capsys):
    assert main(["replay", "conv-hostile", "--db", str(recorded.db_path), "--limit", "100"]) == 0
    out = capsys.readouterr().out
    assert f"showing 100 of {scenarios.HUGE:,} characters" in out
    assert "[bold red]pwned[/bold red]" in out and "\x1b]52" not in out
