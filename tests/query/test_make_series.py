"""`make-series` (tracekit's extension to duckdb-kql), checked against series computed here from the SDK spans."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict

import pytest

from tests.query.spanfactory import collector_store
from tests.query.workload import BASE_NS, make_workload
from tracekit.errors import QueryError
from tracekit.query.kql import run_kql, workbook_time_range

MINUTE_NS = 60_000_000_000


@pytest.fixture(scope="module")
def workload():
    return make_workload(runs=14, seed=21)


@pytest.fixture(scope="module")
def reader(workload, tmp_path_factory):
    with collector_store(tmp_path_factory.mktemp("series"), workload.spans, workload.logs) as collector:
        yield collector.reader()


def _op(span) -> str | None:
    return span.attributes.get("gen_ai.operation.name")


def _iso(ns: int) -> str:
    moment = dt.datetime.fromtimestamp(ns // 1_000_000_000, dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ns % 1_000_000_000 // 1000:06d}0Z"


def _series(rows: list[dict], key: str) -> dict:
    return {row[key]: row for row in rows}


# The Agents workbook's AgentRunsQuery (azure-monitor.md §4), verbatim, placeholders included.
AGENT_RUNS_QUERY = ('dependencies | where customDimensions["gen_ai.operation.name"] == "invoke_agent"\n'
                    '| extend AgentName = tostring(customDimensions["gen_ai.agent.name"])\n'
                    '| make-series Invocations=sum(itemCount) default=0 on timestamp from {TimeRange:start} '
                    'to {TimeRange:end} step {TimeRange:grain} by AgentName')


def test_the_agents_workbook_query_runs_unmodified(reader, workload):
    end_ns = BASE_NS + 40 * MINUTE_NS
    now = dt.datetime.fromtimestamp(end_ns / 1e9, dt.timezone.utc)
    since = dt.timedelta(minutes=45)  # 45 one-minute bins (the grain that gives at most ~100 bins)
    rows = run_kql(reader, AGENT_RUNS_QUERY, since=since, now=now).to_pylist()

    start_ns = end_ns - 45 * MINUTE_NS
    expected: dict[str, list[int]] = defaultdict(lambda: [0] * 45)
    for span in workload.spans:
        if _op(span) == "invoke_agent" and start_ns <= span.start_time < end_ns:
            expected[span.attributes["gen_ai.agent.name"]][(span.start_time - start_ns) // MINUTE_NS] += 1
    assert [row["AgentName"] for row in rows] and list(rows[0]) == ["AgentName", "Invocations", "timestamp"]
    got = {row["AgentName"]: json.loads(row["Invocations"]) for row in rows}
    assert got == dict(expected)
    axis = [_iso(start_ns + i * MINUTE_NS) for i in range(45)]
    assert all(json.loads(row["timestamp"]) == axis for row in rows)


def test_without_from_and_to_the_series_spans_the_bins_with_data(reader, workload):
    # A numeric axis, bins aligned on 0, a default for the average only, an unnamed count.
    rows = run_kql(reader, 'dependencies | where customDimensions["gen_ai.operation.name"] == "chat"\n'
                           '| extend model = tostring(customDimensions["gen_ai.request.model"])\n'
                           '| make-series count(), mean = avg(duration) default = -1 on duration step 100 by model'
                   ).to_pylist()
    chats = [span for span in workload.spans if _op(span) == "chat"]
    durations = {id(span): float((span.end_time - span.start_time + 500_000) // 1_000_000) for span in chats}
    bins = [math.floor(value / 100) for value in durations.values()]
    first, last = min(bins), max(bins)
    assert list(rows[0]) == ["model", "count_", "mean", "duration"]
    for model, row in _series(rows, "model").items():
        counts, sums = [0] * (last - first + 1), [0.0] * (last - first + 1)
        for span in chats:
            if span.attributes["gen_ai.request.model"] == model:
                index = math.floor(durations[id(span)] / 100) - first
                counts[index] += 1
                sums[index] += durations[id(span)]
        assert json.loads(row["count_"]) == counts
        assert json.loads(row["mean"]) == pytest.approx([s / c if c else -1 for s, c in zip(sums, counts)])
        assert json.loads(row["duration"]) == [100 * (first + i) for i in range(last - first + 1)]
    assert set(_series(rows, "model")) == {span.attributes["gen_ai.request.model"] for span in chats}


def test_operators_after_make_series_read_its_output(reader, workload):
    start = dt.datetime.fromtimestamp(BASE_NS / 1e9, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    rows = run_kql(reader, f'dependencies | where customDimensions["gen_ai.operation.name"] == "execute_tool"\n'
                           f'| make-series calls = count() on timestamp from datetime({start}) step 10m '
                           f'by tool = tostring(customDimensions["gen_ai.tool.name"])\n'
                           f'| mv-expand calls to typeof(long)\n'
                           f'| summarize total = sum(calls), bins = count() by tool | order by tool asc').to_pylist()
    tools = [span for span in workload.spans if _op(span) == "execute_tool"]
    last_bin = max((span.start_time - BASE_NS) // (10 * MINUTE_NS) for span in tools)
    expected = defaultdict(int)
    for span in tools:
        expected[span.attributes["gen_ai.tool.name"]] += 1
    assert rows == [{"tool": tool, "total": total, "bins": last_bin + 1} for tool, total in sorted(expected.items())]


def test_no_rows_no_series_and_the_time_range_applies(reader, workload):
    assert run_kql(reader, 'dependencies | where name == "no such span" '
                           '| make-series count() on timestamp step 1h').num_rows == 0
    now = dt.datetime.fromtimestamp((BASE_NS + 10 * MINUTE_NS) / 1e9, dt.timezone.utc)
    rows = run_kql(reader, "dependencies | make-series n = count() on timestamp step 1m",
                   since=dt.timedelta(minutes=5), now=now).to_pylist()
    cutoff = BASE_NS + 5 * MINUTE_NS
    kept = [span for span in workload.spans if span.kind.name != "SERVER" and span.start_time >= cutoff]
    assert sum(json.loads(rows[0]["n"])) == len(kept) > 0


@pytest.mark.parametrize("text, line, column, reason", [
    ("dependencies\n| make-series count() on timestamp", 2, 23, "needs a `step`"),
    ("dependencies\n| make-series kind=nonempty count() on timestamp step 1h", 2, 15, "kind"),
    ("dependencies | make-series count() on timestamp in range(ago(1d), now(), 1h)", 1, 49, "in range"),
    ("dependencies\n| make-series count() on timestamp from ago(1d) to now() step 1h by type\n| wherex", 3, 3,
     "not a query operator"),
    ("dependencies\n| make-series n = count() on timestamp step 1h by type\n| where n == ", 3, 14, "syntax error"),
    ("let s = dependencies | make-series count() on timestamp step 1h;\ns", 1, 24, "not supported"),
])
def test_errors_point_at_the_users_text(reader, text, line, column, reason):
    with pytest.raises(QueryError) as caught:
        run_kql(reader, text)
    assert (caught.value.line, caught.value.column) == (line, column)
    assert reason in str(caught.value)


def test_workbook_placeholders_pick_a_grain_for_the_range():
    text = "T | make-series count() on timestamp from {TimeRange:start} to {TimeRange:end} step {TimeRange:grain}"
    assert "step 15m" in workbook_time_range(text, dt.timedelta(hours=24))
    assert "step 1m" in workbook_time_range(text, dt.timedelta(minutes=30))
    assert "step 3h" in workbook_time_range(text, dt.timedelta(days=7))
    now = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    fixed = workbook_time_range(text, dt.timedelta(hours=1), now)
    assert "from datetime(2026-01-02T02:04:05) to datetime(2026-01-02T03:04:05) step 1m" in fixed
    assert workbook_time_range("T | take 1", None) == "T | take 1"
