"""`tracekit collect` and the default command as a user runs them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from tracekit.cli import main


def _start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tracekit.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)


def _read_announcement(process: subprocess.Popen) -> list[str]:
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line.strip())
        if "Ctrl-C" in line:
            return lines
    raise AssertionError(f"no announcement: {lines} {process.stderr.read() if process.poll() is not None else ''}")


def test_collect_prints_the_ports_it_chose_and_stops_cleanly_on_ctrl_c(tmp_path):
    db = tmp_path / "cli.duckdb"
    process = _start(["collect", "--db", str(db), "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"])
    try:
        lines = _read_announcement(process)
        state = json.loads(db.with_name(db.name + ".collector.json").read_text())
        assert f"OTLP/gRPC  {state['grpc']}" in lines
        assert f"OTLP/HTTP  {state['http']}" in lines
        assert not state["grpc"].endswith(":0") and state["grpc"].startswith("127.0.0.1:")
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    assert db.exists() and not db.with_name(db.name + ".collector.json").exists()


def test_the_default_command_without_a_terminal_runs_the_collector_headless(tmp_path):
    db = tmp_path / "default.duckdb"
    process = _start(["--db", str(db), "--grpc", "127.0.0.1:0", "--http", "off", "--no-demo"])
    try:
        lines = _read_announcement(process)
        assert any(line.startswith("OTLP/gRPC") for line in lines)
        assert not any(line.startswith("OTLP/HTTP") for line in lines)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    assert "no terminal for the UI" in process.stderr.read()


def test_help_explains_every_command_and_the_environment(capsys):
    try:
        main(["--help"])
    except SystemExit as exit_:
        assert exit_.code == 0
    text = capsys.readouterr().out
    for command in ("collect", "run"):
        assert command in text
    assert "TRACEKIT_DB" in text and "OTEL_EXPORTER_OTLP_ENDPOINT" in text
    try:
        main(["collect", "--help"])
    except SystemExit:
        pass
    text = capsys.readouterr().out
    for option in ("--grpc", "--http", "--max-request-size", "--queue-size", "--retention-days", "--max-db-size",
                   "--redaction", "--memory-limit", "--checkpoint-wal-size", "TRACEKIT_CHECKPOINT_WAL_SIZE",
                   "TRACEKIT_GRPC"):
        assert option in text


def test_bad_settings_are_one_clear_line(tmp_path, capsys):
    assert main(["collect", "--db", str(tmp_path / "x.duckdb"), "--max-request-size", "lots"]) == 2
    assert "not a size: 'lots'" in capsys.readouterr().err
