"""A store written by `tracekit demo` through the real collector, and the real `tracekit mcp` to talk to it."""

from __future__ import annotations

import hashlib
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Iterator

import duckdb
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tracekit.collector.service import Collector
from tracekit.collector.settings import CollectorSettings
from tracekit.demo import run_demo

CONVERSATIONS = 2


def tracekit_command() -> list[str]:
    """The installed `tracekit` console script (the module when the script is not on this interpreter's path)."""
    script = Path(sys.executable).parent / "tracekit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "tracekit.cli"]


def demo_into(collector: Collector) -> int:
    """Run the demo against `collector` and wait until every span is committed; returns the spans sent."""
    sent = run_demo(f"http://{collector.grpc_endpoint}", conversations=CONVERSATIONS)
    deadline = time.monotonic() + 60  # returns once stored; a busy machine commits slowly
    while time.monotonic() < deadline:
        if collector.reader().sql("SELECT count(*) AS n FROM spans").column("n")[0].as_py() >= sent:
            return sent
        time.sleep(0.1)
    raise AssertionError(f"the collector did not store the {sent} demo spans in time")


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stopped store holding two demo conversations (the MCP server opens the file read-only)."""
    path = tmp_path_factory.mktemp("mcp") / "traces.duckdb"
    with Collector(CollectorSettings(db_path=path, grpc="127.0.0.1:0", http="127.0.0.1:0")).running() as collector:
        demo_into(collector)
    return path


@pytest.fixture
def store_sql(demo_store: Path) -> Iterator:
    """Ask the demo store a question directly (a read-only DuckDB connection), to check the server's answers."""
    def ask(sql: str, params: list | None = None) -> list[dict]:
        con = duckdb.connect(str(demo_store), read_only=True)
        try:
            cursor = con.execute(sql, params or [])
            names = [column[0] for column in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]
        finally:
            con.close()
    yield ask


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@asynccontextmanager
async def mcp_session(db: Path) -> AsyncIterator[ClientSession]:
    """An initialized MCP client session with `tracekit mcp --db db` running as a subprocess over stdio."""
    command = tracekit_command()
    params = StdioServerParameters(command=command[0], args=[*command[1:], "mcp", "--db", str(db)])
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            yield session

