"""TUI tests run the real Textual app (pilot) on stores written through the real collector.

The recorded scenarios live in tests/conversation/scenarios.py (shared with the conversation tests). Times are
shown in local time, so the tests pin TZ=UTC for stable screens.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.conversation import scenarios
from tracekit.collector.service import Collector
from tracekit.collector.settings import CollectorSettings


@pytest.fixture(scope="session", autouse=True)
def utc() -> Iterator[None]:
    previous = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if previous is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = previous
    time.tzset()


class NamedReader:
    """A StoreReader with a fixed `location`, so screens that show it are the same on every run."""

    def __init__(self, reader: Any, location: str = "traces.duckdb") -> None:
        self._reader = reader
        self.location = location

    def sql(self, query: str, params: Any = None) -> Any:
        return self._reader.sql(query, params)

    def rows(self, query: str, params: Any = None) -> Any:
        return self._reader.rows(query, params)

    def close(self) -> None:
        pass


class Store:
    """A running collector holding recorded scenarios, and a reader on it."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.reader = NamedReader(collector.reader())

    def record(self, *scenario_functions: Any, **options: Any) -> None:
        scenarios.record(self.collector.grpc_endpoint, *scenario_functions, **options)


def _running(path: Path, *scenario_functions: Any) -> Iterator[Store]:
    with Collector(CollectorSettings(db_path=path, grpc="127.0.0.1:0", http="127.0.0.1:0")).running() as collector:
        store = Store(collector)
        store.record(*scenario_functions)
        yield store


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The travel conversation, every other content shape and the hostile run (read-only for tests)."""
    yield from _running(tmp_path_factory.mktemp("tui") / "traces.duckdb", scenarios.travel_conversation,
                        *scenarios.ALL_SHAPES, scenarios.hostile)


@pytest.fixture
def fresh_store(tmp_path: Path) -> Iterator[Store]:
    """A store of its own, for tests that add spans while the app runs."""
    yield from _running(tmp_path / "traces.duckdb", scenarios.openllmetry_indexed)


@pytest.fixture(scope="module")
def langgraph_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """One LangGraph run traced by tracekit's LangChain instrumentor (content recorded), through the collector."""
    from tests.conversation import instrumented

    path = tmp_path_factory.mktemp("tui-langgraph") / "traces.duckdb"
    with Collector(CollectorSettings(db_path=path, grpc="127.0.0.1:0", http="127.0.0.1:0")).running() as collector:
        instrumented.record_langgraph_run(collector.grpc_endpoint, thread_id="thread-tui", content=True)
        yield Store(collector)


@pytest.fixture(scope="module")
def latest_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The newest conventions' multi-agent run and the same run in Microsoft's spelling (tests.conversation)."""
    from tests.conversation import latest_conventions

    yield from _running(tmp_path_factory.mktemp("tui-latest") / "traces.duckdb", latest_conventions.latest_run,
                        latest_conventions.microsoft_run)
