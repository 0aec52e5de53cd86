"""Traces for machine readers: summaries to pick from, a trace's span tree, one span whole, errors grouped.

Everything is plain read-only SQL over the store's `spans`, `span_events` and `span_links` tables (no views, so a
call costs no view installation). A span delivered twice (a retried export) is read once.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import orjson

from tracekit import semconv
from tracekit.durations import DurationError, parse_duration
from tracekit.errors import QueryError
from tracekit.readout.budget import (DEFAULT_CHARS, DEFAULT_ROWS, MAX_CHARS, MAX_ROWS, VALUE_CHARS, check_offset,
                                     clamp, cut, json_size, page)
from tracekit.store.reader import StoreReader

_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_SPAN_ID = re.compile(r"^[0-9a-f]{16}$")
# Operations whose token counts repeat their model calls' (an agent run reports the sum of its chats).
_AGGREGATE_OPERATIONS = sorted(semconv.AGENT_OPERATIONS | semconv.MULTI_AGENT_OPERATIONS | {semconv.OP_EXECUTE_TOOL})
_LATEST = "QUALIFY row_number() OVER (PARTITION BY trace_id, span_id ORDER BY ingest_seq DESC) = 1"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def parse_time(text: str | None, name: str) -> dt.datetime | None:
    """`24h`, `30m`, `7d` (that long ago) or an ISO 8601 time, as a naive UTC datetime like the store's columns."""
    if text is None or not str(text).strip() or str(text).strip().lower() == "all":
        return None
    value = str(text).strip()
    try:
        return _now() - parse_duration(value, name)
    except DurationError:
        pass
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise QueryError(f"{name}={value!r}: expected a duration such as 30m, 24h, 7d or an ISO 8601 time "
                         "such as 2026-12-06T10:00:00Z") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return moment


def _iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat() + "Z"


def _iso_ns(ns: int | None) -> str | None:
    if ns is None:
        return None
    return dt.datetime.fromtimestamp(ns / 1e9, tz=dt.timezone.utc).isoformat().replace("+00:00", "Z")


def _ms(ns: int | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)


def _has_cost(reader: StoreReader) -> bool:
    """Whether the store prices model calls (a `cost_usd` column on spans)."""
    return "cost_usd" in reader.sql("SELECT * FROM spans LIMIT 0").column_names


def check_trace_id(trace_id: str) -> str:
    """A trace id as stored (32 lowercase hex digits), or QueryError."""
    value = (trace_id or "").strip().lower()
    if not _TRACE_ID.match(value):
        raise QueryError(f"trace_id {trace_id!r}: expected 32 hex digits (search_traces lists them)")
    return value


def _check_span_id(span_id: str) -> str:
    value = (span_id or "").strip().lower()
    if not _SPAN_ID.match(value):
        raise QueryError(f"span_id {span_id!r}: expected 16 hex digits (get_trace lists them)")
    return value


# --- search_traces ----------------------------------------------------------------------------------------------------
def search_traces(reader: StoreReader, *, since: str | None = None, until: str | None = None,
                  agent: str | None = None, errors_only: bool = False, text: str | None = None,
                  conversation: str | None = None, model: str | None = None, tool: str | None = None,
                  limit: int | None = None, offset: int | None = None, max_chars: int | None = None) -> dict:
    """Trace summaries, newest first, filtered; see tracekit.mcp_server for what each filter means."""
    limit = clamp(limit, DEFAULT_ROWS, MAX_ROWS, "limit")
    offset = check_offset(offset)
    max_chars = clamp(max_chars, DEFAULT_CHARS, MAX_CHARS, "max_chars")
    start, end = parse_time(since, "since"), parse_time(until, "until")
    where, having, params = [], [], []
    if start is not None:
        where.append("start_time >= ?")
        params.append(start)
    if end is not None:
        where.append("start_time < ?")
        params.append(end)
    for value, predicate in ((agent, "bool_or(agent_name = ?)"), (conversation, "bool_or(conversation_id = ?)"),
                             (tool, "bool_or(tool_name = ?)"),
                             (model, "bool_or(request_model = ? OR response_model = ?)"),
                             (text and text.lower(),
                              "bool_or(contains(lower(name), ?) OR contains(lower(attributes::VARCHAR), ?))")):
        if value:
            having.append(predicate)
            params.extend([value] * predicate.count("?"))
    if errors_only:
        having.append("bool_or(status_code = 'ERROR')")
    # First the page of trace ids (one cheap grouped scan), then the summaries of just those traces, whole.
    chosen = reader.sql(f"""
        SELECT trace_id, min(start_time_ns) AS start_ns, count(*) OVER () AS total FROM spans
        {'WHERE ' + ' AND '.join(where) if where else ''}
        GROUP BY trace_id {'HAVING ' + ' AND '.join(having) if having else ''}
        ORDER BY start_ns DESC, trace_id LIMIT ? OFFSET ?""", params + [limit + 1, offset]).to_pylist()
    total = chosen[0]["total"] if chosen else (0 if offset == 0 else None)
    details = _trace_summaries(reader, [row["trace_id"] for row in chosen])
    summaries = [details[row["trace_id"]] for row in chosen]
    traces, info = page(summaries, offset=offset, limit=limit, max_chars=max_chars, total=total, what="trace")
    filters = {key: value for key, value in (("since", since), ("until", until), ("agent", agent),
                                              ("errors_only", errors_only or None), ("text", text),
                                              ("conversation", conversation), ("model", model), ("tool", tool))
               if value is not None}
    return {"filters": filters, "traces": traces, "page": info}


def _trace_summaries(reader: StoreReader, trace_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The summary of each of these traces, over all their spans."""
    if not trace_ids:
        return {}
    cost = "sum(cost_usd)" if _has_cost(reader) else "NULL::DOUBLE"
    aggregate = "(" + ", ".join(f"'{name}'" for name in _AGGREGATE_OPERATIONS) + ")"
    counted = f"(operation_name IS NULL OR operation_name NOT IN {aggregate})"
    rows = reader.sql(f"""
        WITH s AS (SELECT * FROM spans WHERE trace_id IN (SELECT unnest(?::VARCHAR[])) {_LATEST})
        SELECT trace_id,
               min(start_time_ns) AS start_ns, max(end_time_ns) - min(start_time_ns) AS duration_ns,
               first(name ORDER BY parent_span_id IS NOT NULL, start_time_ns) AS root_span,
               first(service_name ORDER BY parent_span_id IS NOT NULL, start_time_ns) AS service,
               count(*) AS spans,
               list(DISTINCT agent_name ORDER BY agent_name) FILTER (WHERE agent_name IS NOT NULL) AS agents,
               list(DISTINCT coalesce(response_model, request_model) ORDER BY coalesce(response_model, request_model))
                   FILTER (WHERE coalesce(response_model, request_model) IS NOT NULL) AS models,
               sum(input_tokens) FILTER (WHERE {counted})::BIGINT AS input_tokens,
               sum(output_tokens) FILTER (WHERE {counted})::BIGINT AS output_tokens,
               {cost} AS cost_usd,
               count(*) FILTER (WHERE status_code = 'ERROR') AS errors,
               first(conversation_id ORDER BY start_time_ns) FILTER (WHERE conversation_id IS NOT NULL)
                   AS conversation_id
        FROM s GROUP BY trace_id""", [trace_ids]).to_pylist()
    return {row["trace_id"]: {
        "trace_id": row["trace_id"], "start": _iso_ns(row["start_ns"]), "root_span": row["root_span"],
        "service": row["service"], "duration_ms": _ms(row["duration_ns"]), "spans": row["spans"],
        "agents": row["agents"] or [], "models": row["models"] or [],
        "input_tokens": row["input_tokens"], "output_tokens": row["output_tokens"], "cost_usd": row["cost_usd"],
        "errors": row["errors"], "conversation_id": row["conversation_id"],
    } for row in rows}


# --- get_trace --------------------------------------------------------------------------------------------------------
_SPAN_COLUMNS = """trace_id, span_id, parent_span_id, name, kind, start_time_ns, end_time_ns, duration_ns,
    status_code, status_message, service_name, scope_name, operation_name, provider_name, request_model,
    response_model, response_id, agent_name, agent_id, conversation_id, tool_name, tool_call_id, error_type,
    input_tokens, output_tokens, event_count, link_count, resource_id, attributes::VARCHAR AS attributes"""


def _attributes(text: str | None) -> dict[str, Any]:
    try:
        value = orjson.loads(text) if text else {}
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def _span_core(row: dict[str, Any], trace_start_ns: int) -> dict[str, Any]:
    core = {
        "span_id": row["span_id"], "parent_span_id": row["parent_span_id"], "name": row["name"],
        "kind": row["kind"], "start_offset_ms": _ms(row["start_time_ns"] - trace_start_ns),
        "duration_ms": _ms(row["duration_ns"]), "status": row["status_code"],
        "status_message": row["status_message"], "operation": row["operation_name"], "agent": row["agent_name"],
        "model": row["response_model"] or row["request_model"], "tool": row["tool_name"],
        "tool_call_id": row["tool_call_id"], "error_type": row["error_type"],
        "input_tokens": row["input_tokens"], "output_tokens": row["output_tokens"],
    }
    return {key: value for key, value in core.items() if value is not None or key in ("parent_span_id", "status")}


def _tree_order(rows: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Spans depth first (children by start time), with their depth; orphans (parent not stored) are roots."""
    ids = {row["span_id"] for row in rows}
    children: dict[str | None, list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: (r["start_time_ns"], r["span_id"])):
        parent = row["parent_span_id"] if row["parent_span_id"] in ids else None
        children.setdefault(parent, []).append(row)
    ordered: list[tuple[int, dict[str, Any]]] = []
    stack = [(0, row) for row in reversed(children.get(None, []))]
    while stack:
        depth, row = stack.pop()
        ordered.append((depth, row))
        stack.extend((depth + 1, child) for child in reversed(children.get(row["span_id"], [])))
    return ordered


def _load_trace(reader: StoreReader, trace_id: str) -> list[dict[str, Any]]:
    rows = reader.sql(f"SELECT {_SPAN_COLUMNS} FROM spans WHERE trace_id = ? {_LATEST}", [trace_id]).to_pylist()
    if not rows:
        raise QueryError(f"no trace {trace_id} in the store (search_traces lists the stored traces)")
    return rows


def get_trace(reader: StoreReader, trace_id: str, *, offset: int | None = None, limit: int | None = None,
              max_chars: int | None = None, value_chars: int | None = None) -> dict:
    """A trace's spans as a tree (depth first), each with timings, kind, status and its attributes, long ones cut."""
    trace_id = check_trace_id(trace_id)
    offset = check_offset(offset)
    limit = clamp(limit, 200, MAX_ROWS, "limit")
    max_chars = clamp(max_chars, DEFAULT_CHARS, MAX_CHARS, "max_chars")
    value_chars = clamp(value_chars, VALUE_CHARS, MAX_CHARS, "value_chars")
    rows = _load_trace(reader, trace_id)
    start_ns = min(row["start_time_ns"] for row in rows)
    end_ns = max(row["end_time_ns"] for row in rows)
    ordered = _tree_order(rows)
    events = _events(reader, trace_id, [row["span_id"] for _, row in ordered[offset:offset + limit]])

    def shaped(depth: int, row: dict[str, Any]) -> dict[str, Any]:
        span = {"depth": depth, **_span_core(row, start_ns)}
        hint = f'get_span(trace_id="{trace_id}", span_id="{row["span_id"]}", attribute="{{key}}")'
        span["attributes"] = {key: cut(value, value_chars, hint.replace("{key}", key))
                              for key, value in _attributes(row["attributes"]).items()}
        span_events = events.get(row["span_id"], [])
        if span_events:
            span["events"] = [{"name": event["name"], "offset_ms": _ms(event["time_ns"] - start_ns),
                               "attributes": {key: cut(value, value_chars,
                                                       f'get_span(trace_id="{trace_id}", span_id="{row["span_id"]}")')
                                              for key, value in _attributes(event["attributes"]).items()}}
                              for event in span_events]
        return span

    spans, info = page((shaped(depth, row) for depth, row in ordered[offset:]), offset=offset, limit=limit,
                       max_chars=max_chars, total=len(ordered), what="span")
    root = ordered[0][1]
    return {
        "trace_id": trace_id, "start": _iso_ns(start_ns), "duration_ms": _ms(end_ns - start_ns),
        "root_span": root["name"], "service": root["service_name"], "span_count": len(ordered),
        "errors": sum(1 for row in rows if row["status_code"] == "ERROR"),
        "conversation_id": next((row["conversation_id"] for _, row in ordered if row["conversation_id"]), None),
        "spans": spans, "page": info,
    }


def _events(reader: StoreReader, trace_id: str, span_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    if not span_ids:
        return {}
    table = reader.sql(
        "SELECT span_id, name, time_ns, attributes::VARCHAR AS attributes FROM span_events "
        "WHERE trace_id = ? AND span_id IN (SELECT unnest(?::VARCHAR[])) "
        "QUALIFY row_number() OVER (PARTITION BY span_id, event_index ORDER BY ingest_seq DESC) = 1 "
        "ORDER BY span_id, event_index", [trace_id, span_ids])
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in table.to_pylist():
        grouped.setdefault(row["span_id"], []).append(row)
    return grouped


# --- get_span ---------------------------------------------------------------------------------------------------------
def get_span(reader: StoreReader, trace_id: str, span_id: str, *, attribute: str | None = None,
             offset: int | None = None, max_chars: int | None = None) -> dict:
    """One span with every attribute, event and link whole; or, with `attribute`, that value paged by characters."""
    trace_id, span_id = check_trace_id(trace_id), _check_span_id(span_id)
    offset = check_offset(offset)
    max_chars = clamp(max_chars, DEFAULT_CHARS, MAX_CHARS, "max_chars")
    rows = reader.sql(f"SELECT {_SPAN_COLUMNS} FROM spans WHERE trace_id = ? AND span_id = ? {_LATEST}",
                      [trace_id, span_id]).to_pylist()
    if not rows:
        raise QueryError(f"no span {span_id} in trace {trace_id} (get_trace lists a trace's spans)")
    row = rows[0]
    attributes = _attributes(row["attributes"])
    if attribute is not None:
        return _attribute_page(trace_id, span_id, attributes, attribute, offset, max_chars)
    trace_start = reader.sql("SELECT min(start_time_ns) AS t FROM spans WHERE trace_id = ?",
                             [trace_id]).column("t")[0].as_py()
    span: dict[str, Any] = {"trace_id": trace_id, **_span_core(row, trace_start),
                            "start": _iso_ns(row["start_time_ns"]), "end": _iso_ns(row["end_time_ns"]),
                            "service": row["service_name"], "scope": row["scope_name"],
                            "provider": row["provider_name"], "response_id": row["response_id"],
                            "conversation_id": row["conversation_id"], "agent_id": row["agent_id"]}
    span = {key: value for key, value in span.items() if value is not None or key in ("parent_span_id", "status")}
    span["attributes"] = attributes
    span["events"] = [{"name": event["name"], "time": _iso_ns(event["time_ns"]),
                       "attributes": _attributes(event["attributes"])}
                      for event in _events(reader, trace_id, [span_id]).get(span_id, [])]
    span["links"] = reader.sql(
        "SELECT linked_trace_id AS trace_id, linked_span_id AS span_id, attributes::VARCHAR AS attributes "
        "FROM span_links WHERE trace_id = ? AND span_id = ? ORDER BY link_index", [trace_id, span_id]).to_pylist()
    for link in span["links"]:
        link["attributes"] = _attributes(link["attributes"])
    resource = reader.sql("SELECT attributes::VARCHAR AS attributes FROM resources WHERE resource_id = ? LIMIT 1",
                          [row["resource_id"]]).to_pylist()
    span["resource"] = _attributes(resource[0]["attributes"]) if resource else {}
    if json_size(span) > max_chars:
        # Too big for one answer: cut the longest attribute values, each pageable on its own.
        share = max(200, max_chars // max(4, len(attributes)))
        span["attributes"] = {key: cut(value, share, f'get_span(trace_id="{trace_id}", span_id="{span_id}", '
                                                     f'attribute="{key}", offset=0)')
                              for key, value in attributes.items()}
        span["note"] = (f"the span exceeds the {max_chars:,}-character budget: attribute values over {share:,} "
                        "characters are cut; ask for one with attribute=KEY (and offset=N) to page through it")
    return span


def _attribute_page(trace_id: str, span_id: str, attributes: dict[str, Any], key: str, offset: int,
                    max_chars: int) -> dict:
    if key not in attributes:
        raise QueryError(f"span {span_id} has no attribute {key!r}; it has: {', '.join(sorted(attributes)) or 'none'}")
    value = attributes[key]
    text = value if isinstance(value, str) else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    piece = text[offset:offset + max_chars]
    following = offset + len(piece)
    result = {"trace_id": trace_id, "span_id": span_id, "attribute": key, "offset": offset,
              "total_chars": len(text), "value": piece if offset or following < len(text) else value,
              "next_offset": following if following < len(text) else None}
    if following < len(text):
        result["note"] = (f"characters {offset:,}-{following:,} of {len(text):,}; call again with "
                          f"offset={following} for the rest")
    return result


# --- list_errors ------------------------------------------------------------------------------------------------------
def list_errors(reader: StoreReader, *, since: str | None = "24h", limit: int | None = None,
                offset: int | None = None, max_chars: int | None = None) -> dict:
    """Failed spans grouped by error type and span name, most frequent first, with example trace ids."""
    limit = clamp(limit, DEFAULT_ROWS, MAX_ROWS, "limit")
    offset = check_offset(offset)
    max_chars = clamp(max_chars, DEFAULT_CHARS, MAX_CHARS, "max_chars")
    start = parse_time(since, "since")
    params: list[Any] = []
    window = ""
    if start is not None:
        window = "AND start_time >= ?"
        params.append(start)
    rows = reader.sql(f"""
        WITH failed AS (
            SELECT * FROM spans WHERE (status_code = 'ERROR' OR error_type IS NOT NULL) {window} {_LATEST}
        )
        SELECT coalesce(error_type, 'unspecified') AS error_type, name AS span_name, count(*) AS count,
               count(DISTINCT trace_id) AS traces, min(start_time) AS first_seen, max(start_time) AS last_seen,
               list(DISTINCT agent_name ORDER BY agent_name) FILTER (WHERE agent_name IS NOT NULL) AS agents,
               (list(trace_id ORDER BY start_time_ns DESC))[1:3] AS example_trace_ids,
               first(status_message ORDER BY start_time_ns DESC) FILTER (WHERE status_message IS NOT NULL)
                   AS example_message,
               count(*) OVER () AS total
        FROM failed GROUP BY 1, 2 ORDER BY count DESC, last_seen DESC, error_type, span_name
        LIMIT ? OFFSET ?""", params + [limit + 1, offset]).to_pylist()
    total = rows[0]["total"] if rows else (0 if offset == 0 else None)
    groups = [{
        "error_type": row["error_type"], "span_name": row["span_name"], "count": row["count"],
        "traces": row["traces"], "first_seen": _iso(row["first_seen"]), "last_seen": _iso(row["last_seen"]),
        "agents": row["agents"] or [], "example_trace_ids": list(dict.fromkeys(row["example_trace_ids"])),
        "example_message": cut(row["example_message"], VALUE_CHARS,
                               f'get_span on a span of trace {row["example_trace_ids"][0]}'),
    } for row in rows]
    groups, info = page(groups, offset=offset, limit=limit, max_chars=max_chars, total=total, what="group")
    return {"since": since, "groups": groups, "page": info}
