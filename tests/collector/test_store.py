"""Store ownership, schema versions, the read API, and retention."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import urllib.request

import duckdb
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracekit.collector import retention
from tracekit.collector.processors.normalize import decode_traces
from tracekit.collector.exporters.store_writer import write_batches
from tracekit.errors import QueryError, StoreError
from tracekit.store import schema
from tracekit.store import database
from tracekit.store.database import open_store, open_store_readonly
from tracekit.store.paths import state_file_for
from tracekit.store.reader import RemoteReader, open_reader, process_start, read_state


def _batch(start_ns: int, count: int, first_id: int = 1, pad: int = 50):
    request = ExportTraceServiceRequest()
    scope = request.resource_spans.add().scope_spans.add()
    for index in range(count):
        span = scope.spans.add()
        span.trace_id = (first_id + index).to_bytes(16, "big")
        span.span_id = (first_id + index).to_bytes(8, "big")
        span.name = "old" if start_ns < time.time_ns() - 86400e9 else "new"
        span.start_time_unix_nano = start_ns + index
        span.end_time_unix_nano = start_ns + index + 10
        span.attributes.add(key="pad", value={"string_value": "p" * pad})
        event = span.events.add()
        event.name, event.time_unix_nano = "e", start_ns + index
    return decode_traces(request)


def _write(con, *batches) -> None:
    con.execute("BEGIN")
    write_batches(con, batches, 1, set())
    con.execute("COMMIT")


def test_a_new_store_is_stamped_with_the_schema_version(tmp_path):
    con = open_store(tmp_path / "s.duckdb")
    assert schema.stored_version(con) == schema.SCHEMA_VERSION
    con.close()


def test_the_json_columns_the_writer_types_are_the_stores(tmp_path):
    con = open_store(tmp_path / "s.duckdb")
    found: dict[str, list[str]] = {}
    for table, column in con.execute("SELECT table_name, column_name FROM duckdb_columns() WHERE data_type = 'JSON' "
                                     "AND database_name = current_database() ORDER BY column_index").fetchall():
        found.setdefault(table, []).append(column)
    con.close()
    assert {table: tuple(columns) for table, columns in found.items()} == schema.JSON_COLUMNS


def _row_groups(con) -> list[int]:
    return [count for (count,) in con.execute(
        "SELECT max(count) FROM pragma_storage_info('spans') WHERE column_name = 'span_id' GROUP BY row_group_id "
        "ORDER BY row_group_id").fetchall()]


def test_every_read_write_open_keeps_small_row_groups_and_does_not_merge_them(tmp_path):
    """DuckDB does not keep the row group size in the file: each open gives it, and a checkpoint after a reopen
    neither merges the stored groups into default-sized ones nor rewrites a part-filled one."""
    path = tmp_path / "s.duckdb"
    size = database.ROW_GROUP_ROWS
    for round_number, count in enumerate((size + 100, size + 100)):
        con = open_store(path)
        _write(con, _batch(time.time_ns(), count, first_id=1 + round_number * 10_000))
        con.execute("CHECKPOINT")
        con.close()
    con = open_store(path)
    assert _row_groups(con) == [size, 100, size, 100]
    assert con.execute("SELECT count(*) FROM spans").fetchall()[0][0] == 2 * (size + 100)
    con.close()
    reader = open_store_readonly(path)
    assert reader.execute("SELECT count(DISTINCT span_id) FROM spans").fetchall()[0][0] == 2 * (size + 100)
    reader.close()


def test_a_store_of_default_sized_row_groups_keeps_them_and_appends_small_ones(tmp_path):
    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))  # as tracekit opened stores before
    schema.migrate(con)
    _write(con, _batch(time.time_ns(), 3000))
    con.execute("CHECKPOINT")
    con.close()
    con = open_store(path)
    _write(con, _batch(time.time_ns(), database.ROW_GROUP_ROWS, first_id=10_000))
    con.execute("CHECKPOINT")
    assert _row_groups(con) == [3000, database.ROW_GROUP_ROWS]
    con.close()


def test_a_store_from_a_newer_tracekit_is_refused_clearly(tmp_path):
    path = tmp_path / "s.duckdb"
    con = duckdb.connect(str(path))
    schema.migrate(con)
    con.execute("UPDATE tracekit_meta SET value = '999' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(StoreError, match="newer than this tracekit"):
        open_store(path)
    with pytest.raises(StoreError, match="newer than this tracekit"):
        open_store_readonly(path)


def test_a_foreign_duckdb_file_is_not_taken_over(tmp_path):
    path = tmp_path / "other.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE customers(id INT)")
    con.close()
    with pytest.raises(StoreError, match="not a tracekit store"):
        open_store(path)


def test_migrations_apply_in_order_and_only_once(tmp_path, monkeypatch):
    path = tmp_path / "s.duckdb"
    open_store(path).close()
    extra = (schema.SCHEMA_VERSION + 1, ["CREATE TABLE test_extra (x INTEGER)"])
    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, extra])
    monkeypatch.setattr(schema, "SCHEMA_VERSION", extra[0])
    con = open_store(path)
    assert schema.stored_version(con) == extra[0]
    con.close()
    open_store(path).close()  # a second open must not re-run the step (CREATE TABLE would fail)


def _attributes_compression(con) -> set[str]:
    return {method for (method,) in con.execute(
        "SELECT DISTINCT compression FROM pragma_storage_info('spans') WHERE column_name = 'attributes' "
        "AND segment_type <> 'VALIDITY'").fetchall()}


def _v3_store(path, monkeypatch, *groups) -> list[tuple]:
    """A store as tracekit wrote it before schema v4 (spans.attributes in DuckDB's own compression), holding
    `groups` (each a list of batches, one commit group); its span rows in row order."""
    with monkeypatch.context() as patch:
        patch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:3])
        patch.setattr(schema, "SCHEMA_VERSION", 3)
        con = open_store(path)
        for sequence, batches in enumerate(groups, start=1):
            con.execute("BEGIN")
            write_batches(con, batches, sequence, set())
            con.execute("COMMIT")
        con.execute("UPDATE spans SET cost_usd = 0.25 WHERE span_id = ?", [(7).to_bytes(8, "big").hex()])
        con.execute("CHECKPOINT")
        assert schema.stored_version(con) == 3 and "ZSTD" not in _attributes_compression(con)
        rows = con.execute("SELECT * FROM spans ORDER BY rowid").fetchall()
        con.close()
    return rows


def test_spans_attributes_are_stored_with_zstd(tmp_path):
    con = open_store(tmp_path / "s.duckdb")
    _write(con, _batch(time.time_ns(), database.ROW_GROUP_ROWS + 10, pad=3000))
    con.execute("CHECKPOINT")
    assert _attributes_compression(con) == {"ZSTD"}
    con.close()


def test_a_v3_store_is_upgraded_to_zstd_with_its_rows_in_ingest_order(tmp_path, monkeypatch):
    path = tmp_path / "s.duckdb"
    monkeypatch.setattr(schema, "COPY_CHUNK_ROWS", database.ROW_GROUP_ROWS)
    now = time.time_ns()
    # a whole-row-group commit group (written at commit), then small ones (through the WAL and the checkpoint)
    rows = _v3_store(path, monkeypatch, [_batch(now, 5000, first_id=1)], [_batch(now - 10**12, 300, first_id=9000)],
                     [_batch(now, 4000, first_id=20_000)])
    heard: list[tuple[int, int]] = []
    con = open_store(path, progress=lambda done, total: heard.append((done, total)))
    assert schema.stored_version(con) == schema.SCHEMA_VERSION == 4
    assert con.execute("SELECT * FROM spans ORDER BY rowid").fetchall() == rows
    assert [column for (column,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = 'spans' "
                                                "AND database_name = current_database() ORDER BY column_index"
                                                ).fetchall()][-1] == "cost_usd"
    assert _attributes_compression(con) == {"ZSTD"}
    assert heard == [(4096, 9300), (8192, 9300), (9300, 9300)]
    assert not con.execute("SELECT * FROM duckdb_tables() WHERE table_name LIKE 'spans_%'").fetchall()
    con.close()
    assert os.stat(path).st_mode & 0o077 == 0  # still the owner's alone
    open_store(path).close()  # migrated once


def test_the_upgrade_reports_its_progress_in_the_log_or_else_on_stderr(capsys, caplog):
    schema.log.setLevel(logging.WARNING)
    try:
        report = schema._log_progress(every_seconds=0.0)
        report(4096, 9000)
        assert "46 % of the spans copied" in capsys.readouterr().err
        caplog.set_level(logging.INFO, logger="tracekit.store")
        report(9000, 9000)
        assert "100 % of the spans copied" in caplog.text
        assert capsys.readouterr().err == ""
    finally:
        schema.log.setLevel(logging.NOTSET)


_KILLED_UPGRADE = """
import sys, time
from pathlib import Path
from tracekit.store import database, schema
schema.COPY_CHUNK_ROWS = 4096

def stop_here(done, total):
    print("copied", done, total, flush=True)
    time.sleep(120)  # killed here, the transaction open and some rows already copied

database.open_store(Path(sys.argv[1]), progress=stop_here)
"""


def test_a_kill_during_the_upgrade_leaves_the_old_table_and_the_next_open_upgrades(tmp_path, monkeypatch):
    path = tmp_path / "s.duckdb"
    rows = _v3_store(path, monkeypatch, [_batch(time.time_ns(), 9000, first_id=1)])
    child = subprocess.Popen([sys.executable, "-c", _KILLED_UPGRADE, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().split() == ["copied", "4096", "9000"]
    finally:
        child.kill()
        child.wait(timeout=30)
    reader = open_store_readonly(path)
    assert schema.stored_version(reader) == 3
    assert reader.execute("SELECT * FROM spans ORDER BY rowid").fetchall() == rows
    assert "ZSTD" not in _attributes_compression(reader)
    reader.close()
    con = open_store(path)
    assert schema.stored_version(con) == 4
    assert con.execute("SELECT * FROM spans ORDER BY rowid").fetchall() == rows
    assert _attributes_compression(con) == {"ZSTD"}
    con.close()


def test_readers_refuse_anything_but_one_select(tmp_path):
    path = tmp_path / "s.duckdb"
    con = open_store(path)
    _write(con, _batch(time.time_ns(), 3))
    con.close()
    reader = open_reader(path)
    assert reader.sql("SELECT count(*) AS n FROM spans").to_pylist() == [{"n": 3}]
    for statement in ("DELETE FROM spans", "INSERT INTO spans SELECT * FROM spans", "DROP TABLE spans",
                      "SELECT 1; DELETE FROM spans", "COPY spans TO 'x.csv'", "ATTACH 'other.duckdb'",
                      "PRAGMA version"):
        with pytest.raises(QueryError):
            reader.sql(statement)
    with pytest.raises(QueryError, match="read_csv\\(\\) is not available"):
        reader.sql("SELECT * FROM read_csv('/etc/passwd')")
    with pytest.raises(QueryError, match="(?i)file system operations are disabled|permission"):
        reader.sql("SELECT * FROM '/etc/passwd.csv'")  # a file read no table function names
    with pytest.raises(QueryError, match="syntax"):
        reader.sql("SELEC oops")
    assert reader.sql("SELECT count(*) AS n FROM spans").to_pylist() == [{"n": 3}]
    reader.close()


def test_queries_reach_a_running_collector_through_its_read_api(collector):
    state = json.loads(state_file_for(collector.db_path).read_text())
    assert state["grpc"] == collector.grpc_endpoint and state["read_api"].startswith("http://127.0.0.1:")
    assert (state_file_for(collector.db_path).stat().st_mode & 0o777) == 0o600
    with pytest.raises(StoreError):
        open_store_readonly(collector.db_path)  # the collector holds the file
    reader = open_reader(collector.db_path)
    assert isinstance(reader, RemoteReader)
    assert reader.sql("SELECT count(*) AS n FROM spans").to_pylist() == [{"n": 0}]
    with pytest.raises(QueryError, match="read-only"):
        reader.sql("DELETE FROM spans")
    wrong = RemoteReader(state["read_api"], "not-the-token", "x")
    with pytest.raises(StoreError, match="401"):
        wrong.sql("SELECT 1")
    request = urllib.request.Request(state["read_api"] + "/v1/status",
                                     headers={"Authorization": f"Bearer {state['token']}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        status = json.loads(response.read())
    assert status["grpc"] == collector.grpc_endpoint and "received" in status


def test_a_second_collector_on_the_same_store_is_refused(collector, collector_settings):
    from tracekit.collector.service import Collector

    with pytest.raises(StoreError, match="already runs"):
        with Collector(collector_settings).running():
            pass


def test_a_stale_state_file_whose_pid_was_reused_does_not_block_a_new_collector(collector_settings):
    """After kill -9 the state file stays; if its pid now names another process, the store is free."""
    from tracekit.collector.service import Collector

    path = state_file_for(collector_settings.db_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # This test process is alive, but did not start at that time: a pid reused since the crash.
    path.write_text(json.dumps({"pid": os.getpid(), "pid_start": "1", "read_api": "http://127.0.0.1:9/",
                                "token": "t", "grpc": "127.0.0.1:9", "http": "http://127.0.0.1:9"}))
    assert read_state(collector_settings.db_path) is None
    with Collector(collector_settings).running() as collector:
        state = read_state(collector.db_path)
        assert state is not None and state["pid"] == os.getpid() and state["pid_start"] == process_start(os.getpid())
        assert isinstance(open_reader(collector.db_path), RemoteReader)
    assert read_state(collector_settings.db_path) is None


def test_retention_by_age_removes_old_spans_events_and_links(tmp_path):
    con = open_store(tmp_path / "s.duckdb")
    now = time.time_ns()
    _write(con, _batch(now - int(10 * 86400e9), 5, first_id=1), _batch(now, 4, first_id=100))
    result = retention.enforce(con, retention_days=7, max_bytes=None, now_ns=now)
    assert result.deleted_rows == 10  # 5 spans + 5 events
    assert con.execute("SELECT DISTINCT name FROM spans").fetchall() == [("new",)]
    assert con.execute("SELECT count(*) FROM span_events").fetchall() == [(4,)]
    con.close()


def test_retention_by_size_removes_the_oldest_until_under_the_cap(tmp_path):
    con = open_store(tmp_path / "s.duckdb")
    now = time.time_ns()
    # Several DuckDB row groups' worth (122,880 rows each): deletes free space a row group at a time.
    con.execute(f"""
        INSERT INTO spans BY NAME
        SELECT 1 AS ingest_seq, printf('%032x', i + 1) AS trace_id, printf('%016x', i + 1) AS span_id,
               'n' AS name, 'INTERNAL' AS kind, {now} - (400000 - i) * 1000000 AS start_time_ns,
               {now} - (400000 - i) * 1000000 + 5 AS end_time_ns, 5 AS duration_ns,
               make_timestamp(({now} - (400000 - i) * 1000000) // 1000) AS start_time,
               make_timestamp(({now} - (400000 - i) * 1000000) // 1000) AS end_time, 'UNSET' AS status_code,
               0 AS resource_id, '{{"pad":"' || md5(i::VARCHAR) || md5((i * 7)::VARCHAR) || '"}}' AS attributes,
               0 AS event_count, 0 AS link_count
        FROM range(400000) AS t(i)""")
    con.execute("CHECKPOINT")
    before = retention.used_bytes(con)
    cap = before // 2
    retention.enforce(con, retention_days=None, max_bytes=cap, now_ns=now)
    # DuckDB frees space a row group at a time, so the store settles near the cap rather than exactly under it.
    assert retention.used_bytes(con) < before * 0.7
    remaining, oldest = con.execute("SELECT count(*), min(start_time_ns) FROM spans").fetchall()[0]
    assert 0 < remaining < 400_000
    newest_deleted = now - (400000 - (400000 - remaining)) * 1000000
    assert oldest >= newest_deleted  # what went was the oldest, what stayed is contiguous up to now
    con.close()


def test_retention_runs_in_the_background_of_a_collector(collector_settings):
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext

    from tracekit.collector.service import Collector

    collector_settings.retention_days = 1
    collector_settings.retention_interval_seconds = 0.2
    with Collector(collector_settings).running() as collector:
        exporter = OTLPSpanExporter(endpoint=collector.grpc_endpoint, insecure=True)
        old = time.time_ns() - int(3 * 86400e9)
        spans = [ReadableSpan(name=name, context=SpanContext(trace_id=i + 1, span_id=i + 1, is_remote=False),
                              start_time=start, end_time=start + 1000)
                 for i, (name, start) in enumerate([("old", old), ("fresh", time.time_ns())])]
        exporter.export(spans)
        deadline = time.monotonic() + 20
        names = None
        while time.monotonic() < deadline:
            names = collector.reader().sql("SELECT name FROM spans").column("name").to_pylist()
            if names == ["fresh"]:
                break
            time.sleep(0.2)
        assert names == ["fresh"]


def test_retention_keeps_old_rows_a_forwarder_has_not_sent(tmp_path):
    con = open_store(tmp_path / "s.duckdb")
    old = time.time_ns() - int(10 * 86400e9)
    for sequence, first in ((1, 1), (2, 100)):
        con.execute("BEGIN")
        write_batches(con, [_batch(old, 3, first_id=first)], sequence, set())
        con.execute("COMMIT")
    retention.enforce(con, retention_days=7, max_bytes=None, keep_after_seq=1)
    assert con.execute("SELECT DISTINCT ingest_seq FROM spans").fetchall() == [(2,)]
    assert con.execute("SELECT count(*) FROM span_events").fetchall() == [(3,)]
    con.close()


def _checkpoints_while(writer, action) -> int:
    before = writer._checkpointer.checkpoints
    action()
    return writer._checkpointer.checkpoints - before


def test_checkpoints_come_every_n_span_rows_under_load_and_when_ingest_goes_idle(tmp_path):
    from tracekit.collector.exporters.store_writer import StoreWriter

    con = open_store(tmp_path / "s.duckdb")
    writer = StoreWriter(con, checkpoint_rows=3_000, checkpoint_wal_bytes=1 << 40)
    writer._checkpointer._interval = 0.2
    writer.start()
    try:
        def commit(count: int, first_id: int) -> None:
            done = []
            writer.submit(_batch(time.time_ns(), count, first_id=first_id), done.append)
            while not done:
                time.sleep(0.01)
            assert done == [None]

        def steady_load(total: int) -> None:
            # Keep the WAL growing between the checkpointer's looks, so only the row count can trigger it.
            for first in range(1, total, 200):
                commit(200, first)
                time.sleep(0.02)

        # Under the row threshold and never idle: no checkpoint, however long the WAL grows.
        assert _checkpoints_while(writer, lambda: steady_load(2_600)) == 0
        # Crossing it: one checkpoint (a whole number of row groups in production).
        assert _checkpoints_while(writer, lambda: (steady_load(800), time.sleep(0.7))) >= 1
        # A pause with the WAL not growing folds in what is left.
        commit(10, 10_000)
        assert _checkpoints_while(writer, lambda: time.sleep(1.0)) == 1
        wal = con.execute("SELECT wal_size FROM pragma_database_size()").fetchall()[0][0]
        assert str(wal).startswith("0")
    finally:
        writer.stop()
        con.close()


def test_status_names_the_collectors_threads_by_os_thread_id(collector):
    """bench/ingest.py reads this to label per-thread CPU from /proc: the writer and checkpointer must be there,
    keyed by the OS thread id /proc uses."""
    import threading

    threads = collector.status()["threads"]
    by_name = {name: int(tid) for tid, name in threads.items()}
    assert {"tracekit-store-writer", "tracekit-checkpointer"} <= set(by_name)
    native = {thread.name: thread.native_id for thread in threading.enumerate()}
    assert by_name["tracekit-store-writer"] == native["tracekit-store-writer"]


def _groups(con) -> list[tuple[int, int]]:
    return con.execute("SELECT ingest_seq, count(*) FROM spans GROUP BY 1 ORDER BY 1").fetchall()


def test_the_writer_waits_for_requests_being_decoded_until_a_row_group_fills(tmp_path):
    """A group smaller than a row group waits for requests still being decoded (so that it is written into the file
    at commit); with nothing being decoded it commits at once."""
    import threading

    from tracekit.collector.exporters.store_writer import StoreWriter

    con = open_store(tmp_path / "s.duckdb")
    writer = StoreWriter(con, group_wait_seconds=30)
    writer.start()
    now = time.time_ns()
    try:
        first_done, second_done = threading.Event(), threading.Event()
        writer.incoming = lambda: 0
        writer.submit(_batch(now, 500, first_id=1), lambda error: first_done.set())
        assert first_done.wait(60)
        writer.incoming = lambda: 1  # another request is being decoded: the next small group waits for it
        writer.submit(_batch(now, 500, first_id=1_000), lambda error: first_done.clear())
        time.sleep(0.5)
        assert first_done.is_set(), "committed without waiting for the request being decoded"
        writer.submit(_batch(now, database.ROW_GROUP_ROWS - 500, first_id=10_000), lambda error: second_done.set())
        assert second_done.wait(60)
        assert not first_done.is_set()
    finally:
        writer.stop()
    assert _groups(con) == [(1, 500), (2, database.ROW_GROUP_ROWS)]
    con.close()


def test_a_read_write_store_in_a_fresh_process_has_the_relational_api(tmp_path):
    """The store modules import only DuckDB's engine (tracekit/store/engine.py); a process that opens the store
    read-write (the collector, `tracekit prices`, `alerts`) uses `.sql()` and Arrow on it, which come with the duckdb
    package: open_store must load it, or such a command fails in a process that imported nothing else."""
    child = ("import sys; from pathlib import Path; from tracekit.store.database import open_store; "
             "con = open_store(Path(sys.argv[1])); "
             "print(con.sql('SELECT count(*) FROM spans').fetchall()[0][0], "
             "con.execute('SELECT 1 AS x').fetch_arrow_table().num_rows)")
    done = subprocess.run([sys.executable, "-c", child, str(tmp_path / "fresh.duckdb")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "1"]
