"""Retention: drop telemetry older than N days, and the oldest telemetry while the store is over its size cap.

Runs on the writer's connection between commits (StoreWriter.run_exclusive), so pruning never races ingest. DuckDB
reuses the blocks that deletes free, so the size cap is checked against the blocks in use, not the file length.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import duckdb

from tracekit.collector.exporters.store_writer import duckdb_size_bytes

log = logging.getLogger("tracekit.collector.retention")

# table -> its time column in ns
TIMED_TABLES = {"spans": "start_time_ns", "span_events": "time_ns", "logs": "time_ns", "metric_points": "time_ns"}


@dataclass
class RetentionResult:
    """What one pass removed."""

    deleted_rows: int = 0
    cutoff_ns: int | None = None


def used_bytes(con: duckdb.DuckDBPyConnection) -> int:
    """Bytes of the database blocks in use, plus the WAL not yet checkpointed."""
    row = con.execute("SELECT used_blocks * block_size, wal_size FROM pragma_database_size() "
                      "WHERE database_name = current_database()").fetchall()[0]
    return int(row[0] or 0) + duckdb_size_bytes(row[1])


def delete_before(con: duckdb.DuckDBPyConnection, cutoff_ns: int, keep_after_seq: int | None = None) -> int:
    """Delete every row older than cutoff (spans by start time; links with their spans) in one transaction.

    Rows with ingest_seq above `keep_after_seq` stay whatever their age: a forwarder has not sent them yet.
    """
    guard = "" if keep_after_seq is None else f" AND ingest_seq <= {int(keep_after_seq)}"
    deleted = 0
    con.execute("BEGIN TRANSACTION")
    try:
        # links have no time of their own: they go with spans that go
        con.execute(
            "DELETE FROM span_links WHERE (trace_id, span_id) IN "
            f"(SELECT trace_id, span_id FROM spans WHERE start_time_ns < ?{guard})", [cutoff_ns])
        for table, column in TIMED_TABLES.items():
            deleted += con.execute(f"DELETE FROM {table} WHERE {column} < ?{guard}", [cutoff_ns]).fetchall()[0][0]
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return deleted


def enforce(con: duckdb.DuckDBPyConnection, *, retention_days: float | None, max_bytes: int | None,
            now_ns: int | None = None, keep_after_seq: int | None = None) -> RetentionResult:
    """One retention pass: the age limit first, then the size cap, deleting the oldest tenth at a time.

    `keep_after_seq` protects rows not yet forwarded (the lowest forwarder position), whatever their age or size.
    """
    result = RetentionResult()
    now_ns = now_ns or time.time_ns()
    if retention_days is not None:
        cutoff = now_ns - int(retention_days * 86400e9)
        result.deleted_rows += delete_before(con, cutoff, keep_after_seq)
        result.cutoff_ns = cutoff
    if max_bytes is not None:
        for _ in range(10):  # bounded: each pass removes the oldest ~10 % of the span time range
            con.execute("CHECKPOINT")
            if used_bytes(con) <= max_bytes:
                break
            row = con.execute("SELECT quantile_disc(start_time_ns, 0.1), count(*) FROM spans").fetchall()[0]
            if not row or not row[1]:
                row = con.execute("SELECT quantile_disc(time_ns, 0.1), count(*) FROM logs").fetchall()[0]
            if not row or not row[1] or row[0] is None:
                break
            cutoff = int(row[0]) + 1
            result.deleted_rows += delete_before(con, cutoff, keep_after_seq)
            result.cutoff_ns = max(result.cutoff_ns or 0, cutoff)
        con.execute("CHECKPOINT")
    if result.deleted_rows:
        log.info("retention removed %d rows older than %s ns", result.deleted_rows, result.cutoff_ns)
    return result
