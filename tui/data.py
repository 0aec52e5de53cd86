"""Every query the TUI runs, as functions over a StoreReader (read-only SQL, bounded results).

Screens call these from Textual workers, never on the UI thread. Lists are paged with keyset cursors (newest
first), long values are cut in SQL with `left()` so a 5 MB attribute never crosses into the UI unless asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from tracekit import semconv
from tracekit.store.reader import StoreReader
from tracekit.tui.filters import TraceFilter

PAGE_SIZE = 200
VALUE_PREVIEW = 2_000  # characters of an attribute value loaded for the details panel
EXPANDED_VALUE = 200_000  # characters loaded when the user expands a value ("e")
_INFERENCE = ", ".join(f"'{op}'" for op in sorted(semconv.INFERENCE_OPERATIONS))


@dataclass(frozen=True)
class TraceSummary:
    """One row of the trace list."""

    trace_id: str
    start_ns: int
    duration_ns: int
    span_count: int
    root_name: str
    has_root: bool
    agents: str
    service: str
    tokens: int | None
    errors: int
    conversation_id: str | None


class SpanRow(NamedTuple):
    """The light columns of a span, enough to draw the tree and the waterfall (a tuple: 10,000 build fast)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    start_ns: int
    end_ns: int
    status_code: str
    status_message: str | None
    service_name: str | None
    operation_name: str | None
    agent_name: str | None
    model: str | None
    tool_name: str | None
    input_tokens: int | None
    output_tokens: int | None
    ingest_seq: int
    conversation_id: str | None = None
    dropped_attributes_count: int = 0

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)


@dataclass
class AttributeValue:
    """An attribute as loaded for display: its value cut to `preview` characters, with the full size."""

    key: str
    value: str
    size: int
    json_type: str

    @property
    def truncated(self) -> bool:
        return self.size > len(self.value)


@dataclass
class SpanDetails:
    """What the details panel shows for one span."""

    span: SpanRow
    attributes: list[AttributeValue] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    resource: list[AttributeValue] = field(default_factory=list)


def _keyset(cursor: tuple[int, str] | None) -> tuple[str, list[Any]]:
    if cursor is None:
        return "", []
    return "HAVING min(start_time_ns) < ? OR (min(start_time_ns) = ? AND trace_id < ?)", [cursor[0], cursor[0],
                                                                                             cursor[1]]


def trace_page(reader: StoreReader, trace_filter: TraceFilter | None = None, *,
               after: tuple[int, str] | None = None, limit: int = PAGE_SIZE) -> list[TraceSummary]:
    """A page of traces, newest first, that have spans matching the filter; `after` is the last row's cursor."""
    trace_filter = trace_filter or TraceFilter()
    conditions = trace_filter.span_conditions + trace_filter.trace_conditions
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    having, keyset_params = _keyset(after)
    # Without a filter, page.first_ns is each trace's earliest span, so no span of the page starts before the
    # page's oldest first_ns: bounding the join by it lets DuckDB skip older row groups (zone maps).
    lower_bound = "" if conditions else "AND s.start_time_ns >= (SELECT min(first_ns) FROM page)"
    sql = f"""
        WITH page AS (
            SELECT trace_id, min(start_time_ns) AS first_ns
            FROM spans {where}
            GROUP BY trace_id {having}
            ORDER BY first_ns DESC, trace_id DESC
            LIMIT ?
        )
        SELECT page.trace_id, page.first_ns,
               max(s.end_time_ns) - min(s.start_time_ns) AS duration_ns,
               count(DISTINCT s.span_id) AS span_count,
               coalesce(arg_min(s.name, s.start_time_ns) FILTER (WHERE s.parent_span_id IS NULL),
                        arg_min(s.name, s.start_time_ns)) AS root_name,
               bool_or(s.parent_span_id IS NULL) AS has_root,
               coalesce(array_to_string(list_sort(list_distinct(list(s.agent_name))), ', '), '') AS agents,
               coalesce(arg_min(s.service_name, s.start_time_ns), '') AS service,
               coalesce(sum(coalesce(s.input_tokens, 0) + coalesce(s.output_tokens, 0))
                            FILTER (WHERE s.operation_name IN ({_INFERENCE})
                                    AND (s.input_tokens IS NOT NULL OR s.output_tokens IS NOT NULL)),
                        sum(s.input_tokens + s.output_tokens))::BIGINT AS tokens,
               count(*) FILTER (WHERE s.status_code = 'ERROR') AS errors,
               any_value(s.conversation_id) FILTER (WHERE s.conversation_id IS NOT NULL) AS conversation_id
        FROM page JOIN spans s ON s.trace_id = page.trace_id {lower_bound}
        GROUP BY page.trace_id, page.first_ns
        ORDER BY page.first_ns DESC, page.trace_id DESC
    """
    params = [*trace_filter.params, *trace_filter.trace_params, *keyset_params, limit]
    rows = reader.sql(sql, params).to_pylist()
    return [TraceSummary(
        trace_id=row["trace_id"], start_ns=row["first_ns"], duration_ns=row["duration_ns"] or 0,
        span_count=row["span_count"], root_name=row["root_name"] or "", has_root=bool(row["has_root"]),
        agents=row["agents"] or "", service=row["service"] or "", tokens=row["tokens"], errors=row["errors"],
        conversation_id=row["conversation_id"]) for row in rows]


def latest_seq(reader: StoreReader) -> int:
    """The newest ingest sequence number in the store (0 when empty): the live tail polls for a change."""
    table = reader.sql("SELECT coalesce(max(ingest_seq), 0) AS seq FROM spans")
    return int(table.column("seq")[0].as_py())


def conversation_seq(reader: StoreReader, conversation_id: str | None, trace_ids: list[str]) -> int:
    """The newest ingest sequence among the spans of a conversation (or of these traces): the replay's live check."""
    table = reader.sql(
        "SELECT coalesce(max(ingest_seq), 0) AS seq FROM spans "
        "WHERE conversation_id = ? OR trace_id IN (SELECT unnest(?::VARCHAR[]))", [conversation_id, trace_ids])
    return int(table.column("seq")[0].as_py())


_SPAN_COLUMNS = """
    trace_id, span_id, parent_span_id, name, kind, start_time_ns AS start_ns, end_time_ns AS end_ns, status_code,
    left(status_message, 500) AS status_message, service_name, operation_name, agent_name,
    coalesce(response_model, request_model) AS model, tool_name, input_tokens, output_tokens, ingest_seq,
    conversation_id, dropped_attributes_count
"""


def trace_spans(reader: StoreReader, trace_id: str, *, since_seq: int = 0) -> list[SpanRow]:
    """The spans of one trace (those ingested after `since_seq` when given), oldest first, one row per span id."""
    sql = f"""
        SELECT {_SPAN_COLUMNS} FROM spans
        WHERE trace_id = ? AND ingest_seq > ?
        QUALIFY row_number() OVER (PARTITION BY span_id ORDER BY ingest_seq DESC) = 1
        ORDER BY start_time_ns, span_id
    """
    columns = reader.sql(sql, [trace_id, since_seq]).to_pydict()  # column-wise: much faster than row dicts
    return list(map(SpanRow._make, zip(*(columns[name] for name in SpanRow._fields))))


_VALUE = "CASE WHEN json_type(value) = 'VARCHAR' THEN value->>'$' ELSE value::VARCHAR END"


def _attributes(reader: StoreReader, table: str, where: str, params: list[Any], preview: int) -> list[AttributeValue]:
    sql = f"""
        SELECT key, left({_VALUE}, ?) AS value, length({_VALUE}) AS size, json_type(value) AS json_type
        FROM {table}, json_each({table}.attributes) WHERE {where} ORDER BY key LIMIT 5000
    """
    return [AttributeValue(**row) for row in reader.sql(sql, [preview, *params]).to_pylist()]


def span_details(reader: StoreReader, span: SpanRow, *, preview: int = VALUE_PREVIEW) -> SpanDetails:
    """Attributes (values cut at `preview` characters), events, links, correlated logs and resource of a span."""
    key = [span.trace_id, span.span_id]
    details = SpanDetails(span=span)
    details.attributes = _attributes(reader, "spans", "trace_id = ? AND span_id = ?", key, preview)
    details.events = reader.sql(
        "SELECT event_index, time_ns, name, left(attributes::VARCHAR, ?) AS attributes, "
        "length(attributes::VARCHAR) AS size FROM span_events WHERE trace_id = ? AND span_id = ? "
        "ORDER BY event_index LIMIT 500", [preview, *key]).to_pylist()
    details.links = reader.sql(
        "SELECT linked_trace_id, linked_span_id, left(attributes::VARCHAR, ?) AS attributes FROM span_links "
        "WHERE trace_id = ? AND span_id = ? ORDER BY link_index LIMIT 500", [preview, *key]).to_pylist()
    details.logs = reader.sql(
        "SELECT time_ns, severity_text, event_name, left(body::VARCHAR, ?) AS body, length(body::VARCHAR) AS size, "
        "left(attributes::VARCHAR, ?) AS attributes FROM logs WHERE trace_id = ? AND span_id = ? "
        "ORDER BY time_ns LIMIT 500", [preview, preview, *key]).to_pylist()
    details.resource = _attributes(
        reader, "resources", "resource_id = (SELECT any_value(resource_id) FROM spans WHERE trace_id = ? "
        "AND span_id = ?)", key, preview)
    return details


def attribute_value(reader: StoreReader, span: SpanRow, key: str, *, limit: int = EXPANDED_VALUE) -> AttributeValue:
    """One attribute loaded at up to `limit` characters (for "expand")."""
    found = _attributes(reader, "spans", "trace_id = ? AND span_id = ? AND key = ?",
                        [span.trace_id, span.span_id, key], limit)
    if not found:
        return AttributeValue(key, "", 0, "NULL")
    return found[0]


def conversations_page(reader: StoreReader, *, limit: int = PAGE_SIZE) -> list[dict[str, Any]]:
    """Conversations (by conversation id), most recently active first, with trace and turn counts."""
    sql = f"""
        SELECT conversation_id, max(start_time_ns) AS last_ns, count(DISTINCT trace_id) AS traces,
               count(*) FILTER (WHERE operation_name IN ({_INFERENCE})) AS model_calls,
               coalesce(array_to_string(list_sort(list_distinct(list(agent_name))), ', '), '') AS agents
        FROM spans WHERE conversation_id IS NOT NULL
        GROUP BY conversation_id ORDER BY last_ns DESC LIMIT ?
    """
    return reader.sql(sql, [limit]).to_pylist()


def decode_json(text: str) -> Any:
    """A JSON document from the store, or the text itself when it is not valid JSON (for example when cut)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


@dataclass(frozen=True)
class AlertState:
    """The latest recorded state of an alert rule (`tracekit.alert` events written by `tracekit collect --alerts`)."""

    name: str
    state: str            # fired, resolved, error
    since_ns: int         # when the rule entered this state
    severity: int
    condition: str
    window: str
    description: str
    rows: list[dict[str, Any]]
    error: str | None

    @property
    def firing(self) -> bool:
        return self.state == "fired"


def alert_states(reader: StoreReader) -> list[AlertState]:
    """Each rule's latest state, firing rules first, most severe first."""
    table = reader.sql("""
        SELECT json_extract_string(attributes, '$."tracekit.alert.name"') AS name,
               arg_max(attributes, time_ns) AS attributes, max(time_ns) AS since_ns
        FROM logs WHERE event_name = 'tracekit.alert' GROUP BY 1 HAVING name IS NOT NULL
    """)
    states = []
    for row in table.to_pylist():
        attributes = decode_json(row["attributes"]) or {}
        rows = decode_json(attributes.get("tracekit.alert.rows") or "[]")
        states.append(AlertState(
            name=row["name"], state=str(attributes.get("tracekit.alert.state", "")), since_ns=row["since_ns"],
            severity=int(attributes.get("tracekit.alert.severity", 3)),
            condition=str(attributes.get("tracekit.alert.condition", "")),
            window=str(attributes.get("tracekit.alert.window", "")),
            description=str(attributes.get("tracekit.alert.description", "")),
            rows=rows if isinstance(rows, list) else [], error=attributes.get("tracekit.alert.error")))
    return sorted(states, key=lambda s: (not s.firing, s.severity, s.name))
