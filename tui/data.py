"""Every query the TUI runs, as functions over a StoreReader (read-only SQL, bounded results).

Screens call these from Textual workers, never on the UI thread. Lists are paged with keyset cursors (newest
first), long values are cut in SQL with `left()` so a 5 MB attribute never crosses into the UI unless asked for.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson

from tracekit import semconv
from tracekit.cost import Price, has_cost_column, price_call
from tracekit.store.open_spans import NOT_REPORTING, RUNNING, SPAN_STARTED, OpenSpan, open_spans
from tracekit.store.reader import StoreReader
from tracekit.tui.filters import TraceFilter

if TYPE_CHECKING:  # the linter is imported with the first span's details, not before the trace list is painted
    from tracekit.lint.rules import Finding

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
    cost_usd: float | None = None   # the priced model calls' total; None when none is priced
    cost_partial: bool = False      # some model call with tokens has no known price: the total is a lower bound
    loops: tuple[str, ...] = ()     # what goes in circles in this trace (tracekit.loops), as messages
    live_state: str | None = None  # RUNNING or NOT_REPORTING while the trace has open spans (tracekit.live)
    # The trace's earliest stored span. On a filtered page start_ns is the first *matching* span's start (the page is
    # ordered and paged by it); loop detection must still read the spans before it.
    earliest_ns: int | None = None

    @property
    def running(self) -> bool:
        return self.live_state == RUNNING


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

    @property
    def live_state(self) -> str | None:
        """RUNNING or NOT_REPORTING for a span that has started and not ended (see `open_span_rows`)."""
        return _LIVE_STATUS.get(self.status_code)


# Open spans travel through the tree as SpanRows with one of these pseudo status codes (no real span has them).
STATUS_RUNNING = "RUNNING"
STATUS_NOT_REPORTING = "NOT_REPORTING"
_LIVE_STATUS = {STATUS_RUNNING: RUNNING, STATUS_NOT_REPORTING: NOT_REPORTING}


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
    price: Price | None = None      # the price the span's model call is costed at (None: not a call, or unknown)
    findings: list[Finding] = field(default_factory=list)  # what `tracekit lint` finds wrong with this span

    def attribute_map(self) -> dict[str, Any]:
        """The attributes loaded whole, as values (numbers as numbers): what pricing and the linter read."""
        from tracekit.lint.rules import UNREAD

        values: dict[str, Any] = {}
        for item in self.attributes:
            if item.truncated:
                values[item.key] = UNREAD  # content cut for display: its key matters here, not its value
            elif item.json_type in ("BIGINT", "UBIGINT", "INTEGER"):
                values[item.key] = int(item.value)
            elif item.json_type == "DOUBLE":
                values[item.key] = float(item.value)
            elif item.json_type == "BOOLEAN":
                values[item.key] = item.value == "true"
            elif item.json_type in ("OBJECT", "ARRAY"):
                values[item.key] = orjson.loads(item.value)
            else:
                values[item.key] = item.value
        return values


def _keyset(cursor: tuple[int, str] | None) -> tuple[str, list[Any]]:
    if cursor is None:
        return "", []
    return "HAVING min(start_time_ns) < ? OR (min(start_time_ns) = ? AND trace_id < ?)", [cursor[0], cursor[0],
                                                                                             cursor[1]]


def trace_page(reader: StoreReader, trace_filter: TraceFilter | None = None, *,
               after: tuple[int, str] | None = None, limit: int = PAGE_SIZE,
               with_loops: bool = True) -> list[TraceSummary]:
    """A page of traces, newest first, that have spans matching the filter; `after` is the last row's cursor.

    `with_loops=False` leaves `loops` empty: the trace list shows the rows first and adds the loop markers from
    `trace_loop_messages` after (loop detection reads every tool and agent span of the page).
    """
    trace_filter = trace_filter or TraceFilter()
    conditions = trace_filter.span_conditions + trace_filter.trace_conditions
    if after is None or trace_filter.running:
        # Traces in flight come first (and only those with `status:running`): their roots may not have ended yet.
        traces = _with_running(reader, trace_filter, conditions, limit)
    else:
        traces = _ended_trace_page(reader, trace_filter, conditions, after, limit)
    if not with_loops:
        return traces
    messages = trace_loop_messages(reader, traces)
    return [replace(trace, loops=messages.get(trace.trace_id, ())) for trace in traces]


class FirstPage:
    """The trace list's first page (and the store's latest ingest sequence), queried in a thread from the moment the
    store is open: started before Textual is imported, the query runs while the app loads and starts (DuckDB lets go
    of the GIL while it executes), and the list shows its rows as soon as it is mounted."""

    def __init__(self, reader: StoreReader) -> None:
        self._answer: tuple[int, list[TraceSummary]] | None = None
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._query, args=(reader,), name="tracekit-first-page", daemon=True)
        self._thread.start()

    def _query(self, reader: StoreReader) -> None:
        try:
            seq = latest_seq(reader)  # before the page, so spans arriving meanwhile are seen by the next poll
            self._answer = seq, trace_page(reader, with_loops=False)
        except Exception as error:  # raised where the answer is taken, by the list's worker
            self._error = error

    def result(self) -> tuple[int, list[TraceSummary]]:
        """The sequence number and the page (waits for the query; raises what the query raised)."""
        self._thread.join()
        if self._answer is None:
            assert self._error is not None
            raise self._error
        return self._answer


def trace_loop_messages(reader: StoreReader, traces: list[TraceSummary]) -> dict[str, tuple[str, ...]]:
    """What goes in circles in each of these traces (tracekit.loops), as messages; traces without loops left out."""
    if not traces:
        return {}
    from tracekit.loops import configured_threshold, trace_loops  # after the first paint: it needs no loop rules

    found = trace_loops(reader, [trace.trace_id for trace in traces], configured_threshold(),
                        since_ns=min(trace.start_ns if trace.earliest_ns is None else trace.earliest_ns
                                     for trace in traces))  # no span of these traces starts before it
    return {trace_id: tuple(loop.message for loop in loops) for trace_id, loops in found.items()}


# The newest page without a filter is found among the newest spans instead of grouping every span by trace: the traces
# with spans in a window of the newest spans, less those with a span that starts before the window, are exactly the
# traces whose first span starts in it, so when a page of them remains those are the newest traces of all. The window
# starts at this many spans per trace of the page (agent traces have tens), four times more while it holds too few
# traces; past _WINDOW_MAX_SPANS the page groups every span.
_WINDOW_SPANS_PER_TRACE = 64
_WINDOW_MAX_SPANS = 4_000_000


def _newest_window(reader: StoreReader, limit: int) -> int | None:
    """The start of a window of the newest spans that holds spans of at least 1.25 `limit` traces; None when the store
    has no such window (then the whole store is grouped)."""
    spans = limit * _WINDOW_SPANS_PER_TRACE
    while spans <= _WINDOW_MAX_SPANS:
        answer = reader.rows("SELECT min(start_time_ns) AS start_ns, count(DISTINCT trace_id) AS trace_count, "
                             "count(*) AS span_count FROM (SELECT trace_id, start_time_ns FROM spans "
                             "ORDER BY start_time_ns DESC LIMIT ?)", [spans])  # top-N: only the newest row groups
        start_ns, trace_count, span_count = answer.rows[0]
        if span_count < spans:
            return None  # the whole store: no cheaper than grouping it
        if trace_count >= limit + limit // 4:
            return start_ns
        spans *= 4
    return None


def _ended_trace_page(reader: StoreReader, trace_filter: TraceFilter, conditions: list[str],
                      after: tuple[int, str] | None, limit: int, only: list[str] | None = None) -> list[TraceSummary]:
    if not conditions and after is None and only is None:
        window = _newest_window(reader, limit)
        if window is not None:
            traces = _summaries(reader, _WINDOW_PAGE, [window, window, limit], bounded=True)
            if len(traces) == limit:  # else too many of the window's traces started before it: the full scan
                return traces
    if only is not None:
        conditions = [*conditions, "trace_id IN (SELECT unnest(?::VARCHAR[]))"]
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    having, keyset_params = _keyset(after)
    page = f"""
        SELECT trace_id, min(start_time_ns) AS first_ns
        FROM spans {where}
        GROUP BY trace_id {having}
        ORDER BY first_ns DESC, trace_id DESC
        LIMIT ?
    """
    params = [*trace_filter.params, *trace_filter.trace_params, *([only] if only is not None else []),
              *keyset_params, limit]
    return _summaries(reader, page, params, bounded=not conditions)


# The first spans of the traces that have spans starting at or after $1, less the traces with a span before it.
_WINDOW_PAGE = """
    WITH recent AS (
        SELECT trace_id, min(start_time_ns) AS first_ns FROM spans WHERE start_time_ns >= ? GROUP BY trace_id
    )
    SELECT trace_id, first_ns FROM recent
    WHERE trace_id NOT IN (SELECT trace_id FROM spans
                           WHERE start_time_ns < ? AND trace_id IN (SELECT trace_id FROM recent))
    ORDER BY first_ns DESC, trace_id DESC
    LIMIT ?
"""


def _summaries(reader: StoreReader, page: str, params: list[Any], *, bounded: bool) -> list[TraceSummary]:
    """The trace list rows of the page `page` selects (trace_id and first_ns, in the list's order); `bounded`: each
    row's first_ns is its trace's earliest span."""
    # The join reads every column the row needs; bounded below by the page's earliest span, DuckDB skips the older
    # row groups (zone maps). Without a filter, page.first_ns is each trace's earliest span; with one it is the first
    # matching span, so the bound comes from a scan of the trace id and start columns alone (cheaper than reading
    # every column of every span in the join).
    lower_bound = ("AND s.start_time_ns >= (SELECT min(first_ns) FROM page)" if bounded else
                   "AND s.start_time_ns >= (SELECT min(start_time_ns) FROM spans "
                   "WHERE trace_id IN (SELECT trace_id FROM page))")
    sql = f"""
        WITH page AS ({page})
        SELECT page.trace_id, page.first_ns, min(s.start_time_ns) AS earliest_ns,
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
               any_value(s.conversation_id) FILTER (WHERE s.conversation_id IS NOT NULL) AS conversation_id,
               {_cost_columns(reader)}
        FROM page JOIN spans s ON s.trace_id = page.trace_id {lower_bound}
        GROUP BY page.trace_id, page.first_ns
        ORDER BY page.first_ns DESC, page.trace_id DESC
    """
    rows = reader.rows(sql, params).dicts()  # plain rows: the first page imports no pyarrow
    return [TraceSummary(
        trace_id=row["trace_id"], start_ns=row["first_ns"], earliest_ns=row["earliest_ns"],
        duration_ns=row["duration_ns"] or 0,
        span_count=row["span_count"], root_name=row["root_name"] or "", has_root=bool(row["has_root"]),
        agents=row["agents"] or "", service=row["service"] or "", tokens=row["tokens"], errors=row["errors"],
        conversation_id=row["conversation_id"], cost_usd=row["cost_usd"], cost_partial=bool(row["cost_partial"]))
        for row in rows]


def _cost_columns(reader: StoreReader) -> str:
    if not has_cost_column(reader):  # a store from before prices (opened read-only, not migrated)
        return "NULL::DOUBLE AS cost_usd, false AS cost_partial"
    return (f"sum(s.cost_usd) AS cost_usd, "
            f"bool_or(s.cost_usd IS NULL AND s.operation_name IN ({_INFERENCE}) "
            f"AND coalesce(s.input_tokens, s.output_tokens) IS NOT NULL) AS cost_partial")


def _with_running(reader: StoreReader, trace_filter: TraceFilter, conditions: list[str],
                  limit: int) -> list[TraceSummary]:
    """The first page: traces with open spans (their ended spans merged in), then the ended traces."""
    by_trace: dict[str, list[OpenSpan]] = {}
    for span in open_spans(reader):
        by_trace.setdefault(span.trace_id, []).append(span)
    ended: dict[str, TraceSummary] = {}
    if by_trace:
        ended = {t.trace_id: t for t in _ended_trace_page(reader, trace_filter, conditions, None, len(by_trace),
                                                          only=list(by_trace))}
    now_ns = time.time_ns()
    running = []
    for trace_id, spans in by_trace.items():
        stored = ended.get(trace_id)
        if stored is None and conditions:
            continue  # the filter's terms are matched against ended spans; none has ended here yet
        running.append(_running_summary(trace_id, spans, stored, now_ns))
    running.sort(key=lambda t: (t.start_ns, t.trace_id), reverse=True)
    if trace_filter.running:
        return running[:limit]
    shown = {t.trace_id for t in running}
    rest = [t for t in _ended_trace_page(reader, trace_filter, conditions, None, limit) if t.trace_id not in shown]
    return (running + rest)[:max(limit, len(running))]


def _running_summary(trace_id: str, spans: list[OpenSpan], stored: TraceSummary | None, now_ns: int) -> TraceSummary:
    """A trace list row for a trace in flight: elapsed time so far, the open root when it has not ended."""
    start = min(min(s.start_ns for s in spans), stored.start_ns if stored else now_ns)
    roots = [s for s in spans if s.parent_span_id is None]
    state = RUNNING if any(s.running for s in spans) else NOT_REPORTING
    end = now_ns if state == RUNNING else max(s.last_seen_ns for s in spans)
    agents = {a for a in (stored.agents.split(", ") if stored and stored.agents else [])}
    agents.update(str(s.attributes[semconv.GEN_AI_AGENT_NAME]) for s in spans
                  if s.attributes.get(semconv.GEN_AI_AGENT_NAME))
    return TraceSummary(
        trace_id=trace_id, start_ns=start, duration_ns=max(0, end - start),
        span_count=(stored.span_count if stored else 0) + len(spans),
        root_name=roots[0].name if roots else (stored.root_name if stored else spans[0].name),
        has_root=bool(roots) or bool(stored and stored.has_root), agents=", ".join(sorted(agents)),
        service=(stored.service if stored else "") or spans[0].service_name or "",
        tokens=stored.tokens if stored else None, errors=stored.errors if stored else 0,
        conversation_id=stored.conversation_id if stored else None, live_state=state,
        cost_usd=stored.cost_usd if stored else None, cost_partial=bool(stored and stored.cost_partial),
        earliest_ns=min(start, stored.earliest_ns) if stored and stored.earliest_ns is not None else None)


def open_span_rows(reader: StoreReader, trace_id: str) -> list[SpanRow]:
    """The open spans of one trace as SpanRows (status RUNNING or NOT_REPORTING, ending now or when last heard)."""
    now_ns = time.time_ns()
    rows = []
    for span in open_spans(reader, trace_id, now_ns=now_ns):
        attributes = span.attributes
        rows.append(SpanRow(
            trace_id=span.trace_id, span_id=span.span_id, parent_span_id=span.parent_span_id, name=span.name,
            kind=span.kind, start_ns=span.start_ns, end_ns=now_ns if span.running else span.last_seen_ns,
            status_code=STATUS_RUNNING if span.running else STATUS_NOT_REPORTING, status_message=span.state,
            service_name=span.service_name, operation_name=attributes.get(semconv.GEN_AI_OPERATION_NAME),
            agent_name=attributes.get(semconv.GEN_AI_AGENT_NAME),
            model=attributes.get(semconv.GEN_AI_REQUEST_MODEL), tool_name=attributes.get(semconv.GEN_AI_TOOL_NAME),
            input_tokens=None, output_tokens=None, ingest_seq=0,
            conversation_id=attributes.get(semconv.GEN_AI_CONVERSATION_ID)))
    return rows


def in_flight(reader: StoreReader, conversation_id: str | None, trace_ids: list[str]) -> list[OpenSpan]:
    """The open spans of a conversation (in its traces, or carrying its id), oldest first: its turn in progress."""
    traces = set(trace_ids)
    return [span for span in open_spans(reader) if span.trace_id in traces or (
        conversation_id and span.attributes.get(semconv.GEN_AI_CONVERSATION_ID) == conversation_id)]


def latest_seq(reader: StoreReader) -> int:
    """The newest ingest sequence number of a span or a span start in the store (0 when empty): the live tail polls
    for a change."""
    answer = reader.rows(f"SELECT coalesce(greatest((SELECT max(ingest_seq) FROM spans), (SELECT max(ingest_seq) "
                         f"FROM logs WHERE event_name = '{SPAN_STARTED}')), 0) AS seq")
    return int(answer.rows[0][0])


def conversation_seq(reader: StoreReader, conversation_id: str | None, trace_ids: list[str]) -> int:
    """The newest ingest sequence among the spans of a conversation (or of these traces): the replay's live check."""
    answer = reader.rows(
        "SELECT coalesce(max(ingest_seq), 0) AS seq FROM spans "
        "WHERE conversation_id = ? OR trace_id IN (SELECT unnest(?::VARCHAR[]))", [conversation_id, trace_ids])
    return int(answer.rows[0][0])


_SPAN_COLUMNS = """
    trace_id, span_id, parent_span_id, name, kind, start_time_ns AS start_ns, end_time_ns AS end_ns, status_code,
    left(status_message, 500) AS status_message, service_name, operation_name, agent_name,
    coalesce(response_model, request_model) AS model, tool_name, input_tokens, output_tokens, ingest_seq,
    conversation_id, dropped_attributes_count
"""


class KnownStart(NamedTuple):
    """What a trace list row knows of its trace: every span of it stored up to ingest sequence `seq` starts at or after
    `start_ns` (the row's `earliest_ns`, from a page queried after `seq` was read)."""

    start_ns: int
    seq: int


def trace_spans(reader: StoreReader, trace_id: str, *, since_seq: int = 0,
                known: KnownStart | None = None) -> list[SpanRow]:
    """The spans of one trace (those ingested after `since_seq` when given), oldest first, one row per span id.

    With `known`, only spans that start at or after its start or arrived after its sequence are read: the same spans
    (a span stored since, say a parent exported after its children, may start earlier), but DuckDB skips the row
    groups that hold neither (zone maps) instead of matching the trace id of every span in the store.
    """
    bound, bound_params = "", []
    if known is not None:
        bound, bound_params = "AND (start_time_ns >= ? OR ingest_seq > ?)", [known.start_ns, known.seq]
    sql = f"""
        SELECT {_SPAN_COLUMNS} FROM spans
        WHERE trace_id = ? AND ingest_seq > ? {bound}
        QUALIFY row_number() OVER (PARTITION BY span_id ORDER BY ingest_seq DESC) = 1
        ORDER BY start_time_ns, span_id
    """
    answer = reader.rows(sql, [trace_id, since_seq, *bound_params])
    assert tuple(answer.columns) == SpanRow._fields  # the tuples are SpanRows as they come
    ended = list(map(SpanRow._make, answer.rows))
    # Open spans come every time (their state and elapsed time change); an ended span with the same id replaces one.
    return ended + open_span_rows(reader, trace_id)


_VALUE = "CASE WHEN json_type(value) = 'VARCHAR' THEN value->>'$' ELSE value::VARCHAR END"


def _attributes(reader: StoreReader, table: str, where: str, params: list[Any], preview: int) -> list[AttributeValue]:
    sql = f"""
        SELECT key, left({_VALUE}, ?) AS value, length({_VALUE}) AS size, json_type(value) AS json_type
        FROM {table}, json_each({table}.attributes) WHERE {where} ORDER BY key LIMIT 5000
    """
    return [AttributeValue(**row) for row in reader.rows(sql, [preview, *params]).dicts()]


def span_details(reader: StoreReader, span: SpanRow, *, preview: int = VALUE_PREVIEW) -> SpanDetails:
    """Attributes (values cut at `preview` characters), events, links, correlated logs and resource of a span."""
    key = [span.trace_id, span.span_id]
    details = SpanDetails(span=span)
    if span.live_state:  # not ended: what its start record knew
        details.attributes = [a for a in _attributes(
            reader, "logs", f"event_name = '{SPAN_STARTED}' AND trace_id = ? AND span_id = ?", key, preview)
            if not a.key.startswith("tracekit.span.")]
        return details
    details.attributes = _attributes(reader, "spans", "trace_id = ? AND span_id = ?", key, preview)
    details.events = reader.rows(
        "SELECT event_index, time_ns, name, left(attributes::VARCHAR, ?) AS attributes, "
        "length(attributes::VARCHAR) AS size FROM span_events WHERE trace_id = ? AND span_id = ? "
        "ORDER BY event_index LIMIT 500", [preview, *key]).dicts()
    details.links = reader.rows(
        "SELECT linked_trace_id, linked_span_id, left(attributes::VARCHAR, ?) AS attributes FROM span_links "
        "WHERE trace_id = ? AND span_id = ? ORDER BY link_index LIMIT 500", [preview, *key]).dicts()
    details.logs = reader.rows(
        "SELECT time_ns, severity_text, event_name, left(body::VARCHAR, ?) AS body, length(body::VARCHAR) AS size, "
        "left(attributes::VARCHAR, ?) AS attributes FROM logs WHERE trace_id = ? AND span_id = ? "
        "ORDER BY time_ns LIMIT 500", [preview, preview, *key]).dicts()
    details.resource = _attributes(
        reader, "resources", "resource_id = (SELECT any_value(resource_id) FROM spans WHERE trace_id = ? "
        "AND span_id = ?)", key, preview)
    from tracekit.lint.rules import check_span

    values = details.attribute_map()
    details.price = price_call(values, operation=span.operation_name, start_time_ns=span.start_ns)
    details.findings = check_span(values, kind=span.kind, event_names=[event["name"] for event in details.events])
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
    return reader.rows(sql, [limit]).dicts()


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
    answer = reader.rows("""
        SELECT json_extract_string(attributes, '$."tracekit.alert.name"') AS name,
               arg_max(attributes, time_ns) AS attributes, max(time_ns) AS since_ns
        FROM logs WHERE event_name = 'tracekit.alert' GROUP BY 1 HAVING name IS NOT NULL
    """)
    states = []
    for row in answer.dicts():
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
