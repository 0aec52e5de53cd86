"""The first run, as a user meets it: `tracekit` (collector + TUI, demo workload into an empty store) in a HOME that
has never run tracekit, in a real terminal. However the user leaves it (q, Ctrl-C, closing the terminal, SIGTERM),
no state file is left behind and the store opens intact with the demo's spans in it."""

from __future__ import annotations

import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.terminal import TerminalSession, default_store, fresh_environment, tracekit_command
from tracekit.store.paths import state_file_for
from tracekit.store.reader import LocalReader, open_reader

pytestmark = pytest.mark.timeout(180)


def _span_count(reader) -> int:
    return reader.sql("SELECT count(*) AS n FROM spans").column("n")[0].as_py()


def _first_run(tmp_path: Path) -> tuple[TerminalSession, Path, int]:
    """Start bare `tracekit` in a fresh HOME, wait for the UI and for the demo's spans to be committed."""
    home = tmp_path / "home"
    home.mkdir()
    # Free ports instead of 4317/4318, so the test does not depend on what else runs on the machine.
    env = fresh_environment(home, TRACEKIT_GRPC="127.0.0.1:0", TRACEKIT_HTTP="127.0.0.1:0")
    session = TerminalSession([tracekit_command()], env, cwd=home)
    store = default_store(home)
    state = state_file_for(store)
    session.wait_for(state.exists, 60, "the collector's state file")
    session.wait_for(lambda: "tracekit" in session.output and "\x1b[" in session.output, 30, "the UI to draw")
    reader = open_reader(store)  # through the collector's read API, as `tracekit query` would
    try:
        session.wait_for(lambda: _span_count(reader) > 0, 90, "the demo workload's spans")
        spans = _span_count(reader)
    finally:
        reader.close()
    return session, store, spans


def _assert_clean_exit(session: TerminalSession, store: Path, spans_seen: int) -> None:
    session.wait(30)
    assert "Traceback" not in session.output, session.output[-3000:]
    assert not state_file_for(store).exists(), "a stale state file was left behind"
    assert not list(store.parent.glob("*.tmp")), "a temporary state file was left behind"
    reader = LocalReader.open_file(store)  # read-only open: the store is intact and nobody holds it any more
    try:
        assert _span_count(reader) >= spans_seen
    finally:
        reader.close()


def test_first_run_in_a_fresh_home_then_quit_with_q(tmp_path: Path) -> None:
    session, store, spans = _first_run(tmp_path)
    try:
        session.type(b"q")
        _assert_clean_exit(session, store, spans)
        assert session.poll() == 0
        # What the first run created is the user's alone: data directories 0700, store and log 0600.
        for directory in (store.parent, store.parent.parent):
            assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
        for path in store.parent.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert (store.parent / "traces.duckdb.log").exists()
    finally:
        session.close()


@pytest.mark.parametrize("leave", ["ctrl-c", "hang-up", "sighup", "sigterm", "sigint"])
def test_no_stale_state_file_however_the_user_leaves(tmp_path: Path, leave: str) -> None:
    session, store, spans = _first_run(tmp_path)
    try:
        if leave == "ctrl-c":
            session.type(b"\x03")
        elif leave == "hang-up":
            session.hang_up()
        else:
            session.signal({"sighup": signal.SIGHUP, "sigterm": signal.SIGTERM, "sigint": signal.SIGINT}[leave])
        _assert_clean_exit(session, store, spans)
    finally:
        session.close()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["sigint", "sigterm", "sighup"])
def test_headless_collect_leaves_no_state_file(tmp_path: Path, signum: int) -> None:
    home = tmp_path / "home"
    home.mkdir()
    store = default_store(home)
    process = subprocess.Popen([tracekit_command(), "collect", "--grpc", "127.0.0.1:0", "--http", "127.0.0.1:0"],
                               env=fresh_environment(home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not state_file_for(store).exists():
            assert process.poll() is None and time.monotonic() < deadline, process.stdout.read().decode()
            time.sleep(0.1)
        process.send_signal(signum)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert not state_file_for(store).exists()
    LocalReader.open_file(store).close()


@pytest.fixture
def busy_port() -> int:
    """A port some other program (an OpenTelemetry Collector, Jaeger...) already listens on."""
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


@pytest.mark.parametrize("receiver", ["grpc", "http"])
def test_a_busy_port_is_one_clear_line(tmp_path: Path, busy_port: int, receiver: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    other = "http" if receiver == "grpc" else "grpc"
    result = subprocess.run([tracekit_command(), "collect", f"--{receiver}", f"127.0.0.1:{busy_port}",
                             f"--{other}", "off"], env=fresh_environment(home), capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 2, result.stderr
    # (grpcio's C core logs its own line before ours)
    assert f"tracekit: error: cannot listen " in result.stderr and f"127.0.0.1:{busy_port}" in result.stderr
    assert f"--{receiver}" in result.stderr and "Traceback" not in result.stderr
    assert not state_file_for(default_store(home)).exists()


def test_first_run_with_the_grpc_port_taken(tmp_path: Path, busy_port: int) -> None:
    """`tracekit` where another collector already has 4317: a line saying so on the terminal, not a traceback."""
    home = tmp_path / "home"
    home.mkdir()
    env = fresh_environment(home, TRACEKIT_GRPC=f"127.0.0.1:{busy_port}", TRACEKIT_HTTP="127.0.0.1:0")
    session = TerminalSession([tracekit_command()], env, cwd=home)
    try:
        status, output = session.finish(60)
    finally:
        session.close()
    assert status == 2, output
    assert f"cannot listen for OTLP/gRPC on 127.0.0.1:{busy_port}: the port is in use" in output
    assert "Traceback" not in output
    assert not state_file_for(default_store(home)).exists()
