"""What storing each span once costs the store writer, against the alternatives, on a growing store.

    python bench/dedup.py [--groups 40] [--requests-per-group 32] [--window-rows N]

In this process, the real store writer's `write_batches` commits groups of bench/ingest.py's 512-span requests (new
trace ids every request) into three fresh stores side by side, one group into each in turn, so the three see the
same machine minute and the same store sizes:
- "no check": the writer with the duplicate check turned off (what the collector did before);
- "check": the writer as it is (collector/exporters/dedup.py: repeats within the group; copies stored by the recent
  groups, at most --window-rows rows, prefiltered by start time in memory and confirmed through a join);
- "unique index": a UNIQUE index on spans (trace_id, span_id) and INSERT OR IGNORE, the alternative.
CPU time (this process, all DuckDB threads included) per span for each, and the ratio to "no check". A final group
resends every request of the previous group (a sender retrying after lost acknowledgements) to each store with a
check: the rows stored must not change.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import SPANS_PER_REQUEST, build_request, stamp_plan, stamped  # noqa: E402

from tracekit.collector.exporters import dedup, store_writer  # noqa: E402
from tracekit.collector.processors.decode import decode_payload  # noqa: E402
from tracekit.store.database import open_store  # noqa: E402


def commit(con, batches, sequence: int, known: set[int], *, check: bool, or_ignore: bool = False,
           recent: dedup.RecentGroups | None = None) -> float:
    """One commit group through write_batches; returns the CPU seconds it took."""
    original = dedup.drop_duplicates
    if not check:
        dedup.drop_duplicates = lambda *args: {}
    started = time.process_time()
    try:
        con.execute("BEGIN TRANSACTION")
        if or_ignore:
            _insert_or_ignore(con, batches, sequence)
        else:
            known |= store_writer.write_batches(con, batches, sequence, known, window=recent)
        con.execute("COMMIT")
    finally:
        dedup.drop_duplicates = original
    return time.process_time() - started


def _insert_or_ignore(con, batches, sequence: int) -> None:
    import pyarrow as pa

    table = pa.concat_tables([batch.tables["spans"] for batch in batches]).combine_chunks()
    con.register("_tk_spans", table)
    con.execute(f"INSERT OR IGNORE INTO spans BY NAME SELECT {sequence} AS ingest_seq, * FROM _tk_spans")
    con.unregister("_tk_spans")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=40)
    parser.add_argument("--requests-per-group", type=int, default=32)
    parser.add_argument("--window-rows", type=int, default=dedup.WINDOW_ROWS,
                        help="rows of recent groups the check reads (the collector's default: %(default)s)")
    args = parser.parse_args()

    payloads = [build_request(seed) for seed in range(16)]
    plans = [stamp_plan(payload) for payload in payloads]
    with tempfile.TemporaryDirectory() as tmp:
        stores = {name: open_store(Path(tmp) / f"{name.replace(' ', '_')}.duckdb")
                  for name in ("no check", "check", "unique index")}
        stores["unique index"].execute("CREATE UNIQUE INDEX spans_identity ON spans (trace_id, span_id)")
        known: dict[str, set[int]] = {name: set() for name in stores}
        cpu: dict[str, list[float]] = {name: [] for name in stores}
        recent = dedup.RecentGroups(rows=args.window_rows)
        stamp = 0
        group = []
        for sequence in range(1, args.groups + 1):
            group = []
            for index in range(args.requests_per_group):
                stamp += 1
                group.append(decode_payload("traces", stamped(plans[index % 16], stamp)))
            for name, con in stores.items():
                cpu[name].append(commit(con, group, sequence, known[name], check=name != "no check",
                                        or_ignore=name == "unique index", recent=recent if name == "check" else None))
        spans = args.groups * args.requests_per_group * SPANS_PER_REQUEST
        print(f"{args.groups} groups of {args.requests_per_group} x {SPANS_PER_REQUEST} spans, "
              f"store grows to {spans:,} spans")
        base = statistics.median(cpu["no check"])
        for name, seconds in cpu.items():
            per_span = [1e6 * s / (args.requests_per_group * SPANS_PER_REQUEST) for s in seconds]
            half = len(per_span) // 2
            print(f"{name:<14} CPU {statistics.median(per_span):6.2f} us/span a group (median; first half "
                  f"{statistics.median(per_span[:half]):.2f}, second half {statistics.median(per_span[half:]):.2f})"
                  f"   x{statistics.median(seconds) / base:.2f} of no check")
        for name in ("check", "unique index"):
            con = stores[name]
            before = con.execute("SELECT count(*) FROM spans").fetchall()[0][0]
            seconds = commit(con, group, args.groups + 1, known[name], check=True, or_ignore=name == "unique index",
                             recent=recent if name == "check" else None)
            after = con.execute("SELECT count(*) FROM spans").fetchall()[0][0]
            print(f"{name:<14} resent group: {after - before} rows added (must be 0), "
                  f"{1e6 * seconds / (args.requests_per_group * SPANS_PER_REQUEST):.2f} us/span")
        for con in stores.values():
            con.close()


if __name__ == "__main__":
    main()
