"""What `tracekit tui` imports before its first paint: no pyarrow (nor numpy), no transcript builder.

Run in a fresh process, as the command starts: the reader from `open_reader` (the collector's read API, as when a
collector runs), the first page queried ahead of Textual, the app until the trace list's rows are on screen.
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
