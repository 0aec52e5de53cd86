"""Benchmark: what the compression of `spans.attributes` costs the readers of a store with recorded content.

    python bench/content_reads.py [--spans 196608] [--methods auto,zstd] [--runs 7]

Builds one store per method, in this process and the same way: `bench/ingest.py --content` requests (chat spans with
~3 KB of message JSON, tool spans with their results; 32-span traces) with fresh trace ids and start times for each
commit group, decoded, redacted with the default policy and priced as the collector does, written in commit groups of
8,192 spans into a store opened as the collector opens it (4,096-row groups, written into the file at commit), then
checkpointed and closed. `auto` is DuckDB's own choice (dictionary + FSST for this JSON), any other name is
`USING COMPRESSION <name>` on the column. Prints the write CPU a span and bytes a span of each store, then times
what readers run against each store in turn (opened read-only as `tracekit query` and the TUI open a file), the
median process CPU of `--runs` runs, and each method's ratio to the first:

* the TUI opening a trace (`trace_spans`, no attributes), a span's details (its attributes as key/value rows);
* `get_trace` (the read API's and MCP's trace, every span with its attributes) and replay's `load_spans`;
* one span by (trace id, span id), and a span id whose copies sit in every row group (each commit group reuses
  the requests' span ids), also late materialized (row ids first, then the attributes of those rows);
* a full scan: `attributes LIKE '%Lisbon%'`, and a value by key grouped over every span;
* KQL over the App Insights-shaped views: 20 chat dependencies with their customDimensions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import SPANS_PER_REQUEST, _compress_attributes, build_request, stamp_plan, stamped  # noqa: E402

GROUP_REQUESTS = 16  # 8,192 spans a commit group, as the collector's groups under load


def build(paths: dict[str, Path], spans: int) -> dict[str, dict[str, float]]:
    """Write the same commit groups into one store per method; the write CPU and file size of each."""
    from tracekit.collector.exporters.store_writer import next_sequence, write_batches
    from tracekit.collector.processors.cost import CostProcessor
    from tracekit.collector.processors.decode import decode_payload
    from tracekit.collector.processors.redaction import BatchRedactor
    from tracekit.redaction import RedactionPolicy
    from tracekit.store.database import COLLECTOR_CHECKPOINT_THRESHOLD, open_store

    plans = [stamp_plan(build_request(seed, True)) for seed in range(GROUP_REQUESTS)]
    redactor, pricer = BatchRedactor(RedactionPolicy.default()), CostProcessor()
    stores = {}
    for method, path in paths.items():
        con = open_store(path, checkpoint_threshold=COLLECTOR_CHECKPOINT_THRESHOLD)
        if method != "keep":
            _compress_attributes(con, method)
        stores[method] = con
    cpu = dict.fromkeys(paths, 0.0)
    groups = max(1, spans // (GROUP_REQUESTS * SPANS_PER_REQUEST))
    for stamp in range(1, groups + 1):
        batches = [decode_payload("traces", stamped(plan, stamp)) for plan in plans]
        for batch in batches:
            pricer.process("traces", redactor.process("traces", batch))
        for method, con in stores.items():
            started = time.process_time()
            con.execute("BEGIN TRANSACTION")
            write_batches(con, batches, next_sequence(con), set())
            con.execute("COMMIT")
            cpu[method] += time.process_time() - started
    written = groups * GROUP_REQUESTS * SPANS_PER_REQUEST
    figures = {}
    for method, con in stores.items():
        started = time.process_time()
        con.execute("CHECKPOINT")
        checkpoint = time.process_time() - started
        con.close()
        figures[method] = {"write_us": 1e6 * cpu[method] / written, "checkpoint_us": 1e6 * checkpoint / written,
                           "bytes": paths[method].stat().st_size / written, "spans": written}
    return figures


def read_cases(reader: Any) -> list[tuple[str, Callable[[], Any]]]:
    """The reads to time, with their parameters picked from this store (the same rows in every store)."""
    from tracekit.conversation.loader import load_spans
    from tracekit.query.kql import run_kql
    from tracekit.readout.traces import get_trace
    from tracekit.tui.data import span_details, trace_spans

    seqs = reader.rows("SELECT min(ingest_seq), max(ingest_seq) FROM spans").rows[0]
    middle = (seqs[0] + seqs[1]) // 2
    trace_id = reader.rows("SELECT min(trace_id) FROM spans WHERE ingest_seq = ?", [middle]).rows[0][0]
    chat = reader.rows("SELECT min(span_id) FROM spans WHERE trace_id = ? AND operation_name = 'chat'",
                       [trace_id]).rows[0][0]
    spread = reader.rows("SELECT span_id FROM spans WHERE ingest_seq = ? AND operation_name = 'chat' "
                         "ORDER BY span_id LIMIT 1", [seqs[0]]).rows[0][0]
    span = next(row for row in trace_spans(reader, trace_id) if row.span_id == chat)
    kql = "dependencies | where name startswith 'chat' | take 20 | project timestamp, name, customDimensions"
    return [
        ("TUI: open a 32-span trace", lambda: trace_spans(reader, trace_id)),
        ("TUI: a chat span's details", lambda: span_details(reader, span)),
        ("get_trace (read API, MCP)", lambda: get_trace(reader, trace_id)),
        ("replay: load_spans of a trace", lambda: load_spans(reader, [trace_id])),
        ("one span's attributes", lambda: reader.rows(
            "SELECT attributes FROM spans WHERE trace_id = ? AND span_id = ?", [trace_id, chat])),
        ("span id in every row group", lambda: reader.rows(
            "SELECT attributes FROM spans WHERE span_id = ?", [spread])),
        ("the same, late materialized", lambda: _by_rowid(reader, spread)),
        ("scan: attributes LIKE", lambda: reader.rows(
            "SELECT count(*) FROM spans WHERE attributes LIKE '%Lisbon%'")),
        ("scan: a value by key, grouped", lambda: reader.rows(
            "SELECT attributes->>'$.\"gen_ai.request.model\"' AS m, count(*) FROM spans GROUP BY 1")),
        ("KQL: 20 chat dependencies", lambda: run_kql(reader, kql)),
    ]


def _by_rowid(reader: Any, span_id: str) -> Any:
    """Late materialization by hand: the row ids of the matches from a narrow pass, then their attributes."""
    ids = [row[0] for row in reader.rows("SELECT rowid FROM spans WHERE span_id = ?", [span_id]).rows]
    return reader.rows("SELECT attributes FROM spans WHERE rowid IN (SELECT unnest(?::BIGINT[]))", [ids])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=196_608)
    parser.add_argument("--methods", default="auto,zstd",
                        help="comma-separated: auto (DuckDB's choice), keep (this checkout's schema), or a DuckDB "
                             "compression name; ratios are to the first")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    import os

    from tracekit.store.reader import LocalReader

    methods = args.methods.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        paths = {method: Path(tmp) / f"{method}.duckdb" for method in methods}
        written = build(paths, args.spans)
        print(f"{next(iter(written.values()))['spans']:,} content spans in commit groups of "
              f"{GROUP_REQUESTS * SPANS_PER_REQUEST:,}; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        for method, figures in written.items():
            print(f"  {method:<14} write {figures['write_us']:6.1f} us/span CPU (checkpoint after: "
                  f"{figures['checkpoint_us']:.1f}), file {figures['bytes']:,.0f} bytes/span")
        readers = {method: LocalReader.open_file(path) for method, path in paths.items()}
        cases = {method: read_cases(reader) for method, reader in readers.items()}
        for method in methods:  # warm: views installed, translations cached, blocks read once
            for _, run in cases[method]:
                run()
        timings: dict[str, dict[str, list[float]]] = {method: {} for method in methods}
        for _ in range(args.runs):
            for index in range(len(cases[methods[0]])):
                for method in methods:
                    label, run = cases[method][index]
                    started = time.process_time()
                    run()
                    timings[method].setdefault(label, []).append(1e3 * (time.process_time() - started))
        print(f"reads, median process CPU of {args.runs} runs in ms (ratio to {methods[0]}); load average "
              f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(f"  {'':<32}" + "".join(f"{method:>18}" for method in methods))
        for label in timings[methods[0]]:
            base = statistics.median(timings[methods[0]][label])
            cells = []
            for method in methods:
                value = statistics.median(timings[method][label])
                cells.append(f"{value:>10.1f}" + (f" ({value / base:4.2f}x)" if method != methods[0] else " " * 8))
            print(f"  {label:<32}" + "".join(cells))
        for reader in readers.values():
            reader.close()


if __name__ == "__main__":
    main()
