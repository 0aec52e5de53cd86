"""Files and state: what tracekit creates is owner-only, and the state file cannot be planted or read by others.

Through the real commands: `tracekit collect` on a store in a new directory, a span sent over OTLP/HTTP, an export
to a file, then the modes of everything created. The state file attacks: a planted state file (other-writable, or
owned by another user) pointing at an attacker's endpoint must not redirect `tracekit query` or `tracekit import`;
a pre-created `<state>.tmp` (file or symlink) must not receive the read API's token.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from tests.cli.terminal import fresh_environment, tracekit_command
from tracekit.collector.service import Collector
from tracekit.collector.settings import CollectorSettings
from tracekit.files import read_trusted, untrusted_reason, write_private_atomically
from tracekit.store.paths import state_file_for
from tracekit.store.reader import process_start, read_state

pytestmark = pytest.mark.timeout(120)

TRACE_ID = "5b8efff798038103d269b633813fc60c"


def otlp_json_request(name: str = "checkout") -> dict:
    now = time.time_ns()
    return {"resourceSpans": [{"resource": {"attributes": [
        {"key": "service.name", "value": {"stringValue": "files-test"}}]},
        "scopeSpans": [{"spans": [{"traceId": TRACE_ID, "spanId": "eee19b7ec3c1b174", "name": name, "kind": 2,
                                   "startTimeUnixNano": str(now - 1_000_000), "endTimeUnixNano": str(now)}]}]}]}


def post_json(url: str, body: dict, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.status


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def run_tracekit(*args: str, home: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([tracekit_command(), *args], env=fresh_environment(home), capture_output=True,
                            text=True, timeout=90)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def test_collector_store_wal_state_log_and_exports_are_owner_only(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    chosen = tmp_path / "chosen"          # a directory the user made: its mode is theirs
    chosen.mkdir(mode=0o755)
    os.chmod(chosen, 0o755)
    db = chosen / "new" / "deeper" / "traces.duckdb"   # directories tracekit has to create
    process = subprocess.Popen([tracekit_command(), "collect", "--db", str(db), "--grpc", "127.0.0.1:0",
                                "--http", "127.0.0.1:0"], env=fresh_environment(home),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not read_state(db):
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "the collector did not start"
            time.sleep(0.1)
        state = read_state(db)
        assert post_json(state["http"] + "/v1/traces", otlp_json_request()) == 200
        wal = db.with_name(db.name + ".wal")
        assert wal.exists(), "the span is committed to the WAL and not yet checkpointed"
        assert mode(wal) == 0o600   # DuckDB creates the WAL itself, under the umask `tracekit` sets
        export = chosen / "exports" / "incident.jsonl"
        run_tracekit("export", "otlp-json", "--db", str(db), "--trace", TRACE_ID, "-o", str(export), home=home)
        assert TRACE_ID in export.read_text()

        assert mode(chosen) == 0o755, "an existing directory the user chose is left alone"
        for directory in (db.parent, db.parent.parent, export.parent):
            assert mode(directory) == 0o700, directory
        for path in (db, state_file_for(db), export):
            assert mode(path) == 0o600, path
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(30)
    assert not state_file_for(db).exists()
    assert mode(db) == 0o600


def test_private_atomic_write_is_owner_only_even_with_a_permissive_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        target = tmp_path / "made" / "state.json"
        write_private_atomically(target, b"{}")
    finally:
        os.umask(previous)
    assert mode(target) == 0o600 and mode(target.parent) == 0o700
    assert [p.name for p in target.parent.iterdir()] == ["state.json"], "no temporary file is left"


# --- the state file: trust ---------------------------------------------------------------------------------------

def test_trust_rules() -> None:
    me = os.getuid()
    regular = stat.S_IFREG
    assert untrusted_reason(os.stat_result((regular | 0o600, 0, 0, 1, me, 0, 0, 0, 0, 0)), me) is None
    assert untrusted_reason(os.stat_result((regular | 0o644, 0, 0, 1, me, 0, 0, 0, 0, 0)), me) is None
    assert "owned by uid" in untrusted_reason(os.stat_result((regular | 0o600, 0, 0, 1, me + 1, 0, 0, 0, 0, 0)), me)
    assert "others can write" in untrusted_reason(os.stat_result((regular | 0o666, 0, 0, 1, me, 0, 0, 0, 0, 0)), me)
    assert "others can write" in untrusted_reason(os.stat_result((regular | 0o620, 0, 0, 1, me, 0, 0, 0, 0, 0)), me)
    assert "regular file" in untrusted_reason(os.stat_result((stat.S_IFIFO | 0o600, 0, 0, 1, me, 0, 0, 0, 0, 0)), me)


def test_a_file_owned_by_us_is_untrusted_by_anyone_else(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_private_atomically(path, b"{}")
    assert read_trusted(path) == b"{}"
    with pytest.raises(PermissionError, match="owned by uid"):
        read_trusted(path, uid=os.getuid() + 1)


class AttackerEndpoint:
    """An HTTP server standing in for whatever a planted state file points at; it records every request."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        recorded = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                recorded.append(self.path)
                self.send_response(500)
                self.end_headers()

            do_GET = do_POST

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def attacker() -> Iterator[AttackerEndpoint]:
    endpoint = AttackerEndpoint()
    yield endpoint
    endpoint.close()


@pytest.fixture
def store_with_a_span(tmp_path: Path) -> Path:
    db = tmp_path / "store" / "traces.duckdb"
    with Collector(CollectorSettings(db_path=db, grpc=None, http="127.0.0.1:0")).running() as collector:
        post_json(collector.http_endpoint + "/v1/traces", otlp_json_request())
    return db


def plant_state(db: Path, attacker: AttackerEndpoint, how: str) -> Path:
    """A state file naming a live process (this one) and the attacker's endpoint for everything."""
    state_path = state_file_for(db)
    state_path.write_text(json.dumps({
        "pid": os.getpid(), "pid_start": process_start(os.getpid()), "db": str(db), "grpc": None,
        "http": attacker.url, "read_api": attacker.url, "token": "planted", "started_at": time.time()}))
    if how == "other-writable":
        os.chmod(state_path, 0o666)
    elif how == "another-user":
        if os.geteuid() != 0:
            pytest.skip("planting a file owned by another user needs root (the uid rule is tested without it)")
        os.chmod(state_path, 0o644)
        os.chown(state_path, 65534, 65534)
    return state_path


@pytest.mark.parametrize("how", ["other-writable", "another-user"])
def test_planted_state_file_redirects_neither_query_nor_import(tmp_path: Path, store_with_a_span: Path,
                                                               attacker: AttackerEndpoint, how: str) -> None:
    db = store_with_a_span
    plant_state(db, attacker, how)
    home = tmp_path / "home"
    home.mkdir()

    query = run_tracekit("query", "--db", str(db), "--format", "csv", "--sql", "SELECT count(*) AS n FROM spans",
                         home=home)
    assert query.stdout.split() == ["n", "1"], query.stdout
    assert f"tracekit: warning: ignoring the state file {state_file_for(db)}: " in query.stderr

    lines = tmp_path / "spans.jsonl"
    lines.write_text(json.dumps(otlp_json_request("imported")) + "\n")
    imported = run_tracekit("import", str(lines), "--db", str(db), "--json", home=home)
    assert json.loads(imported.stdout)[0]["via"] == f"store file {db}"
    assert attacker.requests == [], "a planted state file sent tracekit to another endpoint"

    query = run_tracekit("query", "--db", str(db), "--format", "csv", "--sql", "SELECT count(*) AS n FROM spans",
                         home=home)
    assert query.stdout.split() == ["n", "2"]


@pytest.mark.parametrize("planted", ["file", "symlink"])
def test_a_pre_created_temporary_state_file_does_not_receive_the_token(tmp_path: Path, planted: str) -> None:
    db = tmp_path / "traces.duckdb"
    state_path = state_file_for(db)
    temporary = state_path.with_name(state_path.name + ".tmp")   # the name the state file used to be written via
    leak = tmp_path / "leak.txt"
    if planted == "file":
        temporary.write_text("")
        os.chmod(temporary, 0o666)   # what another local user would create to read it later
    else:
        temporary.symlink_to(leak)
    with Collector(CollectorSettings(db_path=db, grpc=None, http=None)).running() as collector:
        token = json.loads(read_trusted(state_path))["token"]
        assert token == collector._token
        assert mode(state_path) == 0o600
        if planted == "file":
            assert token not in temporary.read_text()
        assert not leak.exists()



def test_a_state_file_that_cannot_be_replaced_is_a_clear_error(tmp_path: Path) -> None:
    """Whatever blocks the rename (another user's file in a sticky directory such as /tmp, here a directory in the
    way) stops the collector with one clear line, not a traceback, and leaves no temporary file behind."""
    db = tmp_path / "traces.duckdb"
    state_file_for(db).mkdir()
    (state_file_for(db) / "keep").write_text("")
    home = tmp_path / "home"
    home.mkdir()
    result = run_tracekit("collect", "--db", str(db), "--grpc", "off", "--http", "off", home=home, check=False)
    assert result.returncode == 2, result.stderr
    assert f"cannot write the state file {state_file_for(db)}" in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("*.tmp"))
