"""The newest conventions in the replay: plan steps, hand-offs (transfer tools, gen_ai.caller.*, Microsoft's
agent_to_agent_interaction), and each model call's reasoning, cache, streaming and time to first chunk, read from
spans the real OpenTelemetry SDK sent through a real collector."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.conversation import latest_conventions, scenarios
from tests.conversation.test_transcript import index_of, plain, rendered
from tracekit.collector.service import Collector
from tracekit.collector.settings import CollectorSettings
from tracekit.conversation import EntryKind, load_transcript
from tracekit.readout.transcript import get_conversation, transcript_markdown


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    path = tmp_path_factory.mktemp("latest") / "traces.duckdb"
    with Collector(CollectorSettings(db_path=path, grpc="127.0.0.1:0", http="127.0.0.1:0")).running() as collector:
        scenarios.record(collector.grpc_endpoint, latest_conventions.latest_run, latest_conventions.microsoft_run,
                         latest_conventions.other_names, scenarios.openllmetry_indexed, scenarios.openinference)
        yield collector.reader()


def test_plan_step_then_transfer_hand_off_then_the_target_agent(reader):
    transcript = load_transcript(reader, latest_conventions.LATEST)
    lines = plain(transcript)
    plan = index_of(lines, "☰ plan step plan triage")
    planned = index_of(lines, latest_conventions.PLAN_TEXT, plan)
    handoff = index_of(lines, "⇢ hand-off triage → booker", planned)
    assert "transfer via transfer_to_booker" in lines[handoff] and "passes control" in lines[handoff]
    index_of(lines, "▶ agent booker", handoff)
    entry = next(e for e in transcript.entries if e.kind is EntryKind.HANDOFF)
    assert (entry.from_agent, entry.agent) == ("triage", "booker")


def test_remote_agent_called_by_a_workflow_is_a_hand_off(reader):
    transcript = load_transcript(reader, latest_conventions.LATEST)
    lines = plain(transcript)
    handoff = index_of(lines, "⇢ hand-off weather_workflow → weather-agent")
    assert "remote call from workflow weather_workflow" in lines[handoff]
    agent = index_of(lines, "▶ agent weather-agent", handoff)
    assert "← called by weather_workflow" in lines[agent]


def test_microsoft_spelling_reads_as_the_same_plan_step_and_hand_off(reader):
    latest = load_transcript(reader, latest_conventions.LATEST)
    microsoft = load_transcript(reader, latest_conventions.MICROSOFT)
    for transcript in (latest, microsoft):
        kinds = [entry.kind for entry in transcript.entries]
        assert kinds.index(EntryKind.PLAN) < kinds.index(EntryKind.HANDOFF)
        handoff = next(entry for entry in transcript.entries if entry.kind is EntryKind.HANDOFF)
        assert (handoff.from_agent, handoff.agent, handoff.title) == ("triage", "booker", "triage → booker")
    lines = plain(microsoft)
    index_of(lines, "☰ plan step agent_planning plan")
    assert "agent_to_agent_interaction" in lines[index_of(lines, "⇢ hand-off triage → booker")]


def test_turn_shows_reasoning_cache_stream_and_time_to_first_chunk(reader):
    transcript = load_transcript(reader, latest_conventions.LATEST)
    turn = transcript.turns[0]
    assert (turn.reasoning_tokens, turn.cache_read_tokens, turn.cache_write_tokens, turn.stream,
            turn.time_to_first_chunk_s) == (700, 1000, 150, True, 0.42)
    text = rendered(transcript, width=200)
    header = next(line for line in text.splitlines() if line.startswith("── turn 1"))
    for piece in ("1,200 → 900 (700 reasoning) tokens", "cache 1,000 read, 150 written",
                  "streamed, first chunk 420ms"):
        assert piece in header
    second = next(line for line in text.splitlines() if line.startswith("── turn 2"))
    assert "reasoning" not in second and "first chunk" not in second and "cache" not in second


def test_json_and_markdown_carry_the_same(reader):
    data = get_conversation(reader, latest_conventions.LATEST)
    turn = data["turns"][0]
    assert (turn["reasoning_tokens"], turn["cache_read_tokens"], turn["cache_write_tokens"], turn["stream"],
            turn["time_to_first_chunk_s"]) == (700, 1000, 150, True, 0.42)
    assert [entry["kind"] for entry in data["entries"]].count("plan") == 1
    markdown = transcript_markdown(data)
    assert "☰ plan step" in markdown and "streamed, first chunk 420ms" in markdown


@pytest.mark.parametrize("conversation", list(latest_conventions.OTHER_NAMES))
def test_other_names_for_the_same_facts(reader, conversation):
    _attributes, expected = latest_conventions.OTHER_NAMES[conversation]
    turn = load_transcript(reader, conversation).turns[0]
    assert (turn.reasoning_tokens, turn.cache_read_tokens, turn.cache_write_tokens, turn.stream,
            turn.time_to_first_chunk_s) == pytest.approx(expected)


def test_recorded_openllmetry_says_the_call_was_not_streamed(reader):
    """OpenLLMetry 0.47 (tests/recordings/openllmetry_indexed.jsonl) records `llm.is_streaming` and its own
    `gen_ai.usage.reasoning_tokens`."""
    table = reader.sql("SELECT DISTINCT trace_id FROM spans "
                       "WHERE json_extract(attributes, '$.\"llm.is_streaming\"') IS NOT NULL")
    turns = [turn for trace_id in table.column("trace_id").to_pylist()
             for turn in load_transcript(reader, trace_id).turns]
    assert turns and all(turn.stream is False and turn.reasoning_tokens == 0 for turn in turns)
    assert "not streamed" in rendered(load_transcript(reader, table.column("trace_id").to_pylist()[0]))


def test_demo_replay_shows_the_failed_tool_call_and_its_retry(collector):
    """`tracekit demo`'s hotel search times out once and is retried with the same call id: both attempts show, the
    first with its error."""
    import time

    from tracekit.demo import run_demo

    sent = run_demo(f"http://{collector.grpc_endpoint}", conversations=1)
    deadline = time.monotonic() + 10
    while collector.reader().sql("SELECT count(*) AS n FROM spans").column("n")[0].as_py() < sent:
        assert time.monotonic() < deadline, "the demo's spans did not arrive"
        time.sleep(0.1)
    transcript = load_transcript(collector.reader(), "demo-session-001")
    calls = [entry.tool for entry in transcript.entries if entry.kind is EntryKind.TOOL
             and entry.tool.name == "search_hotels"]
    assert [(call.attempt, call.status) for call in calls] == [(1, "error"), (2, "ok")]
    assert calls[0].call_id == calls[1].call_id and calls[0].span_id != calls[1].span_id
    lines = plain(transcript)
    failed = index_of(lines, "⚙ search_hotels")
    assert "↳ error: TimeoutError: hotel inventory service timed out" in lines[failed]
    retried = index_of(lines, "⚙ search_hotels", failed + 1)
    assert "attempt 2" in lines[retried] and "Casa Azul" in lines[retried]
    # Microsoft's spelling in the demo reads as plan steps and hand-offs
    index_of(lines, "☰ plan step agent_planning plan")
    index_of(lines, "⇢ hand-off orchestrator → flight-agent")


def test_a_failed_transfer_is_a_failed_hand_off(reader):
    lines = plain(load_transcript(reader, latest_conventions.LATEST))
    handoff = lines[index_of(lines, "⇢ hand-off booker → billing")]
    assert "returns to the caller" in handoff and handoff.endswith("failed")
    assert "failed" not in lines[index_of(lines, "⇢ hand-off triage → booker")]
