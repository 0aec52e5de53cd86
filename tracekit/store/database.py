"""Opening the DuckDB file: read-write for the collector that owns it, read-only for everyone else."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

from tracekit.errors import StoreError
from tracekit.files import FILE_MODE, private_dir
from tracekit.store import schema

DEFAULT_MEMORY_LIMIT = "2GB"  # DuckDB's own default is 80 % of RAM; a local tool should not take that much
# DuckDB checkpoints inside the committing transaction once the WAL passes checkpoint_threshold (16 MB by default),
# stalling that commit for seconds on a large table. The collector raises the threshold and checkpoints from a
# background thread instead (collector/exporters/store_writer.py, Checkpointer); the threshold stays as a backstop.
COLLECTOR_CHECKPOINT_THRESHOLD = "1GB"


def _describe_lock_error(path: Path, error: duckdb.Error) -> StoreError:
    if "lock" in str(error).lower():
        return StoreError(
            f"{path} is in use by another process (DuckDB allows one writer per file). "
            "If a tracekit collector owns it, commands reach it through its read API; otherwise stop the other process."
        )
    return StoreError(f"cannot open {path}: {error}")


# DuckDB's late materialization plans a top-N over the App Insights views (`dependencies | top 3 by duration`)
# by planning the views' expressions again for the rows it fetches back; on their exporter mapping that took
# 3-4 s of planning for a query that runs in 30 ms. Without it the same query plans in a tenth of a second.
QUERY_SETTINGS: dict[str, str] = {"disabled_optimizers": "late_materialization"}


def open_store(
    path: Path,
    *,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    threads: int | None = None,
    checkpoint_threshold: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the store read-write and migrate it to the current schema.

    Only the collector should call this: DuckDB lets one process hold a file read-write.
    External file access is switched off for the whole database so that queries served from it cannot read or write
    files beside it (the query surface is read-only by construction, not by filtering alone).
    """
    private_dir(path.parent)
    created = not path.exists()
    config: dict[str, str | int | bool] = {"memory_limit": memory_limit, **QUERY_SETTINGS}
    if threads:
        config["threads"] = threads
    if checkpoint_threshold:
        config["checkpoint_threshold"] = checkpoint_threshold
    try:
        con = duckdb.connect(str(path), config=config)
    except duckdb.Error as error:
        raise _describe_lock_error(path, error) from error
    if created:
        os.chmod(path, FILE_MODE)  # DuckDB creates the file with the umask's mode; the store is the user's alone
    schema.migrate(con)
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def open_store_readonly(path: Path, *, memory_limit: str = DEFAULT_MEMORY_LIMIT) -> duckdb.DuckDBPyConnection:
    """Open an existing store read-only, for commands that run while no collector owns the file."""
    if not path.exists():
        raise StoreError(f"no store at {path}: run `tracekit collect --db {path}` first, or pass --db")
    try:
        con = duckdb.connect(
            str(path),
            read_only=True,
            config={"memory_limit": memory_limit, "enable_external_access": False, **QUERY_SETTINGS},
        )
    except duckdb.Error as error:
        raise _describe_lock_error(path, error) from error
    schema.check_readable(con)
    return con
