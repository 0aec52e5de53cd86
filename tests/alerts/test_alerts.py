"""Alert rules: checked over real stores written by the demo through the real collector, and exported as ARM."""

from __future__ import annotations

import json
import time
from pathlib import Path
from xml.etree import ElementTree

import pytest

from tracekit.alerts.arm import resource_name
from tracekit.alerts.rules import RuleError, load_rules
from tracekit.cli import main
from tracekit.demo import run_demo

FAILED_TOOLS = '''
[[alert]]
name = "failed tool calls"
description = "a tool call failed"
severity = 2
query = \'\'\'dependencies | where success == false
| where customDimensions["gen_ai.operation.name"] == "execute_tool"
| summarize value = count() by tool = tostring(customDimensions["gen_ai.tool.name"])\'\'\'
operator = ">"
threshold = 0
window = "1h"
frequency = "5m"

[[alert]]
name = "busy tools"
severity = 4
query = \'\'\'dependencies | where customDimensions["gen_ai.operation.name"] == "execute_tool"
| summarize value = count() by tool = tostring(customDimensions["gen_ai.tool.name"])\'\'\'
operator = "!="
threshold = THRESHOLD
window = "1h"
'''


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory):
    """A store holding two demo conversations, written through a real collector (stopped afterwards)."""
    from tracekit.collector.service import Collector
    from tracekit.collector.settings import CollectorSettings
    from tracekit.store.reader import open_reader

    path = tmp_path_factory.mktemp("alerts") / "traces.duckdb"
    with Collector(CollectorSettings(db_path=path, grpc="127.0.0.1:0", http="127.0.0.1:0")).running() as collector:
        sent = run_demo(f"http://{collector.grpc_endpoint}", conversations=2)
        reader = collector.reader()
        deadline = time.monotonic() + 15
        while reader.sql("SELECT count(*) AS n FROM spans").column("n")[0].as_py() < sent:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    reader = open_reader(path)
    tools = reader.sql("""SELECT tool_name, count(*) AS calls, count(*) FILTER (status_code = 'ERROR') AS failed
                          FROM spans WHERE operation_name = 'execute_tool' GROUP BY 1""").to_pylist()
    reader.close()
    return path, {row["tool_name"]: row for row in tools}


def _rules(tmp_path: Path, text: str) -> str:
    path = tmp_path / "rules.toml"
    path.write_text(text)
    return str(path)


def test_check_fires_per_row_with_dimensions(demo_store, tmp_path, capsys) -> None:
    db, tools = demo_store
    # "busy tools" fires for every tool whose call count differs from search_flights' count.
    threshold = tools["search_flights"]["calls"]
    rules = _rules(tmp_path, FAILED_TOOLS.replace("THRESHOLD", str(threshold)))
    assert main(["alerts", "check", "--rules", rules, "--db", str(db), "--format", "json"]) == 1
    report = {rule["rule"]: rule for rule in json.loads(capsys.readouterr().out)}
    failed = report["failed tool calls"]
    assert failed["status"] == "fired"
    assert {row["dimensions"]["tool"]: row["value"] for row in failed["rows"] if row["fired"]} == {
        name: row["failed"] for name, row in tools.items() if row["failed"]}
    busy = report["busy tools"]
    assert {row["dimensions"]["tool"] for row in busy["rows"] if row["fired"]} == {
        name for name, row in tools.items() if row["calls"] != threshold}
    assert {row["dimensions"]["tool"] for row in busy["rows"] if not row["fired"]} == {
        name for name, row in tools.items() if row["calls"] == threshold}


def test_default_rules_pass_on_a_healthy_run_and_junit_reports_each_rule(demo_store, capsys) -> None:
    db, _ = demo_store
    assert main(["alerts", "check", "--db", str(db), "--format", "junit"]) == 0
    suite = ElementTree.fromstring(capsys.readouterr().out)
    assert suite.get("tests") == "5" and suite.get("failures") == "0" and suite.get("errors") == "0"
    assert [case.get("name") for case in suite] == [
        "agent run success rate", "agent run latency p95", "token usage spike", "evaluation score below threshold",
        "hourly model spend"]


def test_spend_rule_sums_the_cost_measurement(demo_store, tmp_path, capsys) -> None:
    """The default spend rule, its threshold lowered under the demo's spend, fires with the stored prices' sum."""
    from tracekit.store.reader import open_reader

    db, _ = demo_store
    reader = open_reader(db)
    try:
        spend = reader.sql("SELECT sum(cost_usd) AS s, count(cost_usd) AS n FROM spans").to_pylist()[0]
    finally:
        reader.close()
    assert spend["n"] > 0 and spend["s"] > 0
    assert main(["alerts", "show-defaults"]) == 0
    text = capsys.readouterr().out
    rule = text[text.index('name = "hourly model spend"'):]
    lowered = "[[alert]]\n" + rule.replace("threshold = 10\n", f"threshold = {spend['s'] / 2}\n")
    assert main(["alerts", "check", "--rules", _rules(tmp_path, lowered), "--db", str(db),
                 "--format", "json"]) == 1
    (report,) = json.loads(capsys.readouterr().out)
    assert report["status"] == "fired"
    assert report["rows"][0]["value"] == pytest.approx(round(spend["s"], 4))


def test_junit_marks_a_firing_rule_as_a_failure(demo_store, tmp_path, capsys) -> None:
    db, tools = demo_store
    rules = _rules(tmp_path, FAILED_TOOLS.replace("THRESHOLD", "0"))
    assert main(["alerts", "check", "--rules", rules, "--db", str(db), "--format", "junit"]) == 1
    suite = ElementTree.fromstring(capsys.readouterr().out)
    failures = {case.get("name"): case.find("failure") for case in suite}
    assert failures["failed tool calls"] is not None and "search_hotels" in failures["failed tool calls"].text


def test_a_rule_that_cannot_run_exits_2_naming_it_and_the_position(demo_store, tmp_path, capsys) -> None:
    db, _ = demo_store
    rules = _rules(tmp_path, '''
[[alert]]
name = "typo"
query = "dependencies | summarise value = count()"
threshold = 1

[[alert]]
name = "no value"
query = "dependencies | summarize n = count()"
threshold = 1
''')
    assert main(["alerts", "check", "--rules", rules, "--db", str(db)]) == 2
    captured = capsys.readouterr()
    assert "rule 'typo' cannot run: line 1, column 16" in captured.err and "summarize" in captured.err
    assert "rule 'no value' cannot run: the query returns no `value` column (it has: n)" in captured.err


@pytest.mark.parametrize("text, message", [
    ('[[alert]]\nname = "x"\nquery = "q"\nthreshold = 1\ntreshold = 2\n', "unknown key(s) treshold"),
    ('[[alert]]\nname = "x"\nquery = "q"\nthreshold = 1\noperator = "=>"\n', "operator '=>' is not one of"),
    ('[[alert]]\nname = "x"\nquery = "q"\nthreshold = 1\nseverity = 5\n', "severity must be 0 (critical) to 4"),
    ('[[alert]]\nname = "x"\nquery = "q"\nthreshold = "high"\n', "`threshold` must be a number"),
    ('[[alert]]\nname = "x"\nquery = "q"\nthreshold = 1\nwindow = "soon"\n', "window 'soon': expected a duration"),
    ('[[alert]]\nname = "x"\nquery = "q"\nthreshold = 1\n[[alert]]\nname = "x"\nquery = "q"\nthreshold = 1\n',
     "two rules are named 'x'"),
    ('title = "no rules"\n', "no [[alert]] tables"),
])
def test_rule_file_errors_name_the_rule_and_key(tmp_path, text, message) -> None:
    with pytest.raises(RuleError) as error:
        load_rules(_rules(tmp_path, text))
    assert message in str(error.value)


def test_cli_reports_a_bad_rule_file_in_one_line(tmp_path, capsys) -> None:
    rules = _rules(tmp_path, '[[alert]]\nname = "x"\nquery = "q"\n')
    assert main(["alerts", "check", "--rules", rules, "--db", str(tmp_path / "none.duckdb")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"tracekit: error: {rules}: rule 'x': `threshold` must be a number")


def test_arm_export(demo_store, tmp_path, capsys) -> None:
    from tracekit.query.kql import run_kql
    from tracekit.store.reader import open_reader

    db, tools = demo_store
    threshold = tools["search_flights"]["calls"]
    rules = _rules(tmp_path, FAILED_TOOLS.replace("THRESHOLD", str(threshold)))
    assert main(["alerts", "export", "--rules", rules, "--arm"]) == 0
    template = json.loads(capsys.readouterr().out)
    assert set(template["parameters"]) == {"appInsightsResourceId", "location", "actionGroupIds"}
    failed, busy = template["resources"]
    assert failed["type"] == "Microsoft.Insights/scheduledQueryRules" and failed["kind"] == "LogAlert"
    props = failed["properties"]
    assert (props["displayName"], props["severity"], props["windowSize"], props["evaluationFrequency"]) == (
        "failed tool calls", 2, "PT1H", "PT5M")
    assert props["scopes"] == ["[parameters('appInsightsResourceId')]"]
    criterion = props["criteria"]["allOf"][0]
    assert criterion["query"] == load_rules(rules)[0].query
    assert (criterion["operator"], criterion["threshold"], criterion["metricMeasureColumn"]) == ("GreaterThan", 0, "value")
    assert [d["name"] for d in criterion["dimensions"]] == ["tool"]
    # `!=` has no Azure operator: the exported query marks the rows that fire with value 1, checked here locally.
    exported = busy["properties"]["criteria"]["allOf"][0]
    assert (exported["operator"], exported["threshold"]) == ("GreaterThan", 0)
    reader = open_reader(db)
    try:
        marked = {row["tool"]: row["value"] for row in run_kql(reader, exported["query"]).to_pylist()}
    finally:
        reader.close()
    assert marked == {name: int(row["calls"] != threshold) for name, row in tools.items()}


def test_arm_export_stops_at_a_rule_that_does_not_compile(tmp_path, capsys) -> None:
    rules = _rules(tmp_path, '[[alert]]\nname = "bad"\nquery = "dependencies | summarise value = count()"\n'
                             'threshold = 1\n')
    assert main(["alerts", "export", "--rules", rules, "--arm"]) == 2
    assert "rule 'bad': line 1, column 16" in capsys.readouterr().err


def test_resource_names_are_valid_azure_names() -> None:
    assert resource_name("p95 > 10s: agents/tools?") == "p95-10s-agents-tools"
    assert resource_name("...") == "tracekit-alert"


def test_show_defaults_prints_a_file_that_loads(tmp_path, capsys) -> None:
    assert main(["alerts", "show-defaults"]) == 0
    rules = load_rules(_rules(tmp_path, capsys.readouterr().out))
    assert [rule.name for rule in rules][0] == "agent run success rate"
