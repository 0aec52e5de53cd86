"""The DuckDB store's tables, its schema version stamp and the migrations between versions.

One file holds everything the collector receives. Spans carry typed columns for what queries filter and group on
(ids as lowercase hex, name, kind, times in ns and as timestamps, status, service, the main `gen_ai.*` keys) and the
full attribute map as JSON. Resources are stored once per distinct attribute set and referenced by id.

Add a migration by appending to MIGRATIONS; never edit a step that has shipped. A store stamped with a newer version
than this code knows is refused with a clear message instead of being silently misread.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Callable

from tracekit.errors import StoreError
from tracekit.store.engine import duckdb

SPAN_COLUMNS_DDL = """
    ingest_seq BIGINT NOT NULL,          -- commit group sequence: the live tail polls `ingest_seq > last`
    trace_id VARCHAR NOT NULL,           -- 32 lowercase hex
    span_id VARCHAR NOT NULL,            -- 16 lowercase hex
    parent_span_id VARCHAR,              -- NULL for a root span
    trace_state VARCHAR,
    flags UINTEGER,
    name VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,               -- UNSPECIFIED, INTERNAL, SERVER, CLIENT, PRODUCER, CONSUMER
    start_time_ns BIGINT NOT NULL,       -- Unix epoch, ns
    end_time_ns BIGINT NOT NULL,
    duration_ns BIGINT NOT NULL,
    start_time TIMESTAMP NOT NULL,       -- UTC, microseconds; what time-range predicates use (zone maps prune on it)
    end_time TIMESTAMP NOT NULL,
    status_code VARCHAR NOT NULL,        -- UNSET, OK, ERROR
    status_message VARCHAR,
    resource_id BIGINT NOT NULL,
    service_name VARCHAR,
    scope_name VARCHAR,
    scope_version VARCHAR,
    operation_name VARCHAR,              -- gen_ai.operation.name
    provider_name VARCHAR,               -- gen_ai.provider.name, else gen_ai.system
    request_model VARCHAR,
    response_model VARCHAR,
    response_id VARCHAR,
    agent_name VARCHAR,
    agent_id VARCHAR,
    conversation_id VARCHAR,             -- gen_ai.conversation.id, else session.id / thread_id
    tool_name VARCHAR,
    tool_call_id VARCHAR,
    error_type VARCHAR,
    input_tokens BIGINT,
    output_tokens BIGINT,
    attributes JSON NOT NULL,            -- every attribute, OTLP AnyValue mapped to JSON
    event_count UINTEGER NOT NULL,
    link_count UINTEGER NOT NULL,
    dropped_attributes_count UINTEGER,
    dropped_events_count UINTEGER,
    dropped_links_count UINTEGER
"""

_V1 = [
    """
    CREATE TABLE tracekit_meta (
        key VARCHAR PRIMARY KEY,
        value VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE resources (
        resource_id BIGINT NOT NULL,     -- stable hash of the resource's attributes and schema url
        service_name VARCHAR,
        service_namespace VARCHAR,
        service_instance_id VARCHAR,
        service_version VARCHAR,
        schema_url VARCHAR,
        attributes JSON NOT NULL,
        first_seen TIMESTAMP NOT NULL
    )
    """,
    f"CREATE TABLE spans ({SPAN_COLUMNS_DDL})",
    """
    CREATE TABLE span_events (
        ingest_seq BIGINT NOT NULL,
        trace_id VARCHAR NOT NULL,
        span_id VARCHAR NOT NULL,
        event_index UINTEGER NOT NULL,   -- position within the span, keeps the sender's order
        time_ns BIGINT NOT NULL,
        time TIMESTAMP NOT NULL,
        name VARCHAR NOT NULL,
        attributes JSON NOT NULL,
        dropped_attributes_count UINTEGER
    )
    """,
    """
    CREATE TABLE span_links (
        ingest_seq BIGINT NOT NULL,
        trace_id VARCHAR NOT NULL,
        span_id VARCHAR NOT NULL,
        link_index UINTEGER NOT NULL,
        linked_trace_id VARCHAR NOT NULL,
        linked_span_id VARCHAR NOT NULL,
        trace_state VARCHAR,
        flags UINTEGER,
        attributes JSON NOT NULL,
        dropped_attributes_count UINTEGER
    )
    """,
    """
    CREATE TABLE logs (
        ingest_seq BIGINT NOT NULL,
        time_ns BIGINT NOT NULL,         -- the record's time, else its observed time
        observed_time_ns BIGINT,
        time TIMESTAMP NOT NULL,
        severity_number INTEGER,
        severity_text VARCHAR,
        body JSON,                       -- OTLP AnyValue mapped to JSON
        event_name VARCHAR,              -- OTLP event_name, else the event.name / microsoft.custom_event.name attribute
        trace_id VARCHAR,                -- correlation with the span that was current when the record was emitted
        span_id VARCHAR,
        flags UINTEGER,
        resource_id BIGINT NOT NULL,
        service_name VARCHAR,
        scope_name VARCHAR,
        scope_version VARCHAR,
        attributes JSON NOT NULL,
        dropped_attributes_count UINTEGER
    )
    """,
    """
    CREATE TABLE metric_points (
        ingest_seq BIGINT NOT NULL,
        time_ns BIGINT NOT NULL,
        start_time_ns BIGINT,
        time TIMESTAMP NOT NULL,
        metric_name VARCHAR NOT NULL,
        description VARCHAR,
        unit VARCHAR,
        metric_type VARCHAR NOT NULL,    -- gauge, sum, histogram, exponential_histogram, summary
        temporality VARCHAR,             -- DELTA, CUMULATIVE
        is_monotonic BOOLEAN,
        value DOUBLE,                    -- gauge and sum points
        count UBIGINT,                   -- histogram and summary points
        sum DOUBLE,
        min DOUBLE,
        max DOUBLE,
        bucket_counts UBIGINT[],         -- explicit-bucket histograms
        explicit_bounds DOUBLE[],
        details JSON,                    -- exponential buckets, summary quantiles, exemplars
        flags UINTEGER,
        resource_id BIGINT NOT NULL,
        service_name VARCHAR,
        scope_name VARCHAR,
        scope_version VARCHAR,
        attributes JSON NOT NULL
    )
    """,
]

# v2: where each export / forward destination has got to (tracekit/export/cursor.py, collector/exporters/forwarders.py).
_V2 = [
    """
    CREATE TABLE export_cursors (
        cursor_id VARCHAR PRIMARY KEY,   -- hash of (destination, selection)
        destination VARCHAR NOT NULL,
        selection VARCHAR NOT NULL,
        ingest_seq BIGINT,               -- last span fully delivered, in (ingest_seq, trace_id, span_id) order
        trace_id VARCHAR,
        span_id VARCHAR,
        state JSON NOT NULL,             -- the whole cursor: items delivered past that point, retime shift, totals
        updated_at TIMESTAMP NOT NULL
    )
    """,
]

# v3: what each model call cost in USD, priced at ingest from its tokens (tracekit/cost.py, collector/processors/cost.py);
# NULL for spans that are not model calls and for models without a known price. Spans stored before stay NULL until
# `tracekit prices update --reprice` prices them.
_V3_COST = [
    "ALTER TABLE spans ADD COLUMN IF NOT EXISTS cost_usd DOUBLE",
]

# v4: spans.attributes (recorded message content lives there) compressed with ZSTD: half the CPU of DuckDB's own
# choice (dictionary + FSST) to write and a third of the bytes (docs/decisions/2026-12-07-attributes-zstd.md).
# DuckDB sets a column's compression only in CREATE TABLE, so the step creates the table again and copies the rows.
_ATTRIBUTES = "attributes JSON NOT NULL,"
_V4_SPANS = "spans_v4"
# ZSTD needs a file in DuckDB's storage format 1.2 or later: a store a DuckDB 1.x created in an older format keeps
# DuckDB's choice (the copy still happens, so the version stamp means one schema).
_ZSTD_STORAGE = (1, 2)
COPY_CHUNK_ROWS = 30 * 4096  # rows copied per INSERT: the unit of progress, whole row groups

ProgressCallback = Callable[[int, int], None]  # (row ids copied, row ids in all: rows deleted leave gaps)
log = logging.getLogger("tracekit.store")


def _spans_v4_ddl(zstd: bool) -> str:
    attributes = _ATTRIBUTES.replace(",", " USING COMPRESSION zstd,") if zstd else _ATTRIBUTES
    return f"CREATE TABLE {_V4_SPANS} ({SPAN_COLUMNS_DDL.replace(_ATTRIBUTES, attributes)}, cost_usd DOUBLE)"


def _storage_allows_zstd(con: duckdb.DuckDBPyConnection) -> bool:
    tags = con.execute("SELECT tags FROM duckdb_databases() WHERE database_name = current_database()").fetchall()
    version = (tags[0][0] or {}).get("storage_version", "") if tags else ""
    digits = version.lstrip("v").rstrip("+").split(".")
    try:
        return tuple(int(part) for part in digits[:2]) >= _ZSTD_STORAGE
    except ValueError:
        return True  # a format this code cannot read the version of is newer than it knows


def _recreate_spans_with_zstd(con: duckdb.DuckDBPyConnection, progress: ProgressCallback | None) -> None:
    """spans created again with ZSTD on attributes, its rows copied in ingest (row) order, inside the step's
    transaction: killed half way, the store still holds the old table and version 3, and the next open starts over."""
    con.execute(_spans_v4_ddl(_storage_allows_zstd(con)))
    last_row = con.execute("SELECT max(rowid) FROM spans").fetchall()[0][0]
    total = 0 if last_row is None else last_row + 1
    report = progress or _log_progress()
    for start in range(0, total, COPY_CHUNK_ROWS):
        # A rowid range is read from its row groups alone; INSERT ... SELECT keeps the order it reads in.
        con.execute(f"INSERT INTO {_V4_SPANS} BY NAME SELECT * FROM spans WHERE rowid >= ? AND rowid < ?",
                    [start, start + COPY_CHUNK_ROWS])
        report(min(start + COPY_CHUNK_ROWS, total), total)
    con.execute("DROP TABLE spans")
    con.execute(f"ALTER TABLE {_V4_SPANS} RENAME TO spans")


def _log_progress(every_seconds: float = 2.0) -> ProgressCallback:
    """A progress reporter for the copy: a line every few seconds, logged where logging is set up to show it (the
    collector's terminal), else on stderr (commands that open the store read-write and log nothing)."""
    started = last = time.monotonic()

    def report(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if done < total and now - last < every_seconds:
            return
        if done < total or now - started >= every_seconds:
            share = 100 * done / max(total, 1)
            line = f"upgrading the store (spans.attributes to ZSTD): {share:.0f} % of the spans copied"
            if log.isEnabledFor(logging.INFO):
                log.info("%s", line)
            else:
                print(f"tracekit: {line}", file=sys.stderr, flush=True)
        last = now
    return report


Step = str | Callable[[duckdb.DuckDBPyConnection, ProgressCallback | None], None]

# (version, steps) in order. The store's version is the last step applied.
MIGRATIONS: list[tuple[int, list[Step]]] = [
    (1, _V1),
    (2, _V2),
    (3, _V3_COST),
    (4, [_recreate_spans_with_zstd]),
]

SCHEMA_VERSION = MIGRATIONS[-1][0]

# The JSON columns of each table, as the migrations above leave them (a test compares this with a migrated store):
# the store writer hands their text to DuckDB typed as JSON (collector/exporters/store_writer.py).
JSON_COLUMNS: dict[str, tuple[str, ...]] = {
    "resources": ("attributes",),
    "spans": ("attributes",),
    "span_events": ("attributes",),
    "span_links": ("attributes",),
    "logs": ("body", "attributes"),
    "metric_points": ("details", "attributes"),
    "export_cursors": ("state",),
}


def stored_version(con: duckdb.DuckDBPyConnection) -> int:
    """The schema version stamped in the store, or 0 for an empty database."""
    # The stamp is read straight: a catalog function (duckdb_tables()) costs tens of ms on a fresh connection, and
    # every `tracekit query` opens one. The catalog is asked only when there is no tracekit_meta table.
    try:
        rows = con.execute("SELECT value FROM main.tracekit_meta WHERE key = 'schema_version'").fetchall()
    except duckdb.CatalogException:
        if con.execute("SELECT count(*) FROM duckdb_tables() WHERE NOT temporary").fetchall()[0][0]:
            raise StoreError("this DuckDB file has tables but is not a tracekit store (no tracekit_meta table)")
        return 0
    return int(rows[0][0]) if rows else 0


def migrate(con: duckdb.DuckDBPyConnection, progress: ProgressCallback | None = None) -> int:
    """Bring the store up to SCHEMA_VERSION, each step in its own transaction; return the version now stamped.

    `progress` hears how far a step that copies rows has got (by default it is logged every few seconds)."""
    current = started = stored_version(con)
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"the store has schema version {current}, newer than this tracekit understands ({SCHEMA_VERSION}); "
            "upgrade tracekit to open it"
        )
    for version, statements in MIGRATIONS:
        if version <= current:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            for statement in statements:
                if callable(statement):
                    statement(con, progress)
                else:
                    con.execute(statement)
            con.execute(
                "INSERT OR REPLACE INTO tracekit_meta VALUES ('schema_version', ?)", [str(version)]
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
        current = version
    if 0 < started < current:
        con.execute("CHECKPOINT")  # the replaced table's blocks free for reuse now, not at the next checkpoint
    return current


def check_readable(con: duckdb.DuckDBPyConnection) -> int:
    """For read-only opens: the store's version, or a clear error when it cannot be read by this code."""
    version = stored_version(con)
    if version == 0:
        raise StoreError("the store is empty: start the collector (`tracekit collect`) to create it")
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"the store has schema version {version}, newer than this tracekit understands ({SCHEMA_VERSION})"
        )
    return version
