"""DuckDB's own parse tree of a SELECT, for rewriting the SQL duckdb-kql generates at the level of its structure.

duckdb-kql offers no hook to change how it renders a table or an expression (see docs/upstream/duckdb-kql-hook.md),
so tracekit.query.kql rewrites its output: DuckDB parses the SQL (`json_serialize_sql`), the rewrite replaces nodes
of that tree (a table by a subquery, an expression by another), and DuckDB renders it back
(`json_deserialize_sql`). A change in how duckdb-kql spells its SQL then changes nothing here as long as the
structure means the same; a change of structure makes a shortcut not apply, never apply wrongly.
"""

from __future__ import annotations

import copy
import json
import threading
from typing import Any, Callable, Iterator

import duckdb

Node = dict[str, Any]

_parser: duckdb.DuckDBPyConnection | None = None
_lock = threading.Lock()


def _connection() -> duckdb.DuckDBPyConnection:
    global _parser
    if _parser is None:
        _parser = duckdb.connect(":memory:", config={"enable_external_access": False})
    return _parser


def parse(sql: str) -> Node:
    """The parse tree of one SELECT statement. Raises ValueError when DuckDB cannot serialize it."""
    with _lock:
        text = _connection().execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0]
    tree = json.loads(text)
    if tree.get("error"):
        raise ValueError(tree.get("error_message", "not a SELECT"))
    return tree


def render(tree: Node) -> str:
    """SQL text for a tree made by parse() (and rewritten)."""
    with _lock:
        return _connection().execute("SELECT json_deserialize_sql(?::JSON)", [json.dumps(tree)]).fetchone()[0]


def expression(sql: str) -> Node:
    """The tree of one SQL expression."""
    return parse(f"SELECT {sql}")["statements"][0]["node"]["select_list"][0]


def expression_sql(node: Node) -> str:
    """SQL text of one expression node (without its alias)."""
    shell = parse("SELECT NULL")
    shell["statements"][0]["node"]["select_list"] = [{**node, "alias": ""}]
    return render(shell).removeprefix("SELECT ").strip()


def walk(node: Any) -> Iterator[Node]:
    """Every dict node in the tree, parents before children."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            yield item
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))


def base_tables(tree: Node) -> set[str]:
    """Names of the tables and views the statement reads (CTE names included, as DuckDB cannot tell them apart
    before binding; callers look names up in their own lists)."""
    return {node["table_name"] for node in walk(tree) if node.get("type") == "BASE_TABLE"}


def column_names(tree: Node) -> set[str]:
    """Every column name the statement refers to (each part of a qualified name)."""
    return {name for node in walk(tree) if node.get("class") == "COLUMN_REF" for name in node["column_names"]}


def replace_tables(tree: Node, replacement: Callable[[str], str | None]) -> Node:
    """A copy of `tree` where each table `name` with `replacement(name)` (a FROM-clause SQL source) reads that
    source instead, under the same alias."""
    tree = copy.deepcopy(tree)
    cache: dict[str, Node | None] = {}

    def visit(node: Any) -> Any:
        if isinstance(node, list):
            return [visit(item) for item in node]
        if not isinstance(node, dict):
            return node
        if node.get("type") == "BASE_TABLE" and not node.get("schema_name") and not node.get("catalog_name"):
            name = node["table_name"]
            if name not in cache:
                source = replacement(name)
                cache[name] = None if source is None else \
                    parse(f"SELECT * FROM {source} AS x")["statements"][0]["node"]["from_table"]
            if cache[name] is not None:
                new = copy.deepcopy(cache[name])
                new["alias"] = node.get("alias") or name
                return new
        return {key: visit(value) for key, value in node.items()}

    return visit(tree)


def replace_expressions(tree: Node, replacement: Callable[[Node], Node | None]) -> Node:
    """A copy of `tree` where each expression node for which `replacement(node)` gives a node is replaced by it
    (outer nodes first: a replaced node's children are not visited)."""

    def visit(node: Any) -> Any:
        if isinstance(node, list):
            return [visit(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "class" in node:
            new = replacement(node)
            if new is not None:
                if node.get("alias"):
                    new = {**new, "alias": node["alias"]}
                return new
        return {key: visit(value) for key, value in node.items()}

    return visit(tree)


def same(a: Any, b: Any) -> bool:
    """Whether two trees are the same expression, wherever in the text they stood."""
    return _shape(a) == _shape(b)


def _shape(node: Any) -> Any:
    if isinstance(node, dict):
        return {key: _shape(value) for key, value in node.items()
                if key not in ("query_location", "query_location_length")}
    if isinstance(node, list):
        return [_shape(item) for item in node]
    return node


def function(node: Node, name: str) -> list[Node] | None:
    """The argument nodes when `node` calls function `name`, else None."""
    if node.get("class") == "FUNCTION" and node.get("function_name") == name and not node.get("schema"):
        return [argument["expression"] for argument in node.get("arguments", [])]
    return None


def string_constant(node: Node) -> str | None:
    """The value of a string literal node, else None."""
    if node.get("class") == "CONSTANT" and node.get("literal", {}).get("kind") == "STRING":
        return node["literal"]["text"]
    return None


def column(node: Node) -> str | None:
    """The name of an unqualified column reference, else None."""
    if node.get("class") == "COLUMN_REF" and len(node.get("column_names", [])) == 1:
        return node["column_names"][0]
    return None
