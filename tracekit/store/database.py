"""Opening the DuckDB file: read-write for the collector that owns it, read-only for everyone else."""

from __future__ import annotations

import os
from pathlib import Path

from tracekit.errors import StoreError
from tracekit.files import FILE_MODE, private_dir
from tracekit.store import schema
from tracekit.store.engine import duckdb, relational

DEFAULT_MEMORY_LIMIT = "2GB"  # DuckDB's own default is 80 % of RAM; a local tool should not take that much
# DuckDB checkpoints inside the committing transaction once the WAL passes checkpoint_threshold (16 MB by default),
# stalling that commit for seconds on a large table. The collector raises the threshold and checkpoints from a
# background thread instead (collector/exporters/store_writer.py, Checkpointer); the threshold stays as a backstop.
COLLECTOR_CHECKPOINT_THRESHOLD = "1GB"
# Rows per DuckDB row group for what a read-write open appends (DuckDB's default: 122,880). A transaction that
# appends at least a row group's worth of rows to a table has them compressed straight into the file at commit (an
# optimistic write: no WAL, nothing left for the checkpoint), about half the CPU a span of the WAL-and-checkpoint
# path; with small row groups most of the collector's commit groups qualify. DuckDB does not keep this in the file:
# every read-write open must give it (else a checkpoint of an appended table merges its small row groups into
# default-sized ones). Read-only opens read any size. Why 4096: docs/decisions/2026-12-07-small-row-groups.md.
ROW_GROUP_ROWS = 4096
# A checkpoint's vacuum merges neighbouring row groups that would fit in fewer, rewriting them: with small row groups
# and commit groups of one to two row groups (each leaving a part-filled group) it rewrote almost everything once
# more. Off, a part-filled group stays as written. Row groups whose rows were all deleted are dropped either way.
VACUUM_TASKS = 0
_RESERVED_CATALOGS = {"memory", "system", "temp", "main"}


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
    progress: schema.ProgressCallback | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the store read-write and migrate it to the current schema (`progress`: see
    schema.migrate).

    Only the collector should call this: DuckDB lets one process hold a file read-write.
    External file access is switched off for the whole database so that queries served from it cannot read or write
    files beside it (the query surface is read-only by construction, not by filtering alone).
    """
    # The writers (collector, commands) use the relational API and Arrow on this connection: load the package
    # layer now rather than fail later in a process that has only the engine (see tracekit/store/engine.py).
    relational()
    private_dir(path.parent)
    created = not path.exists()
    # Spills go beside the store, as they do for a database opened as the main one.
    config: dict[str, str | int | bool] = {"memory_limit": memory_limit, "temp_directory": f"{path}.tmp",
                                           "max_vacuum_tasks": VACUUM_TASKS, **QUERY_SETTINGS}
    if threads:
        config["threads"] = threads
    if checkpoint_threshold:
        config["checkpoint_threshold"] = checkpoint_threshold
    # The row group size is an ATTACH option only, so the store is attached to an in-memory instance and made the
    # default catalog, under the name a plain open would give it (the file's stem).
    catalog = path.stem if path.stem.lower() not in _RESERVED_CATALOGS else "store"
    con = duckdb.connect(config=config)
    try:
        con.execute(f"ATTACH ? AS {_quoted(catalog)} (ROW_GROUP_SIZE {ROW_GROUP_ROWS})", [str(path)])
    except duckdb.Error as error:
        con.close()
        raise _describe_lock_error(path, error) from error
    con.execute(f"USE {_quoted(catalog)}")
    if created:
        os.chmod(path, FILE_MODE)  # DuckDB creates the file with the umask's mode; the store is the user's alone
    schema.migrate(con, progress)
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def store_cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A new cursor of an `open_store` connection, reading and writing the store (a bare cursor starts in the
    instance's in-memory catalog, where unqualified names would not find the store's tables)."""
    cursor = con.cursor()  # asked on the cursor: `con` may be running a statement on another thread
    catalog = cursor.execute("SELECT database_name FROM duckdb_databases() WHERE path IS NOT NULL").fetchall()[0][0]
    cursor.execute(f"USE {_quoted(catalog)}")
    return cursor


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


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
