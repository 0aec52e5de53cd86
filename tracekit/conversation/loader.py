"""Finding a conversation in the store and loading its spans, events and log records (read-only SQL only).

An id given by the user may be a conversation id (`gen_ai.conversation.id`, `session.id`, `thread_id`), a response
id (`gen_ai.response.id`, followed both ways along `gen_ai.request.previous_response.id`), or a trace id (full, or
a unique prefix of at least 8 hex digits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson

from tracekit import semconv
from tracekit.conversation.build import SpanRecord, build_transcript
from tracekit.conversation.model import Transcript
from tracekit.conversation.shapes import EventRecord
from tracekit.cost import has_cost_column
from tracekit.loops import LoopSpan, configured_threshold, find_loops
from tracekit.errors import TracekitError
from tracekit.store.reader import StoreReader

MAX_TRACES = 500  # a conversation longer than this is cut (newest kept out), and the transcript says so
MAX_CHAIN_HOPS = 200
_HEX = re.compile(r"^[0-9a-fA-F]{8,32}$")
_PREVIOUS_RESPONSE = f"json_extract_string(attributes, '$.\"{semconv.GEN_AI_REQUEST_PREVIOUS_RESPONSE_ID}\"')"


class ConversationNotFound(TracekitError):
    """No conversation, response or trace has the id the user gave."""


@dataclass
class Resolution:
    """What an id turned out to be and the traces it covers, oldest first."""

    kind: str  # conversation, response, trace
    trace_ids: list[str]
    conversation_id: str | None = None
    truncated: bool = False


def _column(table: Any, name: str) -> list[Any]:
    return table.column(name).to_pylist()


def resolve(reader: StoreReader, key: str) -> Resolution:
    """Work out whether `key` is a trace, conversation or response id; raise ConversationNotFound otherwise."""
    key = key.strip()
    if not key:
        raise ConversationNotFound("give a conversation id, a response id or a trace id")
    if re.fullmatch(r"[0-9a-fA-F]{32}", key):
        found = reader.sql("SELECT count(*) AS n FROM spans WHERE trace_id = ?", [key.lower()])
        if _column(found, "n")[0]:
            return Resolution("trace", [key.lower()], _conversation_of(reader, [key.lower()]))
    by_conversation = _traces_of_conversation(reader, key)
    if by_conversation.trace_ids:
        return by_conversation
    chain = _traces_of_response_chain(reader, key)
    if chain:
        conversation = _conversation_of(reader, chain)
        if conversation:
            whole = _traces_of_conversation(reader, conversation)
            extra = [trace for trace in chain if trace not in whole.trace_ids]
            return Resolution("response", whole.trace_ids + extra, conversation, whole.truncated)
        return Resolution("response", chain)
    if _HEX.match(key):
        table = reader.sql(
            "SELECT DISTINCT trace_id FROM spans WHERE starts_with(trace_id, ?) LIMIT 2", [key.lower()])
        matches = _column(table, "trace_id")
        if len(matches) == 1:
            return Resolution("trace", matches, _conversation_of(reader, matches))
        if len(matches) > 1:
            raise ConversationNotFound(f"trace id prefix {key!r} matches more than one trace; give more digits")
    raise ConversationNotFound(
        f"no conversation, response or trace with id {key!r} in {reader.location}")


def _traces_of_conversation(reader: StoreReader, conversation_id: str) -> Resolution:
    table = reader.sql(
        "SELECT trace_id, min(start_time_ns) AS first FROM spans WHERE conversation_id = ? "
        "GROUP BY trace_id ORDER BY first LIMIT ?", [conversation_id, MAX_TRACES + 1])
    traces = _column(table, "trace_id")
    return Resolution("conversation", traces[:MAX_TRACES], conversation_id if traces else None,
                      truncated=len(traces) > MAX_TRACES)


def _conversation_of(reader: StoreReader, trace_ids: list[str]) -> str | None:
    table = reader.sql(
        "SELECT conversation_id FROM spans WHERE trace_id IN (SELECT unnest(?::VARCHAR[])) "
        "AND conversation_id IS NOT NULL ORDER BY start_time_ns LIMIT 1", [trace_ids])
    values = _column(table, "conversation_id")
    return values[0] if values else None


def _traces_of_response_chain(reader: StoreReader, response_id: str) -> list[str]:
    """Traces along the response chain through `response_id`: back to the first response, forward to the last."""
    table = reader.sql(
        f"SELECT trace_id, {_PREVIOUS_RESPONSE} AS previous FROM spans WHERE response_id = ? LIMIT 1",
        [response_id])
    if not table.num_rows:
        return []
    traces = [_column(table, "trace_id")[0]]
    previous = _column(table, "previous")[0]
    seen = {response_id}
    for _ in range(MAX_CHAIN_HOPS):
        if not previous or previous in seen:
            break
        seen.add(previous)
        table = reader.sql(
            f"SELECT trace_id, {_PREVIOUS_RESPONSE} AS previous FROM spans WHERE response_id = ? LIMIT 1", [previous])
        if not table.num_rows:
            break
        traces.insert(0, _column(table, "trace_id")[0])
        previous = _column(table, "previous")[0]
    current = response_id
    for _ in range(MAX_CHAIN_HOPS):
        table = reader.sql(
            f"SELECT trace_id, response_id FROM spans WHERE {_PREVIOUS_RESPONSE} = ? AND response_id IS NOT NULL "
            "ORDER BY start_time_ns LIMIT 1", [current])
        if not table.num_rows:
            break
        current = _column(table, "response_id")[0]
        if current in seen:
            break
        seen.add(current)
        traces.append(_column(table, "trace_id")[0])
    return list(dict.fromkeys(traces))


_SPAN_QUERY = """
SELECT trace_id, span_id, parent_span_id, name, start_time_ns, end_time_ns, status_code, status_message,
       operation_name, agent_name, request_model, response_model, response_id, conversation_id, tool_name,
       tool_call_id, error_type, input_tokens, output_tokens, {cost} AS cost_usd, attributes::VARCHAR AS attributes
FROM spans
WHERE trace_id IN (SELECT unnest(?::VARCHAR[]))
QUALIFY row_number() OVER (PARTITION BY trace_id, span_id ORDER BY ingest_seq DESC) = 1
"""
_EVENT_QUERY = """
SELECT trace_id, span_id, name, time_ns, attributes::VARCHAR AS attributes
FROM span_events
WHERE trace_id IN (SELECT unnest(?::VARCHAR[])) AND name LIKE 'gen_ai.%'
ORDER BY trace_id, span_id, event_index
"""
_LOG_QUERY = """
SELECT trace_id, span_id, event_name, time_ns, body::VARCHAR AS body, attributes::VARCHAR AS attributes
FROM logs
WHERE trace_id IN (SELECT unnest(?::VARCHAR[])) AND span_id IS NOT NULL AND event_name LIKE 'gen_ai.%'
ORDER BY time_ns
"""


def _loads(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def load_spans(reader: StoreReader, trace_ids: list[str]) -> list[SpanRecord]:
    """Every span of these traces, with its GenAI span events and correlated GenAI log records attached."""
    if not trace_ids:
        return []
    spans: dict[tuple[str, str], SpanRecord] = {}
    span_query = _SPAN_QUERY.format(cost="cost_usd" if has_cost_column(reader) else "NULL::DOUBLE")
    for row in reader.sql(span_query, [trace_ids]).to_pylist():
        attributes = _loads(row.pop("attributes")) or {}
        record = SpanRecord(**row, attributes=attributes if isinstance(attributes, dict) else {})
        spans[(record.trace_id, record.span_id)] = record
    for row in reader.sql(_EVENT_QUERY, [trace_ids]).to_pylist():
        span = spans.get((row["trace_id"], row["span_id"]))
        if span is not None:
            span.events.append(EventRecord(row["name"], _loads(row["attributes"]) or {}, time_ns=row["time_ns"]))
    for row in reader.sql(_LOG_QUERY, [trace_ids]).to_pylist():
        span = spans.get((row["trace_id"], row["span_id"]))
        if span is not None:
            span.logs.append(EventRecord(row["event_name"], _loads(row["attributes"]) or {},
                                         body=_loads(row["body"]), time_ns=row["time_ns"]))
    return list(spans.values())


def load_transcript(reader: StoreReader, key: str) -> Transcript:
    """The transcript for a conversation id, response id or trace id (see `resolve`)."""
    resolution = resolve(reader, key)
    spans = load_spans(reader, resolution.trace_ids)
    transcript = build_transcript(key, resolution.kind, spans, conversation_id=resolution.conversation_id,
                                  truncated_traces=resolution.truncated)
    transcript.loops = _loops(spans)
    return transcript


def _loops(spans: list[SpanRecord]) -> list[str]:
    """What goes in circles in these spans' traces (tracekit.loops), as messages for the replay header."""
    by_trace: dict[str, list[LoopSpan]] = {}
    for span in spans:
        by_trace.setdefault(span.trace_id, []).append(LoopSpan(
            span.span_id, span.parent_span_id, span.start_time_ns, span.operation_name, span.agent_name,
            span.tool_name, span.attributes))
    return [loop.message for trace_id, trace_spans in by_trace.items()
            for loop in find_loops(trace_id, trace_spans, configured_threshold())]
