"""KQL over the views, with every expected answer computed here from the SDK spans themselves."""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict

import pytest

from tests.query.spanfactory import collector_store
from tracekit import dashboards
from tracekit.errors import QueryError
from tracekit.query.kql import compile_kql, expand_percentiles, run_kql, translate
from tests.query.workload import BASE_NS, make_workload, server_span_workload, token_edge_workload


@pytest.fixture(scope="module")
def workload():
    return make_workload(runs=30, seed=3)


@pytest.fixture(scope="module")
def reader(workload, tmp_path_factory):
    """The store of a real collector that received the workload over OTLP/gRPC."""
    with collector_store(tmp_path_factory.mktemp("kql"), workload.spans + server_span_workload(),
                         workload.logs) as collector:
        yield collector.reader()


def _ms(span) -> float:
    return float((span.end_time - span.start_time + 500_000) // 1_000_000)


def _nearest_rank(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(percent / 100 * len(ordered)) - 1)]


def _op(span) -> str | None:
    return span.attributes.get("gen_ai.operation.name")


def test_the_issue_tool_query(reader, workload):
    table = run_kql(reader, """dependencies
      | where customDimensions["gen_ai.operation.name"] == "execute_tool"
      | summarize calls = count(), p95 = percentile(duration, 95), errors = countif(success == false)
          by tool = tostring(customDimensions["gen_ai.tool.name"])
      | order by calls desc""")
    durations: dict[str, list[float]] = defaultdict(list)
    errors: dict[str, int] = defaultdict(int)
    for span in workload.spans:
        if _op(span) == "execute_tool":
            tool = span.attributes["gen_ai.tool.name"]
            durations[tool].append(_ms(span))
            errors[tool] += not span.status.is_ok
    got = {row["tool"]: row for row in table.to_pylist()}
    assert set(got) == set(durations)
    for tool, values in durations.items():
        assert got[tool]["calls"] == len(values)
        assert got[tool]["errors"] == errors[tool]
        assert got[tool]["p95"] == _nearest_rank(values, 95)
    calls = [row["calls"] for row in table.to_pylist()]
    assert calls == sorted(calls, reverse=True)


def test_tokens_by_model(reader, workload):
    table = run_kql(reader, """dependencies | where customDimensions["gen_ai.operation.name"] == "chat"
        | summarize calls = count(), input = sum(toint(customDimensions["gen_ai.usage.input_tokens"])),
                    output = sum(toint(customDimensions["gen_ai.usage.output_tokens"]))
          by model = tostring(customDimensions["gen_ai.request.model"])""")
    expected: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for span in workload.spans:
        if _op(span) == "chat":
            entry = expected[span.attributes["gen_ai.request.model"]]
            entry[0] += 1
            entry[1] += span.attributes["gen_ai.usage.input_tokens"]
            entry[2] += span.attributes["gen_ai.usage.output_tokens"]
    got = {row["model"]: [row["calls"], int(row["input"]), int(row["output"])] for row in table.to_pylist()}
    assert got == dict(expected)


def test_percentiles_extension(reader, workload):
    chats = [_ms(s) for s in workload.spans if _op(s) == "chat"]
    rows = run_kql(reader, 'dependencies | where customDimensions["gen_ai.operation.name"] == "chat" '
                           "| summarize percentiles(duration, 50, 99.5)").to_pylist()
    assert rows == [{"percentile_duration_50": _nearest_rank(chats, 50),
                     "percentile_duration_99_5": _nearest_rank(chats, 99.5)}]
    rows = run_kql(reader, 'dependencies | where customDimensions["gen_ai.operation.name"] == "chat" '
                           "| summarize (p50, p95) = percentiles(duration, 50, 95), n = count()").to_pylist()
    assert rows == [{"p50": _nearest_rank(chats, 50), "p95": _nearest_rank(chats, 95), "n": len(chats)}]
    # Inside a string it is left alone.
    assert expand_percentiles('print x = "percentiles(a, 1, 2)"') == 'print x = "percentiles(a, 1, 2)"'


def test_query_parameters_are_bound(reader, workload):
    text = ("declare query_parameters(model:string, minimum:long = 0);\n"
            "dependencies | where customDimensions[\"gen_ai.request.model\"] == model and duration >= minimum "
            "| count")
    expected = sum(1 for s in workload.spans if s.attributes.get("gen_ai.request.model") == "gpt-4o"
                   and _ms(s) >= 300)
    assert run_kql(reader, text, {"model": "gpt-4o", "minimum": 300}).to_pylist() == [{"Count": expected}]
    # A value is data, never SQL.
    assert run_kql(reader, text, {"model": "x' OR 1=1 --"}).to_pylist() == [{"Count": 0}]
    with pytest.raises(QueryError, match="no value for query parameter model"):
        run_kql(reader, text)


def test_time_range_applies_to_every_table(reader, workload):
    now = dt.datetime.fromtimestamp(BASE_NS / 1e9, dt.timezone.utc) + dt.timedelta(minutes=10)
    cutoff_ns = BASE_NS - 60_000_000_000 * 0 + 10 * 60 * 1_000_000_000 - 5 * 60 * 1_000_000_000
    since = dt.timedelta(minutes=5)
    expected_deps = sum(1 for s in workload.spans if s.kind.name != "SERVER" and s.start_time >= cutoff_ns)
    expected_events = sum(1 for log in workload.logs if log.log_record.timestamp >= cutoff_ns)
    got = run_kql(reader, "dependencies | count", since=since, now=now).to_pylist()[0]["Count"]
    assert got == expected_deps and 0 < got < len(workload.spans)
    union = run_kql(reader, "union dependencies, customEvents | summarize count() by itemType",
                    since=since, now=now).to_pylist()
    assert {row["itemType"]: row["count_"] for row in union} == {"dependency": expected_deps,
                                                                 "customEvent": expected_events}
    assert run_kql(reader, "spans | count", since=since, now=now).to_pylist()[0]["Count"] == sum(
        1 for s in workload.spans if s.start_time >= cutoff_ns)


@pytest.fixture(scope="module")
def mixed_reader(workload, tmp_path_factory):
    """The workload plus chat spans with odd token attributes (deprecated keys, floats, strings, huge values)."""
    with collector_store(tmp_path_factory.mktemp("kql-edges"), workload.spans + token_edge_workload(),
                         workload.logs) as collector:
        yield collector.reader()


def test_shortcut_gives_the_same_answer_as_the_full_customdimensions(mixed_reader):
    reader = mixed_reader
    queries = [
        'dependencies | summarize n = count() by op = tostring(customDimensions["gen_ai.operation.name"]), '
        'agent = tostring(customDimensions["gen_ai.agent.name"]) | order by op asc, agent asc',
        'dependencies | where customDimensions["gen_ai.operation.name"] == "chat" '
        '| summarize sum(toint(customDimensions["gen_ai.usage.input_tokens"])), '
        'make_set(tostring(customDimensions["gen_ai.response.finish_reasons"])), '
        'make_set(tostring(customDimensions["server.address"]))',
        'AppDependencies | where Properties["gen_ai.tool.name"] == "search" | project Id, Name | order by Id asc',
        'dependencies | where customDimensions.["gen_ai.request.temperature"] == "0.7" | count',
        # Token counts: ints, deprecated keys, floats, strings, bools and values beyond int32.
        'dependencies | where customDimensions["gen_ai.operation.name"] == "chat" '
        '| project id, i = toint(customDimensions["gen_ai.usage.input_tokens"]), '
        'l = tolong(customDimensions["gen_ai.usage.input_tokens"]), '
        'd = todouble(customDimensions["gen_ai.usage.output_tokens"]), '
        'r = toreal(customDimensions["gen_ai.usage.output_tokens"]), '
        's = tostring(customDimensions["gen_ai.usage.output_tokens"]), '
        'raw = customDimensions["gen_ai.usage.input_tokens"] | order by id asc',
        'dependencies | summarize count(), sum(toint(customDimensions["gen_ai.usage.input_tokens"])) '
        'by m = tostring(customDimensions["gen_ai.request.model"]) | order by m asc',
        # customEvents follow the log exporter's rules.
        'customEvents | extend e = tostring(customDimensions["gen_ai.evaluation.name"]), '
        'v = todouble(customDimensions["gen_ai.evaluation.score.value"]), '
        'n = tostring(customDimensions["microsoft.custom_event.name"]) '
        '| summarize count(), avg(v), make_set(n) by e | order by e asc',
        'AppEvents | where Name == "gen_ai.evaluation.result" | summarize count() by OperationId '
        '| order by OperationId asc',
        # Joins and unions: translated with the tables narrowed to the columns the query names.
        'dependencies | where success == false | project id, itemCount '
        '| join kind=leftouter (exceptions | summarize t = take_any(outerType) by operation_ParentId) '
        'on $left.id == $right.operation_ParentId | summarize n = sum(itemCount) by t | order by t asc',
        'union dependencies, requests | summarize n = count(), d = sum(duration) by itemType | order by itemType asc',
        # exceptions from span events (lean rows without the full view).
        'exceptions | summarize n = count(), i = sum(itemCount) by type, operation_ParentId '
        '| order by operation_ParentId asc',
        'AppExceptions | summarize count() by ExceptionType, ParentId, bin(TimeGenerated, 1m) | order by ParentId asc',
        # The cost measurement, from the typed column instead of a JSON object per row; absent stays null.
        'dependencies | project id, c = toreal(customMeasurements["tracekit.cost_usd"]), '
        'd = todouble(customMeasurements["tracekit.cost_usd"]), j = customMeasurements["tracekit.cost_usd"], '
        's = tostring(customMeasurements["tracekit.cost_usd"]), i = toint(customMeasurements["tracekit.cost_usd"]) '
        '| order by id asc',
        'AppDependencies | where isnotnull(Measurements["tracekit.cost_usd"]) '
        '| summarize n = count(), c = sum(toreal(Measurements["tracekit.cost_usd"]) * ItemCount)',
    ]
    for text in queries:
        compiled = compile_kql(reader, text)
        assert compiled.fallback_sql is not None, text  # the shortcut applied
        fast = reader.sql(compiled.sql).to_pylist()
        full = reader.sql(compiled.fallback_sql).to_pylist()
        assert fast == full and fast, text
    # Reassigning customDimensions turns the shortcut off rather than reading the wrong thing.
    text = 'dependencies | extend customDimensions = parse_json(\'{"gen_ai.operation.name": "x"}\') ' \
           '| where customDimensions["gen_ai.operation.name"] == "x" | count'
    assert compile_kql(reader, text).fallback_sql is None
    assert run_kql(reader, text).to_pylist()[0]["Count"] == len(reader.sql("SELECT * FROM dependencies"))
    priced = reader.sql("SELECT count(cost_usd) AS n, sum(cost_usd) AS c FROM spans WHERE kind <> 'SERVER'").to_pylist()[0]
    measured = run_kql(reader, queries[-1]).to_pylist()[0]
    assert priced["n"] > 0 and measured["n"] == priced["n"] and measured["c"] == pytest.approx(priced["c"])


def test_let_and_graph_sources_read_typed_columns(mixed_reader):
    """`let` sources and make-graph nodes (translated only with the schema) get the customDimensions shortcut too,
    with the same answer as the full view; a `*` that stands for columns keeps it off."""
    reader = mixed_reader
    tile = dashboards.load("agents").tile("cost_by_agent").kql
    joined = ('let ops = dependencies | project id, op = tostring(customDimensions["gen_ai.operation.name"]); '
              'dependencies | project id, c = toreal(customMeasurements["tracekit.cost_usd"]) * itemCount '
              '| join kind=inner (ops) on id | summarize n = count(), c = sum(c) by op | order by op asc')
    for text in (tile, joined):
        compiled = compile_kql(reader, text)
        assert compiled.fallback_sql is not None, text  # the shortcut applied
        assert "tk_span_properties" not in compiled.sql and "tk_span_measurements" not in compiled.sql
        fast = reader.sql(compiled.sql).to_pylist()
        full = reader.sql(compiled.fallback_sql).to_pylist()
        assert fast and len(fast) == len(full), text
        for got, want in zip(fast, full):
            assert got == pytest.approx(want), text  # sums of floats, in whatever order the threads add them
    starred = ('let latest = dependencies | summarize arg_max(timestamp, *) by operation_Id; '
               'latest | join kind=inner (dependencies | project id) on id '
               '| summarize n = count() by op = tostring(customDimensions["gen_ai.operation.name"]) | order by op asc')
    assert compile_kql(reader, starred).fallback_sql is None


def test_lean_sources_never_drop_result_columns(reader):
    """A shaped `let` must not make the main statement's unshaped rows lose columns."""
    public = reader.sql("SELECT * FROM dependencies LIMIT 0").column_names
    for text in ('let n = dependencies | summarize count(); dependencies | take 2',
                 'let n = dependencies | summarize count(); '
                 'dependencies | where customDimensions["gen_ai.operation.name"] == "chat" | take 2'):
        assert run_kql(reader, text).column_names == public, text


def test_helpers_answer_agent_questions(reader, workload):
    owner = {row["id"]: row["agent_name"] for row in run_kql(reader, "span_agents").to_pylist()}
    by_id = {format(s.context.span_id, "016x"): s for s in workload.spans}
    for span_id, span in by_id.items():
        parent = span
        while parent is not None and _op(parent) != "invoke_agent":
            parent = by_id.get(format(parent.parent.span_id, "016x")) if parent.parent else None
        if parent is not None:
            assert owner[span_id] == parent.attributes["gen_ai.agent.name"]
    conversations = {row["conversation_id"]: row for row in run_kql(reader, "conversations").to_pylist()}
    expected = defaultdict(int)
    for span in workload.spans:
        if "gen_ai.conversation.id" in span.attributes:
            expected[span.attributes["gen_ai.conversation.id"]] += 1
    assert {key: row["spans"] for key, row in conversations.items()} == dict(expected)


@pytest.mark.parametrize("text, line, column, reason", [
    ("dependencies | wherex", 1, 16, "`wherex` is not a query operator; did you mean `where`?"),
    ("dependencies\n| summarise count()", 2, 3, "did you mean `summarize`?"),
    ("dependencies\n| where duration >", 2, 19, "syntax error"),
    ("dependencies\n| top-nested 2 of type by count()", 2, 3, "not supported by the local KQL engine: `top-nested`"),
    ("dependencies | take 1\n| join (nosuchtable) on id", 2, 9, "unknown table 'nosuchtable'"),
])
def test_errors_carry_line_and_column(reader, text, line, column, reason):
    with pytest.raises(QueryError) as caught:
        run_kql(reader, text)
    assert caught.value.line == line and caught.value.column == column
    assert reason in str(caught.value)


def test_control_commands_and_writes_are_refused(reader):
    for text in (".set-or-replace spans <| print x = 1", ".drop table spans", ".create database x"):
        with pytest.raises(QueryError):
            run_kql(reader, text)
    assert "SELECT" in translate("print x = 1")


def test_graph_operators_walk_the_span_tree(reader, workload):
    # The Agents workbook attributes tokens with make-graph/graph-match; duckdb-kql runs them.
    table = run_kql(reader, "dependencies | where type != \"HTTP\" | make-graph operation_ParentId --> id with_node_id=id "
                            "| graph-match (parent)-[e]->(child) project parent_id = parent.id, child_id = child.id")
    # One edge per dependency: operation_ParentId -> id, roots hanging off their operation (trace) id.
    expected = {(format(s.parent.span_id, "016x") if s.parent else format(s.context.trace_id, "032x"),
                 format(s.context.span_id, "016x"))
                for s in workload.spans if s.kind.name != "SERVER"}
    assert {(row["parent_id"], row["child_id"]) for row in table.to_pylist()} == expected


def test_duckdb_kql_is_within_the_tested_range():
    """The shortcuts are tested against the duckdb-kql versions pyproject.toml allows; a release outside that range
    is tested before the range is widened."""
    import tomllib
    from importlib.metadata import version
    from pathlib import Path

    from packaging.requirements import Requirement

    project = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    requirement = next(Requirement(spec) for spec in project["project"]["dependencies"]
                       if Requirement(spec).name == "duckdb-kql")
    assert requirement.specifier.contains(version("duckdb-kql"))
    assert any(spec.operator == "<" for spec in requirement.specifier)  # an upper bound: no untested release


def test_shortcuts_rewrite_the_parse_tree_not_the_text(mixed_reader):
    """Each rewrite works on DuckDB's parse tree of duckdb-kql's SQL: accessors become typed-column reads,
    toint() of a token count reads the typed column, and text inside string literals is never touched."""
    from tracekit.query import sql_tree
    from tracekit.query.kql import _accessor

    text = ('dependencies | where customDimensions["gen_ai.operation.name"] == "chat" '
            '| summarize t = sum(toint(customDimensions["gen_ai.usage.input_tokens"])), '
            'r = make_set(tostring(customDimensions["gen_ai.response.finish_reasons"])) '
            'by m = tostring(customDimensions["gen_ai.request.model"]) | order by m asc')
    compiled = compile_kql(mixed_reader, text, since=dt.timedelta(days=3650))
    tree = sql_tree.parse(compiled.sql)
    assert not [node for node in sql_tree.walk(tree) if _accessor(node)]  # every customDimensions[...] replaced
    columns = sql_tree.column_names(tree)
    assert {"__tk_operation_name", "__tk_request_model", "__tk_input_tokens", "__tk_attributes"} <= columns
    assert "BETWEEN -2147483648 AND 2147483647" in compiled.sql  # toint() of the typed column
    assert "tk_since" in compiled.sql  # the time range, applied to the table the tree reads
    assert mixed_reader.sql(compiled.sql, compiled.params).to_pylist() == \
        mixed_reader.sql(compiled.fallback_sql, compiled.params).to_pylist()

    look_alike = 'FROM "dependencies" json_extract("customDimensions", \'$."gen_ai.operation.name"\')'
    text = f'dependencies | where name == "{look_alike.replace(chr(34), chr(92) + chr(34))}" | count'
    compiled = compile_kql(mixed_reader, text, since=dt.timedelta(days=1))
    assert look_alike.replace("'", "''") in compiled.sql
    assert run_kql(mixed_reader, text, since=dt.timedelta(days=3650)).to_pylist() == [{"Count": 0}]


def test_a_store_from_before_prices_reads_as_unpriced(workload, tmp_path):
    """A schema v2 store (no spans.cost_usd) opened read-only, so not migrated: the views still work, with no
    measurement, and the cost tile answers with no rows instead of an error."""
    import duckdb

    from tracekit import dashboards
    from tracekit.store.reader import LocalReader

    with collector_store(tmp_path, workload.spans):
        pass
    con = duckdb.connect(str(tmp_path / "traces.duckdb"))
    con.execute("DELETE FROM tracekit_meta WHERE key = 'views_version'")
    con.execute("ALTER TABLE spans DROP COLUMN cost_usd")
    con.execute("UPDATE tracekit_meta SET value = '2' WHERE key = 'schema_version'")
    con.close()
    reader = LocalReader.open_file(tmp_path / "traces.duckdb")
    try:
        rows = run_kql(reader, 'dependencies | summarize n = count(), '
                               'priced = countif(isnotnull(customMeasurements["tracekit.cost_usd"]))').to_pylist()
        assert rows == [{"n": sum(1 for s in workload.spans if s.kind.name != "SERVER"), "priced": 0}]
        # Whole rows chosen late read the row id through the TEMP spans view (tests/query/test_late_rows.py).
        compiled = compile_kql(reader, "dependencies | top 4 by duration desc")
        assert "__tk_rowid" in compiled.sql
        late, plain = reader.sql(compiled.sql).to_pylist(), reader.sql(compiled.fallback_sql).to_pylist()
        assert len(late) == 4 and [r["duration"] for r in late] == [r["duration"] for r in plain]
        assert all(row in reader.sql("SELECT * FROM dependencies").to_pylist() for row in late)
        board = dashboards.load("agents")
        for tile_id in ("cost_by_model", "cost_by_agent", "models"):
            table = dashboards.run_tile(reader, board.tile(tile_id), None)
            assert (table.num_rows == 0) == tile_id.startswith("cost"), tile_id
    finally:
        reader.close()
