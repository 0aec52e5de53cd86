"""`tracekit evaluate`: Microsoft's real azure-ai-evaluation evaluators over stores written by the demo through the
real collector, judged by a local HTTP stand-in for the judge model."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from tests.evaluators.judge_stand_in import JudgeStandIn
from tracekit.cli import main
from tracekit.demo import run_demo
from tracekit.evaluators.items import Selection, in_sample, select_items
from tracekit.store.reader import open_reader

# The agent responses of a store, found independently of tracekit.evaluators: for each invoke_agent span, the model
# call under it (not under a nested agent) that ended last.
AGENT_RESPONSES = """
WITH RECURSIVE up(trace_id, span_id, ancestor, hops) AS (
    SELECT trace_id, span_id, parent_span_id, 1 FROM spans WHERE operation_name = 'chat'
    UNION ALL
    SELECT up.trace_id, up.span_id, s.parent_span_id, hops + 1 FROM up
    JOIN spans s ON s.trace_id = up.trace_id AND s.span_id = up.ancestor
    WHERE s.operation_name IS DISTINCT FROM 'invoke_agent' AND hops < 50
),
owner AS (
    SELECT up.trace_id, up.span_id, up.ancestor AS agent_span, a.agent_name FROM up
    JOIN spans a ON a.trace_id = up.trace_id AND a.span_id = up.ancestor AND a.operation_name = 'invoke_agent'
)
SELECT arg_max(c.span_id, c.end_time_ns) AS span_id, any_value(o.agent_name) AS agent FROM owner o
JOIN spans c ON c.trace_id = o.trace_id AND c.span_id = o.span_id
GROUP BY o.trace_id, o.agent_span
"""


@pytest.fixture(scope="module")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A closed store with two demo conversations (content recorded), written through a real collector."""
    from tracekit.collector.service import Collector
    from tracekit.collector.settings import CollectorSettings

    path = tmp_path_factory.mktemp("evaluate") / "template.duckdb"
    with Collector(CollectorSettings(db_path=path, grpc="127.0.0.1:0", http="127.0.0.1:0")).running() as collector:
        sent = run_demo(f"http://{collector.grpc_endpoint}", conversations=2)
        deadline = time.monotonic() + 60  # returns once stored; a busy machine commits slowly
        while collector.reader().sql("SELECT count(*) AS n FROM spans").column("n")[0].as_py() < sent:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    return path


@pytest.fixture
def store(demo_template: Path, tmp_path: Path) -> Path:
    path = tmp_path / "traces.duckdb"
    shutil.copyfile(demo_template, path)
    return path


def _sql(db: Path, sql: str, params=None) -> list[dict]:
    reader = open_reader(db)
    try:
        return reader.sql(sql, params).to_pylist()
    finally:
        reader.close()


def _results(db: Path, name: str) -> list[dict]:
    return _sql(db, """SELECT trace_id, span_id, attributes FROM logs WHERE event_name = 'gen_ai.evaluation.result'
                       AND json_extract_string(attributes, '$."gen_ai.evaluation.name"') = ?""", [name])


def _wait_for_model_calls(collector) -> None:
    """Until the collector stored the run's model calls (and a moment more for the rest of its spans)."""
    deadline = time.monotonic() + 60  # returns once stored; a busy machine commits slowly
    while not collector.reader().sql("SELECT count(*) AS n FROM spans WHERE operation_name = 'chat'").column(
            "n")[0].as_py():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    time.sleep(1)


def _judge_args(judge: JudgeStandIn) -> list[str]:
    return ["--judge-endpoint", judge.url, "--judge-model", "gpt-4o", "--judge-api-key", "test-key"]


def test_each_agent_response_is_judged_once_and_stored_on_its_span(store, capsys) -> None:
    expected = {row["span_id"] for row in _sql(store, AGENT_RESPONSES)}
    assert len(expected) == 6  # orchestrator, flight-agent, hotel-agent in each of two conversations
    with JudgeStandIn() as judge:
        assert main(["evaluate", "--db", str(store), "--evaluator", "coherence,intent_resolution",
                     *_judge_args(judge)]) == 0
        prompts = [request["messages"][-1]["content"] for request in judge.requests]
        assert judge.requests[0]["path"] == "/v1/chat/completions" and judge.requests[0]["auth"] == "Bearer test-key"
    out = capsys.readouterr().out
    assert "6 agent response(s) selected" in out
    for name in ("coherence", "intent_resolution"):
        results = _results(store, name)
        assert {row["span_id"] for row in results} == expected and len(results) == 6
        for row in results:
            attributes = json.loads(row["attributes"])
            assert attributes["gen_ai.evaluation.score.value"] == 4.0
            assert attributes["gen_ai.evaluation.score.label"] == "pass"
            assert attributes["microsoft.custom_event.name"] == "gen_ai.evaluation.result"
            span = _sql(store, "SELECT response_id FROM spans WHERE span_id = ?", [row["span_id"]])[0]
            assert attributes["gen_ai.response.id"] == span["response_id"]
    # The judge was shown the stored conversation: the user's request and the agent's recorded answer.
    answers = [row["answer"] for row in _sql(store, """
        SELECT json_extract_string(attributes, '$."gen_ai.output.messages"') AS answer FROM spans
        WHERE list_contains(?, span_id)""", [sorted(expected)])]
    assert sum("Booked TK 1752 at 09:40" in answer for answer in answers) == 2
    assert sum("Booked TK 1752 at 09:40" in prompt and "Find and book a morning flight" in prompt
               for prompt in prompts) == 2 * 2  # two flight-agent answers, asked by two evaluators


def test_results_reach_replay_kql_and_the_dashboard(store, capsys) -> None:
    with JudgeStandIn() as judge:
        main(["evaluate", "--db", str(store), "--evaluator", "fluency", "--conversation", "demo-session-001",
              *_judge_args(judge)])
    capsys.readouterr()
    assert main(["replay", "demo-session-001", "--db", str(store)]) == 0
    assert "evaluation fluency: 4.0 pass" in capsys.readouterr().out
    assert main(["query", "--db", str(store), "--format", "json",
                 'customEvents | where name == "gen_ai.evaluation.result" '
                 '| where customDimensions["gen_ai.evaluation.name"] == "fluency" | count']) == 0
    assert json.loads(capsys.readouterr().out)[0]["Count"] == 3


def test_reruns_skip_what_was_judged_unless_forced(store, capsys) -> None:
    with JudgeStandIn() as judge:
        assert main(["evaluate", "--db", str(store), "--evaluator", "relevance", *_judge_args(judge)]) == 0
        first = len(judge.requests)
        assert main(["evaluate", "--db", str(store), "--evaluator", "relevance", *_judge_args(judge)]) == 0
        assert len(judge.requests) == first
        assert main(["evaluate", "--db", str(store), "--evaluator", "relevance", "--force",
                     *_judge_args(judge)]) == 0
        assert len(judge.requests) == 2 * first + 2  # the demo's own two relevance results are judged too
    # The demo records one relevance result per conversation itself; those responses were never judged again.
    assert first == 4


def _closed_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_judge_failures_are_counted_and_never_stop_the_run(store, capsys) -> None:
    assert main(["evaluate", "--db", str(store), "--evaluator", "coherence", "--conversation", "demo-session-001",
                 "--judge-endpoint", f"http://127.0.0.1:{_closed_port()}/v1", "--judge-model", "m",
                 "--judge-api-key", "k"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("│ coherence"))
    assert [cell.strip() for cell in row.split("│")[1:7]] == ["coherence", "0", "0", "0", "3", "—"]
    assert "Connection error" in out and "Traceback" not in out
    assert _results(store, "coherence") == []

    with JudgeStandIn(lambda body: (200, "I would rather not say")) as judge:
        assert main(["evaluate", "--db", str(store), "--evaluator", "coherence", "--conversation",
                     "demo-session-001", *_judge_args(judge)]) == 0
        assert len(judge.requests) == 3 * 3  # three items, each asked three times: no score could be read
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("│ coherence"))
    assert [cell.strip() for cell in row.split("│")[1:7]] == ["coherence", "0", "0", "0", "3", "—"]
    assert _results(store, "coherence") == []


def test_a_judge_that_recovers_after_errors(store, capsys) -> None:
    calls = {"n": 0}

    def flaky(body):
        calls["n"] += 1
        return (500, None) if calls["n"] <= 3 else (200, {"reason": "ok", "score": 5, "status": "pass"})

    with JudgeStandIn(flaky) as judge:
        assert main(["evaluate", "--db", str(store), "--evaluator", "coherence", "--conversation",
                     "demo-session-002", "--concurrency", "1", *_judge_args(judge)]) == 0
    assert [json.loads(r["attributes"])["gen_ai.evaluation.score.value"] for r in _results(store, "coherence")] == [
        5.0, 5.0, 5.0]


def test_user_evaluator_and_where(store, capsys) -> None:
    assert main(["evaluate", "--db", str(store), "--evaluator", "tests.evaluators.user_checks:no_apologies",
                 "--where", 'customDimensions["gen_ai.agent.name"] == "flight-agent"']) == 0
    results = _results(store, "no_apologies")
    flight_answers = {row["span_id"] for row in _sql(store, AGENT_RESPONSES) if row["agent"] == "flight-agent"}
    assert {row["span_id"] for row in results} == flight_answers and len(results) == 2
    assert {json.loads(row["attributes"])["gen_ai.agent.name"] for row in results} == {"flight-agent"}
    attributes = json.loads(results[0]["attributes"])
    assert attributes["gen_ai.evaluation.score.value"] == 1.0 and attributes["gen_ai.evaluation.score.label"] == "pass"


def test_through_a_running_collector(collector, capsys) -> None:
    run_demo(f"http://{collector.grpc_endpoint}", conversations=1)
    _wait_for_model_calls(collector)
    assert main(["evaluate", "--db", str(collector.db_path), "--evaluator",
                 "tests.evaluators.user_checks:no_apologies"]) == 0
    stored = collector.reader().sql(
        "SELECT count(*) AS n FROM logs WHERE event_name = 'gen_ai.evaluation.result' AND "
        "json_extract_string(attributes, '$.\"gen_ai.evaluation.name\"') = 'no_apologies'").column("n")[0].as_py()
    assert stored == 3
    assert collector.status()["received"]["logs"] >= 3


def test_sampling_is_deterministic(store) -> None:
    reader = open_reader(store)
    try:
        everything = select_items(reader, Selection())
        half = select_items(reader, Selection(sample=0.5))
        again = select_items(reader, Selection(sample=0.5))
    finally:
        reader.close()
    assert [item.key for item in half] == [item.key for item in again]
    assert [item.key for item in half] == [item.key for item in everything if in_sample(item.key, 0.5)]


def test_content_not_recorded_is_skipped_and_the_switch_is_named(collector, capsys) -> None:
    from tests.conversation.instrumented import record_langgraph_run

    record_langgraph_run(collector.grpc_endpoint, thread_id="quiet", content=False)
    _wait_for_model_calls(collector)
    assert main(["evaluate", "--db", str(collector.db_path), "--evaluator",
                 "tests.evaluators.user_checks:no_apologies"]) == 0
    out = capsys.readouterr().out
    assert "skipped: their content was not recorded" in out
    assert "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true" in out


@pytest.mark.parametrize("arguments, message", [
    (["--evaluator", "relevance"], "the built-in evaluators need a judge model: give --judge-endpoint"),
    (["--evaluator", "relevancy"], "unknown evaluator 'relevancy'"),
    (["--evaluator", "no_such_module:check"], "cannot load the evaluator 'no_such_module:check'"),
    (["--evaluator", "relevance", "--judge-endpoint", "http://127.0.0.1:1/v1", "--judge-model", "m"],
     "no API key for the judge"),
    (["--evaluator", "x:y", "--sample", "0"], "--sample 0.0: give a share"),
])
def test_setup_errors_are_one_line_and_exit_2(store, capsys, monkeypatch, arguments, message) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["evaluate", "--db", str(store), *arguments]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
