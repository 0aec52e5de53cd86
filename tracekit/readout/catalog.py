"""What a query can read: every table and view with its columns, types and a line on what each holds, and examples.

Columns and types come from the store itself (DuckDB's catalog, through the reader, so the views are there); the
store tables' column notes are the comments in tracekit/store/schema.py's DDL, so they cannot drift from it.
"""

from __future__ import annotations

import re
from typing import Any

from tracekit.store import schema as store_schema
from tracekit.store.reader import StoreReader

TABLES: dict[str, str] = {
    "spans": "one row per span (store table): ids, name, kind, times, status, service and the main gen_ai.* keys "
             "as typed columns, every attribute as JSON",
    "span_events": "span events (store table), in the order the span recorded them",
    "span_links": "span links (store table)",
    "logs": "log records (store table), with the span they were emitted in",
    "metric_points": "metric data points (store table)",
    "resources": "resource attribute sets (store table), referenced by resource_id",
    "requests": "Application Insights view: SERVER and CONSUMER spans",
    "dependencies": "Application Insights view: CLIENT, PRODUCER and INTERNAL spans (agent, chat and tool spans "
                    "land here)",
    "traces": "Application Insights view: span events other than `exception`, and plain log records",
    "exceptions": "Application Insights view: `exception` span events and log records with exception.* attributes",
    "customEvents": "Application Insights view: log records named by microsoft.custom_event.name (evaluation "
                    "results: gen_ai.evaluation.result)",
    "customMetrics": "Application Insights view: metric points (histograms give count/sum/min/max)",
    "AppRequests": "workspace-named twin of requests",
    "AppDependencies": "workspace-named twin of dependencies",
    "AppTraces": "workspace-named twin of traces",
    "AppExceptions": "workspace-named twin of exceptions",
    "AppEvents": "workspace-named twin of customEvents",
    "AppMetrics": "workspace-named twin of customMetrics",
    "span_agents": "helper: every span with the invoke_agent span that owns it",
    "conversations": "helper: one row per conversation id (first/last seen, traces, spans, agents, tokens, errors)",
}

# The Application Insights columns a question usually needs; the rest keep the exporter's meaning (docs/kql.md).
VIEW_COLUMNS: dict[str, str] = {
    "timestamp": "when the span (or event, record) started, UTC",
    "TimeGenerated": "when the span (or event, record) started, UTC",
    "id": "span id (16 hex)",
    "Id": "span id (16 hex)",
    "operation_Id": "trace id (32 hex): get_trace takes it",
    "OperationId": "trace id (32 hex): get_trace takes it",
    "operation_ParentId": "parent span id (the trace id for a root span)",
    "ParentId": "parent span id (the trace id for a root span)",
    "name": "span name, e.g. `chat gpt-4o`, `execute_tool get_weather`, `invoke_agent planner`",
    "Name": "span name, e.g. `chat gpt-4o`, `execute_tool get_weather`, `invoke_agent planner`",
    "duration": "milliseconds",
    "DurationMs": "milliseconds",
    "success": "false when the span's status is ERROR",
    "Success": "false when the span's status is ERROR",
    "customDimensions": "attributes (dynamic): customDimensions[\"gen_ai.operation.name\"], "
                        "[\"gen_ai.agent.name\"], [\"gen_ai.tool.name\"], [\"gen_ai.usage.input_tokens\"]...",
    "Properties": "attributes (dynamic): Properties[\"gen_ai.operation.name\"], [\"gen_ai.agent.name\"]...",
    "type": "dependency type, e.g. `GenAI | openai`, `InProc`, `HTTP`",
    "DependencyType": "dependency type, e.g. `GenAI | openai`, `InProc`, `HTTP`",
    "target": "what was called (host, model endpoint)",
    "message": "the event or log message",
    "session_Id": "session.id",
    "cloud_RoleName": "service.name (with service.namespace)",
    "AppRoleName": "service.name (with service.namespace)",
}

EXAMPLES: list[tuple[str, str, str]] = [
    ("Slowest tool calls with their traces", "kql",
     'dependencies\n| where customDimensions["gen_ai.operation.name"] == "execute_tool"\n'
     '| project timestamp, tool = tostring(customDimensions["gen_ai.tool.name"]), duration, success, operation_Id\n'
     "| order by duration desc\n| take 10"),
    ("Tool calls, p95 latency and failures per tool", "kql",
     'dependencies\n| where customDimensions["gen_ai.operation.name"] == "execute_tool"\n'
     "| summarize calls = count(), p95 = percentile(duration, 95), errors = countif(success == false)\n"
     '    by tool = tostring(customDimensions["gen_ai.tool.name"])\n| order by calls desc'),
    ("Tokens per model", "kql",
     'dependencies\n| where customDimensions["gen_ai.operation.name"] == "chat"\n'
     '| summarize calls = count(), input = sum(toint(customDimensions["gen_ai.usage.input_tokens"])),\n'
     '    output = sum(toint(customDimensions["gen_ai.usage.output_tokens"]))\n'
     '    by model = tostring(customDimensions["gen_ai.request.model"])'),
    ("Agent runs per hour and agent", "kql",
     'dependencies\n| where customDimensions["gen_ai.operation.name"] == "invoke_agent"\n'
     '| summarize runs = count() by bin(timestamp, 1h), agent = tostring(customDimensions["gen_ai.agent.name"])'),
    ("Failed spans, newest first", "kql",
     "dependencies\n| where success == false\n| project timestamp, name, resultCode, operation_Id, id\n"
     "| order by timestamp desc\n| take 20"),
    ("Evaluation results", "kql",
     'customEvents\n| where name == "gen_ai.evaluation.result"\n'
     '| project timestamp, metric = tostring(customDimensions["gen_ai.evaluation.name"]),\n'
     '    score = todouble(customDimensions["gen_ai.evaluation.score.value"]), operation_Id'),
    ("Conversations with the most tokens", "kql",
     "conversations\n| order by input_tokens + output_tokens desc\n| take 10"),
    ("Spans by operation (SQL over the store table)", "sql",
     "SELECT operation_name, count(*) AS spans, avg(duration_ns) / 1e6 AS avg_ms\n"
     "FROM spans GROUP BY 1 ORDER BY 2 DESC"),
    ("One attribute across spans (SQL)", "sql",
     "SELECT trace_id, span_id, attributes->>'$.\"gen_ai.request.model\"' AS model\n"
     "FROM spans WHERE operation_name = 'chat' LIMIT 20"),
]

_COMMENT = re.compile(r"^\s*(\w+)\s+[^-]*?--\s*(.+?)\s*$")
_CREATE = re.compile(r"CREATE TABLE (\w+)")


def store_column_notes() -> dict[str, dict[str, str]]:
    """Table -> column -> the comment written beside it in the store's DDL."""
    notes: dict[str, dict[str, str]] = {}
    for _, statements in store_schema.MIGRATIONS:
        for statement in statements:
            created = _CREATE.search(statement) if isinstance(statement, str) else None  # not a step in code
            if not created:
                continue
            columns = notes.setdefault(created.group(1), {})
            for line in statement.splitlines():
                match = _COMMENT.match(line)
                if match:
                    columns[match.group(1)] = match.group(2)
    return notes


def describe(reader: StoreReader, table: str | None = None) -> dict[str, Any]:
    """Every queryable table and view (or just `table`): what it holds, and its columns with types and notes."""
    rows = reader.sql(
        "SELECT table_name, column_name, data_type FROM duckdb_columns() "
        "WHERE NOT starts_with(column_name, '__') AND schema_name IN ('main', 'temp') "
        "AND list_contains(?::VARCHAR[], table_name) ORDER BY table_name, column_index",
        [list(TABLES) if table is None else [table]]).to_pylist()
    if table is not None and not rows:
        raise LookupError(f"no table or view {table!r}; the queryable ones: {', '.join(TABLES)}")
    notes = store_column_notes()
    tables: dict[str, dict[str, Any]] = {}
    for row in rows:
        name = row["table_name"]
        entry = tables.setdefault(name, {"name": name, "description": TABLES.get(name, ""), "columns": []})
        note = notes.get(name, {}).get(row["column_name"]) if name in notes else VIEW_COLUMNS.get(row["column_name"])
        column = {"name": row["column_name"], "type": row["data_type"]}
        if note:
            column["note"] = note
        entry["columns"].append(column)
    ordered = [tables[name] for name in TABLES if name in tables]
    return {"tables": ordered,
            "languages": {"kql": "KQL over these tables, as in Application Insights (docs/kql.md lists what "
                                 "translates)",
                          "sql": "one read-only DuckDB SELECT over the same tables and views"}}


def schema_markdown(described: dict[str, Any]) -> str:
    """The catalog as Markdown: a section per table, a line per column."""
    lines = ["# Queryable tables and views", "",
             "Ask in KQL (Application Insights tables) or in read-only DuckDB SQL; both see every table below.", ""]
    for table in described["tables"]:
        lines += [f"## {table['name']}", table["description"], ""]
        for column in table["columns"]:
            note = f" — {column['note']}" if column.get("note") else ""
            lines.append(f"- `{column['name']}` {column['type']}{note}")
        lines.append("")
    return "\n".join(lines)


def examples_markdown() -> str:
    """The example queries as Markdown, each with its language."""
    lines = ["# Example queries", "",
             "Pass one to run_query (language kql or sql); `operation_Id` is the trace id get_trace takes.", ""]
    for title, language, text in EXAMPLES:
        lines += [f"## {title} ({language})", f"```{language}", text, "```", ""]
    return "\n".join(lines)
