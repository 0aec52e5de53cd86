"""What `tracekit tui` imports before its first paint: no pyarrow (nor numpy), no transcript builder.

Run in a fresh process, as the command starts (`tracekit.tui.startup`): the reader from `open_reader` (the
collector's read API, as when a collector runs) and the first page's query in a thread while Textual is imported, the app until the trace list's rows are on screen.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

_CHILD = textwrap.dedent("""
    import asyncio, json, sys
    from tracekit.tui.startup import Startup

    async def main(db):
        startup = Startup(db)
        import textual.app
        reader, first_page = startup.result()
        from tracekit.tui.app import TracekitApp
        from tracekit.tui.widgets.trace_table import TraceTable

        app = TracekitApp(reader, live=False, first_page=first_page)
        async with app.run_test(size=(160, 40)) as pilot:
            table = app.screen.query_one(TraceTable)
            while table.row_count == 0:
                await pilot.pause(0.01)
            await pilot.pause(0)
            rows = table.row_count
        print(json.dumps({"rows": rows, "reader": type(reader).__name__, "modules": sorted(
            name for name in sys.modules if name.split(".")[0] in ("pyarrow", "numpy")
            or name.startswith("tracekit.conversation."))}))

    asyncio.run(main(sys.argv[1]))
""")


def test_the_first_paint_imports_no_pyarrow_and_no_transcript_builder(store):
    db = str(store.collector.db_path)
    done = subprocess.run([sys.executable, "-c", _CHILD, db], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["rows"] > 0 and answer["reader"] == "RemoteReader"
    assert answer["modules"] == ["tracekit.conversation.literal"]


def test_startup_hands_over_the_reader_and_first_page_or_the_error_of_opening(store, tmp_path):
    from tracekit.errors import TracekitError
    from tracekit.tui.data import trace_page
    from tracekit.tui.startup import Startup

    reader, first_page = Startup(str(store.collector.db_path)).result()
    try:
        seq, page = first_page.result()
        assert seq > 0 and page == trace_page(reader, with_loops=False)
    finally:
        reader.close()
    missing = Startup(str(tmp_path / "none.duckdb"))
    try:
        missing.result()
    except TracekitError as error:
        assert "no store at" in str(error)
    else:
        raise AssertionError("opening a missing store raised nothing")
