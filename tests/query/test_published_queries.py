"""Microsoft's published agent queries (azure-monitor.md §4) over the views, verbatim apart from placeholders, with
every answer computed here from the SDK spans and log records themselves."""

from __future__ import annotations

import datetime as dt
import time
from collections import defaultdict

import pytest
from opentelemetry.trace import SpanKind

from tests.query.spanfactory import collector_store
from tests.query.workload import agent_request_workload, make_workload, operation
from tracekit.query.kql import run_kql

HOUR_NS = 3_600_000_000_000

MICROSOFT_QUERIES = {
    "GenAIDataCheck": 'dependencies | where isnotempty(customDimensions["gen_ai.operation.name"]) | summarize count()',
    "SelectedAgent": 'dependencies | where customDimensions["gen_ai.operation.name"] == "invoke_agent"\n'
                     '| extend AgentName = tostring(customDimensions["gen_ai.agent.name"]) '
                     '| where isnotempty(AgentName) | distinct AgentName',
    "GenAIErrorsQuery": 'let agents = dependencies | where customDimensions["gen_ai.operation.name"] == "invoke_agent" '
                        '| extend AgentName = tostring(customDimensions["gen_ai.agent.name"]);\n'
                        'let agentCalls = dependencies | lookup kind=inner (agents) '
                        'on $left.operation_ParentId == $right.id;\n'
                        'union agents, agentCalls\n'
                        '| extend ErrorType = tostring(customDimensions["error.type"])\n'
                        '| extend ErrorType = iff(success == false and isempty(ErrorType), "Other", ErrorType) '
                        '| where isnotempty(ErrorType) | summarize Errors = sum(itemCount) by ErrorType',
    "FoundryOverview": 'dependencies | where timestamp > ago(24h) '
                       '| where isnotempty(customDimensions["gen_ai.operation.name"])\n'
                       '| summarize spanCount = count(), errorCount = countif(success == false), '
                       'avgDuration = avg(duration),\n'
                       '    totalInputTokens = sum(toint(customDimensions["gen_ai.usage.input_tokens"])),\n'
                       '    totalOutputTokens = sum(toint(customDimensions["gen_ai.usage.output_tokens"])) '
                       'by bin(timestamp, 1h)',
    "FoundryModels": 'dependencies | where timestamp > ago(24h) '
                     '| where customDimensions["gen_ai.operation.name"] == "chat"\n'
                     '| summarize calls = count(), totalInput = sum(toint(customDimensions["gen_ai.usage.input_tokens"])),'
                     '\n    totalOutput = sum(toint(customDimensions["gen_ai.usage.output_tokens"])) '
                     'by model = tostring(customDimensions["gen_ai.request.model"])',
    "FoundryToolsOfOperation": 'dependencies | where operation_Id == "<operation_id>" '
                               '| where customDimensions["gen_ai.operation.name"] == "execute_tool"\n'
                               '| project timestamp, duration, success, '
                               'toolName = tostring(customDimensions["gen_ai.tool.name"]),\n'
                               '    toolArgs = tostring(customDimensions["gen_ai.tool.call.arguments"]), '
                               'toolResult = tostring(customDimensions["gen_ai.tool.call.result"])',
    "FoundryEvaluations": 'customEvents | where timestamp > ago(24h) | where name == "gen_ai.evaluation.result"\n'
                          '| extend evalName = tostring(customDimensions["gen_ai.evaluation.name"]), '
                          'score = todouble(customDimensions["gen_ai.evaluation.score.value"]),\n'
                          '    label = tostring(customDimensions["gen_ai.evaluation.score.label"]), '
                          'conversationId = tostring(customDimensions["gen_ai.conversation.id"])\n'
                          '| summarize evalCount = count(), avgScore = avg(score) by conversationId',
    "FoundryRequestsToDependencies": 'let reqIds = requests | where customDimensions["gen_ai.agent.name"] == "x" '
                                     '| distinct id;\ndependencies | where operation_ParentId in (reqIds)',
}


@pytest.fixture(scope="module")
def workload():
    """Runs from ten to the hour some five hours ago (the Foundry queries look at the last 24 hours of the real
    clock), so they fall in more than one hourly bin."""
    start_ns = (time.time_ns() - 5 * HOUR_NS) // HOUR_NS * HOUR_NS + 50 * 60 * 1_000_000_000
    workload = make_workload(runs=24, seed=13, base_ns=start_ns)
    workload.spans += agent_request_workload(start_ns)
    return workload


@pytest.fixture(scope="module")
def reader(workload, tmp_path_factory):
    with collector_store(tmp_path_factory.mktemp("published"), workload.spans, workload.logs) as collector:
        yield collector.reader()


def _dependencies(workload) -> list:
    """The spans the dependencies table holds: every kind but SERVER and CONSUMER."""
    return [span for span in workload.spans if span.kind not in (SpanKind.SERVER, SpanKind.CONSUMER)]


def _ms(span) -> float:
    """The duration as the views give it: whole milliseconds, half up."""
    return float((span.end_time - span.start_time + 500_000) // 1_000_000)


def _hour(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ns // HOUR_NS * 3600, dt.timezone.utc).replace(tzinfo=None)


def _naive_utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


def _run(reader, name: str, **placeholders: str) -> list[dict]:
    text = MICROSOFT_QUERIES[name]
    for placeholder, value in placeholders.items():
        text = text.replace(placeholder, value)
    return run_kql(reader, text).to_pylist()


def test_gen_ai_data_check_selected_agent_and_errors(reader, workload):
    spans = _dependencies(workload)
    assert _run(reader, "GenAIDataCheck") == [{"count_": sum(1 for s in spans if operation(s))}]
    agents = {row["AgentName"] for row in _run(reader, "SelectedAgent")}
    assert agents == {s.attributes["gen_ai.agent.name"] for s in spans if operation(s) == "invoke_agent"}
    agent_ids = {s.context.span_id for s in spans if operation(s) == "invoke_agent"}
    failed = sum(1 for s in spans if not s.status.is_ok
                 and (s.context.span_id in agent_ids or (s.parent and s.parent.span_id in agent_ids)))
    assert failed > 0
    # error.type never reaches customDimensions (the exporter drops it), so every failure is "Other" here as in Azure.
    assert _run(reader, "GenAIErrorsQuery") == [{"ErrorType": "Other", "Errors": failed}]


def test_foundry_overview_by_hour(reader, workload):
    expected: dict[dt.datetime, dict] = defaultdict(lambda: {"spanCount": 0, "errorCount": 0, "durations": [],
                                                             "totalInputTokens": 0, "totalOutputTokens": 0})
    for span in _dependencies(workload):
        if operation(span):
            bucket = expected[_hour(span.start_time)]
            bucket["spanCount"] += 1
            bucket["errorCount"] += not span.status.is_ok
            bucket["durations"].append(_ms(span))
            bucket["totalInputTokens"] += span.attributes.get("gen_ai.usage.input_tokens", 0)
            bucket["totalOutputTokens"] += span.attributes.get("gen_ai.usage.output_tokens", 0)
    rows = {_naive_utc(row["timestamp"]): row for row in _run(reader, "FoundryOverview")}
    assert len(expected) > 1 and set(rows) == set(expected)
    for hour, bucket in expected.items():
        row = rows[hour]
        assert [row[key] for key in ("spanCount", "errorCount", "totalInputTokens", "totalOutputTokens")] == [
            bucket[key] for key in ("spanCount", "errorCount", "totalInputTokens", "totalOutputTokens")], hour
        assert row["avgDuration"] == pytest.approx(sum(bucket["durations"]) / len(bucket["durations"]), abs=1e-9)


def test_foundry_models(reader, workload):
    expected: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for span in _dependencies(workload):
        if operation(span) == "chat":
            entry = expected[span.attributes["gen_ai.request.model"]]
            entry[0] += 1
            entry[1] += span.attributes.get("gen_ai.usage.input_tokens", 0)
            entry[2] += span.attributes.get("gen_ai.usage.output_tokens", 0)
    rows = _run(reader, "FoundryModels")
    assert {row["model"]: [row["calls"], row["totalInput"], row["totalOutput"]] for row in rows} == dict(expected)


def test_foundry_tools_of_one_operation(reader, workload):
    tools_by_trace: dict[int, list] = defaultdict(list)
    for span in _dependencies(workload):
        if operation(span) == "execute_tool":
            tools_by_trace[span.context.trace_id].append(span)
    trace_id, tools = max(tools_by_trace.items(), key=lambda item: (len(item[1]), item[0]))
    assert len(tools) > 1
    rows = _run(reader, "FoundryToolsOfOperation", **{"<operation_id>": format(trace_id, "032x")})
    got = sorted((row["toolName"], row["success"], row["duration"], row["toolArgs"], row["toolResult"])
                 for row in rows)
    assert got == sorted((span.attributes["gen_ai.tool.name"], span.status.is_ok, _ms(span), "", "")
                         for span in tools)
    # The envelope time as the Azure exporter writes it: datetime.fromtimestamp(ns / 1e9), float rounding and all.
    assert sorted(_naive_utc(row["timestamp"]) for row in rows) == sorted(
        dt.datetime.fromtimestamp(span.start_time / 1e9, dt.timezone.utc).replace(tzinfo=None) for span in tools)


def test_foundry_evaluations(reader, workload):
    scores = [log.log_record.attributes["gen_ai.evaluation.score.value"] for log in workload.logs]
    # The evaluation events carry no conversation id, so they all fall in one group, as they would in Azure.
    rows = _run(reader, "FoundryEvaluations")
    assert [(row["conversationId"], row["evalCount"]) for row in rows] == [("", len(scores))]
    assert rows[0]["avgScore"] == pytest.approx(sum(scores) / len(scores))


def test_foundry_requests_to_dependencies(reader, workload):
    request = next(span for span in workload.spans if span.kind is SpanKind.SERVER)
    children = {format(span.context.span_id, "016x") for span in workload.spans
                if span.parent is not None and span.parent.span_id == request.context.span_id}
    rows = _run(reader, "FoundryRequestsToDependencies")
    assert len(children) == 2 and {row["id"] for row in rows} == children
