"""What makes the query surface read-only: a statement check, and a transaction that cannot write.

Every query a person or a program hands to a reader (`tracekit query`, `--sql`, KQL, the TUI's console, the
collector's read API) is checked by `check_read_only()` and runs through `in_read_only_transaction()`. Two independent layers:

1. The structure: the statement runs inside `BEGIN TRANSACTION READ ONLY`, which DuckDB enforces for every write to
   the store (INSERT, UPDATE, DELETE, CREATE, ALTER, DROP, sequences, and EXPLAIN ANALYZE of any of them), and the
   transaction is always rolled back. The collector's read API hands user SQL only to such transactions on its own
   cursors; a store opened by a reader is in addition opened read-only, and external file access is off on both.
2. The check before it: exactly one statement, a SELECT (or EXPLAIN / EXPLAIN ANALYZE of a SELECT), calling only
   table functions that read. This refuses what a read-only transaction still lets through: CHECKPOINT (also as
   the `checkpoint()` table function), ATTACH/DETACH, LOAD, transaction control, SET/PRAGMA, and it gives the
   clear error message.

A second DuckDB instance opening the file read-only beside the collector's is not an option: DuckDB refuses a
second open of a file with another configuration in one process, and such an instance would not see later commits.
"""

from __future__ import annotations

import json
from typing import Any, Callable, TypeVar

from tracekit.errors import QueryError
from tracekit.store.engine import duckdb

T = TypeVar("T")

# Table functions a SELECT may call: generators and catalog/introspection functions, none of which writes or
# changes a setting. Anything else (checkpoint(), force_checkpoint(), copy_database(), import_database(),
# enable_*/disable_* pragmas, query()/json_execute_serialized_sql(), file readers...) is refused by name.
READING_TABLE_FUNCTIONS = frozenset({
    "range", "generate_series", "unnest", "repeat", "repeat_row", "json_each", "json_tree", "test_all_types",
    "show", "show_tables", "show_tables_expanded", "show_databases", "summary", "table_info", "functions",
    "collations", "database_list", "database_size", "storage_info", "metadata_info", "version", "platform",
    "user_agent", "icu_calendar_names", "pg_timezone_names",
})
# Prefixes of reading function families: DuckDB's catalog functions, PRAGMA info functions, tracekit's own table
# macros (the App Insights views are built from them).
READING_TABLE_FUNCTION_PREFIXES = ("duckdb_", "pragma_", "tk_")
_WRITING_DUCKDB_FUNCTIONS = frozenset({"truncate_duckdb_logs"})


def check_read_only(sql: str, parser: duckdb.DuckDBPyConnection) -> None:
    """Raise QueryError unless `sql` is one statement that only reads: a SELECT, or EXPLAIN [ANALYZE] of one.

    `parser` is any connection; it only parses (json_serialize_sql), it runs nothing.
    """
    try:
        statements = parser.extract_statements(sql)  # the module-level function would open a default database
    except duckdb.Error as error:
        raise QueryError(f"SQL syntax error: {str(error).strip()}") from None
    if len(statements) != 1:
        raise QueryError(f"expected exactly one SQL statement, got {len(statements)}")
    kind = _statement_type(statements[0])
    if kind == duckdb.StatementType.EXPLAIN:
        inner = _explained_statement(sql)
        inner_statements = parser.extract_statements(inner) if inner else []
        inner_kind = _statement_type(inner_statements[0]) if len(inner_statements) == 1 else None
        if inner_kind != duckdb.StatementType.SELECT:
            name = inner_kind.name if inner_kind is not None else "non-SELECT"
            raise QueryError(f"only read-only queries are allowed here: EXPLAIN of a {name} statement "
                             "(EXPLAIN and EXPLAIN ANALYZE take a SELECT)")
        sql = inner
    elif kind != duckdb.StatementType.SELECT:
        name = kind.name if kind is not None else "non-SELECT"
        raise QueryError(f"only read-only queries are allowed here (got a {name} statement); use a SELECT")
    if "(" in sql:  # a table function is called with parentheses: without any, there is none to check
        _check_table_functions(sql, parser)


def _statement_type(statement: Any) -> duckdb.StatementType | None:
    """The statement's type, or None for one this duckdb module has no name for (e.g. UPDATE EXTENSIONS)."""
    try:
        return statement.type
    except ValueError:
        return None


def _explained_statement(sql: str) -> str | None:
    """The statement after `EXPLAIN [ANALYZE] [(options)]`, found with DuckDB's own tokenizer."""
    tokens = [(start, kind) for start, kind in duckdb.tokenize(sql) if kind != duckdb.token_type.comment]
    ends = [start for start, _ in tokens[1:]] + [len(sql)]
    words = [(start, sql[start:end].strip(), kind) for (start, kind), end in zip(tokens, ends)]
    index = 0
    if index < len(words) and words[index][1].upper() == "EXPLAIN":
        index += 1
    else:
        return None
    if index < len(words) and words[index][1].upper() == "ANALYZE":
        index += 1
    if index < len(words) and words[index][1].startswith("("):
        depth = 0
        while index < len(words):
            text = words[index][1]
            depth += text.count("(") - text.count(")")
            index += 1
            if depth <= 0:
                break
    return sql[words[index][0]:] if index < len(words) else None


def _check_table_functions(sql: str, parser: duckdb.DuckDBPyConnection) -> None:
    """Refuse table functions that write or change state, wherever they appear (subqueries, CTEs, joins)."""
    try:
        tree = json.loads(parser.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])
    except duckdb.Error as error:
        raise QueryError(f"SQL syntax error: {str(error).strip()}") from None
    if tree.get("error"):
        # SELECT-typed statements the serializer cannot take (PIVOT without an IN list runs a CREATE TYPE first).
        raise QueryError(f"only plain SELECT queries are allowed here: {tree.get('error_message', '')}".rstrip(": "))
    for name in _table_functions(tree):
        lowered = name.lower()
        if lowered in _WRITING_DUCKDB_FUNCTIONS or not (
                lowered in READING_TABLE_FUNCTIONS or lowered.startswith(READING_TABLE_FUNCTION_PREFIXES)):
            raise QueryError(f"only read-only queries are allowed here: the table function {name}() is not "
                             "available to queries")


def _table_functions(node: Any) -> list[str]:
    found: list[str] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if item.get("type") == "TABLE_FUNCTION":
                function = item.get("function") or {}
                found.append(str(function.get("function_name", "")))
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def in_read_only_transaction(connection: duckdb.DuckDBPyConnection, run: Callable[[], T]) -> T:
    """Call `run()` (which queries `connection`) inside a read-only transaction that is always rolled back."""
    connection.execute("BEGIN TRANSACTION READ ONLY")
    try:
        return run()
    finally:
        try:
            connection.execute("ROLLBACK")
        except duckdb.TransactionException:
            # The statement ended the transaction itself: whatever it returned is not to be trusted.
            raise QueryError("the statement ended its read-only transaction; it is refused") from None
