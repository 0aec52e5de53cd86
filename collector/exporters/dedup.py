"""Each span, log record and metric point stored once, however often a sender delivers it.

An OTLP exporter whose acknowledgement got lost (a timeout during a slow commit, a dropped connection) sends the same
request again: the copy can land in the same commit group as the first delivery, in a later one, or after a restart
of the collector. The store writer calls `drop_duplicates` on each commit group's tables inside the commit's
transaction, so the check sees exactly what is committed, in commit order.

The check covers the rows of recent commit groups only (`RecentGroups`: the last 10 minutes, at most 2^18 rows): the
start times of their spans, kept in memory, pick the spans that may be copies, and only those are joined against
the stored rows of those groups (the ingest_seq column is in insertion order, so DuckDB skips older row groups by
their min/max). A sender's retries come within seconds (an immediate retry of a broken connection, or after its
timeout and backoff); the cost per commit stays flat as the store grows. After a restart the groups already stored count as committed at startup. A copy that arrives
later than that is stored again. `tracekit import` without a collector checks against the whole store.

What counts as the same item:
- a span: its (trace_id, span_id). A stored copy is found through its start time as well (a retry carries the same
  span): the group's spans are the small side of the join, DuckDB builds its hash table from them and pushes their
  min/max start times into the scan of `spans`, so only the row groups holding those times are read, whatever the
  store's size. A span's events and links are stored with the copy that is kept.
- a log record or a metric point: OTLP gives them no id, so the identity is the whole stored row: times, content
  (body, attributes, value, buckets, ...), severity, trace context, scope and resource. Two records equal in all of
  that, to the nanosecond, cannot be told apart and are stored once.

Why here and not as a processor: processors run before the commit, possibly in other processes; an id marked as seen
there would make the collector drop the retry of a request whose first delivery failed to commit.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Callable

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

_INCOMING = "_tk_incoming"


WINDOW_SECONDS = 600.0
WINDOW_ROWS = 2**18  # two DuckDB row groups; probing the window's start times costs ~15 ns a row per commit


class RecentGroups:
    """The commit groups a new group is checked against: those of the last `seconds`, holding at most `rows` rows,
    with the start times of their spans kept in memory (8 bytes a span) as a first, cheap filter."""

    def __init__(self, seconds: float = WINDOW_SECONDS, rows: int = WINDOW_ROWS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._seconds, self._max_rows, self._clock = seconds, rows, clock
        # (ingest_seq, committed at, rows, start_time_ns of its spans)
        self._groups: deque[tuple[int, float, int, pa.Array]] = deque()
        self._rows = 0

    def load(self, con: duckdb.DuckDBPyConnection) -> None:
        """Take the newest groups already in the store (up to the row bound) as committed now: after a restart,
        the retries of requests whose acknowledgement the restart cut off still find their first copy."""
        # pyarrow's first binary_join_element_wise loads pandas when it is installed (0.2-0.4 s): at startup, not in
        # the first commit, whose senders wait for it.
        _span_keys(pa.table({"trace_id": pa.array([], pa.string()), "span_id": pa.array([], pa.string())}))
        groups = con.execute(
            "SELECT ingest_seq, count(*) FROM (SELECT ingest_seq FROM spans UNION ALL SELECT ingest_seq FROM logs "
            "UNION ALL SELECT ingest_seq FROM metric_points) GROUP BY ingest_seq ORDER BY ingest_seq DESC").fetchall()
        rows, loaded = 0, []
        for sequence, count in groups:
            if rows >= self._max_rows:
                break
            loaded.append((sequence, count))
            rows += count
        if not loaded:
            return
        starts = con.sql(f"SELECT ingest_seq, start_time_ns FROM spans WHERE ingest_seq >= {int(loaded[-1][0])}"
                         ).to_arrow_table()
        for sequence, count in reversed(loaded):
            mine = starts.filter(pc.equal(starts.column("ingest_seq"), sequence)).column("start_time_ns")
            self.committed(sequence, count, mine.combine_chunks() if mine.num_chunks else pa.array([], pa.int64()))

    def committed(self, sequence: int, rows: int, starts: pa.Array) -> None:
        self._groups.append((sequence, self._clock(), rows, starts))
        self._rows += rows

    def first_sequence(self, next_sequence: int) -> int:
        """The oldest ingest_seq still in the window (`next_sequence` when the window is empty)."""
        oldest = self._clock() - self._seconds
        while self._groups and (self._groups[0][1] < oldest or self._rows > self._max_rows):
            self._rows -= self._groups.popleft()[2]
        return self._groups[0][0] if self._groups else next_sequence

    def start_times(self) -> pa.ChunkedArray:
        return pa.chunked_array([group[3] for group in self._groups], pa.int64())


def drop_duplicates(con: duckdb.DuckDBPyConnection, tables: dict[str, pa.Table], sequence: int,
                    window: RecentGroups | None = None) -> dict[str, int]:
    """Leave out of `tables` (in place) the repeats within and the items stored by the groups of `window` (the whole
    store without one); return how many, per table. `sequence` is the ingest_seq this group will get."""
    before = {name: table.num_rows for name, table in tables.items()}
    since = window.first_sequence(sequence) if window is not None else 0
    spans = tables.get("spans")
    if spans is not None:
        kept = _unique_spans(con, spans, since, window)
        if kept.num_rows < spans.num_rows:
            tables["spans"] = kept
            keys = _span_keys(kept)
            for name, index in (("span_events", "event_index"), ("span_links", "link_index")):
                if name in tables:
                    children = tables[name]
                    children = children.filter(pc.is_in(_span_keys(children), value_set=keys))
                    tables[name] = _first_of_each(children, ["trace_id", "span_id", index])
    for name in ("logs", "metric_points"):
        if name in tables:
            tables[name] = _unique_rows(con, name, tables[name], since)
    if window is not None:
        rows = sum(tables[name].num_rows for name in ("spans", "logs", "metric_points") if name in tables)
        starts = tables["spans"].column("start_time_ns").combine_chunks() if "spans" in tables else pa.array(
            [], pa.int64())
        window.committed(sequence, rows, starts)  # if the commit then fails, the join below still decides
    return {name: rows - tables[name].num_rows for name, rows in before.items() if tables[name].num_rows < rows}


def _unique_spans(con: duckdb.DuckDBPyConnection, spans: pa.Table, since: int, window: RecentGroups | None
                  ) -> pa.Table:
    # Span ids are random 64-bit numbers: when they are all distinct (the usual group), so are the (trace, span) pairs.
    if pc.count_distinct(spans.column("span_id")).as_py() < spans.num_rows:
        spans = _first_of_each(spans, ["trace_id", "span_id"])
    candidates = spans
    if window is not None:
        # A stored copy has the same start time: only spans whose start time recurs in the window need the join.
        # Probing the window's start times costs ~15 ns a row, the join that reads the stored ids 20-40 ns a row
        # (docs/decisions/2026-12-06-store-each-item-once.md).
        starts = spans.column("start_time_ns")
        recurring = window.start_times()
        recurring = recurring.filter(pc.is_in(recurring, value_set=starts.combine_chunks()))
        if len(recurring) == 0:
            return spans
        candidates = spans.filter(pc.is_in(starts, value_set=recurring.combine_chunks()))
    con.register(_INCOMING, candidates.select(["trace_id", "span_id", "start_time_ns"]))
    try:
        stored = con.sql(
            f"SELECT i.trace_id, i.span_id FROM {_INCOMING} i JOIN spans s ON s.start_time_ns = i.start_time_ns "
            f"AND s.span_id = i.span_id AND s.trace_id = i.trace_id WHERE s.ingest_seq >= {int(since)}"
        ).to_arrow_table()
    finally:
        con.unregister(_INCOMING)
    if stored.num_rows == 0:
        return spans
    return spans.filter(pc.invert(pc.is_in(_span_keys(spans), value_set=_span_keys(stored))))


def _unique_rows(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table, since: int) -> pa.Table:
    """The distinct rows of `table` that are not stored in `name` yet (NULL equal to NULL, NaN to NaN)."""
    # Not the TIMESTAMP columns: they repeat the *_ns ones, at the store's microsecond precision.
    same = " AND ".join(f's."{field.name}" IS NOT DISTINCT FROM i."{field.name}"' for field in table.schema
                        if field.name != "time_ns" and not pa.types.is_timestamp(field.type))
    con.register(_INCOMING, table)
    try:
        # The stored side is pruned through the incoming times, as for spans; EXCEPT keeps each distinct row once.
        return con.sql(
            f"WITH i AS (SELECT DISTINCT * FROM {_INCOMING}) "
            f"SELECT * FROM i EXCEPT SELECT i.* FROM i JOIN {name} s ON s.time_ns = i.time_ns AND {same} "
            f"WHERE s.ingest_seq >= {int(since)}"
        ).to_arrow_table().cast(table.schema)
    finally:
        con.unregister(_INCOMING)


def _span_keys(table: pa.Table) -> pa.ChunkedArray:
    """trace_id and span_id side by side: both are fixed-width hex, so the pair reads back unambiguously."""
    return pc.binary_join_element_wise(table.column("trace_id"), table.column("span_id"), "")


def _first_of_each(table: pa.Table, keys: list[str]) -> pa.Table:
    """The first row of each distinct `keys` value, in the table's order."""
    numbered = table.select(keys).append_column("_row", pa.array(range(table.num_rows), pa.int64()))
    first = numbered.group_by(keys, use_threads=False).aggregate([("_row", "min")]).column("_row_min")
    return table.take(first.take(pc.sort_indices(first)))
