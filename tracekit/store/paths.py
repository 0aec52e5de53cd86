"""Where the store lives and where a running collector announces itself."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

DB_ENV = "TRACEKIT_DB"


def default_db_path() -> Path:
    """`TRACEKIT_DB` if set, else `traces.duckdb` in the user's data directory (created on demand)."""
    override = os.environ.get(DB_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir("tracekit", appauthor=False)) / "traces.duckdb"


def resolve_db_path(db: str | os.PathLike[str] | None) -> Path:
    """The store path a command should use: the `--db` value, else the default."""
    path = Path(db).expanduser() if db else default_db_path()
    return path.resolve()


def state_file_for(db_path: Path) -> Path:
    """The small JSON file beside the database in which a running collector writes its addresses and read token."""
    return db_path.with_name(db_path.name + ".collector.json")
