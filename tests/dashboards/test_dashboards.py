"""The agents dashboard: definitions, every tile's answer against the spans, terminal rendering, Workbook export."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict

import pytest

import tracekit.dashboards as dashboards
from tests.query.spanfactory import collector_store
from tests.query.workload import BASE_NS, make_workload
from tracekit.cli import main
from tracekit.dashboards.workbook import to_workbook


HOUR_NS = 3_600_000_000_000


@pytest.fixture(scope="module")
def workload():
    # from ten to the hour, so the runs (some 25 minutes of them) fall in two hourly bins
    return make_workload(runs=24, seed=9, base_ns=BASE_NS // HOUR_NS * HOUR_NS + 50 * 60 * 1_000_000_000)


@pytest.fixture(scope="module")
def store(workload, tmp_path_factory):
    directory = tmp_path_factory.mktemp("dash")
    with collector_store(directory, workload.spans, workload.logs) as collector:
        yield collector.reader(), directory / "traces.duckdb"


def _op(span):
    return span.attributes.get("gen_ai.operation.name")


def _ms(span) -> float:
    return float((span.end_time - span.start_time + 500_000) // 1_000_000)


def _rank(values, percent):
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def _run(store, tile_id):
    reader, _ = store
    return dashboards.run_tile(reader, dashboards.load("agents").tile(tile_id), None).to_pylist()


def test_agents_dashboard_definition():
    assert "agents" in dashboards.names()
    board = dashboards.load("agents")
    assert board.default_since == dt.timedelta(hours=24)
    ids = [tile.id for tile in board.tiles]
    for required in ("runs_by_agent", "run_latency", "models", "tools", "errors", "evaluations"):
        assert required in ids
    assert {tile.chart for tile in board.tiles} <= set(dashboards.CHART_KINDS)
    with pytest.raises(dashboards.DashboardError, match="available: agents"):
        dashboards.load("nope")


def test_runs_and_success_by_agent(store, workload):
    runs = defaultdict(lambda: [0, 0])
    for span in workload.spans:
        if _op(span) == "invoke_agent":
            entry = runs[span.attributes["gen_ai.agent.name"]]
            entry[0] += 1
            entry[1] += not span.status.is_ok
    rows = _run(store, "runs_by_agent")
    assert {r["AgentName"]: [r["Runs"], r["Failed"]] for r in rows} == {k: v for k, v in runs.items()}
    for row in rows:
        assert row["SuccessRate"] == round(100.0 * (row["Runs"] - row["Failed"]) / row["Runs"], 1)
    total = sum(v[0] for v in runs.values())
    failed = sum(v[1] for v in runs.values())
    assert _run(store, "runs_total") == [{"Runs": total}]
    assert _run(store, "success_rate") == [{"SuccessRate": round(100.0 * (total - failed) / total, 1)}]


def test_latency_of_runs(store, workload):
    durations = defaultdict(list)
    for span in workload.spans:
        if _op(span) == "invoke_agent":
            durations[span.attributes["gen_ai.agent.name"]].append(_ms(span))
    rows = {r["AgentName"]: r for r in _run(store, "run_latency")}
    for agent, values in durations.items():
        assert (rows[agent]["P50"], rows[agent]["P95"]) == (_rank(values, 50), _rank(values, 95))


def test_runs_over_time(store, workload):
    expected = defaultdict(int)
    for span in workload.spans:
        if _op(span) == "invoke_agent":
            expected[dt.datetime(1970, 1, 1) + dt.timedelta(hours=span.start_time // HOUR_NS)] += 1
    rows = _run(store, "runs_over_time")
    assert len(expected) > 1 and [(r["timestamp"], r["Runs"]) for r in rows] == sorted(expected.items())


def test_models_and_tokens(store, workload):
    expected = defaultdict(lambda: [0, 0, 0])
    durations = defaultdict(list)
    for span in workload.spans:
        if _op(span) == "chat":
            entry = expected[span.attributes["gen_ai.request.model"]]
            entry[0] += 1
            entry[1] += span.attributes["gen_ai.usage.input_tokens"]
            entry[2] += span.attributes["gen_ai.usage.output_tokens"]
            durations[span.attributes["gen_ai.request.model"]].append(_ms(span))
    rows = _run(store, "models")
    assert {r["Model"]: [r["Calls"], int(r["InputTokens"]), int(r["OutputTokens"])] for r in rows} == dict(expected)
    assert {r["Model"]: r["P95"] for r in rows} == {model: _rank(values, 95) for model, values in durations.items()}


def test_tools_and_errors(store, workload):
    tools = defaultdict(lambda: [0, 0])
    durations = defaultdict(list)
    error_types = defaultdict(int)
    for span in workload.spans:
        if _op(span) == "execute_tool":
            tools[span.attributes["gen_ai.tool.name"]][0] += 1
            tools[span.attributes["gen_ai.tool.name"]][1] += not span.status.is_ok
            durations[span.attributes["gen_ai.tool.name"]].append(_ms(span))
        if not span.status.is_ok:
            exception = next((e for e in span.events if e.name == "exception"), None)
            error_types[exception.attributes["exception.type"] if exception else "Other"] += 1
    rows = _run(store, "tools")
    assert {r["Tool"]: [r["Calls"], r["Errors"]] for r in rows} == dict(tools)
    assert {r["Tool"]: r["P95"] for r in rows} == {tool: _rank(values, 95) for tool, values in durations.items()}
    assert {r["ErrorType"]: r["Errors"] for r in _run(store, "errors")} == dict(error_types)


def test_evaluation_scores(store, workload):
    scores = defaultdict(list)
    for log in workload.logs:
        attributes = log.log_record.attributes
        scores[attributes["gen_ai.evaluation.name"]].append(attributes["gen_ai.evaluation.score.value"])
    rows = {r["Evaluator"]: r for r in _run(store, "evaluations")}
    for name, values in scores.items():
        assert rows[name]["Evaluations"] == len(values)
        assert rows[name]["AvgScore"] == round(sum(values) / len(values), 2)
        assert rows[name]["MinScore"] == min(values)


def test_time_range_narrows_every_tile(store, workload):
    reader, _ = store
    board = dashboards.load("agents")
    from tracekit.query.kql import run_kql

    end_ns = max(s.end_time for s in workload.spans)
    now = dt.datetime.fromtimestamp(end_ns / 1e9, dt.timezone.utc)
    window = dt.timedelta(minutes=3)
    cutoff = end_ns - 3 * 60 * 1_000_000_000
    runs = run_kql(reader, board.tile("runs_total").kql, since=window, now=now).to_pylist()
    expected = sum(1 for s in workload.spans if _op(s) == "invoke_agent" and s.start_time >= cutoff)
    assert 0 < expected < 24
    assert runs == [{"Runs": expected}]
    over_time = run_kql(reader, board.tile("runs_over_time").kql, since=window, now=now).to_pylist()
    assert sum(row["Runs"] for row in over_time) == expected
    for tile in board.tiles:  # every tile runs with a range
        run_kql(reader, tile.kql, since=window, now=now)
    assert BASE_NS < end_ns


def test_show_renders_every_tile(store, capsys):
    _, path = store
    assert main(["dashboards", "show", "agents", "--db", str(path), "--since", "all"]) == 0
    out = capsys.readouterr().out
    for tile in dashboards.load("agents").tiles:
        assert tile.title in out
    for agent in ("planner", "researcher", "writer", "gpt-4o-mini", "calculator", "relevance"):
        assert agent in out


def test_show_prints_markup_literally(tmp_path, capsys):
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("t").start_span("invoke_agent x", attributes={
        "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "[red]evil[/red]"}).end()
    with collector_store(tmp_path, exporter.get_finished_spans()):
        pass
    assert main(["dashboards", "show", "agents", "--db", str(tmp_path / "traces.duckdb"), "--since", "all",
                 "--tile", "runs_by_agent"]) == 0
    assert "[red]evil[/red]" in capsys.readouterr().out


def test_workbook_export_carries_the_same_kql(capsys):
    board = dashboards.load("agents")
    assert main(["dashboards", "export", "agents", "--workbook"]) == 0
    workbook = json.loads(capsys.readouterr().out)
    assert workbook == to_workbook(board)
    assert workbook["version"] == "Notebook/1.0"
    queries = [item["content"] for item in workbook["items"] if item["type"] == 3]
    assert [q["query"] for q in queries] == [tile.kql for tile in board.tiles]
    assert all(q["timeContextFromParameter"] == "TimeRange" for q in queries)
    assert all(q["resourceType"] == "microsoft.insights/components" for q in queries)
    parameters = next(item for item in workbook["items"] if item["type"] == 9)["content"]["parameters"]
    assert parameters[0]["name"] == "TimeRange" and parameters[0]["value"] == {"durationMs": 86_400_000}
    by_kind = {tile.chart: q["visualization"] for tile, q in zip(board.tiles, queries)}
    assert by_kind == {"number": "tiles", "bar": "barchart", "line": "timechart", "table": "table"}


def test_list(capsys):
    assert main(["dashboards", "list"]) == 0
    assert capsys.readouterr().out.startswith("agents\t")


def test_workbook_export_with_db_runs_every_tile_first(tmp_path, capsys):
    """--db: each tile runs over the store before export; a tile whose KQL fails is named with the reason."""
    from tracekit.commands.dashboards import _check_tiles_run
    from tracekit.errors import QueryError

    with collector_store(tmp_path):
        pass
    db = str(tmp_path / "traces.duckdb")
    assert main(["dashboards", "export", "agents", "--workbook", "--db", db]) == 0
    assert json.loads(capsys.readouterr().out) == to_workbook(dashboards.load("agents"))

    broken = dashboards.parse({"tiles": [
        {"id": "ok", "title": "ok", "kql": "dependencies | count", "chart": "number"},
        {"id": "typo", "title": "typo", "kql": "dependencies | summarise count()", "chart": "number"}]}, "mine")
    with pytest.raises(QueryError, match=r"tile 'typo' of 'mine' does not run: .*summari"):
        _check_tiles_run(broken, db)
