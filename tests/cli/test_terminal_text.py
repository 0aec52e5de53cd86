"""Span content cannot drive the terminal: `ESC ] 0 ; ... BEL` (window title), CSI sequences (clear screen, colours),
C1 controls and DEL stored in spans are shown as visible escapes in everything printed for people (query tables,
replay transcripts, error lines), through the real CLI. CSV and JSON keep the data exact in a pipe and are escaped
on a terminal."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.cli.terminal import TerminalSession, fresh_environment, tracekit_command
from tracekit.collector.service import Collector
from tracekit.collector.settings import CollectorSettings

pytestmark = pytest.mark.timeout(120)

TITLE = "\x1b]0;pwned\x07"                      # sets the terminal window's title
CSI = "\x1b[2J\x1b[31mred"                      # clears the screen, then turns the text red
C1_DEL = "\x9b31m\x7f"                          # 8-bit CSI and DEL
NAME = f"chat {TITLE}{CSI}{C1_DEL}"
CONVERSATION = "conv-escape"
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def _attribute(key: str, value: str) -> dict:
    return {"key": key, "value": {"stringValue": value}}


def hostile_request() -> dict:
    now = time.time_ns()
    messages_in = [{"role": "user", "parts": [{"type": "text", "content": f"hello {TITLE}{CSI}"}]}]
    messages_out = [{"role": "assistant", "parts": [{"type": "text", "content": f"answer {C1_DEL}{CSI}"}],
                     "finish_reason": f"length{TITLE}"}]
    attributes = [
        _attribute("gen_ai.operation.name", "chat"), _attribute("gen_ai.provider.name", "openai"),
        _attribute("gen_ai.request.model", f"gpt{CSI}"), _attribute("gen_ai.agent.name", f"agent{TITLE}"),
        _attribute("gen_ai.conversation.id", CONVERSATION),
        _attribute("gen_ai.input.messages", json.dumps(messages_in)),
        _attribute("gen_ai.output.messages", json.dumps(messages_out)),
    ]
    return {"resourceSpans": [{"resource": {"attributes": [_attribute("service.name", "escape-test")]},
                               "scopeSpans": [{"spans": [{
                                   "traceId": TRACE_ID, "spanId": "00f067aa0ba902b7", "name": NAME, "kind": 3,
                                   "startTimeUnixNano": str(now - 5_000_000), "endTimeUnixNano": str(now),
                                   "attributes": attributes}]}]}]}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A running collector holding the hostile span; the commands reach it through its read API."""
    import urllib.request

    db = tmp_path_factory.mktemp("escapes") / "traces.duckdb"
    with Collector(CollectorSettings(db_path=db, grpc=None, http="127.0.0.1:0")).running() as collector:
        request = urllib.request.Request(collector.http_endpoint + "/v1/traces", method="POST",
                                         data=json.dumps(hostile_request()).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
        yield db


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def piped(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tracekit_command(), *args], env=fresh_environment(home), capture_output=True, text=True,
                          timeout=90)


def on_terminal(home: Path, *args: str) -> str:
    session = TerminalSession([tracekit_command(), *args], fresh_environment(home, COLUMNS="200"), cwd=home)
    try:
        status, output = session.finish(90)
    finally:
        session.close()
    assert status == 0, output
    return output


def assert_nothing_acts_on_the_terminal(output: str) -> None:
    """Rich's own colour codes aside, none of the planted sequences reach the terminal."""
    for planted in ("\x1b]0;", "\x07", "\x1b[2J", "\x9b", "\x7f", "\x1b[31mred"):
        assert planted not in output, f"{planted!r} reached the terminal"


QUERY = ["query", "--sql", "SELECT name FROM spans"]


def test_query_table_shows_escapes_in_a_pipe_and_on_a_terminal(store: Path, home: Path) -> None:
    result = piped(home, *QUERY, "--db", str(store))
    assert result.returncode == 0, result.stderr
    assert not RAW_CONTROL.search(result.stdout), repr(result.stdout)
    assert "\\x1b]0;pwned\\x07" in result.stdout and "\\x9b31m\\x7f" in result.stdout
    output = on_terminal(home, *QUERY, "--db", str(store))
    assert_nothing_acts_on_the_terminal(output)
    assert "\\x1b]0;pwned\\x07" in output


def test_csv_and_json_are_exact_in_a_pipe(store: Path, home: Path) -> None:
    result = piped(home, *QUERY, "--db", str(store), "--format", "csv")
    assert list(csv.reader(io.StringIO(result.stdout))) == [["name"], [NAME]]
    result = piped(home, *QUERY, "--db", str(store), "--format", "json")
    assert json.loads(result.stdout) == [{"name": NAME}]


def test_csv_and_json_are_escaped_on_a_terminal(store: Path, home: Path) -> None:
    output = on_terminal(home, *QUERY, "--db", str(store), "--format", "csv")
    assert_nothing_acts_on_the_terminal(output)
    assert "\\x1b]0;pwned\\x07" in output
    output = on_terminal(home, *QUERY, "--db", str(store), "--format", "json")
    assert_nothing_acts_on_the_terminal(output)
    # still valid JSON holding the same string: the escapes are JSON's own
    assert json.loads(output.replace("\r\n", "\n")) == [{"name": NAME}]


def test_export_to_stdout_is_exact_in_a_pipe_and_escaped_on_a_terminal(store: Path, home: Path) -> None:
    args = ("export", "otlp-json", "--db", str(store), "--trace", TRACE_ID, "-o", "-")
    result = piped(home, *args)
    assert result.returncode == 0, result.stderr
    assert span_name(result.stdout) == NAME
    assert "\x9b" in result.stdout, "in a pipe the C1 control stays as it is (valid in JSON text)"
    output = on_terminal(home, *args)
    assert_nothing_acts_on_the_terminal(output)
    assert "\\u009b" in output
    assert span_name(next(line for line in output.splitlines() if line.startswith("{"))) == NAME


def span_name(json_line: str) -> str:
    return json.loads(json_line)["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"]


def test_replay_transcript(store: Path, home: Path) -> None:
    result = piped(home, "replay", CONVERSATION, "--db", str(store))
    assert result.returncode == 0, result.stderr
    assert not RAW_CONTROL.search(result.stdout), repr(result.stdout)
    assert "chat \\x1b]0;pwned\\x07" in result.stdout and "length\\x1b]0;pwned\\x07" in result.stdout
    assert_nothing_acts_on_the_terminal(on_terminal(home, "replay", CONVERSATION, "--db", str(store)))


def test_error_lines_quoting_span_content(store: Path, home: Path) -> None:
    result = piped(home, "query", "--sql", "SELECT CAST(name AS INTEGER) FROM spans", "--db", str(store))
    assert result.returncode == 2
    assert "tracekit: error:" in result.stderr and "pwned" in result.stderr
    assert not RAW_CONTROL.search(result.stderr.rstrip("\n")), repr(result.stderr)
