"""Benchmark: what each `tracekit mcp` tool costs over a million spans, against the plain SQL of the same question.

    python bench/mcp.py [--spans 1000000] [--runs 5] [--db PATH] [--keep]

Builds the store as bench/query.py does (agent runs spread over 7 days), opens it as the MCP server does (a
read-only LocalReader) and prints, per tool, the median of several runs (after one warm-up), the baseline (the
smallest hand-written SQL that answers the same question on the typed store columns, in the same process), the
ratio, and the size of the answer in characters of compact JSON against the default budget.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from query import generate, median_ms  # noqa: E402  (bench/query.py's store generator and timer)

from tracekit.readout import budget, tables, traces, transcript  # noqa: E402
from tracekit.store.database import open_store  # noqa: E402
from tracekit.store.reader import LocalReader  # noqa: E402


def _lowercase_ids(path: Path) -> None:
    """The store holds ids as lowercase hex (what the collector writes); the generator writes them upper case."""
    con = open_store(path)
    try:
        con.execute("UPDATE spans SET trace_id = lower(trace_id), span_id = lower(span_id), "
                    "parent_span_id = lower(parent_span_id) WHERE trace_id <> lower(trace_id)")
        for table in ("span_events", "logs"):
            con.execute(f"UPDATE {table} SET trace_id = lower(trace_id), span_id = lower(span_id) "
                        "WHERE trace_id <> lower(trace_id)")
        con.execute("CHECKPOINT")
    finally:
        con.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--db", type=Path, default=None, help="store file to (re)use; default: a temporary file")
    parser.add_argument("--keep", action="store_true", help="keep the generated store")
    args = parser.parse_args()
    console = Console(width=120)
    directory = None
    path = args.db
    if path is None:
        directory = tempfile.TemporaryDirectory(ignore_cleanup_errors=True)
        path = Path(directory.name) / "traces.duckdb"
    if not path.exists():
        generate(path, args.spans)
    _lowercase_ids(path)
    reader = LocalReader.open_file(path)
    newest = traces.search_traces(reader, limit=1)["traces"][0]["trace_id"]
    failed = traces.list_errors(reader, since="all")["groups"][0]["example_trace_ids"][0]
    span = traces.get_trace(reader, failed)["spans"][-1]["span_id"]
    cases = [
        ("search_traces()", lambda: traces.search_traces(reader),
         lambda: reader.sql("SELECT trace_id, min(start_time_ns) AS s, count(*) AS spans, sum(input_tokens) AS i "
                            "FROM spans GROUP BY 1 ORDER BY s DESC LIMIT 50")),
        ("search_traces(since=24h, errors_only)", lambda: traces.search_traces(reader, since="24h", errors_only=True),
         lambda: reader.sql("SELECT trace_id, min(start_time_ns) AS s FROM spans WHERE start_time >= now() - "
                            "INTERVAL 24 HOUR GROUP BY 1 HAVING bool_or(status_code = 'ERROR') "
                            "ORDER BY s DESC LIMIT 50")),
        ("search_traces(agent=planner)", lambda: traces.search_traces(reader, agent="planner"),
         lambda: reader.sql("SELECT trace_id, min(start_time_ns) AS s FROM spans GROUP BY 1 "
                            "HAVING bool_or(agent_name = 'planner') ORDER BY s DESC LIMIT 50")),
        ("get_trace", lambda: traces.get_trace(reader, failed),
         lambda: reader.sql("SELECT * FROM spans WHERE trace_id = ?", [failed])),
        ("get_span", lambda: traces.get_span(reader, failed, span),
         lambda: reader.sql("SELECT * FROM spans WHERE trace_id = ? AND span_id = ?", [failed, span])),
        ("list_errors(since=all)", lambda: traces.list_errors(reader, since="all"),
         lambda: reader.sql("SELECT error_type, name, count(*) FROM spans WHERE status_code = 'ERROR' "
                            "GROUP BY ALL ORDER BY 3 DESC")),
        ("get_conversation(trace)", lambda: transcript.get_conversation(reader, newest),
         lambda: reader.sql("SELECT * FROM spans WHERE trace_id = ?", [newest])),
        ("run_query(KQL tools per name)", lambda: tables.run_query(
            reader, 'dependencies | where customDimensions["gen_ai.operation.name"] == "execute_tool" '
                    '| summarize calls = count() by name'),
         lambda: reader.sql("SELECT name, count(*) FROM spans WHERE operation_name = 'execute_tool' GROUP BY 1")),
    ]
    table = Table(title=f"tracekit mcp tools over {args.spans:,} spans (median of {args.runs} runs)")
    for column in ("tool call", "ms", "baseline ms", "ratio", "answer chars", "budget"):
        table.add_column(column, justify="left" if column == "tool call" else "right")
    for name, call, baseline in cases:
        tool_ms, base_ms = median_ms(call, args.runs), median_ms(baseline, args.runs)
        size = len(orjson.dumps(call(), default=str))
        table.add_row(name, f"{tool_ms:,.0f}", f"{base_ms:,.0f}", f"{tool_ms / max(base_ms, 0.001):.1f}x",
                      f"{size:,}", f"{budget.DEFAULT_CHARS:,}")
    console.print(table)
    reader.close()
    if args.keep:
        console.print(f"store kept at {path}")
    elif directory is not None:
        directory.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
