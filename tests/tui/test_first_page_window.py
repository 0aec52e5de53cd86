"""The trace list's first page is found in a window of the newest spans (`tui/data.py`, `_newest_window`): it must
list the same traces, in the same order, as grouping every span by trace, also when traces in the window started
long before it (a long-running agent run whose newest spans are among the newest of all)."""

from __future__ import annotations

from tracekit.store.database import open_store, store_cursor
from tracekit.store.reader import LocalReader
from tracekit.tui import data
from tracekit.tui.data import trace_page

BASE_NS = 1_768_471_200_000_000_000

# Trace t: `per` spans, 10 ms apart from t seconds on; the traces in `early` also have one span a second before all.
_SPANS = """
INSERT INTO spans BY NAME
SELECT 1 AS ingest_seq, printf('%032x', hash(t) % 1000000007) AS trace_id, printf('%016x', t * 1000 + i) AS span_id,
       CASE WHEN i = 0 THEN NULL ELSE printf('%016x', t * 1000) END AS parent_span_id, 1 AS flags,
       'chat gpt-4o' AS name, 'INTERNAL' AS kind,
       $base + CASE WHEN i = $per AND list_contains($early, t) THEN -1000000000 ELSE t * 1000000000 + i * 10000000 END
           AS start_time_ns,
       $base + t * 1000000000 + i * 10000000 + 5000000 AS end_time_ns, 5000000 AS duration_ns,
       make_timestamp(($base + t * 1000000000) // 1000) AS start_time,
       make_timestamp(($base + t * 1000000000) // 1000) AS end_time, 'UNSET' AS status_code, 1 AS resource_id,
       '{}' AS attributes, 0 AS event_count, 0 AS link_count, 0 AS dropped_attributes_count,
       0 AS dropped_events_count, 0 AS dropped_links_count
FROM range($traces) a(t), range($per + 1) b(i)
WHERE i < $per OR list_contains($early, t)
"""


def _store(tmp_path, traces: int, per: int, early: list[int]) -> tuple[object, LocalReader]:
    con = open_store(tmp_path / "traces.duckdb")
    con.execute("""INSERT INTO resources VALUES (1, 'app', NULL, NULL, NULL, NULL, '{"service.name": "app"}', now())""")
    con.execute(_SPANS, {"base": BASE_NS, "traces": traces, "per": per, "early": early})
    con.execute("CHECKPOINT")
    return con, LocalReader(store_cursor(con), "traces.duckdb")


_GROUPING_ALL = "FROM spans GROUP BY trace_id ORDER BY first_ns DESC"  # the page query without the window


def _grouped(reader: LocalReader, limit: int) -> list[tuple[str, int]]:
    """The page as grouping every span gives it: (trace id, first span start), newest first."""
    return [tuple(row) for row in reader.rows(
        "SELECT trace_id, min(start_time_ns) AS first_ns FROM spans GROUP BY trace_id "
        "ORDER BY first_ns DESC, trace_id DESC LIMIT ?", [limit]).rows]


class _Queries:
    """The SQL texts a reader ran (to tell which way the page was found)."""

    def __init__(self, reader: LocalReader) -> None:
        self.texts: list[str] = []
        self._rows = reader.rows
        reader.rows = self.rows  # type: ignore[method-assign]

    def rows(self, query, params=None):
        self.texts.append(query)
        return self._rows(query, params)


def test_traces_started_before_the_window_are_not_listed_by_their_newest_spans(tmp_path):
    # 200 traces of 8 spans; every other one of the newest 20 also has a span at the very beginning.
    con, reader = _store(tmp_path, traces=200, per=8, early=list(range(181, 200, 2)))
    queries = _Queries(reader)
    for limit in (1, 3, 7):
        expected = _grouped(reader, limit)
        queries.texts.clear()
        page = trace_page(reader, with_loops=False, limit=limit)
        assert [(t.trace_id, t.start_ns) for t in page] == expected
        assert any(data._WINDOW_PAGE in text for text in queries.texts)  # found in the window, not by grouping all
        assert not any(_GROUPING_ALL in " ".join(text.split()) for text in queries.texts)
        assert all(t.earliest_ns == t.start_ns and t.span_count == 8 for t in page)
    # The long-running ones come last, by their first span, in a page of every trace (the whole store grouped).
    everything = trace_page(reader, with_loops=False, limit=200)
    assert [(t.trace_id, t.start_ns) for t in everything] == _grouped(reader, 200)
    assert {t.span_count for t in everything[-10:]} == {9}
    con.close()


def test_a_window_of_traces_that_all_started_earlier_falls_back_to_grouping(tmp_path):
    con, reader = _store(tmp_path, traces=60, per=8, early=list(range(10, 60)))
    queries = _Queries(reader)
    page = trace_page(reader, with_loops=False, limit=5)
    assert any(data._WINDOW_PAGE in text for text in queries.texts)
    assert any(_GROUPING_ALL in " ".join(text.split()) for text in queries.texts)
    assert [(t.trace_id, t.start_ns) for t in page] == _grouped(reader, 5)  # the oldest ten, then the early ones
    assert [t.span_count for t in page] == [8] * 5
    con.close()
