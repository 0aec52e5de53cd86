"""A trace opened from the list reads its spans bounded by what the row knows (`KnownStart`): the same spans as the
unbounded query, on a store of interleaved traces over several row groups with spans stored after the page was read
(parents that start before everything the row saw, re-sent spans, spans of traces still arriving)."""

from __future__ import annotations

from tracekit.store.database import open_store, store_cursor
from tracekit.store.reader import LocalReader
from tracekit.tui.data import KnownStart, latest_seq, trace_page, trace_spans
from tracekit.tui.filters import parse_filter

BASE_NS = 1_768_471_200_000_000_000

# Trace t's spans start anywhere in a 40 s window from t seconds: 600 traces overlap in time across 140,000 spans
# (more than one row group, so the bound does skip some). Span ids are unique per (trace, i).
_SPANS = """
INSERT INTO spans BY NAME
SELECT $seq AS ingest_seq, printf('%032x', t) AS trace_id, printf('%016x', t * 1000000 + i) AS span_id,
       CASE WHEN i = 0 THEN NULL ELSE printf('%016x', t * 1000000) END AS parent_span_id, 1 AS flags,
       CASE WHEN i % 7 = 3 THEN 'execute_tool search' ELSE 'chat gpt-4o' END AS name, 'INTERNAL' AS kind,
       $base + t * 1000000000 + (hash(t, i) % 40000) * 1000000 AS start_time_ns,
       $base + t * 1000000000 + (hash(t, i) % 40000) * 1000000 + 5000000 AS end_time_ns, 5000000 AS duration_ns,
       make_timestamp(($base + t * 1000000000) // 1000) AS start_time,
       make_timestamp(($base + t * 1000000000) // 1000) AS end_time, 'UNSET' AS status_code, 1 AS resource_id,
       CASE WHEN i % 7 = 3 THEN 'search' END AS tool_name, '{}' AS attributes, 0 AS event_count, 0 AS link_count,
       0 AS dropped_attributes_count, 0 AS dropped_events_count, 0 AS dropped_links_count
FROM range($first, $last) a(t), range($per) b(i)
"""


def _late(con, seq: int, trace: int, span: int, start_ms: int, name: str) -> None:
    """One span stored after the page was read (a new one, or a span id sent again)."""
    start = BASE_NS + start_ms * 1_000_000
    con.execute("""
        INSERT INTO spans BY NAME SELECT ? AS ingest_seq, printf('%032x', ?::BIGINT) AS trace_id,
               printf('%016x', ?::BIGINT) AS span_id, NULL AS parent_span_id, 1 AS flags, ? AS name,
               'INTERNAL' AS kind, ? AS start_time_ns, ? + 1000 AS end_time_ns, 1000 AS duration_ns,
               make_timestamp(? // 1000) AS start_time, make_timestamp(? // 1000) AS end_time,
               'UNSET' AS status_code, 1 AS resource_id, '{}' AS attributes, 0 AS event_count, 0 AS link_count,
               0 AS dropped_attributes_count, 0 AS dropped_events_count, 0 AS dropped_links_count
    """, [seq, trace, span, name, start, start, start, start])


def test_bounded_span_query_reads_the_same_spans_as_the_unbounded_one(tmp_path):
    con = open_store(tmp_path / "traces.duckdb")
    con.execute("""INSERT INTO resources VALUES (1, 'app', NULL, NULL, NULL, NULL, '{"service.name": "app"}', now())""")
    for seq, first in enumerate(range(0, 600, 100), start=1):
        con.execute(_SPANS, {"seq": seq, "base": BASE_NS, "first": first, "last": first + 100, "per": 233})
    con.execute("CHECKPOINT")
    reader = LocalReader(store_cursor(con), "traces.duckdb")
    seq = latest_seq(reader)
    pages = {"all": trace_page(reader, with_loops=False, limit=50),
             "filtered": trace_page(reader, parse_filter("tool:search"), with_loops=False, limit=50)}
    newest = int(pages["all"][0].trace_id, 16)
    # Stored after the pages were read: a parent of the newest trace starting long before all of its spans, a span of
    # it sent again under another name, a span starting after everything, and an early span of an older trace.
    _late(con, seq + 1, newest, newest * 1_000_000 - 1, 0, "late parent")
    _late(con, seq + 1, newest, newest * 1_000_000 + 5, newest * 1000 + 1, "sent again")
    _late(con, seq + 2, newest, newest * 1_000_000 + 999, 10**7, "late child")
    older = int(pages["all"][-1].trace_id, 16)
    _late(con, seq + 2, older, older * 1_000_000 - 1, 1, "early straggler")

    early = 0
    for name, page in pages.items():
        assert len(page) == 50, name
        for row in page:
            bounded = trace_spans(reader, row.trace_id, known=KnownStart(row.earliest_ns, seq))
            assert bounded == trace_spans(reader, row.trace_id), (name, row.trace_id)
            early += sum(span.start_ns < row.earliest_ns for span in bounded)
    assert early >= 2  # the late spans that start before the row's earliest span were read through the sequence
    names = {span.name for span in trace_spans(reader, f"{newest:032x}", known=KnownStart(
        next(r.earliest_ns for r in pages["all"] if int(r.trace_id, 16) == newest), seq))}
    assert {"late parent", "sent again", "late child"} <= names
    con.close()
