"""What `tracekit tui` imports before its first paint: no pyarrow (nor numpy), no transcript builder; no DuckDB at all
while a collector serves the reads, and on a store file DuckDB's engine without the duckdb package's Python layer
(tracekit/store/engine.py).

Run in a fresh process, as the command starts: the reader from `open_reader` (the collector's read API when a
collector runs, else the file), the first page queried ahead of Textual, the app until the trace list's rows are on
screen.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_CHILD = textwrap.dedent("""
    import asyncio, json, sys
    from tracekit.store.reader import open_reader
    from tracekit.tui.data import FirstPage

    async def main(db):
        reader = open_reader(db)
        from tracekit.tui.app import TracekitApp
        from tracekit.tui.widgets.trace_table import TraceTable

        app = TracekitApp(reader, live=False, first_page=FirstPage(reader))
        async with app.run_test(size=(160, 40)) as pilot:
            table = app.screen.query_one(TraceTable)
            while table.row_count == 0:
                await pilot.pause(0.01)
            await pilot.pause(0)
            rows = table.row_count
        print(json.dumps({"rows": rows, "reader": type(reader).__name__, "modules": sorted(
            name for name in sys.modules if name.split(".")[0] in ("pyarrow", "numpy")
            or name.startswith("tracekit.conversation.") or name.split(".")[0] in ("duckdb", "_duckdb"))}))

    asyncio.run(main(sys.argv[1]))
""")


def test_the_first_paint_imports_no_pyarrow_and_no_transcript_builder(store):
    db = str(store.collector.db_path)
    done = subprocess.run([sys.executable, "-c", _CHILD, db], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["rows"] > 0 and answer["reader"] == "RemoteReader"
    assert answer["modules"] == ["tracekit.conversation.literal"]  # nor duckdb: the collector reads the store


def test_the_first_paint_over_a_store_file_imports_the_engine_without_the_duckdb_package(tmp_path):
    from tracekit.store.database import open_store

    db = tmp_path / "traces.duckdb"
    con = open_store(db)
    con.execute("""INSERT INTO resources VALUES (1, 'app', NULL, NULL, NULL, NULL, '{"service.name": "app"}', now())""")
    con.execute("""
        INSERT INTO spans BY NAME
        SELECT 1 AS ingest_seq, printf('%032x', t + 1) AS trace_id, printf('%016x', t + 1) AS span_id, 1 AS flags,
               'invoke_agent planner' AS name, 'INTERNAL' AS kind, t * 1000000000 AS start_time_ns,
               t * 1000000000 + 5 AS end_time_ns, 5 AS duration_ns, make_timestamp(t * 1000000) AS start_time,
               make_timestamp(t * 1000000) AS end_time, 'UNSET' AS status_code, 1 AS resource_id, '{}' AS attributes,
               0 AS event_count, 0 AS link_count, 0 AS dropped_attributes_count, 0 AS dropped_events_count,
               0 AS dropped_links_count
        FROM range(30) r(t)
    """)
    con.close()
    done = subprocess.run([sys.executable, "-c", _CHILD, str(db)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["rows"] == 30 and answer["reader"] == "LocalReader"
    assert "duckdb" not in answer["modules"] and "_duckdb" in answer["modules"]
    assert {name.split(".")[0] for name in answer["modules"]} == {"_duckdb", "tracekit"}
