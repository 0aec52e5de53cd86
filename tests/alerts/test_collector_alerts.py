"""`tracekit collect --alerts`: rules checked on their frequency by a real collector, their changes of state stored
as tracekit.alert events, shown in the TUI."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.alerts.test_alerts import FAILED_TOOLS
from tracekit.alerts.rules import RuleError
from tracekit.collector.service import Collector
from tracekit.collector.settings import CollectorSettings
from tracekit.demo import run_demo
from tracekit.query.kql import run_kql

# The failed-tool-calls rule of test_alerts.py, with a window each test sets and checked every second.
RULES = FAILED_TOOLS.split("[[alert]]")[1].replace('window = "1h"', 'window = "WINDOW"').replace(
    'frequency = "5m"', 'frequency = "1s"')
RULES = "[[alert]]" + RULES


def _settings(tmp_path: Path, window: str) -> CollectorSettings:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES.replace("WINDOW", window))
    return CollectorSettings(db_path=tmp_path / "traces.duckdb", grpc="127.0.0.1:0", http="127.0.0.1:0",
                             alert_rules=str(rules))


def _alert_events(collector) -> list[dict]:
    table = run_kql(collector.reader(), 'customEvents | where name == "tracekit.alert" '
                                         '| project timestamp, customDimensions | order by timestamp asc')
    return [json.loads(row["customDimensions"]) if isinstance(row["customDimensions"], str)
            else row["customDimensions"] for row in table.to_pylist()]


def _wait(predicate, seconds: float = 60.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_a_rule_fires_then_resolves_and_each_change_is_stored_once(tmp_path) -> None:
    # A short window, so the failures leave it during the test; long enough for a loaded machine to check in time.
    with Collector(_settings(tmp_path, "12s")).running() as collector:
        run_demo(f"http://{collector.grpc_endpoint}", conversations=1)
        failed = collector.reader().sql(
            "SELECT count(*) AS n FROM spans WHERE tool_name = 'search_hotels' AND status_code = 'ERROR'")
        expected = failed.column("n")[0].as_py()
        assert expected >= 1
        fired = _wait(lambda: [e for e in _alert_events(collector) if e["tracekit.alert.state"] == "fired"])
        assert fired[0]["tracekit.alert.name"] == "failed tool calls"
        assert json.loads(fired[0]["tracekit.alert.rows"]) == [{"value": expected, "tool": "search_hotels"}]
        assert collector.status()["alerts"]["firing"] == ["failed tool calls"]
        # Once the failures have left the window the rule resolves, and that too is stored once.
        _wait(lambda: [e for e in _alert_events(collector) if e["tracekit.alert.state"] == "resolved"])
        checks = collector.alerting.checks
        _wait(lambda: collector.alerting.checks >= checks + 2)   # more checks, same state: nothing new stored
        states = [e["tracekit.alert.state"] for e in _alert_events(collector)]
        assert states == ["fired", "resolved"]
        assert collector.status()["alerts"]["firing"] == []


def test_a_bad_rule_file_stops_the_collector_before_it_listens(tmp_path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[alert]]\nname = "x"\nquery = "q"\nthreshold = 1\noperator = "~"\n')
    settings = CollectorSettings(db_path=tmp_path / "traces.duckdb", grpc="127.0.0.1:0", http="127.0.0.1:0",
                                 alert_rules=str(rules))
    with pytest.raises(RuleError, match="operator '~'"):
        Collector(settings)
    assert not (tmp_path / "traces.duckdb.collector.json").exists()


async def test_tui_shows_firing_alerts_and_jumps_to_their_traces(tmp_path) -> None:
    from textual.widgets import DataTable, Input

    from tests.tui.tui_helpers import wait_for
    from tracekit.tui.app import TracekitApp
    from tracekit.tui.screens.alerts import AlertsScreen
    from tracekit.tui.screens.trace_list import TraceListScreen
    from tracekit.tui.widgets.trace_table import TraceTable

    with Collector(_settings(tmp_path, "1h")).running() as collector:
        run_demo(f"http://{collector.grpc_endpoint}", conversations=1)
        _wait(lambda: [e for e in _alert_events(collector) if e["tracekit.alert.state"] == "fired"])
        app = TracekitApp(collector.reader(), live=False)
        async with app.run_test(size=(180, 50)) as pilot:
            trace_list = app.screen
            assert isinstance(trace_list, TraceListScreen)
            # the firing count follows the first page onto the status line (read once the rows are shown)
            await wait_for(pilot, lambda: trace_list.loaded_at != 0
                           and "alert" in str(trace_list.query_one("#list-status").render()))
            assert "1 alert firing (a)" in str(trace_list.query_one("#list-status").render())
            await pilot.press("a")
            while not (isinstance(app.screen, AlertsScreen) and app.screen.loaded):
                await pilot.pause(0.02)
            table = app.screen.query_one(DataTable)
            row = [str(cell) for cell in table.get_row_at(0)]
            assert row[0] == "fired" and row[3] == "failed tool calls" and "tool=search_hotels" in row[6]
            loaded_before = trace_list.loaded_at
            await pilot.press("enter")
            while trace_list.loaded_at == loaded_before:
                await pilot.pause(0.02)
            assert app.screen is trace_list
            assert trace_list.query_one("#filter-input", Input).value == "tool:search_hotels since:1h"
            shown = trace_list.query_one(TraceTable).traces
            expected = collector.reader().sql(
                "SELECT count(DISTINCT trace_id) AS n FROM spans WHERE tool_name = 'search_hotels'")
            assert len(shown) == expected.column("n")[0].as_py() >= 1
