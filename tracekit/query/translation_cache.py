"""Translations of KQL kept on disk between runs of `tracekit query`, so a query asked again skips duckdb-kql
(importing its parser and parsing cost most of a short command's time).

An entry is keyed by everything its SQL depends on: the query text, parameter values, the store's schema, whether a
time range applies, and the versions of tracekit's query code, of the views' SQL, of duckdb-kql and of DuckDB. It
lives in `$XDG_CACHE_HOME/tracekit/kql` (else `~/.cache/tracekit/kql`), owner-only; a directory or entry another
user could have written is ignored. What is read back is still SQL that goes through the read-only check like any
other query.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from functools import lru_cache
import importlib.util
from pathlib import Path
from typing import Any

MAX_ENTRIES = 512


def directory() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tracekit" / "kql"


@lru_cache(maxsize=1)
def _stamp() -> str:
    """Versions of everything that shapes a translation, read without importing duckdb-kql (nor the slower
    importlib.metadata): the files of tracekit's query code and of duckdb-kql as they are on disk, DuckDB's version,
    and the views' SQL."""
    import duckdb

    from tracekit.query import views

    files = sorted(Path(__file__).parent.glob("*.py"))
    spec = importlib.util.find_spec("duckdb_kql")
    if spec is not None and spec.origin:
        package = Path(spec.origin).parent
        files += [package / "_version.py", package / "__init__.py", package / "lower.py"]
    parts = [f"duckdb={duckdb.__version__}", f"views={views.version()}"]
    for path in files:
        try:
            info = path.stat()
        except OSError:
            continue
        parts.append(f"{path}:{info.st_mtime_ns}:{info.st_size}")
    return ";".join(parts)


def key(*parts: Any) -> str:
    """The entry name for a translation depending on `parts` (and on the code's versions)."""
    text = json.dumps([_stamp(), *parts], sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()


def _trusted(path: Path) -> bool:
    try:
        info = path.lstat()
    except OSError:
        return False
    return info.st_uid == os.getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH) \
        and not stat.S_ISLNK(info.st_mode)


def load(name: str) -> dict[str, Any] | None:
    """The entry `name`, or None when there is none (or it cannot be trusted or read)."""
    folder = directory()
    path = folder / name
    if not _trusted(folder) or not _trusted(path):
        return None
    try:
        with open(path, "rb") as handle:
            value = json.loads(handle.read())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def save(name: str, value: dict[str, Any]) -> None:
    """Keep `value` (JSON-able) as entry `name`; nothing happens when it cannot be written."""
    folder = directory()
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _trusted(folder):
            return
        text = json.dumps(value)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".tmp-")  # created 0600
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(temporary, folder / name)
        _prune(folder)
    except (OSError, TypeError, ValueError):
        return


def _prune(folder: Path) -> None:
    entries = [path for path in folder.iterdir() if not path.name.startswith(".")]
    if len(entries) <= MAX_ENTRIES:
        return
    entries.sort(key=lambda path: path.stat().st_mtime_ns)
    for path in entries[:len(entries) - MAX_ENTRIES // 2]:
        path.unlink(missing_ok=True)
