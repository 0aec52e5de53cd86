"""The agents dashboard: definitions, every tile's answer against the spans, terminal rendering, Workbook export."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict

import pytest
from genai_prices import Usage, calc_price

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
    for required in ("runs_by_agent", "run_latency", "models", "tools", "errors", "evaluations", "cost_by_model",
                     "cost_by_agent"):
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


# --- cost tiles: checked against genai-prices itself and the span tree, never against tracekit.cost ----------------


def _price(span) -> float | None:
    """What the call costs by genai-prices: response model first, else the request model (as the issue says)."""
    attributes = span.attributes
    when = dt.datetime.fromtimestamp(span.start_time / 1e9, dt.timezone.utc)
    usage = Usage(input_tokens=attributes["gen_ai.usage.input_tokens"],
                  output_tokens=attributes["gen_ai.usage.output_tokens"])
    for model in filter(None, (attributes.get("gen_ai.response.model"), attributes.get("gen_ai.request.model"))):
        try:
            return float(calc_price(usage, model_ref=model, provider_id="openai",
                                    genai_request_timestamp=when).total_price)
        except LookupError:
            continue
    return None


def _hour(span) -> dt.datetime:
    return dt.datetime(1970, 1, 1) + dt.timedelta(hours=span.start_time // HOUR_NS)


def _close(rows, key, expected):
    got = {(row["timestamp"], row[key]): row["CostUSD"] for row in rows}
    assert set(got) == set(expected)
    for cell, value in expected.items():
        assert got[cell] == pytest.approx(value, rel=1e-9)


def test_cost_by_model_over_time(store, workload):
    expected = defaultdict(float)
    for span in workload.spans:
        if _op(span) == "chat":
            expected[(_hour(span), span.attributes["gen_ai.request.model"])] += _price(span)
    assert len({hour for hour, _ in expected}) > 1 and all(value > 0 for value in expected.values())
    _close(_run(store, "cost_by_model"), "Model", expected)


def test_cost_by_agent_over_time(store, workload):
    agent_of = {span.context.span_id: span.attributes["gen_ai.agent.name"]
                for span in workload.spans if _op(span) == "invoke_agent"}
    expected = defaultdict(float)
    for span in workload.spans:
        if _op(span) == "chat":
            expected[(_hour(span), agent_of[span.parent.span_id])] += _price(span)
    _close(_run(store, "cost_by_agent"), "Agent", expected)


@pytest.fixture(scope="module")
def nested(tmp_path_factory):
    """Agents within agents and calls below other spans: planner -> chat; planner -> execute_tool -> chat;
    planner -> invoke_agent researcher -> chat (the researcher's); a chat under no agent; a model without a price
    (absent from both tiles, not counted as 0); a call sampled at 25 % (itemCount 4); hand-offs under a workflow
    span that is no agent (triage hands off to billing, a sibling, whose call is below a step without an operation
    name, and to escalation through its transfer tool); chains 16 and 17 spans deep."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    base = BASE_NS // HOUR_NS * HOUR_NS
    clock = iter(range(base, base + 10**12, 10**9))

    def span(name, parent=None, **attributes):
        context = trace.set_span_in_context(parent) if parent is not None else None
        started = tracer.start_span(name, context=context, start_time=next(clock), attributes=attributes)
        return started

    def chat(parent, model, tokens, **extra):
        call = span(f"chat {model}", parent, **{"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                                                "gen_ai.request.model": model,
                                                "gen_ai.usage.input_tokens": tokens,
                                                "gen_ai.usage.output_tokens": tokens // 10}, **extra)
        call.end(end_time=next(clock))

    agent = {"gen_ai.operation.name": "invoke_agent"}
    planner = span("invoke_agent planner", **agent, **{"gen_ai.agent.name": "planner"})
    chat(planner, "gpt-4o", 1000)
    tool = span("execute_tool search", planner, **{"gen_ai.operation.name": "execute_tool"})
    chat(tool, "gpt-4o-mini", 2000)
    tool.end(end_time=next(clock))
    researcher = span("invoke_agent researcher", planner, **agent, **{"gen_ai.agent.name": "researcher"})
    chat(researcher, "gpt-4o", 3000)
    chat(researcher, "no-such-model", 4000)
    chat(researcher, "gpt-4o-mini", 5000, **{"_MS.sampleRate": 25.0})
    researcher.end(end_time=next(clock))
    planner.end(end_time=next(clock))
    chat(None, "gpt-4o", 6000)
    workflow = span("workflow support")  # a trace root that is no agent, as agent SDKs open one per run
    triage = span("invoke_agent triage", workflow, **agent, **{"gen_ai.agent.name": "triage"})
    chat(triage, "gpt-4o", 700)
    transfer = span("execute_tool transfer_to_escalation", triage, **{"gen_ai.operation.name": "execute_tool"})
    escalation = span("invoke_agent escalation", transfer, **agent, **{"gen_ai.agent.name": "escalation"})
    chat(escalation, "gpt-4o-mini", 750)
    escalation.end(end_time=next(clock))
    transfer.end(end_time=next(clock))
    triage.end(end_time=next(clock))
    billing = span("invoke_agent billing", workflow, **agent, **{"gen_ai.agent.name": "billing"})
    step = span("lookup invoice", billing)  # no gen_ai.operation.name
    chat(step, "gpt-4o-mini", 800)
    step.end(end_time=next(clock))
    billing.end(end_time=next(clock))
    chat(workflow, "gpt-4o", 900)  # between the hand-offs: under no agent
    workflow.end(end_time=next(clock))
    deep = span("invoke_agent deep", **agent, **{"gen_ai.agent.name": "deep"})
    for depth in (16, 17):  # a call 16 spans below its agent is the agent's; 17 below is beyond the walk
        chain = [deep]
        for _ in range(depth - 1):
            chain.append(span("execute_tool step", chain[-1], **{"gen_ai.operation.name": "execute_tool"}))
        chat(chain[-1], "gpt-4o", 100 * depth)
        for link in reversed(chain[1:]):
            link.end(end_time=next(clock))
    deep.end(end_time=next(clock))
    directory = tmp_path_factory.mktemp("nested")
    with collector_store(directory, exporter.get_finished_spans()) as collector:
        yield collector.reader(), exporter.get_finished_spans()


def test_cost_goes_to_the_nearest_agent_and_unknown_prices_stay_out(nested):
    reader, spans = nested
    by_id = {span.context.span_id: span for span in spans}

    def nearest_agent(span):  # at most 16 spans up, as the tile's walk
        parent, hops = span.parent and by_id.get(span.parent.span_id), 1
        while parent is not None and _op(parent) != "invoke_agent":
            parent, hops = parent.parent and by_id.get(parent.parent.span_id), hops + 1
        return parent.attributes["gen_ai.agent.name"] if parent is not None and hops <= 16 else None

    by_model, by_agent = defaultdict(float), defaultdict(float)
    for span in spans:
        if _op(span) != "chat" or (price := _price(span)) is None:
            continue
        weighted = price * 100 / span.attributes.get("_MS.sampleRate", 100)
        by_model[(_hour(span), span.attributes["gen_ai.request.model"])] += weighted
        if nearest_agent(span) is not None:
            by_agent[(_hour(span), nearest_agent(span))] += weighted
    assert _price(next(s for s in spans if s.name == "chat no-such-model")) is None
    assert {agent for _, agent in by_agent} == {"planner", "researcher", "deep", "triage", "escalation", "billing"}
    assert [nearest_agent(s) for s in spans if s.attributes.get("gen_ai.usage.input_tokens") in (1600, 1700)] == \
        ["deep", None]
    board = dashboards.load("agents")
    _close(dashboards.run_tile(reader, board.tile("cost_by_model"), None).to_pylist(), "Model", by_model)
    _close(dashboards.run_tile(reader, board.tile("cost_by_agent"), None).to_pylist(), "Agent", by_agent)
    # The measurement is absent, never 0, where there is no price; both table spellings carry it.
    from tracekit.query.kql import run_kql

    rows = run_kql(reader, 'dependencies | project name, m = customMeasurements, '
                           'c = toreal(customMeasurements["tracekit.cost_usd"]) | order by name asc').to_pylist()
    unpriced = [row for row in rows
                if row["name"] in ("chat no-such-model", "execute_tool search", "execute_tool step")]
    assert unpriced and all(row["m"] is None and row["c"] is None for row in unpriced)
    workspace = run_kql(reader, 'AppDependencies | where isnotnull(Measurements["tracekit.cost_usd"]) '
                                '| summarize n = count()').to_pylist()
    assert workspace == [{"n": sum(1 for row in rows if row["c"] is not None)}] and workspace[0]["n"] == 11


# The tile as it was before 2026-12-07 (docs/decisions/2026-12-07-cost-by-agent-joins.md): the same question asked
# with make-graph / graph-match over the spans that have children. The joins must give its answer.
_COST_BY_AGENT_GRAPH_WALK = '''
let items = dependencies
    | project id, operation_ParentId, timestamp, itemCount,
        Operation = tostring(customDimensions["gen_ai.operation.name"]),
        AgentName = tostring(customDimensions["gen_ai.agent.name"]),
        Cost = toreal(customMeasurements["tracekit.cost_usd"]);
let parentIds = items | distinct operation_ParentId;
let parents = items | where id in (parentIds);
let owners = union
    (parents | where Operation == "invoke_agent" | project id, Agent = AgentName),
    (parents
        | make-graph operation_ParentId --> id with parents on id
        | graph-match (agent)-[path*1..15]->(owned)
            where agent.Operation == "invoke_agent" and owned.Operation != "invoke_agent"
                and all(inner_nodes(path), Operation != "invoke_agent")
            project id = owned.id, Agent = agent.AgentName);
items
| where isnotnull(Cost)
| join kind=inner owners on $left.operation_ParentId == $right.id
| summarize CostUSD = sum(Cost * itemCount) by bin(timestamp, 1h), Agent
| order by timestamp asc, Agent asc
'''


@pytest.mark.parametrize("which", ["store", "nested"])
def test_cost_by_agent_gives_the_graph_walks_answer(which, request):
    from tracekit.query.kql import run_kql

    reader = request.getfixturevalue(which)[0]
    tile = dashboards.load("agents").tile("cost_by_agent")
    walked = run_kql(reader, _COST_BY_AGENT_GRAPH_WALK).to_pylist()
    assert len(walked) > 1
    _close(dashboards.run_tile(reader, tile, None).to_pylist(), "Agent",
           {(row["timestamp"], row["Agent"]): row["CostUSD"] for row in walked})


def test_cost_lines_draw_one_sparkline_per_series(store, capsys):
    _, path = store
    assert main(["dashboards", "show", "agents", "--db", str(path), "--since", "all", "--tile", "cost_by_model"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "gpt-4o" in line]
    assert len(lines) == 2 and all(any(block in line for block in "▁▂▃▄▅▆▇█") for line in lines)
    assert "0.0" not in out.split()  # small USD amounts keep their digits


def test_workbook_carries_the_cost_tiles():
    workbook = to_workbook(dashboards.load("agents"))
    items = {item["name"]: item["content"] for item in workbook["items"] if item["type"] == 3}
    for tile_id in ("cost_by_model", "cost_by_agent"):
        content = items[f"tile - {tile_id}"]
        assert content["visualization"] == "timechart"
        assert 'toreal(customMeasurements["tracekit.cost_usd"])' in content["query"]
