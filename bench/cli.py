"""Benchmark: `tracekit query` as a person runs it, a whole process each time, against floors timed in the same run.

    python bench/cli.py [--runs 5] [--spans 5000] [--big] [--big-spans 1000000] [--big-shape flat|nested] [--big-db PATH]
                        [--tiles ID,ID] [--big-only] [--against PYTHON]

Each figure is the median wall time of `--runs` runs of a fresh process (after one warm-up run, so the page cache
and the KQL translation cache are warm, as they are for someone at the prompt), each command run alternately with
its floor so that both see the same load. The floors are the least any Python tool could do for the same answer:

* KQL floor: a Python process that imports duckdb and duckdb_kql, opens the store read-only and runs the SQL the
  query becomes (taken from tracekit itself);
* SQL floor: a Python process that imports duckdb, opens the store and runs the same SQL;
* dashboard floor (1M spans): a Python process that imports duckdb and duckdb_kql and counts the spans.

Targets (issue 19): KQL ≤ 1.3× its floor, SQL ≤ 1.3× its floor on a small store, file and collector alike; a
dashboard tile's KQL on 1M spans ≤ the dashboard floor + 0.3 s. The small store is made in a temporary directory;
with `--big` the 1M-span store is built once (about a minute) and kept in `$XDG_CACHE_HOME/tracekit-bench/`
(else ~/.cache/tracekit-bench/) or at `--big-db`; `--big-shape nested` makes its runs agents within agents, hand-offs
and calls below tools and steps (bench/query.py SHAPES), where the cost-by-agent tile has ancestors to walk; a store kept from another version gets this version's schema and
views first, as a collector would give it (else every command would create TEMP views). The load average at the
start and end of the run is printed under the table. The KQL translation cache is kept in a temporary directory, so
the first (warm-up) run of each query pays the translation and the timed runs read it back.

Beside each wall time the table gives the process's CPU time (user + system, all threads): steadier than wall time
while other work shares the cores, though the targets are wall times.

`--against PYTHON` (with `--big`) times each tile a second time as that interpreter's tracekit runs it (its own
tile KQL, e.g. /work/venv/bin/python for main's checkout), in the same alternation as this one and the floor, and
adds a row for it: a change to a tile is judged against the tile before it under the same load. The baseline reads
the store's views as they are; when its tracekit's views differ from this one's, it builds TEMP views on every run
and its figures say so by being slower. `--tiles` picks the tiles, `--big-only` skips the small-store rows.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tracekit import dashboards  # noqa: E402
from tracekit.query import views  # noqa: E402
from tracekit.query.kql import compile_kql  # noqa: E402
from tracekit.store.database import open_store  # noqa: E402
from tracekit.store.reader import LocalReader  # noqa: E402

KQL = ('dependencies | where customDimensions["gen_ai.operation.name"] == "execute_tool" '
       '| summarize calls = count(), errors = countif(success == false) '
       'by tool = tostring(customDimensions["gen_ai.tool.name"]) | order by calls desc')
SQL = ("SELECT tool_name AS tool, count(*) AS calls, count(*) FILTER (WHERE status_code = 'ERROR') AS errors "
       "FROM spans WHERE operation_name = 'execute_tool' GROUP BY 1 ORDER BY 2 DESC")
TILES = ("runs_by_agent", "models", "tools", "runs_over_time", "cost_by_model", "cost_by_agent")

# The floors: the same work with nothing of tracekit's. argv: db path, SQL, JSON parameters.
FLOOR = """
import sys, json, duckdb{extra}
con = duckdb.connect(sys.argv[1], read_only=True)
print(len(con.execute(sys.argv[2], json.loads(sys.argv[3]) or None).fetchall()))
"""


def _generator():
    """bench/query.py's store generator (vectorised in DuckDB, no collector)."""
    spec = importlib.util.spec_from_file_location("bench_query", ROOT / "bench" / "query.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.generate


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall time and CPU time (user + system, all threads) of `argv` as a process."""
    cpu_before = _children_cpu()
    began = time.perf_counter()
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, stderr = process.communicate()
    elapsed = time.perf_counter() - began
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])}... failed: {stderr.strip()}")
    return elapsed, _children_cpu() - cpu_before  # the only child reaped meanwhile


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def paired_medians(command: list[str], baseline: list[str], runs: int,
                   env: dict[str, str]) -> tuple[float, float, float, float]:
    """Median wall and CPU times of `command` and `baseline` as processes, run alternately (so both see the same
    load on a shared machine), after one warm-up run of each: (wall, baseline wall, CPU, baseline CPU)."""
    (took, cpu), (base, base_cpu) = interleaved_medians([(command, env), (baseline, env)], runs)
    return took, base, cpu, base_cpu


def interleaved_medians(commands: list[tuple[list[str], dict[str, str]]], runs: int) -> list[tuple[float, float]]:
    """Median (wall, CPU) of each command as a process, the commands run in turn `runs` times after one warm-up run
    of each, so that all see the same load."""
    for argv, env in commands:
        _timed(argv, env)
    timings = [[_timed(argv, env) for argv, env in commands] for _ in range(runs)]
    return [(statistics.median(run[i][0] for run in timings), statistics.median(run[i][1] for run in timings))
            for i in range(len(commands))]


def baseline_tile_kql(python: str, tile_id: str, env: dict[str, str]) -> str:
    """The agents dashboard tile's KQL as the tracekit of another interpreter defines it."""
    script = "import sys; from tracekit import dashboards; print(dashboards.load('agents').tile(sys.argv[1]).kql)"
    return subprocess.run([python, "-c", script, tile_id], env=env, check=True, capture_output=True,
                          text=True).stdout


def tracekit(*args: str) -> list[str]:
    """The `tracekit` console script a person runs (through `python -m tracekit.cli` where it is not installed)."""
    script = Path(sys.executable).with_name("tracekit")
    return [str(script), *args] if script.exists() else [sys.executable, "-m", "tracekit.cli", *args]


def floor(db: Path, sql: str, params: dict | None, *, kql: bool) -> list[str]:
    script = FLOOR.format(extra=", duckdb_kql" if kql else "")
    return [sys.executable, "-c", script, str(db), sql, json.dumps(params or {})]


def compiled_sql(db: Path, text: str) -> tuple[str, dict]:
    """The SQL `tracekit query` runs for `text` (the shortcut when there is one), and its parameters."""
    reader = LocalReader.open_file(db)
    try:
        compiled = compile_kql(reader, text)
    finally:
        reader.close()
    return compiled.sql, compiled.params


class Collector:
    """`tracekit collect` on a copy of the store, on free ports, for the read-API figures."""

    def __init__(self, db: Path, env: dict[str, str]) -> None:
        self.db = db
        self.process = subprocess.Popen(tracekit("collect", "--db", str(db), "--grpc", "127.0.0.1:0",
                                                 "--http", "127.0.0.1:0"),
                                        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        state = Path(str(db) + ".collector.json")
        deadline = time.monotonic() + 60
        while not state.exists():
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise SystemExit("the collector did not start")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per figure (median reported)")
    parser.add_argument("--spans", type=int, default=5000, help="spans in the small store")
    parser.add_argument("--big", action="store_true", help="also time dashboard tiles on a large store")
    parser.add_argument("--big-spans", type=int, default=1_000_000)
    parser.add_argument("--big-shape", choices=("flat", "nested"), default="flat",
                        help="the large store's runs: one agent and its calls, or nested agents and hand-offs")
    parser.add_argument("--big-db", type=Path, default=None, help="the large store (built there if missing)")
    parser.add_argument("--tiles", default=",".join(TILES), help="the tiles to time on the large store, by id")
    parser.add_argument("--big-only", action="store_true", help="skip the small-store rows")
    parser.add_argument("--against", metavar="PYTHON", default=None,
                        help="with --big, also time each tile as this interpreter's tracekit runs it (a baseline)")
    args = parser.parse_args()
    console = Console(width=170)
    started_load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    work = Path(tempfile.mkdtemp(prefix="tracekit-bench-cli-"))
    env = {**os.environ, "XDG_CACHE_HOME": str(work / "cache"), "PYTHONPATH": str(ROOT)}
    generate = _generator()
    rows: list[tuple[str, float, float, str, float, float, str, str, bool]] = []
    try:
        if not args.big_only:
            small = work / "small.duckdb"
            generate(small, args.spans)
            kql_sql, kql_params = compiled_sql(small, KQL)
            kql_floor = floor(small, kql_sql, kql_params, kql=True)
            sql_floor = floor(small, SQL, None, kql=False)

            def ratio_row(label: str, argv: list[str], baseline: list[str], base_label: str) -> None:
                took, base, cpu, base_cpu = paired_medians(argv, baseline, args.runs, env)
                rows.append((label, took, cpu, base_label, base, base_cpu, f"{took / base:.2f}× (≤ 1.30×)",
                             f"{cpu / base_cpu:.2f}×", took <= 1.3 * base))

            ratio_row("query KQL, file", tracekit("query", "--db", str(small), KQL), kql_floor, "duckdb+duckdb_kql")
            ratio_row("query --sql, file", tracekit("query", "--db", str(small), "--sql", SQL), sql_floor, "duckdb")
            served = work / "served.duckdb"
            shutil.copy(small, served)
            collector = Collector(served, env)
            try:
                ratio_row("query KQL, collector", tracekit("query", "--db", str(served), KQL), kql_floor,
                          "duckdb+duckdb_kql")
                ratio_row("query --sql, collector", tracekit("query", "--db", str(served), "--sql", SQL), sql_floor,
                          "duckdb")
            finally:
                collector.stop()

        if args.big:
            cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tracekit-bench"
            suffix = "" if args.big_shape == "flat" else f"-{args.big_shape}"
            big = args.big_db or cache / f"spans-{args.big_spans}{suffix}.duckdb"
            if not big.exists():
                big.parent.mkdir(parents=True, exist_ok=True)
                began = time.perf_counter()
                generate(big, args.big_spans, args.big_shape)
                console.print(f"built {big} in {time.perf_counter() - began:.0f} s")
            else:  # built by another version: its schema and views brought up to date, as a collector would
                con = open_store(big)
                try:
                    views.install_in_store(con)
                finally:
                    con.close()
            count_floor = floor(big, "SELECT count(*) FROM spans", None, kql=True)
            board = dashboards.load("agents")
            against_env = {key: value for key, value in env.items() if key != "PYTHONPATH"}
            for tile_id in args.tiles.split(","):
                commands = [(tracekit("query", "--db", str(big), board.tile(tile_id).kql), env), (count_floor, env)]
                if args.against:
                    commands.append(([args.against, "-m", "tracekit.cli", "query", "--db", str(big),
                                      baseline_tile_kql(args.against, tile_id, against_env)], against_env))
                (took, cpu), (base, base_cpu), *against = interleaved_medians(commands, args.runs)
                for label, (t, c) in [(f"tile {tile_id}, {args.big_spans:,} spans", (took, cpu)),
                                      *[(f"  the same, {args.against}", timing) for timing in against]]:
                    rows.append((label, t, c, "count(*) with duckdb+duckdb_kql", base, base_cpu,
                                 f"{t - base:+.2f} s (≤ +0.30 s)", f"{c - base_cpu:+.2f} s", t <= base + 0.3))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    table = Table(title=f"tracekit query as a process (median of {args.runs}, {os.cpu_count()} cores)",
                  caption=f"load average at the start {started_load}, at the end {load} (1/5/15 min)")
    for column in ("command", "s", "CPU s", "floor", "floor s", "floor CPU s", "vs floor", "CPU vs floor", "target"):
        table.add_column(column, justify="left" if column in ("command", "floor") else "right")
    for label, took, cpu, base_label, base, base_cpu, versus, cpu_versus, met in rows:
        table.add_row(label, f"{took:.3f}", f"{cpu:.3f}", base_label, f"{base:.3f}", f"{base_cpu:.3f}", versus,
                      cpu_versus, "met" if met else "MISSED")
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
