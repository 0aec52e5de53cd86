"""Replay of real instrumented runs (tracekit's LangChain instrumentor on a LangGraph graph), content on and off."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.conversation import instrumented
from tests.conversation.conftest import Recorded
from tracekit.collector.service import Collector
from tracekit.collector.settings import CollectorSettings
from tracekit.conversation import NOT_RECORDED, EntryKind, load_transcript
from tracekit.conversation.render import render_entry


@pytest.fixture(scope="module")
def langgraph_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    path = tmp_path_factory.mktemp("langgraph") / "traces.duckdb"
    with Collector(CollectorSettings(db_path=path, grpc="127.0.0.1:0", http="127.0.0.1:0")).running() as collector:
        instrumented.record_langgraph_run(collector.grpc_endpoint, thread_id="thread-on", content=True)
        instrumented.record_langgraph_run(collector.grpc_endpoint, thread_id="thread-off", content=False)
        yield Recorded(collector)


def test_langgraph_run_replays_as_a_chat(langgraph_store):
    transcript = load_transcript(langgraph_store.reader(), "thread-on")
    lines = [render_entry(transcript, entry).plain for entry in transcript.entries]
    text = "\n".join(lines)
    assert text.index("agent day_planner") < text.index(instrumented.QUESTION) \
        < text.index("agent weather_agent  ← called by day_planner") < text.index("⚙ get_weather") \
        < text.index(instrumented.WEATHER) < text.index(instrumented.ANSWER)
    assert text.count(instrumented.QUESTION) == 1  # the history resent to the model is shown once
    assert text.count(instrumented.ANSWER) == 1  # the agents' outputs repeat the model's answer: shown once
    tool = next(entry.tool for entry in transcript.entries if entry.kind is EntryKind.TOOL)
    assert (tool.call_id, tool.arguments, tool.result, tool.status) == ("call_lx1", {"city": "Lisbon"},
                                                                        instrumented.WEATHER, "ok")
    assert [(turn.input_tokens, turn.output_tokens) for turn in transcript.turns] == [(40, 10), (70, 20)]
    assert transcript.agents == ["day_planner", "weather_agent"]


def test_langgraph_run_without_content_keeps_the_structure(langgraph_store):
    transcript = load_transcript(langgraph_store.reader(), "thread-off")
    assert not transcript.content_recorded
    tool = next(entry.tool for entry in transcript.entries if entry.kind is EntryKind.TOOL)
    assert tool.name == "get_weather" and tool.arguments is NOT_RECORDED
    assert len(transcript.turns) == 2
    text = "\n".join(render_entry(transcript, entry).plain for entry in transcript.entries)
    assert instrumented.QUESTION not in text and instrumented.ANSWER not in text
    assert "[content not recorded]" in text
