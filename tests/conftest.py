"""Shared fixtures: a real collector on ephemeral 127.0.0.1 ports over a temporary store."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest

from tracekit.collector.service import Collector
from tracekit.collector.settings import CollectorSettings


@pytest.fixture
def collector_settings(tmp_path: Path) -> CollectorSettings:
    """Settings for a collector on free ports over `tmp_path/traces.duckdb` (tests may adjust before starting)."""
    return CollectorSettings(db_path=tmp_path / "traces.duckdb", grpc="127.0.0.1:0", http="127.0.0.1:0")


@pytest.fixture
def collector(collector_settings: CollectorSettings) -> Iterator[Collector]:
    """A running collector; stopped (and drained) after the test."""
    with Collector(collector_settings).running() as running:
        yield running
