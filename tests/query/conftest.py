"""Query tests keep the KQL translation cache in a directory of their own, not the user's ~/.cache."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from tests.query.spanfactory import collector_store


@pytest.fixture(scope="session", autouse=True)
def translation_cache_directory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    previous = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
    yield
    if previous is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = previous


@pytest.fixture(scope="module")
def stopped_store(workload, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store file written by a real collector from the module's `workload`; the collector is stopped, so
    readers open the file."""
    directory = tmp_path_factory.mktemp("stopped")
    with collector_store(directory, workload.spans, workload.logs):
        pass
    return directory / "traces.duckdb"
