"""`tracekit query` end to end: against a store file and through a running collector's read API."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter

import pytest

from tests.query.spanfactory import collector_store
from tracekit.cli import main
from tracekit.commands.query import _write_rich_table, write_table
from tracekit.store.reader import LocalReader
from tracekit.store.rows import Rows
from tests.query.workload import make_workload, server_span_workload


@pytest.fixture(scope="module")
def workload():
    return make_workload(runs=6, seed=5)


@pytest.fixture(scope="module")
def store_file(workload, tmp_path_factory):
    """A store file written by a real collector, which is stopped afterwards (queries then open the file)."""
    directory = tmp_path_factory.mktemp("cli")
    spans = workload.spans + server_span_workload()
    with collector_store(directory, spans, workload.logs):
        pass
    return directory / "traces.duckdb"


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["query", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_kql_table_output(store_file, capsys, workload):
    code, out, err = _run(capsys, "--db", str(store_file),
                          'dependencies | summarize n = count() by op = tostring(customDimensions["gen_ai.operation.name"])'
                          " | order by op asc")
    assert code == 0, err
    counts = Counter(s.attributes.get("gen_ai.operation.name") for s in workload.spans)
    for op, n in counts.items():
        assert any(op in line and f" {n} " in line for line in out.splitlines()), (op, n, out)


def test_json_output_has_typed_values_and_parsed_dimensions(store_file, capsys, workload):
    chat = next(s for s in workload.spans if s.attributes.get("gen_ai.operation.name") == "chat")
    trace_id = format(chat.context.trace_id, "032x")
    code, out, err = _run(capsys, "--db", str(store_file), "--format", "json",
                          f'AppDependencies | where OperationId == "{trace_id}" and Name == "{chat.name}" '
                          "| project Id, DurationMs, Success, Properties, TimeGenerated")
    assert code == 0, err
    rows = json.loads(out)
    row = next(r for r in rows if r["Id"] == format(chat.context.span_id, "016x"))
    assert row["Success"] is True
    assert row["DurationMs"] == float((chat.end_time - chat.start_time + 500_000) // 1_000_000)
    assert row["Properties"]["gen_ai.request.model"] == chat.attributes["gen_ai.request.model"]
    assert row["TimeGenerated"].startswith("20")


def test_csv_output_and_parameters(store_file, capsys, workload):
    code, out, err = _run(capsys, "--db", str(store_file), "--format", "csv", "--param", "tool=search",
                          "declare query_parameters(tool:string);\n"
                          'dependencies | where customDimensions["gen_ai.tool.name"] == tool | project id')
    assert code == 0, err
    ids = {row["id"] for row in csv.DictReader(io.StringIO(out))}
    assert ids == {format(s.context.span_id, "016x") for s in workload.spans
                   if s.attributes.get("gen_ai.tool.name") == "search"}


def test_sql_mode(store_file, capsys, workload):
    code, out, err = _run(capsys, "--db", str(store_file), "--sql", "--format", "json",
                          "select name, count(*) as n from spans group by 1 order by 1")
    assert code == 0, err
    assert {r["name"]: r["n"] for r in json.loads(out)} == dict(
        Counter(s.name for s in workload.spans + server_span_workload()))


@pytest.mark.parametrize("sql, reason", [
    ("insert into spans select * from spans", "only read-only queries"),
    ("delete from spans", "only read-only queries"),
    ("copy spans to '/tmp/tracekit-leak.csv'", "only read-only queries"),
    ("attach '/tmp/other.duckdb' as other", "only read-only queries"),
    ("select * from read_csv('/etc/passwd')", "read_csv() is not available"),
    ("select 1; select 2", "exactly one SQL statement"),
])
def test_sql_mode_refuses_writes_and_outside_access(store_file, capsys, sql, reason):
    code, out, err = _run(capsys, "--db", str(store_file), "--sql", sql)
    assert code != 0
    assert reason in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_bad_kql_is_one_line_with_position(store_file, capsys):
    code, out, err = _run(capsys, "--db", str(store_file), "dependencies\n| summarize count( by name")
    assert code == 2
    assert err.startswith("tracekit: error: line 2, column ")
    assert "Traceback" not in err and err.count("\n") == 1


def test_bad_params_are_clear(store_file, capsys):
    code, _, err = _run(capsys, "--db", str(store_file), "--param", "n=abc",
                        "declare query_parameters(n:long); dependencies | take n")
    assert code == 2 and "not a valid long" in err
    code, _, err = _run(capsys, "--db", str(store_file), "--param", "x=1",
                        "declare query_parameters(n:long); dependencies | take n")
    assert code == 2 and "declares no such parameter" in err


def test_span_content_is_printed_literally(tmp_path, capsys):
    """Rich markup inside span names must not be interpreted."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.get_tracer("t").start_span("[bold red]boom[/] \x1b[31m").end()
    with collector_store(tmp_path, exporter.get_finished_spans()):
        pass
    code, out, err = _run(capsys, "--db", str(tmp_path / "traces.duckdb"), "dependencies | project name")
    assert code == 0, err
    assert "[bold red]boom[/]" in out


def test_through_a_running_collector(tmp_path, capsys, workload):
    with collector_store(tmp_path, workload.spans, workload.logs) as collector:
        code, out, err = _run(capsys, "--db", str(tmp_path / "traces.duckdb"), "--format", "json",
                              "customEvents | summarize n = count() by evaluator = "
                              'tostring(customDimensions["gen_ai.evaluation.name"])')
        assert code == 0, err
        assert collector is not None
    expected = Counter(log.log_record.attributes["gen_ai.evaluation.name"] for log in workload.logs)
    assert {row["evaluator"]: row["n"] for row in json.loads(out)} == dict(expected)


SERIES = ('dependencies | where customDimensions["gen_ai.operation.name"] == "invoke_agent" '
          '| make-series runs = count() on timestamp step 1h by agent = tostring(customDimensions["gen_ai.agent.name"]) '
          '| extend bag = bag_pack("agent", agent)')


def _check_series_json(out: str, workload) -> None:
    rows = json.loads(out)
    expected = Counter(s.attributes["gen_ai.agent.name"] for s in workload.spans
                       if s.attributes.get("gen_ai.operation.name") == "invoke_agent")
    # Dynamic values of any name (make-series arrays, a bag) are JSON values, not JSON text in a string.
    assert {row["agent"]: sum(row["runs"]) for row in rows} == dict(expected)
    assert all(isinstance(row["timestamp"], list) and row["bag"] == {"agent": row["agent"]} for row in rows)


def test_json_output_nests_every_dynamic_column(store_file, capsys, workload):
    code, out, err = _run(capsys, "--db", str(store_file), "--format", "json", SERIES)
    assert code == 0, err
    _check_series_json(out, workload)


def test_json_output_nests_dynamic_columns_through_the_read_api(tmp_path, capsys, workload):
    with collector_store(tmp_path, workload.spans) as collector:
        code, out, err = _run(capsys, "--db", str(collector.db_path), "--format", "json", SERIES)
    assert code == 0, err
    _check_series_json(out, workload)


def test_help_explains(capsys):
    with pytest.raises(SystemExit):
        main(["query", "--help"])
    out = capsys.readouterr().out
    for word in ("AppDependencies", "--sql", "--param", "--since", "read-only"):
        assert word in out


@pytest.mark.parametrize("header, body", [
    (["tool", "calls"], [["search", "265"], ["", "0"], ["fetch_page", "12"]]),
    (["x", ""], []),
    (["a", "b"], [["line one\nline two", "x"]]),   # two lines in a cell
    (["name"], [["caf\u00e9 \u2615 \u4e2d\u6587"]]),     # wide characters
    (["w", "v"], [["x" * 70, "y" * 20]]),          # wider than the console: Rich folds the cells
])
def test_tables_are_drawn_as_rich_draws_them(header, body, monkeypatch):
    """Simple tables are drawn without importing Rich; what is written is what Rich writes, piped."""
    monkeypatch.setenv("COLUMNS", "80")
    for name in ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    ours, theirs = io.StringIO(), io.StringIO()
    write_table(Rows(header, frozenset(), [tuple(row) for row in body]), "table", ours)
    _write_rich_table(header, body, f"{len(body)} row{'s' if len(body) != 1 else ''}", theirs)
    assert ours.getvalue() == theirs.getvalue()


def test_rows_are_the_values_arrow_gives(store_file):
    """LocalReader.rows() fetches without Arrow when the types allow; the values are those of sql() either way."""
    reader = LocalReader.open_file(store_file)
    try:
        for sql in ["SELECT * FROM spans ORDER BY span_id LIMIT 50",
                    "SELECT operation_name, sum(input_tokens) AS t, avg(duration_ns) AS d, list(span_id) AS ids, "
                    "max(start_time) AS last, any_value(attributes) AS a FROM spans GROUP BY 1 ORDER BY 1",
                    "SELECT 1.5::DECIMAL(10, 2) AS d, 0.1::FLOAT AS f, 'x'::BLOB AS b, DATE '2026-01-02' AS day, "
                    "NULL AS n, {'k': 1} AS s, MAP {'a': 1} AS m, INTERVAL 3 HOUR AS i"]:
            assert reader.rows(sql) == Rows.from_arrow(reader.sql(sql)), sql
    finally:
        reader.close()
