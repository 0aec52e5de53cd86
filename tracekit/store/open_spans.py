"""Agents in flight, the reading side: spans that started and have not ended yet.

The collector stores start records (`tracekit.span.started`) and heartbeats (`tracekit.heartbeat`, see
tracekit.live) as ordinary log rows: ingest does nothing extra for them, and no row is deleted on the hot path. A
span is open while its start record has no span of the same (trace id, span id) in `spans`; the end record replaces
it simply by arriving. Whether the process behind an open span is still there is read from its newest heartbeat
(or the span's own start, if later): past `STALE_FACTOR` heartbeat intervals plus the log batching delay it is
"no longer reporting" instead of running forever, and once silent for `forget_after` (also what a collector
restart falls back on: nothing is held in memory) it is not listed at all. Start records older than `WINDOW_S` are
not read, which bounds what a look costs: ids only go through the set difference with the spans of that window,
the attributes of the few open ones are read after.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import orjson

from tracekit.live_records import (ATTR_INTERVAL, ATTR_KIND, ATTR_NAME, ATTR_PARENT, DEFAULT_INTERVAL_S, HEARTBEAT,
                                   SPAN_STARTED)
from tracekit.store.reader import StoreReader

__all__ = ["OpenSpan", "open_spans", "NOT_LIVE_RECORD", "RUNNING", "NOT_REPORTING"]

RUNNING = "running"
NOT_REPORTING = "no longer reporting"
STALE_FACTOR = 3          # heartbeats a process may miss before its open spans are no longer reporting
EXPORT_DELAY_S = 2.0      # the SDK's log batching delay and the trip to the collector
FORGET_AFTER_S = 3600.0   # a silent process's open spans are dropped from view after this long
WINDOW_S = 86_400.0       # start records older than this are not looked at (what a read costs grows with it)
MAX_OPEN = 10_000
# A SQL condition on `logs` rows: not a start record or heartbeat (those are tracekit's plumbing, never exported).
NOT_LIVE_RECORD = f"(event_name IS NULL OR event_name NOT IN ('{SPAN_STARTED}', '{HEARTBEAT}'))"


@dataclass(frozen=True)
class OpenSpan:
    """A span that started and has not arrived yet, as its start record describes it."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    start_ns: int
    service_name: str | None
    last_seen_ns: int     # newest start record or heartbeat of the span's process
    state: str            # RUNNING or NOT_REPORTING
    attributes: dict[str, Any] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        return self.state == RUNNING


def open_spans(reader: StoreReader, trace_id: str | None = None, *, now_ns: int | None = None,
               stale_after: float | None = None, forget_after: float = FORGET_AFTER_S,
               limit: int = MAX_OPEN) -> list[OpenSpan]:
    """Open spans (of one trace when `trace_id` is given), oldest start first.

    `stale_after` (seconds of silence) overrides the window derived from each process's announced heartbeat
    interval (`STALE_FACTOR` intervals plus `EXPORT_DELAY_S`).
    """
    now_ns = now_ns or time.time_ns()
    horizon = now_ns - int(forget_after * 1e9)
    window_start = now_ns - int(WINDOW_S * 1e9)
    trace_filter = "AND trace_id = ?" if trace_id else ""
    sql = f"""
        WITH open_ids AS (
            -- Ids only through the anti-join (the attributes of the few open ones are read after). A span starts
            -- when its record says, so only spans started inside the window can close one.
            SELECT trace_id, span_id FROM logs
            WHERE event_name = '{SPAN_STARTED}' AND time_ns >= ? {trace_filter} AND trace_id IS NOT NULL
            EXCEPT
            SELECT trace_id, span_id FROM spans WHERE start_time_ns >= ? {trace_filter}
        ), still_open AS (
            SELECT l.trace_id, l.span_id, l.time_ns, l.resource_id, l.service_name, l.attributes
            FROM logs l SEMI JOIN open_ids o ON o.trace_id = l.trace_id AND o.span_id = l.span_id
            WHERE l.event_name = '{SPAN_STARTED}' AND l.time_ns >= ?
            QUALIFY row_number() OVER (PARTITION BY l.trace_id, l.span_id ORDER BY l.ingest_seq DESC) = 1
        ), beats AS (
            -- Heartbeats go out all the time a process has a span open: they alone say whether it still reports.
            SELECT resource_id, max(time_ns) AS last_ns,
                   arg_max(TRY_CAST(json_extract_string(attributes, '$."{ATTR_INTERVAL}"') AS DOUBLE), time_ns)
                       AS interval_s
            FROM logs
            WHERE event_name = '{HEARTBEAT}' AND time_ns >= ? AND resource_id IN (SELECT resource_id FROM still_open)
            GROUP BY resource_id
        )
        SELECT o.trace_id, o.span_id, o.time_ns AS start_ns, o.service_name, o.attributes::VARCHAR AS attributes,
               greatest(o.time_ns, coalesce(b.last_ns, 0)) AS last_ns, b.interval_s
        FROM still_open o LEFT JOIN beats b USING (resource_id)
        WHERE greatest(o.time_ns, coalesce(b.last_ns, 0)) >= ?
        ORDER BY o.time_ns, o.span_id
        LIMIT ?
    """
    trace_params = [trace_id] if trace_id else []
    params: list[Any] = [window_start, *trace_params, window_start, *trace_params, window_start, window_start, horizon,
                         limit]
    found = []
    for row in reader.sql(sql, params).to_pylist():
        attributes = orjson.loads(row["attributes"]) if row["attributes"] else {}
        window = stale_after if stale_after is not None else (
            STALE_FACTOR * (row["interval_s"] or DEFAULT_INTERVAL_S) + EXPORT_DELAY_S)
        silent = (now_ns - row["last_ns"]) / 1e9
        found.append(OpenSpan(
            trace_id=row["trace_id"], span_id=row["span_id"],
            parent_span_id=attributes.pop(ATTR_PARENT, None) or None,
            name=str(attributes.pop(ATTR_NAME, "") or ""), kind=str(attributes.pop(ATTR_KIND, "INTERNAL")),
            start_ns=row["start_ns"], service_name=row["service_name"], last_seen_ns=row["last_ns"],
            state=RUNNING if silent <= window else NOT_REPORTING, attributes=attributes))
    return found
