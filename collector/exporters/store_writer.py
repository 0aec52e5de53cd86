"""The store writer: one thread that owns the read-write connection and commits in groups.

Requests wait in a queue; the writer takes everything that queued up while its previous commit ran, inserts each
table with one statement per group (Arrow in, no row-at-a-time SQL), commits once, and only then tells each request
it is durable. Many in-flight requests so share one commit (group commit), and a request is never acknowledged
before its rows are committed: a crash loses nothing that was acknowledged.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from tracekit.collector.exporters import dedup
from tracekit.collector.processors.normalize import Batch
from tracekit.store.database import ROW_GROUP_ROWS, store_cursor
from tracekit.store.schema import JSON_COLUMNS

log = logging.getLogger("tracekit.collector.exporters.store_writer")

# Tables whose rows carry the commit group's ingest_seq.
SEQUENCED_TABLES = ("spans", "span_events", "span_links", "logs", "metric_points")

Done = Callable[[BaseException | None], None]

# A commit group of at least one row group (tracekit/store/database.py ROW_GROUP_ROWS) is written into the file at
# commit; what reaches the WAL is the smaller groups, which the checkpoint folds in. With DuckDB's default
# 122,880-row groups a checkpoint rewrote the last, partly filled group, and checkpointing every ~60k spans wrote
# each group about twice; every 245,760 span rows cost 16-21 us of CPU a span against 19-28
# (docs/decisions/2026-11-22-checkpoint-every-two-row-groups.md). The trigger counts every span row that arrived.
CHECKPOINT_SPAN_ROWS = 245_760  # CollectorSettings.checkpoint_rows
# Whatever the row count, a WAL this large is folded in: it bounds restart replay time and memory when spans are big.
# DuckDB keeps what the WAL holds in memory too (about 1.25x the WAL's size) until the checkpoint writes it out;
# past the collector's memory_limit it spills that to <db>.tmp, so a smaller WAL means less spilled and read back.
# Content-free spans (~1.1 KB of WAL each) reach it at about CHECKPOINT_SPAN_ROWS (CollectorSettings.checkpoint_wal_bytes;
# docs/decisions/2026-12-07-collector-memory.md).
CHECKPOINT_WAL_BYTES = 256 * 1024 * 1024
# How long the writer may hold a commit group smaller than a row group while more requests are being decoded: a group
# of a row group or more is written into the file at commit, about half the store's CPU a span of a smaller one
# (WAL, then checkpoint). Without waiting, a writer faster than decoding commits each request alone (512 spans from
# an OpenTelemetry SDK). Only senders with other requests in flight wait, never a lone one.
GROUP_WAIT_SECONDS = 0.2


@dataclass
class WriterStats:
    """Counters the service reports (and the benchmark reads)."""

    commits: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    last_commit_seconds: float = 0.0
    failed_commits: int = 0
    duplicates: dict[str, int] = field(default_factory=dict)  # copies left out, per table


def next_sequence(con: duckdb.DuckDBPyConnection) -> int:
    """The ingest_seq the next commit group takes: one past the highest in the store."""
    row = con.execute(
        "SELECT max(s) FROM (SELECT max(ingest_seq) AS s FROM spans UNION ALL SELECT max(ingest_seq) FROM logs "
        "UNION ALL SELECT max(ingest_seq) FROM metric_points)"
    ).fetchall()[0]
    return int(row[0] or 0) + 1


def write_batches(
    con: duckdb.DuckDBPyConnection,
    batches: Iterable[Batch],
    sequence: int,
    known_resources: set[int],
    stats: WriterStats | None = None,
    window: dedup.RecentGroups | None = None,
) -> set[int]:
    """Insert every table of `batches` inside the caller's transaction; return the resource ids newly inserted.

    Each span, log record and metric point is stored once (collector/exporters/dedup.py): copies within the group
    and copies stored by the recent groups of `window` (the whole store without one: a sender that retried after a
    lost acknowledgement) are left out.
    Usable without a running collector (import into a store nobody owns): open the store, BEGIN, call this, COMMIT.
    """
    by_table: dict[str, list[pa.Table]] = {}
    for batch in batches:
        for name, table in batch.tables.items():
            by_table.setdefault(name, []).append(table)
    # One contiguous chunk per table: DuckDB scans an Arrow table chunk by chunk, and a group of 512-span requests
    # as 512-row chunks cost 7.0 us of CPU a span to insert against 4.9 us as one chunk (the copy included;
    # docs/performance.md).
    tables = {name: pa.concat_tables(parts).combine_chunks() if len(parts) > 1 else parts[0]
              for name, parts in by_table.items()}
    duplicates = dedup.drop_duplicates(con, tables, sequence, window)
    new_resources: set[int] = set()
    for name, table in tables.items():
        if name == "resources":
            table = _unseen_resources(table, known_resources)
            if table.num_rows == 0:
                continue
            new_resources.update(table.column("resource_id").to_pylist())
        if table.num_rows == 0:
            continue
        view = f"_tk_{name}"
        con.register(view, _json_typed(table, JSON_COLUMNS.get(name, ())))
        try:
            if name in SEQUENCED_TABLES:
                con.execute(f"INSERT INTO {name} BY NAME SELECT {int(sequence)} AS ingest_seq, * FROM {view}")
            else:
                con.execute(f"INSERT INTO {name} BY NAME SELECT * FROM {view}")
        finally:
            con.unregister(view)
        if stats is not None:
            stats.rows[name] = stats.rows.get(name, 0) + table.num_rows
    if stats is not None:
        for name, count in duplicates.items():
            stats.duplicates[name] = stats.duplicates.get(name, 0) + count
    return new_resources


def _json_typed(table: pa.Table, names: Iterable[str]) -> pa.Table:
    """`table` with its JSON text columns typed as Arrow's JSON extension type. DuckDB takes such a column into a
    JSON column as it is, where plain text is parsed to validate it (about 8 us a span of recorded content): the
    collector wrote that JSON itself (the decoders and redaction's masking, both parity- and fuzz-tested)."""
    for name in names:
        index = table.schema.get_field_index(name)
        if index < 0:
            continue
        column = table.column(index)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            json_type = pa.json_(column.type)
            table = table.set_column(index, pa.field(name, json_type), column.cast(json_type))
    return table


def _unseen_resources(table: pa.Table, known: set[int]) -> pa.Table:
    """Drop resources already in the store and duplicates within this group."""
    ids = table.column("resource_id")
    if known:
        table = table.filter(pc.invert(pc.is_in(ids, value_set=pa.array(list(known), pa.int64()))))
    if table.num_rows > 1:
        seen: set[int] = set()
        keep = []
        for resource_id in table.column("resource_id").to_pylist():
            keep.append(resource_id not in seen)
            seen.add(resource_id)
        table = table.filter(pa.array(keep))
    return table


class StoreWriter:
    """Owns the read-write connection; `submit()` from any thread, `done` is called after the commit."""

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        *,
        max_group_rows: int = 65_536,
        checkpoint_rows: int = CHECKPOINT_SPAN_ROWS,
        checkpoint_wal_bytes: int = CHECKPOINT_WAL_BYTES,
        row_group_rows: int = ROW_GROUP_ROWS,
        group_wait_seconds: float = GROUP_WAIT_SECONDS,
    ) -> None:
        self._con = connection
        self._row_group_rows = row_group_rows
        self._group_wait = group_wait_seconds
        # How many requests are on their way (decoding): set by the pipeline that submits them.
        self.incoming: Callable[[], int] = lambda: 0
        self._queue: queue.Queue[tuple[Batch, Done] | None] = queue.Queue()
        self._max_group_rows = max_group_rows
        self._thread = threading.Thread(target=self._run, name="tracekit-store-writer", daemon=True)
        self._checkpointer = Checkpointer(store_cursor(connection), checkpoint_wal_bytes,
                                          rows_written=lambda: self.stats.rows.get("spans", 0),
                                          rows_per_checkpoint=checkpoint_rows)
        self._sequence = next_sequence(connection)
        self._known_resources = {
            row[0] for row in connection.execute("SELECT resource_id FROM resources").fetchall()
        }
        self._recent = dedup.RecentGroups()
        self._recent.load(connection)
        self.stats = WriterStats()
        self._lock = threading.Lock()  # serializes maintenance work (retention) with commits

    @property
    def last_sequence(self) -> int:
        """The ingest_seq of the newest committed group."""
        return self._sequence - 1

    def start(self) -> None:
        self._thread.start()
        self._checkpointer.start()

    def submit(self, batch: Batch, done: Done) -> None:
        """Queue a decoded batch; `done(None)` runs once it is committed, `done(error)` if the commit failed."""
        self._queue.put((batch, done))

    def run_exclusive(self, work: Callable[[duckdb.DuckDBPyConnection], None]) -> None:
        """Run maintenance (retention deletes, checkpoints) on the writer's connection between commits."""
        with self._lock:
            work(self._con)

    def stop(self) -> None:
        """Commit everything already queued, then stop the thread (and fold the WAL into the file)."""
        self._queue.put(None)
        self._thread.join()
        self._checkpointer.stop()

    def _take_group(self, first: tuple[Batch, Done]) -> tuple[list[tuple[Batch, Done]], bool]:
        """What queued up, and, while that is less than a row group and more requests are being decoded, what
        arrives within GROUP_WAIT_SECONDS."""
        group = [first]
        rows = first[0].accepted
        stopping = False
        deadline = time.monotonic() + self._group_wait
        while rows < self._max_group_rows:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                remaining = deadline - time.monotonic()
                if rows >= self._row_group_rows or remaining <= 0 or not self.incoming():
                    break
                try:  # polled, so that a group stops waiting once nothing more is being decoded
                    item = self._queue.get(timeout=min(remaining, 0.002))
                except queue.Empty:
                    continue
            if item is None:
                stopping = True
                break
            group.append(item)
            rows += item[0].accepted
        return group, stopping

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            group, stopping = self._take_group(item)
            self._commit(group)
            if stopping:
                break

    def _commit(self, group: list[tuple[Batch, Done]]) -> None:
        started = time.perf_counter()
        error: BaseException | None = None
        with self._lock:
            try:
                self._con.execute("BEGIN TRANSACTION")
                new_resources = write_batches(
                    self._con, (batch for batch, _ in group), self._sequence, self._known_resources, self.stats,
                    self._recent,
                )
                self._con.execute("COMMIT")
                self._known_resources |= new_resources
                self._sequence += 1
                self.stats.commits += 1
            except BaseException as failure:  # the requests must hear about it, whatever it was
                error = failure
                self.stats.failed_commits += 1
                log.exception("commit of %d requests failed", len(group))
                try:
                    self._con.execute("ROLLBACK")
                except duckdb.Error:
                    pass
        self.stats.last_commit_seconds = time.perf_counter() - started
        for _, done in group:
            done(error)


class Checkpointer:
    """Folds the WAL into the database file from its own thread, so checkpoints do not stall commits.

    Measured here: with DuckDB's in-commit automatic checkpoints single commits stalled for 1.5-3 s as the table grew;
    checkpointing from a second connection while the writer keeps committing kept commit latency under 0.7 s.
    Under load it checkpoints once `rows_per_checkpoint` span rows arrived since the last one (whole row groups, see
    CHECKPOINT_SPAN_ROWS) or the WAL passed `wal_bytes`; when the WAL stops growing (an idle moment), at once.
    """

    def __init__(self, cursor: duckdb.DuckDBPyConnection, wal_bytes: int, interval_seconds: float = 0.5, *,
                 rows_written: Callable[[], int] = lambda: 0, rows_per_checkpoint: int = CHECKPOINT_SPAN_ROWS) -> None:
        self._cursor = cursor
        self._wal_bytes = wal_bytes
        self._interval = interval_seconds
        self._rows_written = rows_written
        self._rows_per_checkpoint = rows_per_checkpoint
        self._rows_at_checkpoint = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tracekit-checkpointer", daemon=True)
        self.checkpoints = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.checkpoint()
        self._cursor.close()

    def wal_size(self) -> int:
        row = self._cursor.execute(
            "SELECT wal_size FROM pragma_database_size() WHERE database_name = current_database()").fetchall()
        return duckdb_size_bytes(row[0][0]) if row else 0

    def checkpoint(self) -> None:
        rows = self._rows_written()
        try:
            self._cursor.execute("CHECKPOINT")
            self._rows_at_checkpoint = rows
            self.checkpoints += 1
        except duckdb.Error as error:
            log.warning("checkpoint skipped: %s", error)

    def _run(self) -> None:
        last_wal = 0
        while not self._stop.wait(self._interval):
            try:
                wal = self.wal_size()
            except duckdb.Error:
                continue
            due = self._rows_written() - self._rows_at_checkpoint >= self._rows_per_checkpoint
            idle = 0 < wal == last_wal  # nothing committed for a whole interval
            if due or idle or wal >= self._wal_bytes:
                self.checkpoint()
                wal = 0
            last_wal = wal


def duckdb_size_bytes(value: object) -> int:
    """pragma_database_size() reports sizes as text such as '12.5 MiB'."""
    if isinstance(value, (int, float)):
        return int(value)
    number, _, unit = str(value).strip().partition(" ")
    factor = {"bytes": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4,
              "KB": 1000, "MB": 1000**2, "GB": 1000**3, "TB": 1000**4}.get(unit, 1)
    try:
        return int(float(number) * factor)
    except ValueError:
        return 0
