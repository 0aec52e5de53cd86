"""Continuous evaluation in a real collector: new agent responses judged as they arrive, per rule."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.evaluators.judge_stand_in import JudgeStandIn
from tracekit.collector.continuous_evaluation import ContinuousEvaluation
from tracekit.collector.service import Collector
from tracekit.collector.settings import CollectorSettings
from tracekit.demo import run_demo
from tracekit.evaluators.rules import EvaluationRuleError, load_evaluation_rules


def _collector(tmp_path: Path, rules: str) -> Collector:
    path = tmp_path / "evaluation.toml"
    path.write_text(rules)
    return Collector(CollectorSettings(db_path=tmp_path / "traces.duckdb", grpc="127.0.0.1:0", http="127.0.0.1:0",
                                       evaluation_rules=str(path)))


def _stored(collector, name: str) -> list[dict]:
    return collector.reader().sql(
        "SELECT span_id, attributes FROM logs WHERE event_name = 'gen_ai.evaluation.result' "
        "AND json_extract_string(attributes, '$.\"gen_ai.evaluation.name\"') = ?", [name]).to_pylist()


def _wait(predicate, seconds: float = 30.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_new_responses_are_judged_per_rule(tmp_path) -> None:
    with JudgeStandIn() as judge:
        rules = f'''
[judge]
endpoint = "{judge.url}"
model = "gpt-4o"

[[rule]]
name = "all agents"
evaluators = ["coherence", "tests.evaluators.user_checks:no_apologies"]

[[rule]]
name = "flights, capped"
evaluators = ["fluency"]
agent = "flight-agent"
max_per_hour = 1
'''
        import os
        os.environ["OPENAI_API_KEY"] = "test-key"
        try:
            with _collector(tmp_path, rules).running() as collector:
                run_demo(f"http://{collector.grpc_endpoint}", conversations=2)
                _wait(lambda: len(_stored(collector, "coherence")) == 6 and len(_stored(collector, "no_apologies")) == 6)
                _wait(lambda: collector.status()["evaluation"]["capped"] == 1)
                status = collector.status()["evaluation"]
                assert _stored(collector, "fluency") and len(_stored(collector, "fluency")) == 1
                assert status["evaluated"] == 6 + 6 + 1 and status["failed"] == 0 and status["dropped"] == 0
                judged = {row["span_id"] for row in _stored(collector, "coherence")}
                fluency = json.loads(_stored(collector, "fluency")[0]["attributes"])
                assert fluency["gen_ai.agent.name"] == "flight-agent"
                assert len(judged) == 6
        finally:
            del os.environ["OPENAI_API_KEY"]


def test_history_before_the_start_is_left_alone_and_a_full_backlog_drops_the_oldest(tmp_path) -> None:
    with Collector(CollectorSettings(db_path=tmp_path / "traces.duckdb", grpc="127.0.0.1:0",
                                     http="127.0.0.1:0")).running() as collector:
        rules_file = tmp_path / "rules.toml"
        rules_file.write_text('[[rule]]\nname = "r"\nevaluators = ["tests.evaluators.user_checks:no_apologies"]\n')
        rules = load_evaluation_rules(rules_file)
        run_demo(f"http://{collector.grpc_endpoint}", conversations=1)
        time.sleep(1)
        watcher = ContinuousEvaluation(rules, collector.new_reader, collector.ingest, backlog=2)
        assert watcher.look() == 0            # the first look only notes where "new" starts
        run_demo(f"http://{collector.grpc_endpoint}", conversations=1)
        _wait(lambda: watcher.look() > 0)
        assert watcher.status()["evaluation"]["backlog"] == 2 and watcher.counters["dropped"] == 1
        watcher.stop()


@pytest.mark.parametrize("text, message", [
    ('[[rule]]\nname = "r"\nevaluators = ["coherence"]\n', "the built-in evaluators need a judge model"),
    ('[[rule]]\nname = "r"\nevaluators = ["x:y"]\nsample = 2\n', "`sample` must be a share"),
    ('[[rule]]\nname = "r"\nevaluators = []\n', "`evaluators` must be a list"),
    ('[[rule]]\nname = "r"\nevaluators = ["x:y"]\nagnet = "a"\n', "unknown key(s) agnet"),
    ('[judge]\nendpoint = "x"\n', "no [[rule]] tables"),
])
def test_bad_rule_files_stop_the_collector_before_it_listens(tmp_path, text, message) -> None:
    with pytest.raises((EvaluationRuleError, Exception), match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        _collector(tmp_path, text)
    assert not (tmp_path / "traces.duckdb.collector.json").exists()


async def test_tui_shows_the_continuous_evaluation_state(tmp_path) -> None:
    from tracekit.tui.app import TracekitApp
    from tracekit.tui.screens.alerts import AlertsScreen

    rules = '[[rule]]\nname = "r"\nevaluators = ["tests.evaluators.user_checks:no_apologies"]\n'
    with _collector(tmp_path, rules).running() as collector:
        run_demo(f"http://{collector.grpc_endpoint}", conversations=1)
        _wait(lambda: collector.status()["evaluation"]["evaluated"] == 3)
        app = TracekitApp(collector.reader(), live=False, collector_status=collector.status)
        async with app.run_test(size=(180, 40)) as pilot:
            await pilot.press("a")
            while not (isinstance(app.screen, AlertsScreen) and app.screen.loaded):
                await pilot.pause(0.02)
            line = str(app.screen.query_one("#evaluation-status").render())
            assert "continuous evaluation: 1 rule(s) · 3 judged · 0 failed · backlog 0 · dropped 0" in line
