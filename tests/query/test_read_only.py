"""The query surface is read-only by construction (issue 13.2): every kind of DuckDB statement, EXPLAIN ANALYZE of
each, multiple statements and state-changing table functions are refused with a clear error, through the store
file, through a running collector's read API, through `tracekit query` (SQL and KQL) and through KQL; the store's
contents, catalog and settings are the same afterwards.

The TUI's KQL console is covered in tests/tui/test_dashboards_kql.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import duckdb
import pytest

from tests.query.spanfactory import collector_store
from tests.query.workload import make_workload
from tracekit.cli import main
from tracekit.errors import QueryError
from tracekit.query.kql import run_kql
from tracekit.store.read_only import in_read_only_transaction
from tracekit.store.reader import LocalReader, RemoteReader, open_reader

# Statements that change the store, its catalog, its settings or the files around it, one or more of every DuckDB
# statement type that is not a SELECT.
WRITES = [
    "INSERT INTO spans SELECT * FROM spans",
    "INSERT OR REPLACE INTO tracekit_meta VALUES ('schema_version', '99')",
    "UPDATE spans SET name = 'x'",
    "DELETE FROM spans",
    "TRUNCATE spans",
    "MERGE INTO spans USING (SELECT 1 AS k) s ON false WHEN NOT MATCHED THEN DO NOTHING",
    "CREATE TABLE copy AS SELECT * FROM spans",
    "CREATE TEMP TABLE scratch AS SELECT 1 AS a",
    "CREATE VIEW v AS SELECT 1 AS a",
    "CREATE OR REPLACE VIEW dependencies AS SELECT 1 AS a",
    "CREATE MACRO m(x) AS x",
    "CREATE SEQUENCE s",
    "CREATE INDEX i ON spans (name)",
    "CREATE SCHEMA other",
    "CREATE TYPE mood AS ENUM ('a', 'b')",
    "CREATE SECRET s (TYPE s3, KEY_ID 'x', SECRET 'y')",
    "DROP TABLE spans",
    "DROP VIEW IF EXISTS dependencies",
    "ALTER TABLE spans RENAME TO spans_old",
    "ALTER TABLE spans ADD COLUMN extra INTEGER",
    "ALTER TABLE spans RENAME COLUMN name TO label",
    "COPY spans TO 'tracekit-leak.csv'",
    "COPY spans FROM 'tracekit-leak.csv'",
    "COPY FROM DATABASE traces TO memory",
    "EXPORT DATABASE 'tracekit-export'",
    "IMPORT DATABASE 'tracekit-export'",
    "ATTACH ':memory:' AS scratch",
    "ATTACH 'other.duckdb' AS other",
    "DETACH DATABASE IF EXISTS other",
    "USE memory",
    "INSTALL httpfs",
    "LOAD json",
    "SET memory_limit = '1GB'",
    "SET enable_external_access = true",
    "RESET memory_limit",
    "SET VARIABLE x = 1",
    "PRAGMA enable_profiling",
    "PRAGMA disable_checkpoint_on_shutdown",
    "CHECKPOINT",
    "FORCE CHECKPOINT",
    "CALL checkpoint()",
    "CALL pragma_version()",
    "VACUUM",
    "ANALYZE",
    "BEGIN TRANSACTION",
    "COMMIT",
    "ROLLBACK",
    "ABORT",
    "PREPARE p AS SELECT 1",
    "EXECUTE p",
    "DEALLOCATE p",
    "PIVOT spans ON kind",
    "UPDATE EXTENSIONS",
]
# EXPLAIN ANALYZE runs the statement it explains: of anything but a SELECT it is a write.
EXPLAINED = [f"EXPLAIN ANALYZE {sql}" for sql in WRITES[:22]] + [
    "EXPLAIN DELETE FROM spans",
    "EXPLAIN (ANALYZE) DELETE FROM spans",
    "EXPLAIN (ANALYZE, FORMAT json) UPDATE spans SET name = 'x'",
    "/* a comment */ EXPLAIN ANALYZE DELETE FROM spans",
]
SEVERAL = [
    "SELECT 1; DELETE FROM spans",
    "DELETE FROM spans; SELECT 1",
    "SELECT 1; SELECT 2",
    "BEGIN; DELETE FROM spans; COMMIT",
    "COMMIT; DELETE FROM spans",
]
# SELECTs that call table functions which write, change settings or run other SQL.
FUNCTIONS = [
    "SELECT * FROM checkpoint()",
    "SELECT * FROM force_checkpoint()",
    "SELECT * FROM spans, checkpoint()",
    "SELECT (SELECT count(*) FROM checkpoint()) AS x",
    "WITH c AS (SELECT * FROM checkpoint()) SELECT * FROM c",
    "SELECT * FROM query('DELETE FROM spans')",
    "SELECT * FROM query_table('spans')",
    "SELECT * FROM json_execute_serialized_sql(json_serialize_sql('SELECT 1'))",
    "SELECT * FROM disable_checkpoint_on_shutdown()",
    "SELECT * FROM enable_profiling()",
    "SELECT * FROM truncate_duckdb_logs()",
    "SELECT * FROM copy_database('traces', 'memory')",
    "SELECT * FROM import_database('tracekit-export')",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_duckdb('other.duckdb')",
    "SELECT * FROM glob('*')",
    "WITH d AS (DELETE FROM spans RETURNING *) SELECT * FROM d",
]
REFUSED = WRITES + EXPLAINED + SEVERAL + FUNCTIONS

# What stays allowed: reads, explained reads, catalog and introspection.
ALLOWED = [
    "SELECT count(*) AS n FROM spans",
    "FROM spans SELECT name LIMIT 1",
    "WITH x AS (SELECT name FROM spans) SELECT count(*) FROM x",
    "EXPLAIN SELECT count(*) FROM spans",
    "EXPLAIN ANALYZE SELECT count(*) FROM spans",
    "EXPLAIN (FORMAT json) SELECT 1",
    "DESCRIBE spans",
    "SUMMARIZE spans",
    "SHOW TABLES",
    "VALUES (1), (2)",
    "SELECT * FROM duckdb_tables()",
    "SELECT * FROM range(3)",
    "SELECT * FROM pragma_table_info('spans')",
    "SELECT count(*) FROM dependencies",
]

# Statement shapes and KQL that try to write through the KQL path.
KQL_WRITES = [
    ".drop table spans",
    ".set-or-append spans <| spans | take 1",
    ".append spans <| spans",
    ".delete table spans records <| spans | take 1",
    ".create table copy (a:int)",
    ".alter table spans (a:int)",
    ".rename table spans to x",
    'dependencies | where name == "x\'); DELETE FROM spans; --"',
    "dependencies | where name == 'x\\'); DELETE FROM spans; --'",
    'print x = "1"; DELETE FROM spans',
]

FINGERPRINT = """
SELECT
    (SELECT count(*) FROM spans) AS spans,
    (SELECT sum(hash(trace_id, span_id, name, kind, start_time_ns, end_time_ns, CAST(attributes AS VARCHAR)))
     FROM spans) AS spans_checksum,
    (SELECT count(*) FROM logs) AS logs,
    (SELECT sum(hash(time_ns, CAST(body AS VARCHAR), CAST(attributes AS VARCHAR))) FROM logs) AS logs_checksum,
    (SELECT count(*) FROM span_events) AS events,
    (SELECT count(*) FROM resources) AS resources,
    (SELECT string_agg(key || '=' || value, ',' ORDER BY key) FROM tracekit_meta) AS meta,
    (SELECT string_agg(schema_name || '.' || table_name, ',' ORDER BY schema_name, table_name) FROM duckdb_tables())
        AS tables,
    (SELECT string_agg(schema_name || '.' || view_name, ',' ORDER BY schema_name, view_name)
     FROM duckdb_views() WHERE NOT internal) AS views,
    (SELECT string_agg(database_name, ',' ORDER BY database_name) FROM duckdb_databases()) AS databases,
    (SELECT count(*) FROM duckdb_sequences()) AS sequences,
    current_setting('enable_external_access') AS external_access,
    current_setting('memory_limit') AS memory_limit
"""


def fingerprint(reader) -> dict:
    return reader.sql(FINGERPRINT).to_pylist()[0]


@pytest.fixture(scope="module")
def workload():
    return make_workload(runs=3, seed=11)


@pytest.fixture(scope="module")
def file_reader(stopped_store):
    """One read-only open for the module (opening and installing the views per test would dominate the time)."""
    reader = LocalReader.open_file(stopped_store)
    yield reader
    reader.close()


@pytest.fixture(scope="module")
def collector(workload, tmp_path_factory):
    with collector_store(tmp_path_factory.mktemp("readonly-api"), workload.spans, workload.logs) as running:
        assert running.views.installed.wait(120)  # the store's catalog is settled before fingerprints are taken
        yield running


@pytest.fixture(autouse=True)
def in_scratch_directory(tmp_path, monkeypatch):
    """Relative file names in the statements land in a scratch directory, checked to stay empty."""
    monkeypatch.chdir(tmp_path)
    yield
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for part in (path, path.with_name(path.name + ".wal")):
        if part.exists():
            digest.update(part.read_bytes())
    return digest.hexdigest()


def _assert_refused(reader, sql: str) -> None:
    with pytest.raises(QueryError) as refused:
        reader.sql(sql)
    message = str(refused.value)
    assert message and "Traceback" not in message


@pytest.mark.parametrize("sql", REFUSED)
def test_stopped_store_refuses(stopped_store, file_reader, sql):
    before_bytes = _file_digest(stopped_store)
    before = fingerprint(file_reader)
    _assert_refused(file_reader, sql)
    assert fingerprint(file_reader) == before
    assert _file_digest(stopped_store) == before_bytes


@pytest.mark.parametrize("sql", REFUSED)
def test_read_api_refuses(collector, sql):
    reader = open_reader(collector.db_path)
    assert isinstance(reader, RemoteReader)
    inside = collector.reader()  # the collector's own view: its catalog, databases and settings
    before, before_inside = fingerprint(reader), fingerprint(inside)
    _assert_refused(reader, sql)
    assert fingerprint(reader) == before
    assert fingerprint(inside) == before_inside


@pytest.mark.parametrize("sql", ALLOWED)
def test_reads_still_work_on_both_paths(file_reader, collector, sql):
    assert open_reader(collector.db_path).sql(sql).num_rows > 0
    assert file_reader.sql(sql).num_rows > 0


def test_explain_analyze_delete_leaves_every_span(collector, workload):
    """The reported case: with a collector running, `tracekit query --sql "EXPLAIN ANALYZE DELETE FROM spans"`
    deleted the spans."""
    code = main(["query", "--db", str(collector.db_path), "--sql", "EXPLAIN ANALYZE DELETE FROM spans"])
    assert code == 2
    assert collector.reader().sql("SELECT count(*) AS n FROM spans").to_pylist() == [{"n": len(workload.spans)}]


def _cli(capsys, db: Path, *argv: str) -> tuple[int, str, str]:
    code = main(["query", "--db", str(db), *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_sql_refuses_through_the_read_api_and_the_file(stopped_store, collector, capsys):
    before_api, before_bytes = fingerprint(collector.reader()), _file_digest(stopped_store)
    for db in (collector.db_path, stopped_store):
        for sql in REFUSED:
            code, out, err = _cli(capsys, db, "--sql", sql)
            assert code == 2, (sql, out, err)
            assert err.startswith("tracekit: error: ") and err.count("\n") == 1, (sql, err)
            assert out == ""
    assert fingerprint(collector.reader()) == before_api
    assert _file_digest(stopped_store) == before_bytes


@pytest.mark.parametrize("text", KQL_WRITES)
def test_kql_writes_are_refused(stopped_store, file_reader, collector, text, capsys):
    before_api, before_bytes = fingerprint(collector.reader()), _file_digest(stopped_store)
    # The module's open of the stopped store: a new one would create the store's missing views again each time.
    remote = open_reader(collector.db_path)
    assert isinstance(remote, RemoteReader)
    try:
        for db, reader in ((collector.db_path, remote), (stopped_store, file_reader)):
            try:
                table = run_kql(reader, text)
            except QueryError as error:
                assert str(error)
            else:  # a string that merely contains SQL is a string: it matches nothing
                assert table.num_rows == 0
            code, _, err = _cli(capsys, db, text)
            assert code in (0, 2) and "Traceback" not in err
    finally:
        remote.close()
    assert fingerprint(collector.reader()) == before_api
    assert _file_digest(stopped_store) == before_bytes


def test_a_statement_that_ends_its_transaction_is_refused(tmp_path):
    """The second layer on its own: whatever slips past the statement check cannot leave the read-only
    transaction unnoticed."""
    connection = duckdb.connect(str(tmp_path / "t.duckdb"))
    connection.execute("CREATE TABLE t AS SELECT 1 AS a")
    with pytest.raises(duckdb.TransactionException):
        in_read_only_transaction(connection, lambda: connection.execute("DELETE FROM t").fetchall())
    with pytest.raises(QueryError, match="ended its read-only transaction"):
        in_read_only_transaction(connection, lambda: connection.execute("COMMIT").fetchall())
    assert connection.execute("SELECT count(*) FROM t").fetchall() == [(1,)]
    connection.close()
    (tmp_path / "t.duckdb").unlink()


def test_the_mcp_query_tool_refuses_too(stopped_store, file_reader, collector):
    """`tracekit mcp`'s run_query tool (tracekit.readout.tables.run_query) reaches the same readers."""
    from tracekit.readout.tables import run_query

    before_api, before_bytes = fingerprint(collector.reader()), _file_digest(stopped_store)
    remote = open_reader(collector.db_path)
    for reader in (file_reader, remote):
        for sql in REFUSED:
            with pytest.raises(QueryError):
                run_query(reader, sql, language="sql")
        for text in KQL_WRITES:
            try:
                assert run_query(reader, text)["page"]["total"] == 0, text
            except QueryError:
                pass
    assert fingerprint(collector.reader()) == before_api
    assert _file_digest(stopped_store) == before_bytes
