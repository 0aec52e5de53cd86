"""What keeps `tracekit query` quick (issue 19.1): the views live in the store, made once by the collector;
translations are kept on disk between runs, owner-only; `--sql` and cached KQL never load duckdb-kql.

The figures themselves come from bench/cli.py, not from timed tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.query.spanfactory import collector_store
from tests.query.workload import make_workload
from tracekit.query import translation_cache, views
from tracekit.query.kql import _compiled_cache, compile_kql, run_kql, run_kql_rows
from tracekit.store.database import open_store
from tracekit.store.reader import LocalReader
from tracekit.store.rows import Rows

ROOT = Path(__file__).resolve().parents[2]
KQL = ('dependencies | where customDimensions["gen_ai.operation.name"] == "chat" '
       '| summarize n = count() by m = tostring(customDimensions["gen_ai.request.model"]) | order by m asc')


@pytest.fixture(scope="module")
def workload():
    return make_workload(runs=3, seed=21)


def _expected(workload) -> list[dict]:
    counts: dict[str, int] = {}
    for span in workload.spans:
        if span.attributes.get("gen_ai.operation.name") == "chat":
            model = span.attributes["gen_ai.request.model"]
            counts[model] = counts.get(model, 0) + 1
    return [{"m": model, "n": n} for model, n in sorted(counts.items())]


def test_the_collector_puts_the_views_in_the_store(workload, tmp_path):
    with collector_store(tmp_path, workload.spans, workload.logs) as collector:
        assert collector.views.installed.wait(120)  # a few seconds after start, on its own cursor
    reader = LocalReader.open_file(collector.db_path)
    try:
        stamped = reader.sql("SELECT value FROM tracekit_meta WHERE key = 'views_version'").to_pylist()
        assert stamped == [{"value": views.version()}]
        assert run_kql(reader, KQL).to_pylist() == _expected(workload)
        # Nothing had to be created on this connection.
        temporary = reader.sql("SELECT count(*) AS n FROM duckdb_views() WHERE temporary AND NOT internal")
        assert temporary.to_pylist() == [{"n": 0}]
    finally:
        reader.close()


def test_a_collector_that_lives_a_moment_leaves_the_views_to_readers(stopped_store, workload):
    """Short-lived collectors (tests, one-off imports) do not pay for the views; readers then create their own."""
    reader = LocalReader.open_file(stopped_store)
    try:
        assert reader.sql("SELECT count(*) AS n FROM tracekit_meta WHERE key = 'views_version'").to_pylist() == \
            [{"n": 0}]
        assert run_kql(reader, KQL).to_pylist() == _expected(workload)
    finally:
        reader.close()


def test_a_store_from_another_version_gets_temp_views_and_then_the_collector_replaces_them(tmp_path, stopped_store,
                                                                                          workload):
    copy = tmp_path / "other.duckdb"
    copy.write_bytes(stopped_store.read_bytes())
    con = open_store(copy)
    views.install_in_store(con)
    con.execute("UPDATE tracekit_meta SET value = 'another-version' WHERE key = 'views_version'")
    con.execute("CREATE OR REPLACE VIEW dependencies AS SELECT 1 AS stale")
    con.close()
    import duckdb

    with duckdb.connect(str(copy)) as raw:  # as an older tracekit left it: no schema step on this open
        assert raw.execute("SELECT value FROM tracekit_meta WHERE key = 'views_version'").fetchall() == \
            [("another-version",)]
    reader = LocalReader.open_file(copy)
    try:
        assert run_kql(reader, KQL).to_pylist() == _expected(workload)  # TEMP views shadow the stale ones
    finally:
        reader.close()
    con = open_store(copy)  # what the collector does a few seconds after start: the views are brought up to date
    assert views.install_in_store(con) and views.stored_version(con) == views.version()
    assert "stale" not in [row[0] for row in con.execute("DESCRIBE dependencies").fetchall()]
    con.close()


HEAVY_MODULES = ("duckdb_kql", "pyarrow", "rich")
# Every plain type, NULLs and lists included (tracekit.store.rows), over real spans.
TYPED_SQL = ("SELECT span_id, start_time, CAST(start_time AS DATE) AS day, CAST(start_time AS TIME) AS at, "
             "duration_ns / 1e9 AS seconds, CAST(duration_ns AS DECIMAL(18, 3)) AS d, sum(input_tokens) OVER () AS t, "
             "attributes, CAST(span_id AS BLOB) AS b, [start_time, NULL] AS times, parent_span_id, "
             "'-inf'::DOUBLE AS low, status_code = 'ERROR' AS failed FROM spans ORDER BY span_id LIMIT 3")


def _run_query(args: list[str], cache: Path) -> tuple[str, set[str]]:
    """`tracekit query ARGS` in a fresh process; its output and which of HEAVY_MODULES it imported."""
    script = ("import sys\nfrom tracekit.cli import main\ncode = main(sys.argv[1:])\n"
              f"print('IMPORTED', *[name for name in {HEAVY_MODULES!r} if name in sys.modules], file=sys.stderr)\n"
              "sys.exit(code)\n")
    env = {**os.environ, "XDG_CACHE_HOME": str(cache), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script, "query", *args], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    imported = next(line for line in done.stderr.splitlines() if line.startswith("IMPORTED"))
    return done.stdout, set(imported.split()[1:])


def test_translations_are_cached_between_runs_owner_only(stopped_store, tmp_path, workload):
    cache = tmp_path / "cache"
    args = ["--db", str(stopped_store), "--format", "json", KQL]
    first, imported_first = _run_query(args, cache)
    second, imported_second = _run_query(args, cache)
    assert json.loads(first) == json.loads(second) == _expected(workload)
    assert "duckdb_kql" in imported_first and "duckdb_kql" not in imported_second  # the second read it back
    folder = cache / "tracekit" / "kql"
    assert folder.stat().st_mode & 0o777 == 0o700
    entries = list(folder.iterdir())
    assert len(entries) == 1 and entries[0].stat().st_mode & 0o777 == 0o600
    _, imported = _run_query(["--db", str(stopped_store), "--sql", "SELECT count(*) AS n FROM spans"], cache)
    assert "duckdb_kql" not in imported


def test_a_printed_result_needs_neither_arrow_nor_rich(stopped_store, tmp_path, workload):
    """A simple result from a file is fetched without Arrow and drawn without Rich (their imports cost a short
    command more than its query); the table is the one Rich would draw (tests/query/test_cli.py)."""
    cache = tmp_path / "cache"
    sql = "SELECT request_model AS m, count(*) AS n FROM spans WHERE operation_name = 'chat' GROUP BY 1 ORDER BY 1"
    out, imported = _run_query(["--db", str(stopped_store), "--sql", sql], cache)
    assert imported == set()
    body = [line.split("│")[1:3] for line in out.splitlines() if line.startswith("│")]
    assert [{"m": m.strip(), "n": int(n)} for m, n in body] == _expected(workload)
    _run_query(["--db", str(stopped_store), KQL], cache)  # translates, and keeps the translation
    out, imported = _run_query(["--db", str(stopped_store), KQL], cache)
    assert imported == set()
    body = [line.split("│")[1:3] for line in out.splitlines() if line.startswith("│")]
    assert [{"m": m.strip(), "n": int(n)} for m, n in body] == _expected(workload)
    # A type Arrow and DuckDB give Python differently (an interval) goes through Arrow, printed the same way.
    out, imported = _run_query(["--db", str(stopped_store), "--format", "json", "--sql",
                                "SELECT INTERVAL 90 SECOND AS i, 1 AS n"], cache)
    assert "pyarrow" in imported and "rich" not in imported
    assert json.loads(out)[0]["n"] == 1


def test_an_entry_others_could_write_is_not_trusted(stopped_store, tmp_path, monkeypatch, workload):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    reader = LocalReader.open_file(stopped_store)
    try:
        _compiled_cache.clear()
        compiled = compile_kql(reader, KQL)
        folder = translation_cache.directory()
        (entry,) = list(folder.iterdir())
        planted = {"sql": "SELECT 'planted' AS m, 1 AS n", "params": {}, "fallback_sql": None}
        entry.write_text(json.dumps(planted))
        _compiled_cache.clear()
        assert compile_kql(reader, KQL).sql == planted["sql"]  # the owner's own entry is read back...
        for loosen in (lambda: entry.chmod(0o666), lambda: folder.chmod(0o777)):
            entry.chmod(0o600)
            folder.chmod(0o700)
            loosen()
            _compiled_cache.clear()
            assert compile_kql(reader, KQL).sql == compiled.sql  # ...one others could have written is not
        folder.chmod(0o700)
    finally:
        _compiled_cache.clear()
        reader.close()


def test_with_a_collector_the_read_api_translates(workload, tmp_path):
    """`tracekit query` hands KQL to a running collector, which translates it: the command loads no KQL parser,
    and errors keep their line and column."""
    from tracekit.errors import QueryError
    from tracekit.store.reader import RemoteReader, open_reader

    with collector_store(tmp_path / "store", workload.spans) as collector:
        out, imported = _run_query(["--db", str(collector.db_path), "--format", "json", KQL], tmp_path / "cache")
        assert json.loads(out) == _expected(workload) and imported == set()  # JSON rows: no pyarrow either
        assert not (tmp_path / "cache" / "tracekit").exists()  # nothing translated on this side
        reader = open_reader(collector.db_path)
        assert isinstance(reader, RemoteReader)
        # SQL for printing comes back as JSON rows, equal to the Arrow answer, so the command imports no pyarrow.
        out, imported = _run_query(["--db", str(collector.db_path), "--format", "json", "--sql", TYPED_SQL],
                                   tmp_path / "cache")
        assert imported == set() and len(json.loads(out)) == 3
        assert reader.rows(TYPED_SQL) == Rows.from_arrow(reader.sql(TYPED_SQL))
        assert reader.rows(TYPED_SQL).types is not None  # it did travel as JSON
        interval = "SELECT INTERVAL 90 SECOND AS i"  # not a plain type: Arrow, as before
        assert reader.rows(interval) == Rows.from_arrow(reader.sql(interval))
        rows = run_kql_rows(reader, KQL)
        assert rows == Rows.from_arrow(run_kql(reader, KQL)) and rows.types is not None
        with pytest.raises(QueryError) as refused:
            run_kql(reader, "dependencies\n| whre name == 'x'")
        assert (refused.value.line, refused.value.column) == (2, 3) and "`where`" in str(refused.value)
