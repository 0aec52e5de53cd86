"""Benchmark: KQL dashboard tiles over 1,000,000 spans of agent traffic.

    python bench/query.py [--spans 1000000] [--shape flat|nested] [--runs 5] [--db PATH] [--keep]

Generates agent traffic straight into a store file (Arrow batches built vectorized by DuckDB, not sent through the
collector, which would take too long for a million spans): runs of one `invoke_agent`, two `chat` and two
`execute_tool` spans (`--shape nested`: agents within agents, hand-offs, calls below tools and steps) with realistic
attributes, exception events on failed tools, evaluation log records, spread over 7 days. Then it opens the store as `tracekit query` does (read-only, views installed) and prints, per tile of
the agents dashboard, the median of several runs over the default 24 h range and over all 7 days, plus:

* translation overhead: the median time to turn each tile's KQL into SQL (duckdb-kql plus tracekit's rewrites);
* a baseline: the same question as the `tools` tile asked in hand-written SQL on the typed store columns, in the
  same process, and each tile's ratio to it;
* the cost the typed-column shortcut saves: the `tools` tile with the shortcut turned off;
* ad hoc queries over the whole store (no time range): a lookup by operation id, filters on exporter-mapped columns
  (`name`, `type`, `target`), a top-N and a make-series.

The target is every tile under 300 ms on the default range.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tracekit import dashboards  # noqa: E402
from tracekit.query import views  # noqa: E402
from tracekit.query.kql import _compiled_cache, compile_kql, run_kql  # noqa: E402
from tracekit.store import database  # noqa: E402
from tracekit.store.database import open_store  # noqa: E402
from tracekit.store.reader import LocalReader  # noqa: E402

DAY_NS = 86_400 * 1_000_000_000
SPAN_DAYS = 7
BATCH = 200_000

# One generated span per row i: run = i // $run_size, and position i % $run_size picks the span's operation, its
# parent's position in the run and the agent name (SHAPES).
_SPANS_SQL = """
WITH base AS (
    SELECT i, i // $run_size AS run, i % $run_size AS pos, CAST(hash(i) % 1000000007 AS BIGINT) AS h, CAST(hash(i // $run_size) % 1000000007 AS BIGINT) AS hr
    FROM range($lo, $hi) t(i)
), shaped AS (
    SELECT *,
        $operations[pos + 1] AS op,
        $agents[pos + 1][run % len($agents[pos + 1]) + 1] AS agent,
        ['gpt-4o', 'gpt-4o-mini', 'o3-mini'][h % 3 + 1] AS model,
        ['search', 'calculator', 'fetch_page', 'sql', 'email', 'calendar', 'weather', 'translate'][h % 8 + 1] AS tool,
        $start + run * $run_gap AS run_start
    FROM base
), timed AS (
    SELECT *,
        run_start + CASE pos WHEN 0 THEN 0 ELSE pos * 1500000000 END AS start_ns,
        CASE op WHEN 'invoke_agent' THEN 8000000000 + (hr % 9000) * 1000000
                WHEN 'chat' THEN 150000000 + (h % 2500) * 1000000
                ELSE 5000000 + (h % 400) * 1000000 END AS dur_ns,
        CASE WHEN op = 'execute_tool' AND h % 20 = 0 THEN 'ERROR'
             WHEN op = 'invoke_agent' AND hr % 40 = 0 THEN 'ERROR' ELSE 'UNSET' END AS status,
        CAST(10 + h % 3000 AS BIGINT) AS input_tokens,
        CAST(1 + (h // 7) % 800 AS BIGINT) AS output_tokens
    FROM shaped
)
SELECT
    lpad(to_hex(run + 1), 32, '0') AS trace_id,
    lpad(to_hex(i + 1), 16, '0') AS span_id,
    CASE WHEN $parents[pos + 1] IS NULL THEN NULL
         ELSE lpad(to_hex(run * $run_size + $parents[pos + 1] + 1), 16, '0') END AS parent_span_id,
    CAST(NULL AS VARCHAR) AS trace_state, CAST(1 AS UINTEGER) AS flags,
    CASE coalesce(op, '') WHEN 'invoke_agent' THEN 'invoke_agent ' || agent WHEN 'chat' THEN 'chat ' || model
            WHEN '' THEN 'workflow step'
            ELSE 'execute_tool ' || tool END AS name,
    CASE op WHEN 'chat' THEN 'CLIENT' ELSE 'INTERNAL' END AS kind,
    start_ns AS start_time_ns, start_ns + dur_ns AS end_time_ns, dur_ns AS duration_ns,
    make_timestamp(start_ns // 1000) AS start_time, make_timestamp((start_ns + dur_ns) // 1000) AS end_time,
    status AS status_code, CASE WHEN status = 'ERROR' THEN 'failed' END AS status_message,
    CAST(run % 3 + 1 AS BIGINT) AS resource_id,
    ['agent-app', 'support-bot', 'research-svc'][run % 3 + 1] AS service_name,
    'tracekit.bench' AS scope_name, CAST(NULL AS VARCHAR) AS scope_version,
    op AS operation_name, 'openai' AS provider_name,
    CASE WHEN op = 'chat' THEN model END AS request_model,
    CASE WHEN op = 'chat' THEN model || '-2025' END AS response_model,
    CASE WHEN op = 'chat' THEN 'resp_' || i END AS response_id,
    CASE WHEN op = 'invoke_agent' THEN agent END AS agent_name,
    CASE WHEN op = 'invoke_agent' THEN 'asst_' || agent END AS agent_id,
    'conv-' || (run // 3) AS conversation_id,
    CASE WHEN op = 'execute_tool' THEN tool END AS tool_name,
    CASE WHEN op = 'execute_tool' THEN 'call_' || i END AS tool_call_id,
    CASE WHEN status = 'ERROR' THEN 'TimeoutError' END AS error_type,
    CASE WHEN op = 'chat' THEN input_tokens END AS input_tokens,
    CASE WHEN op = 'chat' THEN output_tokens END AS output_tokens,
    -- roughly gpt-4o's list price: the cost tiles sum something real (tracekit.cost prices at ingest, not here)
    CASE WHEN op = 'chat' THEN input_tokens * 2.5e-6 + output_tokens * 1e-5 END AS cost_usd,
    CAST(CASE coalesce(op, '')
        WHEN '' THEN json_object('gen_ai.conversation.id', 'conv-' || (run // 3))
        WHEN 'invoke_agent' THEN json_object('gen_ai.operation.name', op, 'gen_ai.agent.name', agent,
            'gen_ai.agent.id', 'asst_' || agent, 'gen_ai.system', 'openai', 'gen_ai.provider.name', 'openai',
            'gen_ai.conversation.id', 'conv-' || (run // 3))
        WHEN 'chat' THEN json_object('gen_ai.operation.name', op, 'gen_ai.system', 'openai',
            'gen_ai.provider.name', 'openai', 'gen_ai.request.model', model,
            'gen_ai.response.model', model || '-2025', 'gen_ai.response.id', 'resp_' || i,
            'gen_ai.usage.input_tokens', input_tokens, 'gen_ai.usage.output_tokens', output_tokens,
            'gen_ai.response.finish_reasons', ['stop'], 'gen_ai.request.temperature', 0.7,
            'gen_ai.conversation.id', 'conv-' || (run // 3), 'server.address', 'api.openai.com',
            'server.port', 443)
        ELSE json_object('gen_ai.operation.name', op, 'gen_ai.tool.name', tool, 'gen_ai.tool.call.id', 'call_' || i,
            'gen_ai.tool.type', 'function', 'gen_ai.conversation.id', 'conv-' || (run // 3))
    END AS VARCHAR) AS attributes,
    CAST(CASE WHEN op = 'execute_tool' AND status = 'ERROR' THEN 1 ELSE 0 END AS UINTEGER) AS event_count,
    CAST(0 AS UINTEGER) AS link_count, CAST(0 AS UINTEGER) AS dropped_attributes_count,
    CAST(0 AS UINTEGER) AS dropped_events_count, CAST(0 AS UINTEGER) AS dropped_links_count
FROM timed
"""
_AGENTS = ["planner", "researcher", "writer", "critic", "router"]
# Per position in a run: the operation (None: a span without one), the parent's position (None: the root) and the
# agent names an invoke_agent span there takes in turn.
SHAPES = {
    # invoke_agent -> chat, execute_tool, chat, execute_tool
    "flat": (["invoke_agent", "chat", "execute_tool", "chat", "execute_tool"], [None, 0, 0, 0, 0], [_AGENTS] * 5),
    # a workflow root (no operation) -> invoke_agent planner|router -> chat, execute_tool (a hand-off) ->
    # invoke_agent researcher|writer|coder -> chat, execute_tool -> chat, a step without operation -> chat;
    # a chat under the workflow, under no agent; a sibling invoke_agent critic -> chat
    "nested": ([None, "invoke_agent", "chat", "execute_tool", "invoke_agent", "chat", "execute_tool", "chat", "chat",
                None, "chat", "invoke_agent", "chat"],
               [None, 0, 1, 1, 3, 4, 4, 6, 0, 6, 9, 0, 11],
               [["-"], ["planner", "router"], ["-"], ["-"], ["researcher", "writer", "coder"], ["-"], ["-"], ["-"],
                ["-"], ["-"], ["-"], ["critic"], ["-"]]),
}


def generate(path: Path, spans: int, shape: str = "flat") -> None:
    """Write `spans` spans (plus their exception events and evaluation records) into a new store at `path`, as
    runs of the given SHAPES entry."""
    operations, parents, agents = SHAPES[shape]
    con = open_store(path)
    runs = spans // len(operations)
    start = time.time_ns() - SPAN_DAYS * DAY_NS
    gap = SPAN_DAYS * DAY_NS // max(runs, 1)
    con.execute("""INSERT INTO resources VALUES
        (1, 'agent-app', 'demo', 'inst-1', '1.0.0', NULL, '{"service.name":"agent-app","service.namespace":"demo"}', now()),
        (2, 'support-bot', NULL, 'inst-2', '2.1.0', NULL, '{"service.name":"support-bot"}', now()),
        (3, 'research-svc', NULL, 'inst-3', NULL, NULL, '{"service.name":"research-svc"}', now())""")
    with Progress() as progress:
        task = progress.add_task(f"generating {spans:,} spans", total=spans)
        for seq, lo in enumerate(range(0, spans, BATCH), start=1):
            hi = min(spans, lo + BATCH)
            batch = con.sql(_SPANS_SQL, params={"lo": lo, "hi": hi, "start": start, "run_gap": gap,
                                                "run_size": len(operations), "operations": operations,
                                                "parents": parents, "agents": agents}).to_arrow_table()
            con.register("batch", batch)
            con.execute(f"INSERT INTO spans BY NAME SELECT {seq} AS ingest_seq, * FROM batch")
            con.execute(f"""INSERT INTO span_events BY NAME
                SELECT {seq} AS ingest_seq, trace_id, span_id, 0 AS event_index, end_time_ns AS time_ns,
                       end_time AS time, 'exception' AS name,
                       '{{"exception.type":"TimeoutError","exception.message":"tool timed out"}}' AS attributes,
                       0 AS dropped_attributes_count
                FROM batch WHERE event_count > 0""")
            con.execute(f"""INSERT INTO logs BY NAME
                SELECT {seq} AS ingest_seq, end_time_ns + 1000 AS time_ns, NULL AS observed_time_ns,
                       end_time AS time, 9 AS severity_number, NULL AS severity_text, NULL AS body,
                       'gen_ai.evaluation.result' AS event_name, trace_id, span_id, 1 AS flags,
                       resource_id, service_name, 'tracekit.evaluation' AS scope_name, NULL AS scope_version,
                       json_object('microsoft.custom_event.name', 'gen_ai.evaluation.result',
                                   'gen_ai.evaluation.name', e.evaluator,
                                   'gen_ai.evaluation.score.value', 1 + CAST(hash(span_id || e.evaluator) % 400 AS BIGINT) / 100.0)
                           AS attributes,
                       0 AS dropped_attributes_count
                FROM batch, (VALUES ('relevance'), ('coherence')) e(evaluator)
                WHERE parent_span_id IS NULL AND hash(trace_id) % 10 = 0""")
            con.unregister("batch")
            progress.update(task, completed=hi)
    views.install_in_store(con)  # as a running collector does, so readers find the views in the store
    con.execute("CHECKPOINT")
    con.close()


def median_ms(action, runs: int) -> float:
    """Median wall time of `action()` over `runs` runs, after one warm-up run."""
    action()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        action()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


# Questions a person types at the prompt, over all the data (no time range): the views' exporter-mapped columns,
# a lookup by operation id (the example), a top-N, and a make-series.
AD_HOC = {
    "issue's tool query": ('dependencies | where customDimensions["gen_ai.operation.name"] == "execute_tool" '
                           '| summarize calls = count(), p95 = percentile(duration, 95), '
                           'errors = countif(success == false) by tool = tostring(customDimensions["gen_ai.tool.name"]) '
                           '| order by calls desc'),
    "one operation": 'AppDependencies | where OperationId == "{trace_id}"',
    "name filter": 'dependencies | where name startswith "chat" | summarize count() by type, target',
    "top 10 by duration": 'dependencies | top 10 by duration desc | project name, type, duration, operation_Id',
    "make-series by agent": ('dependencies | where customDimensions["gen_ai.operation.name"] == "invoke_agent" '
                             '| make-series runs = count() on timestamp step 1h '
                             'by agent = tostring(customDimensions["gen_ai.agent.name"])'),
}


def ad_hoc_table(console: Console, reader: LocalReader, runs: int) -> None:
    """Print the median time of each AD_HOC query over the whole store."""
    trace_id = reader.sql("SELECT trace_id FROM spans LIMIT 1").column(0)[0].as_py()
    table = Table(title=f"ad hoc KQL over the whole store (median of {runs})")
    for column in ("query", "ms", "rows"):
        table.add_column(column, justify="right" if column != "query" else "left")
    for label, text in AD_HOC.items():
        query = text.replace("{trace_id}", trace_id)
        elapsed = median_ms(lambda: run_kql(reader, query), runs)
        table.add_row(label, f"{elapsed:.0f}", str(run_kql(reader, query).num_rows))
    console.print(table)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--spans", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per measurement (median reported)")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="flat", help="runs of the generated store")
    parser.add_argument("--db", type=Path, default=None, help="store file to (re)use; default: a temporary file")
    parser.add_argument("--keep", action="store_true", help="keep the generated store")
    parser.add_argument("--row-group-rows", type=int, default=None,
                        help="generate the store with DuckDB row groups of this many rows (a multiple of 2048; "
                             "default: the collector's, tracekit.store.database.ROW_GROUP_ROWS)")
    args = parser.parse_args()
    if args.row_group_rows:
        database.ROW_GROUP_ROWS = args.row_group_rows
    console = Console()

    directory = Path(tempfile.mkdtemp(prefix="tracekit-bench-"))
    path = args.db or directory / "bench.duckdb"
    if not path.exists():
        began = time.perf_counter()
        generate(path, args.spans, args.shape)
        console.print(f"generated {args.spans:,} spans in {time.perf_counter() - began:.1f} s "
                      f"({path.stat().st_size / 1e6:.0f} MB) at {path}")
    began = time.perf_counter()
    reader = LocalReader.open_file(path)
    console.print(f"opened read-only with views installed in {(time.perf_counter() - began) * 1000:.0f} ms")
    count = reader.sql("SELECT count(*) AS n FROM spans").column(0)[0].as_py()

    board = dashboards.load("agents")
    since = board.default_since
    baseline_sql = ("SELECT tool_name AS Tool, count(*) AS Calls, count(*) FILTER (WHERE status_code = 'ERROR') "
                    "AS Errors, quantile_disc((duration_ns + 500000) // 1000000, 0.95) AS P95 FROM spans "
                    "WHERE operation_name = 'execute_tool' AND start_time >= now()::TIMESTAMP - INTERVAL 24 HOUR "
                    "GROUP BY 1 ORDER BY 2 DESC")
    baseline = median_ms(lambda: reader.sql(baseline_sql), args.runs)

    table = Table(title=f"agents dashboard over {count:,} spans (median of {args.runs})")
    for column in ("tile", "24 h (ms)", "7 d (ms)", "translate (ms)", "× baseline", "rows"):
        table.add_column(column, justify="right" if column != "tile" else "left")
    worst = 0.0
    for tile in board.tiles:
        day = median_ms(lambda: run_kql(reader, tile.kql, since=since), args.runs)
        week = median_ms(lambda: run_kql(reader, tile.kql, since=None), args.runs)
        translate = median_ms(lambda: (_compiled_cache.clear(), compile_kql(reader, tile.kql, since=since)), args.runs)
        rows = run_kql(reader, tile.kql, since=since).num_rows
        worst = max(worst, day)
        table.add_row(tile.id, f"{day:.0f}", f"{week:.0f}", f"{translate:.1f}", f"{day / baseline:.1f}", str(rows))
    console.print(table)

    tools = board.tile("tools")
    compiled = compile_kql(reader, tools.kql, since=since)
    unshortened = median_ms(lambda: reader.sql(compiled.fallback_sql, compiled.params), args.runs)
    console.print(f"baseline (hand-written SQL on typed columns, tools question, 24 h): {baseline:.0f} ms")
    console.print(f"tools tile without the typed-column shortcut (full customDimensions): {unshortened:.0f} ms")
    ad_hoc_table(console, reader, args.runs)
    verdict = "PASS" if worst < 300 else "FAIL"
    console.print(f"slowest tile over 24 h: {worst:.0f} ms -> {verdict} (target < 300 ms)")
    reader.close()
    if not args.keep and args.db is None:
        path.unlink(missing_ok=True)
        Path(str(path) + ".wal").unlink(missing_ok=True)
        directory.rmdir()
    return 0


if __name__ == "__main__":
    sys.exit(main())
