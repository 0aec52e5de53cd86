"""`tracekit mcp --http`: loopback only, bearer token required; the server through a running collector; the extra."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.mcp.conftest import demo_into, mcp_session, tracekit_command
from tracekit.cli import main


def _start_http(db: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str, str]:
    """`tracekit mcp --http 127.0.0.1:0`; returns the process, its URL and its token as printed at start."""
    process = subprocess.Popen([*tracekit_command(), "mcp", "--db", str(db), "--http", "127.0.0.1:0"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **(env or {})})
    url = token = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (url is None or token is None):
        line = process.stderr.readline()
        if not line:
            break
        if "streamable HTTP at " in line:
            url = line.split("streamable HTTP at ")[1].strip()
        if line.startswith("tracekit mcp: token "):
            token = line.split("token ")[1].strip()
    if url is None or token is None:
        process.kill()
        raise AssertionError(f"tracekit mcp --http did not announce itself: {process.stderr.read()}")
    return process, url, token


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


async def test_http_needs_the_token_printed_at_start(demo_store):
    process, url, token = _start_http(demo_store)
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp") and len(token) >= 32
        initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                      "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                 "clientInfo": {"name": "test", "version": "0"}}}
        headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
        async with httpx2.AsyncClient() as plain:
            missing = await plain.post(url, json=initialize, headers=headers)
            wrong = await plain.post(url, json=initialize, headers={**headers, "Authorization": "Bearer nope"})
            prefix = await plain.post(url, json=initialize,
                                      headers={**headers, "Authorization": f"Bearer {token[:-1]}"})
        assert [missing.status_code, wrong.status_code, prefix.status_code] == [401, 401, 401]
        assert "bearer token" in missing.json()["error"]
        async with httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client:
            async with streamable_http_client(url, http_client=client) as (read, write):
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    names = {tool.name for tool in (await session.list_tools()).tools}
                    found = await session.call_tool("search_traces", {})
        assert "run_query" in names
        assert not found.is_error and found.structured_content["page"]["total"] == 2
    finally:
        _stop(process)


async def test_http_takes_the_token_from_the_environment(demo_store):
    process, url, token = _start_http(demo_store, {"TRACEKIT_MCP_TOKEN": "a-token-chosen-by-the-user-0123456789"})
    try:
        assert token == "a-token-chosen-by-the-user-0123456789"
    finally:
        _stop(process)


@pytest.mark.parametrize("listen", ["0.0.0.0:0", "192.0.2.1:8765", "[::]:0"])
def test_http_refuses_a_non_loopback_host_unless_allowed(demo_store, listen, capsys):
    assert main(["mcp", "--db", str(demo_store), "--http", listen]) == 2
    error = capsys.readouterr().err
    assert "reachable from other machines" in error and "--allow-remote" in error


def test_http_listen_address_is_checked(demo_store, capsys):
    assert main(["mcp", "--db", str(demo_store), "--http", "127.0.0.1:http"]) == 2
    assert "expected HOST:PORT" in capsys.readouterr().err


def test_without_the_sdk_the_command_names_the_extra(demo_store, capsys, monkeypatch):
    for name in ("mcp", "mcp.server", "mcp.server.mcpserver"):  # as if the [mcp] extra were not installed
        monkeypatch.setitem(sys.modules, name, None)
    assert main(["mcp", "--db", str(demo_store)]) == 2
    error = capsys.readouterr().err
    assert "pip install 'tracekit-agents[mcp]'" in error and "Traceback" not in error


async def test_through_a_running_collector_the_server_sees_new_spans(collector):
    """While a collector owns the store the server reads through its read API, and sees what arrives meanwhile."""
    async with mcp_session(collector.db_path) as session:
        empty = await session.call_tool("search_traces", {})
        demo_into(collector)
        found = await session.call_tool("search_traces", {})
        counted = await session.call_tool("run_query", {"query": "spans | count"})
    assert not empty.is_error and empty.structured_content["traces"] == []
    assert found.structured_content["page"]["total"] == 2
    stored = collector.reader().sql("SELECT count(*) AS n FROM spans").column("n")[0].as_py()
    assert counted.structured_content["rows"] == [{"Count": stored}]


def test_http_on_a_port_in_use_is_one_line(demo_store, capsys):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["mcp", "--db", str(demo_store), "--http", f"127.0.0.1:{port}"]) == 2
    error = capsys.readouterr().err
    assert f"127.0.0.1:{port}: cannot listen there" in error and "Traceback" not in error
