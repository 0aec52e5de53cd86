"""Fixtures for the export tests: a store with realistic agent traces, and the Azure exporter kept quiet."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.export.helpers import agent_run, make_providers, write_store
from tracekit.export.azure import QUIET_ENV


@pytest.fixture(autouse=True)
def quiet_azure(monkeypatch: pytest.MonkeyPatch) -> None:
    """No statsbeat, SDK stats or control-plane calls to Microsoft from tests."""
    for name, value in QUIET_ENV.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store with 20 agent turns (3 spans each, 2 events, 1 link, 1 evaluation log record per turn)."""
    tracer_provider, logger_provider, spans, logs = make_providers()
    for index in range(20):
        agent_run(tracer_provider, logger_provider, agent="planner" if index % 2 else "writer",
                  conversation=f"conv-{index % 4}")
    db = tmp_path / "source.duckdb"
    write_store(db, spans.get_finished_spans(), logs.get_finished_logs(), chunk=25)
    return db
