"""Transcripts rebuilt from real OTLP traffic through the collector, for every content shape the read side knows."""

from __future__ import annotations

import pytest

from tests.conversation import scenarios
from tracekit.conversation import (
    NOT_RECORDED,
    ConversationNotFound,
    EntryKind,
    PartKind,
    load_transcript,
    resolve,
)
from tracekit.conversation.render import render_transcript
from rich.console import Console


def plain(transcript) -> list[str]:
    return list(scenarios.iter_entries_text(transcript))


def rendered(transcript, width: int = 120) -> str:
    console = Console(width=width, record=True, file=open("/dev/null", "w"), color_system=None)
    console.print(render_transcript(transcript))
    return console.export_text()


def index_of(lines: list[str], needle: str, start: int = 0) -> int:
    for index in range(start, len(lines)):
        if needle in lines[index]:
            return index
    raise AssertionError(f"{needle!r} not found after line {start} in:\n" + "\n".join(lines))


def test_multi_agent_conversation_reads_in_order(recorded):
    transcript = load_transcript(recorded.reader(), scenarios.CONVERSATION)
    lines = plain(transcript)
    order = [
        "request invoke_workflow travel_planner", "execute_task plan_trip", "agent triage",
        "Route the request to the right agent.", scenarios.USER_1, "transfer_to_booker", "hand-off triage → booker",
        "agent booker  ← handed off from triage", "agent_planning", "You book flights.", "search_flights",
        "agent.state.management", scenarios.ANSWER_1, "request invoke_agent booker", scenarios.USER_2,
        "book_flight", scenarios.ANSWER_2, "evaluation Relevance: 4.0 pass",
    ]
    position = 0
    for needle in order:
        position = index_of(lines, needle, position)
    assert transcript.kind == "conversation"
    assert len(transcript.trace_ids) == 2
    assert transcript.agents == ["triage", "booker"]


def test_history_resent_on_every_call_is_shown_once(recorded):
    transcript = load_transcript(recorded.reader(), scenarios.CONVERSATION)
    user_texts = [part.content for entry in transcript.entries if entry.kind is EntryKind.MESSAGE
                  and entry.message.role == "user" for part in entry.message.parts]
    assert user_texts == [scenarios.USER_1, scenarios.USER_2]
    second = next(entry for entry in transcript.entries if entry.kind is EntryKind.MESSAGE
                  and entry.message.parts[0].content == scenarios.USER_2)
    assert second.carried == 4  # user, tool call, tool result, assistant answer resent before the new question


def test_tool_calls_are_paired_with_their_results(recorded):
    transcript = load_transcript(recorded.reader(), scenarios.CONVERSATION)
    tools = {entry.tool.name: entry.tool for entry in transcript.entries if entry.kind is EntryKind.TOOL}
    assert tools["search_flights"].call_id == "call_1"
    assert tools["search_flights"].arguments == {"to": "Paris", "date": "2026-01-16"}
    assert tools["search_flights"].result == scenarios.SEARCH_RESULT
    assert tools["search_flights"].status == "ok"
    assert tools["book_flight"].status == "error"
    assert tools["book_flight"].error == "payment declined"
    text = rendered(transcript)
    call = text.index("⚙ search_flights")
    assert call < text.index('"price": 420', call) < text.index("agent.state.management")


def test_turns_carry_tokens_and_latency(recorded):
    transcript = load_transcript(recorded.reader(), scenarios.CONVERSATION)
    assert [turn.agent for turn in transcript.turns] == ["triage", "booker", "booker", "booker", "booker"]
    assert [turn.input_tokens for turn in transcript.turns] == [120, 300, 380, 450, 480]
    assert transcript.turns[2].duration_ns == 37 * scenarios.MS
    assert (transcript.input_tokens, transcript.output_tokens) == (1730, 101)
    assert "turn 3 · booker · gpt-4o · 380 → 20 tokens · 37ms" in rendered(transcript)


def test_structure_only_content_shows_roles_and_says_not_recorded(variant_store):
    transcript = load_transcript(variant_store.reader(), "conv-structure")
    assert not transcript.content_recorded
    messages = [entry.message for entry in transcript.entries if entry.kind is EntryKind.MESSAGE]
    assert [m.role for m in messages][:2] == ["user", "assistant"]
    assert all(part.content is NOT_RECORDED for m in messages for part in m.parts)
    tools = [entry.tool for entry in transcript.entries if entry.kind is EntryKind.TOOL]
    assert [(t.name, t.call_id) for t in tools] == [
        ("transfer_to_booker", "call_t1"), ("search_flights", "call_1"), ("book_flight", "call_2")]
    text = rendered(transcript)
    assert "[content not recorded]" in text and "content was not recorded" in text


def test_content_off_still_shows_who_called_what(variant_store):
    transcript = load_transcript(variant_store.reader(), "conv-off")
    kinds = [entry.kind for entry in transcript.entries]
    assert kinds.count(EntryKind.MODEL_CALL) == 5
    assert EntryKind.MESSAGE not in kinds
    tools = [entry.tool for entry in transcript.entries if entry.kind is EntryKind.TOOL]
    assert [t.name for t in tools] == ["transfer_to_booker", "search_flights", "book_flight"]
    assert all(t.arguments is NOT_RECORDED for t in tools)
    assert "model call chat gpt-4o @triage  [content not recorded]" in rendered(transcript)


RECORDED_TRANSCRIPT = ["Use the tools.", scenarios.RECORDED_QUESTION, "lookup [call_dune_1]", '"q": "Dune author"',
                      "Frank Herbert", scenarios.RECORDED_ANSWER]


@pytest.mark.parametrize("key, expected", [
    ("conv-azure-ai-inference", RECORDED_TRANSCRIPT),
    ("conv-openai-v2-legacy", RECORDED_TRANSCRIPT),
    ("conv-openai-v2-events", RECORDED_TRANSCRIPT),
    ("conv-openai-v2-spans", RECORDED_TRANSCRIPT),
    ("conv-openinference", ["agent research_agent", *RECORDED_TRANSCRIPT]),
    ("conv-openllmetry-indexed", RECORDED_TRANSCRIPT),
    ("conv-openllmetry", RECORDED_TRANSCRIPT),
    ("conv-v137", ["Add 2 and 3", "add [call_add]", "↳ 5", "2 + 3 = 5"]),
])
def test_every_content_shape_reads_as_the_same_transcript(recorded, key, expected):
    transcript = load_transcript(recorded.reader(), key)
    text = rendered(transcript)
    position = 0
    for needle in expected:
        found = text.find(needle, position)
        assert found >= 0, f"{needle!r} missing after {position} in:\n{text}"
        position = found + len(needle)
    assert transcript.content_recorded


def test_legacy_log_tool_result_is_absorbed_into_its_call(recorded):
    transcript = load_transcript(recorded.reader(), "conv-openai-v2-legacy")
    tool_messages = [entry for entry in transcript.entries if entry.kind is EntryKind.MESSAGE
                     and entry.message.role == "tool"]
    assert tool_messages == []
    call = next(entry.tool for entry in transcript.entries if entry.kind is EntryKind.TOOL)
    assert call.result == "Frank Herbert"


def test_response_id_follows_the_chain_both_ways(recorded):
    reader = recorded.reader()
    middle = resolve(reader, "resp_chain_2")
    assert middle.kind == "response" and len(middle.trace_ids) == 3
    assert resolve(reader, "resp_chain_1").trace_ids == middle.trace_ids
    transcript = load_transcript(reader, "resp_chain_3")
    users = [entry.message.parts[0].content for entry in transcript.entries
             if entry.kind is EntryKind.MESSAGE and entry.message.role == "user"]
    assert users == ["Hi", "What's 1+1?", "Thanks"]


def test_trace_id_and_unique_prefix_resolve(recorded):
    reader = recorded.reader()
    conversation = resolve(reader, scenarios.CONVERSATION)
    first = conversation.trace_ids[0]
    assert resolve(reader, first).trace_ids == [first]
    assert resolve(reader, first).conversation_id == scenarios.CONVERSATION
    assert resolve(reader, first.upper()).trace_ids == [first]
    with pytest.raises(ConversationNotFound, match="more than one trace"):
        resolve(reader, first[:16])  # every recorded trace shares the seed prefix


def test_unknown_id_is_a_clear_error(recorded):
    with pytest.raises(ConversationNotFound, match="no conversation, response or trace with id 'nope'"):
        load_transcript(recorded.reader(), "nope")


def test_hostile_content_is_literal_and_bounded(recorded):
    transcript = load_transcript(recorded.reader(), "conv-hostile")
    text = rendered(transcript, width=200)
    assert scenarios.HOSTILE_MARKUP in text
    assert "\x1b" not in text and "\x07" not in text
    assert "\\x1b]52;c;SGVsbG8=\\x07" in text
    assert f"showing 4,000 of {scenarios.HUGE:,} characters" in text
    assert len(text) < 20_000
    assistant = next(entry for entry in transcript.entries if entry.kind is EntryKind.MESSAGE
                     and entry.message.role == "assistant")
    assert assistant.message.parts[0].kind is PartKind.TEXT and len(assistant.message.parts[0].content) == scenarios.HUGE


@pytest.mark.parametrize("attributes", [
    {"gen_ai.operation.name": "chat", "gen_ai.input.messages": "[1, 2, null]"},
    {"gen_ai.operation.name": "chat", "gen_ai.input.messages": '{"role": 5, "parts": "x"}'},
    {"gen_ai.operation.name": "chat", "gen_ai.output.messages": '[{"role": "assistant", "parts": [5, null, {}]}]'},
    {"gen_ai.operation.name": "chat", "gen_ai.output.messages": "[{not json"},
    {"gen_ai.operation.name": "chat", "gen_ai.system_instructions": 42},
    {"gen_ai.operation.name": "chat", "llm.input_messages.x.message.role": "user", "gen_ai.prompt.0.tool_calls.a": 1},
    {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.call.arguments": "{", "gen_ai.tool.call.result": [1]},
    {"openinference.span.kind": 7, "input.value": None},
])
def test_malformed_content_never_breaks_the_transcript(attributes):
    from tracekit.conversation import SpanRecord, build_transcript
    from tracekit.conversation.render import render_transcript

    span = SpanRecord(trace_id="t" * 32, span_id="s" * 16, parent_span_id=None, name="chat x", start_time_ns=1,
                      end_time_ns=2, operation_name=attributes.get("gen_ai.operation.name"), attributes=attributes)
    transcript = build_transcript("t", "trace", [span])
    assert transcript.entries  # at least the request line
    rendered(transcript)  # and it renders
