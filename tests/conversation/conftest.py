"""One real collector per test session holding every recorded scenario; tests read it through StoreReader."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tests.conversation import scenarios
from tracekit.collector.service import Collector
from tracekit.collector.settings import CollectorSettings
from tracekit.store.reader import StoreReader


class Recorded:
    """A running collector and one reader on it (opening readers is not free: views are installed each time)."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.db_path: Path = collector.db_path
        self._reader: StoreReader | None = None

    def reader(self) -> StoreReader:
        if self._reader is None:
            self._reader = self.collector.reader()
        return self._reader


def _running(path: Path, *runs: tuple[tuple, dict]) -> Iterator[Recorded]:
    with Collector(CollectorSettings(db_path=path, grpc="127.0.0.1:0", http="127.0.0.1:0")).running() as collector:
        for scenario_list, options in runs:
            scenarios.record(collector.grpc_endpoint, *scenario_list, **options)
        yield Recorded(collector)


@pytest.fixture(scope="session")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """A running collector whose store holds the travel conversation and one run of every other content shape."""
    path = tmp_path_factory.mktemp("conversation") / "traces.duckdb"
    yield from _running(path, ((scenarios.travel_conversation, *scenarios.ALL_SHAPES, scenarios.hostile), {}))


@pytest.fixture(scope="session")
def variant_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """The travel conversation recorded with content as structure only and with content off."""
    path = tmp_path_factory.mktemp("variants") / "traces.duckdb"
    yield from _running(
        path,
        ((scenarios.travel_conversation,), {"seed": 2, "content": "structure", "conversation": "conv-structure"}),
        ((scenarios.travel_conversation,), {"seed": 3, "content": "off", "conversation": "conv-off"}),
    )
