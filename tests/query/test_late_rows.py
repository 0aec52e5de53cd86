"""Whole rows of a top-N or take over the span views: the rows are chosen on a lean source, and the view's expensive
columns (customDimensions with recorded message content above all) are computed for those rows only.

Every answer is compared with the plain view's (the compiled fallback, which runs the public view as it is), on a
store with recorded content; the plan check counts rows, not time."""

from __future__ import annotations

import datetime as dt
import json
import random

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.query.spanfactory import collector_store
from tests.query.workload import BASE_NS, RESOURCE, make_workload, server_span_workload
from tracekit import semconv
from tracekit.query.kql import compile_kql, run_kql

CONTENT_SPANS = 90


def _content_spans() -> list:
    """Chat spans with recorded messages (~3 KB of JSON each), as an instrumentation with content recording on
    writes them; durations repeat every 30 spans, so a top-N meets ties."""
    rng = random.Random(11)
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=RESOURCE)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("tracekit.tests.content")
    start = BASE_NS + 10_000_000_000_000
    for index in range(CONTENT_SPANS):
        text = " ".join(rng.choice(("weather", "Lisbon", "forecast", "rain", "tomorrow", "sunny")) for _ in range(400))
        messages = json.dumps([{"role": "user", "parts": [{"type": "text", "content": text}]}])
        answer = json.dumps([{"role": "assistant", "parts": [{"type": "text", "content": text[::-1]}],
                              "finish_reason": "stop"}])
        span = tracer.start_span(
            "chat gpt-4o", kind=SpanKind.CLIENT, start_time=start + index * 1_000_000_000,
            attributes={semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_SYSTEM: "openai",
                        semconv.GEN_AI_REQUEST_MODEL: "gpt-4o", "gen_ai.input.messages": messages,
                        "gen_ai.output.messages": answer, semconv.GEN_AI_USAGE_INPUT_TOKENS: index})
        span.end(end_time=start + index * 1_000_000_000 + (index % 30 + 1) * 7_000_000)
    return list(exporter.get_finished_spans())


@pytest.fixture(scope="module")
def content_reader(tmp_path_factory):
    spans = make_workload(runs=10, seed=5).spans + server_span_workload() + _content_spans()
    with collector_store(tmp_path_factory.mktemp("late-rows"), spans) as collector:
        yield collector.reader()


QUERIES = [
    ("dependencies | top 20 by timestamp desc", 20),
    ("dependencies | take 20", 20),
    ("dependencies | where name has 'chat' | top 5 by duration desc", 5),  # ties: durations repeat
    ("dependencies | sort by duration asc | take 7", 7),
    ('dependencies | where customDimensions["gen_ai.operation.name"] == "chat" | top 4 by duration desc', 4),
    ("dependencies | where success | sort by tostring(customDimensions) desc, duration asc | take 6", 6),
    ("AppDependencies | top 5 by DurationMs desc", 5),
    ("requests | top 3 by duration asc", 3),
    ("AppRequests | take 2", 2),
]


def _key(row: dict) -> str:
    return json.dumps(row, sort_keys=True, default=str)


@pytest.mark.parametrize("text,limit", QUERIES)
def test_late_rows_give_the_plain_views_answer(content_reader, text, limit):
    reader = content_reader
    compiled = compile_kql(reader, text)
    assert compiled.fallback_sql is not None and "__tk_rowid" in compiled.sql, text  # the late path applied
    fast = reader.sql(compiled.sql)
    plain = reader.sql(compiled.fallback_sql)
    assert fast.column_names == plain.column_names, text
    table = text.split(" | ")[0]
    assert fast.column_names == reader.sql(f'SELECT * FROM "{table}" LIMIT 0').column_names
    fast_rows, plain_rows = fast.to_pylist(), plain.to_pylist()
    assert len(fast_rows) == len(plain_rows) == min(limit, reader.sql(f'SELECT * FROM "{table}"').num_rows), text
    # Every row is a whole, exact row of the view; no row twice.
    everything = {_key(row) for row in reader.sql(f'SELECT * FROM "{table}"').to_pylist()}
    assert all(_key(row) in everything for row in fast_rows), text
    assert len({_key(row) for row in fast_rows}) == len(fast_rows)
    if "top" in text or "sort" in text:
        # The same rows a plain top-N may give: the same sort keys in the same order (rows tied on them may be any
        # of the tied rows, in any order, in both).
        compared = [column for column in ("duration", "DurationMs", "timestamp") if f"by {column}" in text]
        if compared:
            assert [row[compared[0]] for row in fast_rows] == [row[compared[0]] for row in plain_rows], text
        keyed = {row[compared[0]] for row in fast_rows} if compared else set()
        unique_keys = not compared or len(keyed) == len(fast_rows)
        if unique_keys and "tostring" not in text:
            assert fast_rows == plain_rows, text


def test_ties_pick_rows_a_plain_top_n_could_pick(content_reader):
    """At the cut, a top-N may keep any of the rows tied on its key: the late rows keep the first rows' keys and
    tied rows only."""
    text = "dependencies | where name has 'chat' | top 5 by duration desc"
    rows = run_kql(content_reader, text).to_pylist()
    every = content_reader.sql("SELECT duration FROM dependencies WHERE name LIKE 'chat%' "
                               "ORDER BY duration DESC").to_pylist()
    assert [row["duration"] for row in rows] == [row["duration"] for row in every[:5]]


def _plan_rows(reader, sql: str) -> tuple[int, int]:
    """(most rows any operator computing customDimensions saw, rows the scans of spans read) in DuckDB's EXPLAIN
    ANALYZE of `sql`."""
    plan = json.loads(reader.sql("EXPLAIN (ANALYZE, FORMAT json) " + sql).to_pylist()[0]["explain_value"])
    stack, dimension_rows, span_scans = list(plan.get("operator", [plan])), 0, []
    while stack:
        node = stack.pop()
        stack.extend(node.get("children", []))
        info = node.get("extra_info") or {}
        if "customDimensions" in (info.get("Projections") or []) and node.get("name", "").strip() == "PROJECTION":
            dimension_rows = max(dimension_rows, node.get("intermediate_rows", 0))
        if "spans" in str(info.get("Table", "")) and "attributes" in str(info.get("Projections", "")):
            span_scans.append(node.get("intermediate_rows", 0))
    return dimension_rows, max(span_scans, default=0)


def test_expensive_columns_are_computed_for_the_returned_rows_only(content_reader):
    """The plan, not the clock: with the late path customDimensions is built (and span attributes read) for the N
    rows returned; the plain view builds it for every dependency before the top-N keeps N."""
    reader = content_reader
    dependencies = reader.sql("SELECT count(*) AS n FROM dependencies").to_pylist()[0]["n"]
    assert dependencies > 100
    for text, limit in [("dependencies | top 20 by timestamp desc", 20),
                        ("dependencies | where name has 'chat' | top 5 by duration desc", 5)]:
        compiled = compile_kql(reader, text)
        late_dimensions, late_scanned = _plan_rows(reader, compiled.sql)
        plain_dimensions, plain_scanned = _plan_rows(reader, compiled.fallback_sql)
        assert 0 < late_dimensions <= limit, text
        if "name" not in text:  # `name` is mapped from the attributes: choosing by it reads them for every row
            assert 0 < late_scanned <= limit, text
        assert plain_dimensions >= dependencies - 1 and plain_scanned >= dependencies, text


def test_time_range_and_other_shapes(content_reader):
    reader = content_reader
    now = dt.datetime.fromtimestamp((BASE_NS + 10_000_000_000_000 + 50 * 1_000_000_000) / 1e9, dt.timezone.utc)
    since = dt.timedelta(seconds=30)
    text = "dependencies | top 100 by timestamp asc"
    compiled = compile_kql(reader, text, since=since, now=now)
    assert "__tk_rowid" in compiled.sql
    fast = reader.sql(compiled.sql, compiled.params).to_pylist()
    plain = reader.sql(compiled.fallback_sql, compiled.params).to_pylist()
    assert fast == plain and 0 < len(fast) < 100  # the range cut it: only spans of the last 30 s
    # Shaped, extended or re-sorted-then-filtered pipelines keep their own paths.
    for other in ("dependencies | extend x = duration * 2 | top 3 by x",
                  "dependencies | top 3 by duration | project name",
                  "dependencies | sort by duration desc | where success | take 3",
                  "dependencies | take 5 | where success"):
        assert "__tk_rowid" not in compile_kql(reader, other).sql, other

