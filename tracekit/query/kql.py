"""KQL over the store: duckdb-kql translates, this module adapts the result to tracekit's readers.

    >>> from tracekit.store.reader import open_reader
    >>> run_kql(open_reader(), 'dependencies | summarize count() by type')   # doctest: +SKIP

What it adds to duckdb-kql (each documented in docs/kql.md):

* errors: every duckdb-kql error becomes a tracekit.errors.QueryError carrying the 1-based line and column;
* `percentiles(x, p1, p2, ...)`: rewritten before translation into one `percentile()` per rank, named the way
  Kusto names them (`percentile_x_p1`, ...) or by a `(a, b) = percentiles(...)` tuple;
* `since`: a time range applied to every App Insights view and store table the query reads (what Azure Monitor does
  with a workbook's time picker), as a predicate on the timestamp column so DuckDB prunes by zone maps;
* shortcuts, same answer with less work (the full views stay the reference, and answer whenever a shortcut does not
  apply or does not bind): `customDimensions["gen_ai.operation.name"]` and friends on requests/dependencies read
  the store's typed columns, other keys one attribute each, instead of building the whole customDimensions object
  for every row; `toint()`/`tolong()`/`todouble()` of token counts read the typed token columns; and a query that
  spells out its columns reads a lean source computing only those.

The time range and the shortcuts rewrite duckdb-kql's SQL on DuckDB's own parse tree (tracekit.query.sql_tree),
never its text: duckdb-kql has no hook for it (docs/upstream/duckdb-kql-hook.md).
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import re
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from typing import TYPE_CHECKING

from tracekit.errors import QueryError
from tracekit.query import sql_tree, translation_cache, views
from tracekit.store.rows import Rows

if TYPE_CHECKING:
    import pyarrow as pa
    from duckdb_kql.errors import KqlError

    from tracekit.store.reader import LocalReader, StoreReader

T = TypeVar("T")

# duckdb-kql (its ANTLR parser above all) is imported where a query is translated, not here: a translation found in
# the cache (tracekit.query.translation_cache) needs neither.

# Time column of every table a time range applies to.
TIME_COLUMNS: dict[str, str] = {
    **{table: "timestamp" for table in views.CLASSIC_TABLES},
    **{table: "TimeGenerated" for table in views.WORKSPACE_TABLES},
    "spans": "start_time", "span_events": "time", "logs": "time", "metric_points": "time",
}
# Views whose customDimensions / Properties accessors can use the typed-column shortcut, and the attribute rules
# that built them ("span": EXP trace exporter filters).
_SHORTCUT_TABLES = {"requests": "customDimensions", "dependencies": "customDimensions",
                    "AppRequests": "Properties", "AppDependencies": "Properties"}
# customEvents rows are all log records, so their customDimensions follow the log exporter's rules.
_EVENT_SHORTCUT_TABLES = {"customEvents": "customDimensions", "AppEvents": "Properties"}
_SINCE_SLOT = "tk_since"


@dataclass
class Compiled:
    """A KQL query turned into SQL for the store: the text, its parameter values, and a plain fallback."""

    sql: str
    params: dict[str, Any] = field(default_factory=dict)
    fallback_sql: str | None = None  # the same query without the typed-column shortcut


def translate(text: str, params: dict[str, Any] | None = None) -> str:
    """The DuckDB SQL that duckdb-kql makes of `text` (after tracekit's extensions), for reading or `EXPLAIN`.

    Raises QueryError with the line and column of the problem when the KQL does not parse or translate.
    """
    return _translate(text, params, None).sql_text


def run_kql(reader: StoreReader, text: str, params: dict[str, Any] | None = None, *,
            since: dt.timedelta | None = None, now: dt.datetime | None = None) -> pa.Table:
    """Run KQL against the store behind `reader` (a file or a running collector) and return an Arrow table.

    `params` gives values for the query's `declare query_parameters(...)`; they are bound, never spliced into SQL.
    `since` limits every table the query reads to rows from the last `since` (relative to `now`, default the
    current UTC time). Raises QueryError (line, column, reason) for bad KQL and for queries the store refuses.
    """
    return _run(reader, text, params, since, now, lambda sql, values: _as_kql_types(reader.sql(sql, values)),
                _as_kql_types)


def run_kql_rows(reader: StoreReader, text: str, params: dict[str, Any] | None = None, *,
                 since: dt.timedelta | None = None, now: dt.datetime | None = None) -> Rows:
    """run_kql() for printing: the result as plain rows, read without Arrow from a file (pyarrow's import costs a
    short command more than its query). Values are the same: a HUGEINT sum reaches Python as an int either way."""
    return _run(reader, text, params, since, now, lambda sql, values: fetch_rows(reader, sql, values),
                lambda answer: answer if isinstance(answer, Rows) else Rows.from_arrow(_as_kql_types(answer)),
                rows=True)


def kql_answer(reader: LocalReader, text: str, params: dict[str, Any] | None = None, *,
               since: dt.timedelta | None = None, now: dt.datetime | None = None) -> Rows | pa.Table:
    """What the read API sends a client that only prints: plain rows when every column's type allows, else the
    Arrow table run_kql() gives."""
    def fetch(sql: str, values: dict[str, Any] | None) -> Rows | pa.Table:
        answer = reader.answer(sql, values)
        return answer if isinstance(answer, Rows) else _as_kql_types(answer)
    return _run(reader, text, params, since, now, fetch, _as_kql_types)


def fetch_rows(reader: StoreReader, sql: str, params: Any = None) -> Rows:
    """`reader`'s answer to `sql` as plain rows (for readers that only give Arrow tables, converted)."""
    rows = getattr(reader, "rows", None)
    return rows(sql, params) if callable(rows) else Rows.from_arrow(reader.sql(sql, params))


def _run(reader: StoreReader, text: str, params: dict[str, Any] | None, since: dt.timedelta | None,
         now: dt.datetime | None, fetch: Callable[[str, dict[str, Any] | None], T],
         from_remote: Callable[[Any], T], *, rows: bool = False) -> T:
    remote = getattr(reader, "kql", None)
    if callable(remote):  # a running collector's read API translates and runs it
        answer = remote(text, params, since.total_seconds() if since is not None else None,
                        now.isoformat() if now is not None else None, **({"rows": True} if rows else {}))
        if answer is not None:
            return from_remote(answer)
    compiled = compile_kql(reader, text, params, since=since, now=now)
    try:
        return fetch(compiled.sql, compiled.params or None)
    except QueryError:
        if compiled.fallback_sql is None:
            raise
        return fetch(compiled.fallback_sql, compiled.params or None)


def _as_kql_types(table: pa.Table) -> pa.Table:
    """KQL's `sum()` of longs is a long; DuckDB widens it to HUGEINT, which reaches Arrow as decimal(38, 0)."""
    import pyarrow as pa

    for index, column_field in enumerate(table.schema):
        if pa.types.is_decimal(column_field.type) and column_field.type.scale == 0:
            try:
                table = table.set_column(index, column_field.name, table.column(index).cast(pa.int64()))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass  # beyond a long: keep the exact decimal
    return table


def compile_kql(reader: StoreReader | None, text: str, params: dict[str, Any] | None = None, *,
                since: dt.timedelta | None = None, now: dt.datetime | None = None) -> Compiled:
    """Translate `text` for the store behind `reader` (its schema drives join/union column lists).

    Translations are cached (dashboards run the same tiles again and again); only the time bound changes per call.
    """
    schema = store_schema(reader) if reader is not None else None
    text = workbook_time_range(text, since, now)
    key = (text, _params_key(params), _schema_key(schema), since is not None)
    cached = _compiled_cache.get(key) if key[1] is not None else None
    if cached is None and key[1] is not None:
        cached = _from_disk(text, params, schema, since is not None)
    if cached is None:
        cached = _compile(text, params, schema, since is not None)
        if key[1] is not None:
            _to_disk(text, params, schema, since is not None, cached)
    if key[1] is not None:
        _compiled_cache[key] = cached
        while len(_compiled_cache) > _CACHE_SIZE:
            _compiled_cache.pop(next(iter(_compiled_cache)))
    sql_params = dict(cached.params)
    if _SINCE_SLOT in cached.sql or (cached.fallback_sql and _SINCE_SLOT in cached.fallback_sql):
        moment = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc).replace(tzinfo=None)
        sql_params[_SINCE_SLOT] = moment - since  # type: ignore[operator]
    return Compiled(cached.sql, sql_params, cached.fallback_sql)


# --- workbook time-range placeholders ------------------------------------------------------------------------------
_PLACEHOLDER = re.compile(r"\{TimeRange:(start|end|grain)\}")
DEFAULT_WORKBOOK_RANGE = dt.timedelta(hours=24)
# Grains a time chart can use, smallest first; the first giving at most ~100 bins over the range is taken.
_GRAINS = [("1m", 60), ("5m", 300), ("15m", 900), ("30m", 1800), ("1h", 3600), ("3h", 10800), ("6h", 21600),
           ("12h", 43200), ("1d", 86400), ("7d", 604800)]


def workbook_time_range(text: str, since: dt.timedelta | None, now: dt.datetime | None = None) -> str:
    """Replace Azure Monitor Workbook placeholders `{TimeRange:start}`, `{TimeRange:end}`, `{TimeRange:grain}`.

    A query pasted from a workbook (Microsoft's Agents workbook uses them in `make-series ... from
    {TimeRange:start} to {TimeRange:end} step {TimeRange:grain}`) then runs unmodified: the range is `since`
    (24 h when not given) ending now, the grain the smallest of 1m, 5m, 15m... giving at most about 100 bins.
    The text stays the same from one run to the next (`ago(...)`, `now()`) so its translation is cached; with an
    explicit `now`, the bounds are written as datetimes.
    """
    if "{TimeRange:" not in text:
        return text
    span = since or DEFAULT_WORKBOOK_RANGE
    seconds = span.total_seconds()
    grain = next((name for name, size in _GRAINS if seconds / size <= 100), _GRAINS[-1][0])
    if now is None:
        bounds = {"start": f"ago({int(seconds)}s)", "end": "now()"}
    else:
        moment = now.astimezone(dt.timezone.utc).replace(tzinfo=None)
        bounds = {"start": f"datetime({(moment - span).isoformat()})", "end": f"datetime({moment.isoformat()})"}
    bounds["grain"] = grain
    return _PLACEHOLDER.sub(lambda match: bounds[match.group(1)], text)


_CACHE_SIZE = 256
_compiled_cache: dict[tuple[Any, ...], Compiled] = {}


def _disk_key(text: str, params: dict[str, Any] | None, schema: dict[str, list[str]] | None,
              time_filtered: bool) -> str:
    return translation_cache.key(text, sorted((params or {}).items()), schema, time_filtered)


def _from_disk(text: str, params: dict[str, Any] | None, schema: dict[str, list[str]] | None,
               time_filtered: bool) -> Compiled | None:
    entry = translation_cache.load(_disk_key(text, params, schema, time_filtered))
    if entry is None or not isinstance(entry.get("sql"), str) or not isinstance(entry.get("params"), dict):
        return None
    fallback = entry.get("fallback_sql")
    return Compiled(entry["sql"], entry["params"], fallback if isinstance(fallback, str) else None)


def _to_disk(text: str, params: dict[str, Any] | None, schema: dict[str, list[str]] | None, time_filtered: bool,
             compiled: Compiled) -> None:
    if all(isinstance(value, (str, int, float, bool, type(None))) for value in compiled.params.values()):
        translation_cache.save(_disk_key(text, params, schema, time_filtered),
                               {"sql": compiled.sql, "params": compiled.params, "fallback_sql": compiled.fallback_sql})


def _params_key(params: dict[str, Any] | None) -> tuple[Any, ...] | None:
    """A hashable form of the parameter values, or None when they cannot be hashed (then nothing is cached)."""
    if not params:
        return ()
    try:
        key = tuple(sorted(params.items()))
        hash(key)
        return key
    except TypeError:
        return None


def _schema_key(schema: dict[str, list[str]] | None) -> int:
    return hash(tuple((table, tuple(columns)) for table, columns in sorted(schema.items()))) if schema else 0


def _compile(text: str, params: dict[str, Any] | None, schema: dict[str, list[str]] | None,
             time_filtered: bool) -> Compiled:
    translation = _translate(text, params, schema)
    tree = _parse(translation.sql_text)
    if tree is None:
        if time_filtered:
            raise QueryError("--since cannot be applied to this query: DuckDB cannot read its SQL's structure")
        return Compiled(translation.sql_text, dict(translation.params))
    sources = sql_tree.base_tables(tree)
    if schema is not None:
        _check_tables(text, sources, schema)
    time_filtered = time_filtered and any(table in TIME_COLUMNS for table in sources)
    plain = _with_sources(tree, True) if time_filtered else translation.sql_text
    shortcut = None
    if sources & (set(_SHORTCUT_TABLES) | set(_EVENT_SHORTCUT_TABLES) | _LEAN_TABLES):
        # Translated without the schema, `extend` and `project-away` keep `SELECT *`, so the hidden columns the
        # shortcut reads survive them. Joins, unions and `arg_max(x, *)` need the schema: no shortcut for those.
        try:
            schemaless = _translate(text, params, None)
        except QueryError:
            schemaless = None
        schemaless_tree = _parse(schemaless.sql_text) if schemaless is not None else None
        if schemaless_tree is not None:
            shortcut = (_late_rows_sql(text, schemaless_tree, time_filtered)
                        or _shortcut_sql(text, schemaless_tree, sources, time_filtered))
        elif schema is not None:
            shortcut = _narrow_join_sql(text, params, schema, sources, time_filtered)
    if shortcut is None:
        return Compiled(plain, dict(translation.params))
    return Compiled(shortcut, dict(translation.params), fallback_sql=plain)


# --- translation and errors --------------------------------------------------------------------------------------------
@dataclass
class _Translation:
    sql_text: str
    params: dict[str, Any]


def _translate(text: str, params: dict[str, Any] | None, schema: dict[str, list[str]] | None) -> _Translation:
    if not text or not text.strip():
        raise QueryError("empty query: give a KQL query such as `dependencies | take 10`")
    if "make-series" in text.lower():
        from tracekit.query import make_series

        series = make_series.find(text, _tokens(text))
        if series is not None:
            sql, values = make_series.translate(text, series, lambda piece: _translate_piece(piece, params, schema))
            return _Translation(sql, values)
    return _translate_piece(text, params, schema)


def _translate_piece(text: str, params: dict[str, Any] | None, schema: dict[str, list[str]] | None) -> _Translation:
    """duckdb-kql's translation of `text` after tracekit's rewrites, its errors as QueryError."""
    import duckdb_kql
    from duckdb_kql.errors import KqlError, KqlSchemaError

    rewritten = expand_percentiles(text)
    try:
        result = duckdb_kql.to_sql(rewritten, schema=schema, parameters=params or None, allow_write=False)
    except KqlSchemaError as error:
        if error.hint and "unknown table" in error.hint:
            _check_tables(text, {error.name}, {})
        raise _query_error(error, text) from None
    except KqlError as error:
        raise _query_error(error, text) from None
    if result.unbound:
        names = ", ".join(result.unbound)
        raise QueryError(f"no value for query parameter {names}: pass --param {result.unbound[0]}=VALUE "
                         "(or give the declaration a default)")
    return _Translation(str(result), dict(result.parameters))


def _check_tables(text: str, sources: set[str], schema: dict[str, list[str]]) -> None:
    """A clear error, with its position, for a table the store does not have (instead of DuckDB's catalog error)."""
    for table in sorted(sources):
        if table.startswith("_") or table in schema:
            continue
        line = column = None
        for token in _tokens(text):
            if token.text == table:
                line, column = token.line, token.column + 1
                break
        known = ", ".join(name for name in views.view_names() if name in schema or not schema)
        raise QueryError(f"unknown table '{table}'; tables here: {known}", line=line, column=column)


def _shorten(message: str) -> str:
    """ANTLR lists every token it could accept; past a handful that list is noise."""
    match = re.search(r" expecting \{([^}]*)\}", message)
    if match and match.group(1).count(",") > 8:
        return message[:match.start()] + " (the query is incomplete or has a typo here)"
    return message


_NEAR = re.compile(r";?\s*near (['\"]).*\1\s*$")


# Tabular operators after a `|`, for naming a misspelt one (the grammar only reports the `|` before it).
_OPERATORS = ("as", "consume", "count", "distinct", "evaluate", "extend", "facet", "find", "fork", "getschema",
              "graph-match", "invoke", "join", "limit", "lookup", "make-graph", "make-series", "mv-apply", "mv-expand",
              "order", "parse", "parse-where", "partition", "project", "project-away", "project-keep",
              "project-rename", "project-reorder", "range", "reduce", "render", "sample", "sample-distinct",
              "scan", "search", "serialize", "sort", "summarize", "take", "top", "top-hitters", "top-nested",
              "union", "where")


def _unknown_operator(text: str, line: int, column: int) -> QueryError | None:
    """When the parser stopped at a `|` followed by a word that is no operator: name the word, suggest the nearest."""
    tokens = _tokens(text)
    for index, token in enumerate(tokens[:-1]):
        if (token.line, token.column) == (line, column) and token.text == "|":
            word = tokens[index + 1]
            if word.text.lower() in _OPERATORS or not re.fullmatch(r"[A-Za-z_][\w-]*", word.text):
                return None
            close = difflib.get_close_matches(word.text.lower(), _OPERATORS, n=1)
            hint = f"; did you mean `{close[0]}`?" if close else ""
            return QueryError(f"KQL syntax error: `{word.text}` is not a query operator{hint}",
                              line=word.line, column=word.column + 1)
    return None


def _query_error(error: KqlError, text: str) -> QueryError:
    """duckdb-kql's error as a QueryError with a 1-based line and column where one is known."""
    from duckdb_kql.errors import KqlSchemaError, KqlSyntaxError, KqlUnsupportedError

    if isinstance(error, KqlSyntaxError) and error.diagnostics:
        first = error.diagnostics[0]
        unknown = _unknown_operator(text, first.span.line, first.span.column)
        if unknown is not None:
            return unknown
        return QueryError(f"KQL syntax error: {_shorten(first.message)}", line=first.span.line, column=first.span.column + 1)
    if isinstance(error, KqlUnsupportedError):
        construct = error.construct
        if error.span is not None:
            # Name the operator as the user wrote it (`make-series`), not by its grammar rule (MakeSeriesOperator).
            word = next((token.text for token in _tokens(text)
                         if (token.line, token.column) == (error.span.line, error.span.column)), None)
            construct = f"`{word}`" if word else construct
        reason = f"not supported by the local KQL engine: {construct}"
        # duckdb-kql's hint quotes the source with its spaces removed ("near 'make-seriescount()on...'"): the
        # position already points there.
        hint = _NEAR.sub("", error.hint or "").strip()
        if hint:
            reason += f" ({hint})"
        reason += "; see docs/kql.md for what works"
        if error.span is not None:
            return QueryError(reason, line=error.span.line, column=error.span.column + 1)
        return QueryError(reason)
    if isinstance(error, KqlSchemaError):
        return QueryError(f"KQL schema error: {error}")
    return QueryError(f"KQL error: {error}")


def store_schema(reader: StoreReader) -> dict[str, list[str]]:
    """Table -> column names of everything a query can read (store tables and views), cached per reader."""
    cached = _schema_cache.get(reader)
    if cached is not None:
        return cached
    rows = fetch_rows(
        reader,
        "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
        "WHERE NOT starts_with(column_name, '__') AND NOT starts_with(table_name, 'tk_') "
        "AND NOT starts_with(table_name, 'sqlite_') AND table_name <> 'tracekit_meta' "
        "AND schema_name IN ('main', 'temp') ORDER BY table_name, schema_name, column_index"
    ).dicts()
    schema: dict[str, list[str]] = {}
    shadowed = {row["table_name"] for row in rows if row["schema_name"] == "temp"}
    for row in rows:
        # A TEMP view (a reader's own, on a store from another version) hides the store's view of the same name.
        if row["schema_name"] == "temp" or row["table_name"] not in shadowed:
            schema.setdefault(row["table_name"], []).append(row["column_name"])
    try:
        _schema_cache[reader] = schema
    except TypeError:
        pass  # a reader that cannot be weakly referenced is simply not cached
    return schema


_schema_cache: "weakref.WeakKeyDictionary[Any, dict[str, list[str]]]" = weakref.WeakKeyDictionary()


# --- percentiles() --------------------------------------------------------------------------------------------------
def _tokens(text: str) -> list[Any]:
    from antlr4 import InputStream
    from duckdb_kql._antlr.KqlLexer import KqlLexer

    lexer = KqlLexer(InputStream(text))
    lexer.removeErrorListeners()
    return [token for token in lexer.getAllTokens() if token.channel == 0]


def expand_percentiles(text: str) -> str:
    """Rewrite `percentiles(x, 50, 95)` into `percentile_x_50 = percentile(x, 50), percentile_x_95 = ...`.

    duckdb-kql has `percentile()` but not the several-ranks form. Kusto names the outputs `percentile_<col>_<rank>`
    (a dot in the rank becomes `_`); a `(p50, p95) = percentiles(...)` tuple names them instead.
    """
    if "percentiles" not in text.lower():
        return text
    tokens = _tokens(text)
    edits: list[tuple[int, int, str]] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if (token.text.lower() == "percentiles" and index + 1 < len(tokens) and tokens[index + 1].text == "("):
            close, args = _call_arguments(tokens, index + 1, text)
            if close is None or len(args) < 2:
                index += 1
                continue
            value, ranks = args[0], args[1:]
            start = token.start
            names = None
            # `(a, b) = percentiles(...)`: the tuple names the outputs.
            if index >= 2 and tokens[index - 1].text == "=" and tokens[index - 2].text == ")":
                open_index = index - 2
                while open_index >= 0 and tokens[open_index].text != "(":
                    open_index -= 1
                names = [tokens[i].text for i in range(open_index + 1, index - 2) if tokens[i].text != ","]
                if len(names) == len(ranks):
                    start = tokens[open_index].start
                else:
                    names = None
            if names is None:
                column = value if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value) else ""
                names = [f"percentile_{column}_{rank.replace('.', '_')}" for rank in ranks]
            replacement = ", ".join(f"{name} = percentile({value}, {rank})" for name, rank in zip(names, ranks))
            edits.append((start, tokens[close].stop + 1, replacement))
            index = close + 1
            continue
        index += 1
    for start, stop, replacement in reversed(edits):
        text = text[:start] + replacement + text[stop:]
    return text


def _call_arguments(tokens: list[Any], open_index: int, text: str) -> tuple[int | None, list[str]]:
    depth = 0
    args: list[str] = []
    arg_start = tokens[open_index].stop + 1
    for index in range(open_index, len(tokens)):
        kind = tokens[index].text
        if kind in ("(", "[", "{"):
            depth += 1
        elif kind in (")", "]", "}"):
            depth -= 1
            if depth == 0:
                args.append(text[arg_start:tokens[index].start].strip())
                return index, [arg for arg in args if arg]
        elif kind == "," and depth == 1:
            args.append(text[arg_start:tokens[index].start].strip())
            arg_start = tokens[index].stop + 1
    return None, []


# --- SQL rewriting on DuckDB's parse tree: time range and typed-column shortcuts --------------------------------------
# duckdb-kql has no hook for how it renders a table or an expression (docs/upstream/duckdb-kql-hook.md): its SQL is
# parsed by DuckDB (tracekit.query.sql_tree), tables and expressions are replaced as tree nodes, and the tree is
# rendered back. Text that merely looks like a table or an accessor (a string literal, a comment) is never touched.
def _parse(sql: str) -> dict[str, Any] | None:
    try:
        return sql_tree.parse(sql)
    except ValueError:
        return None


def _with_sources(tree: dict[str, Any], time_filtered: bool, *,
                  shortcut_sources: dict[str, str] | None = None) -> str:
    """The SQL of `tree` with its tables pointed at their time-filtered forms, and shortcut tables at
    `shortcut_sources`.

    App Insights views are filtered on their hidden `__tk_time` column, the store's own TIMESTAMP column, so DuckDB
    prunes row groups by zone map (their `timestamp` is recomputed from nanoseconds to match the exporter exactly).
    """
    since = f"${_SINCE_SLOT}"
    shortcut_sources = shortcut_sources or {}

    def source(table: str) -> str | None:
        if table not in TIME_COLUMNS:
            return None
        has_wide = table in views.CLASSIC_TABLES or table in views.WORKSPACE_TABLES
        where = f' WHERE "{views.HIDDEN_PREFIX}time" >= {since}' if time_filtered else ""
        if table in shortcut_sources:
            return f"(SELECT * FROM {shortcut_sources[table]}{where})" if where else shortcut_sources[table]
        if has_wide and time_filtered:
            return f"(SELECT {_PUBLIC_COLUMNS} FROM {views.wide_source(table)}{where})"
        if time_filtered:
            return f'(SELECT * FROM "{table}" WHERE "{TIME_COLUMNS[table]}" >= {since})'
        return None

    return sql_tree.render(sql_tree.replace_tables(tree, source))


_PUBLIC_COLUMNS = f"COLUMNS(lambda c: NOT starts_with(c, '{views.HIDDEN_PREFIX}'))"
_DIMENSION_COLUMNS = ("customDimensions", "Properties")
_MEASUREMENT_COLUMNS = ("customMeasurements", "Measurements")
# The JSON path duckdb-kql writes for x["key"]: `$.key` for a plain name, `$."gen_ai.x"` otherwise.
_KEY_PATH = re.compile(r'\$\.(?:"([^"\'\\]+)"|([A-Za-z_][A-Za-z0-9_]*))')
# Operators after which a pipeline's columns are spelled out, so a source needs only the columns the SQL names.
_SHAPING_OPERATORS = {"summarize", "project", "count", "distinct", "graph-match", "make-series"}


def _accessor(node: dict[str, Any], columns: tuple[str, ...] = _DIMENSION_COLUMNS) -> str | None:
    """The key when `node` is duckdb-kql's `customDimensions["key"]` (json_extract of the dynamic column), or of
    another of `columns`."""
    arguments = sql_tree.function(node, "json_extract")
    if arguments is None or len(arguments) != 2 or sql_tree.column(arguments[0]) not in columns:
        return None
    path = sql_tree.string_constant(arguments[1])
    match = _KEY_PATH.fullmatch(path) if path is not None else None
    return (match.group(1) or match.group(2)) if match else None


def _unwrapped_accessor(node: dict[str, Any]) -> str | None:
    """The key when `node` is `customDimensions["key"] ->> '$'` (the accessor read as text)."""
    arguments = sql_tree.function(node, "->>")
    if arguments is None or len(arguments) != 2 or sql_tree.string_constant(arguments[1]) != "$":
        return None
    return _accessor(arguments[0])


def _shortcut_sql(text: str, tree: dict[str, Any], sources: set[str], time_filtered: bool) -> str | None:
    """Faster SQL with the same answer, or None when no shortcut applies.

    Two shortcuts, for requests/dependencies (and their App* twins): customDimensions[...] reads served from typed
    columns or from one attribute (instead of the whole customDimensions object), and, when the query spells out
    its output columns, a lean source that computes only the columns the SQL names.
    """
    dimension_tables = {table for table in sources if table in views.CLASSIC_TABLES or table in views.WORKSPACE_TABLES}
    if not dimension_tables:
        return None
    keys = [key for node in sql_tree.walk(tree) if (key := _accessor(node)) is not None]
    measured = dimension_tables <= set(_SHORTCUT_TABLES) and any(
        _accessor(node, _MEASUREMENT_COLUMNS) in views.TYPED_MEASUREMENTS for node in sql_tree.walk(tree))
    has_accessors = bool(keys) or measured
    if dimension_tables <= set(_SHORTCUT_TABLES):
        excluded, typed_columns = views.span_key_excluded, views.TYPED_DIMENSIONS
    elif dimension_tables <= set(_EVENT_SHORTCUT_TABLES):
        excluded, typed_columns = views.log_key_excluded, {}
    elif has_accessors:
        return None  # traces/exceptions mix span events and logs, whose attribute rules differ
    else:
        excluded, typed_columns = views.span_key_excluded, {}  # unused: there is no accessor to rewrite
    tokens = _tokens(text)
    if has_accessors and not _accessors_only(tokens, _DIMENSION_COLUMNS + (_MEASUREMENT_COLUMNS if measured else ())):
        return None
    if typed_columns == {} and "logger_name" in keys:
        return None  # logger_name is the scope name unless an attribute says otherwise: only the view knows
    dimensions = _Dimensions(excluded, typed_columns)
    rewritten = sql_tree.replace_expressions(tree, dimensions.replace) if has_accessors else tree
    shortcut_sources = {table: views.wide_source(table) for table in dimension_tables}
    lean = None
    if _main_output_is_shaped(tokens):
        named = _named_columns(rewritten, time_filtered)
        lean = {table: views.lean_source(table, named) for table in dimension_tables}
        if all(lean.values()):
            shortcut_sources = lean  # type: ignore[assignment]
        else:
            lean = None
    if not has_accessors and lean is None:
        return None
    rendered = _with_sources(rewritten, time_filtered, shortcut_sources=shortcut_sources)
    return f"SELECT {_PUBLIC_COLUMNS} FROM (\n{rendered}\n)"


# --- whole rows of a top-N / take: late materialization -------------------------------------------------------------
_ROWID = f"{views.HIDDEN_PREFIX}rowid"
_LATE_TABLES = set(_SHORTCUT_TABLES)  # the span views: tk_<name>_wide() carries the spans row id


def _late_rows_sql(text: str, tree: dict[str, Any], time_filtered: bool) -> str | None:
    """`dependencies | top 20 by timestamp desc` (or `take 20`, `sort by x | take 20`, after `where`s), which
    returns whole rows: choose the rows on a lean source that computes only the columns the pipeline names plus the
    spans row id, then compute the view's columns (customDimensions above all, tens of µs a row with recorded
    content) for those rows only, fetched back by row id, and order and limit them again as the query does. Same
    rows (the chosen ones are exactly the N a top-N over the view may give, ties included), same columns, same
    order. None when the query has another shape.

    DuckDB's own late materialization does not reach through the views (a join with the resources, and it is off on
    store connections, tracekit/store/database.py): this is the same plan, written out."""
    shape = _top_rows_shape(tree)
    if shape is None or shape[0] not in _LATE_TABLES:
        return None
    table, last, modifiers = shape
    narrow_tree = tree
    tokens = _tokens(text)
    indexed = _DIMENSION_COLUMNS + _MEASUREMENT_COLUMNS
    if any(token.text in indexed for token in tokens) and _accessors_only(tokens, indexed):
        narrow_tree = sql_tree.replace_expressions(
            tree, _Dimensions(views.span_key_excluded, views.TYPED_DIMENSIONS).replace)
    narrow = views.lean_source(table, _named_columns(narrow_tree, time_filtered) | {_ROWID})
    if narrow is None:
        return None
    # The view's rows with those ids, ordered and limited as the query's last step does (n rows in, n rows out).
    main = sql_tree.parse(f'SELECT * FROM {views.wide_source(table)} AS {table}_rows '
                          f'WHERE "{_ROWID}" IN (SELECT "{_ROWID}" FROM "{last}")')["statements"][0]["node"]
    main["modifiers"] = copy.deepcopy(modifiers)
    main["cte_map"] = copy.deepcopy(narrow_tree["statements"][0]["node"]["cte_map"])
    late = copy.deepcopy(narrow_tree)
    late["statements"][0]["node"] = main
    rendered = _with_sources(late, time_filtered, shortcut_sources={table: narrow})
    return f"SELECT {_PUBLIC_COLUMNS} FROM (\n{rendered}\n)"


def _top_rows_shape(tree: dict[str, Any]) -> tuple[str, str, list[dict[str, Any]]] | None:
    """(table, last step's CTE, its ORDER BY + LIMIT modifiers) when the SQL is duckdb-kql's chain of whole-row steps
    over one table ending in a limit: `WITH _s0 AS (SELECT * FROM t), _s1 AS (SELECT * FROM _s0 WHERE ...), ...,
    _sN AS (SELECT * FROM _sN-1 [ORDER BY ...] LIMIT n) SELECT * FROM _sN`. A `sort by` step right before a `take`
    lends the take its ORDER BY; any other step (extend, project, summarize, a join...) is another shape."""
    statements = tree.get("statements", [])
    if len(statements) != 1:
        return None
    main = statements[0]["node"]
    steps = [(entry["key"], entry["value"].get("query_node", {})) for entry in main.get("cte_map", {}).get("map", [])]
    if not steps or not _whole_rows(main) or main["modifiers"] or _reads(main) != steps[-1][0]:
        return None
    names = [name for name, _ in steps]
    for index, (name, node) in enumerate(steps):
        source = _reads(node)
        if not _whole_rows(node) or source is None or (index and source != names[index - 1]) \
                or (not index and source in names) or node.get("cte_map", {}).get("map"):
            return None
        if any(modifier["type"] not in ("ORDER_MODIFIER", "LIMIT_MODIFIER") for modifier in node["modifiers"]):
            return None
    table = _reads(steps[0][1])
    last = steps[-1][1]
    kinds = [modifier["type"] for modifier in last["modifiers"]]
    if table is None or "LIMIT_MODIFIER" not in kinds or last["modifiers"][-1]["type"] != "LIMIT_MODIFIER" \
            or last["modifiers"][-1].get("offset") is not None:
        return None
    modifiers = last["modifiers"]
    if "ORDER_MODIFIER" not in kinds and len(steps) > 1:
        before = steps[-2][1]
        if last["where_clause"] is not None:
            return None
        if before["modifiers"] and [m["type"] for m in before["modifiers"]] == ["ORDER_MODIFIER"] \
                and before["where_clause"] is None:
            modifiers = before["modifiers"] + modifiers
    if "ORDER_MODIFIER" not in [m["type"] for m in modifiers] and any(
            m["type"] == "ORDER_MODIFIER" for _, node in steps for m in node["modifiers"]):
        return None  # a sort further up, then a where: which rows a take keeps depends on an order not kept here
    return table, steps[-1][0], modifiers


def _whole_rows(node: dict[str, Any]) -> bool:
    """A plain SELECT * (no EXCLUDE/REPLACE/COLUMNS, grouping, DISTINCT, QUALIFY, SAMPLE) from one table."""
    select = node.get("select_list") or []
    return (node.get("type") == "SELECT_NODE" and len(select) == 1 and select[0].get("class") == "STAR"
            and not select[0].get("exclude_list") and not select[0].get("replace_list")
            and not select[0].get("columns") and not select[0].get("relation_name")
            and not select[0].get("qualified_exclude_list") and not select[0].get("rename_list")
            and not node.get("group_expressions") and not node.get("group_sets") and node.get("having") is None
            and node.get("qualify") is None and node.get("sample") is None)


def _reads(node: dict[str, Any]) -> str | None:
    """The table a SELECT node reads, when it reads exactly one plain table or CTE."""
    source = node.get("from_table") or {}
    if source.get("type") != "BASE_TABLE" or source.get("schema_name") or source.get("catalog_name"):
        return None
    return source["table_name"]


def _named_columns(tree: dict[str, Any], time_filtered: bool) -> set[str]:
    named = sql_tree.column_names(tree)
    if time_filtered:
        named.add(f"{views.HIDDEN_PREFIX}time")
    return named


class _Dimensions:
    """Replaces customDimensions[key] reads by typed-column or one-attribute reads (same answer, less work)."""

    def __init__(self, excluded: Any, typed_columns: dict[str, str]) -> None:
        self.excluded = excluded
        self.typed_columns = typed_columns

    def replace(self, node: dict[str, Any]) -> dict[str, Any] | None:
        conversion = self._token_conversion(node)
        if conversion is not None:
            return sql_tree.expression(conversion)
        measurement = self._measurement(node)
        if measurement is not None:
            return sql_tree.expression(measurement)
        key = _unwrapped_accessor(node)
        if key is not None:
            return sql_tree.expression(self.value(key, unwrapped=True))
        key = _accessor(node)
        if key is not None:
            return sql_tree.expression(self.value(key, unwrapped=False))
        return None

    def value(self, key: str, *, unwrapped: bool) -> str:
        """SQL for customDimensions[key] (JSON), or its text when `unwrapped`."""
        column = self.typed_columns.get(key)
        if self.excluded(key):
            return "CAST(NULL AS VARCHAR)" if unwrapped else "CAST(NULL AS JSON)"
        if column is not None:
            typed = f'"{views.HIDDEN_PREFIX}{column}"'
            return typed if unwrapped else f"CAST(to_json({typed}) AS JSON)"
        value = self.generic(key)
        integer_column = views.TYPED_INTEGER_DIMENSIONS.get(key) if self.typed_columns else None
        if integer_column is not None:
            typed = f'"{views.HIDDEN_PREFIX}{integer_column}"'
            value = (f"CASE WHEN {typed} IS NOT NULL AND {self.integer_literal(key)} "
                     f"THEN to_json(CAST({typed} AS VARCHAR)) ELSE {value} END")
        return f"({value} ->> '$')" if unwrapped else value

    @staticmethod
    def generic(key: str) -> str:
        """customDimensions[key] from the one attribute, for keys without a typed column."""
        path = "'$.\"" + key + "\"'"
        return f'tk_dimension("{views.HIDDEN_PREFIX}attributes", {path}, {views.value_limit(key)})'

    @staticmethod
    def integer_literal(key: str) -> str:
        """Whether the attribute is the typed token column's integer literal.

        The typed column may also come from a deprecated key, and the exporter prints 12.0 for a float.
        `"key":<the typed value>` followed by `,` or `}` in the stored JSON proves the attribute is that int literal
        (keys are unique, and a quote inside a string value is escaped): one text match instead of a parse.
        Measured on 400k rows: two contains() 170 ms (the second runs only where the first fails), strpos + substr
        470 ms."""
        text_sql = f'CAST("{views.HIDDEN_PREFIX}attributes" AS VARCHAR)'
        typed = f'"{views.HIDDEN_PREFIX}{views.TYPED_INTEGER_DIMENSIONS[key]}"'
        literal = f"'\"{key}\":' || CAST({typed} AS VARCHAR)"
        return f"(contains({text_sql}, {literal} || ',') OR contains({text_sql}, {literal} || '}}'))"

    def _measurement(self, node: dict[str, Any]) -> str | None:
        """`customMeasurements["tracekit.cost_usd"]` of a span, and `toreal()`/`todouble()` of it, read from the
        store column the view builds that measurement from (views.TYPED_MEASUREMENTS) instead of building and
        parsing a JSON object per row. Absent stays NULL."""
        if not self.typed_columns:
            return None
        key = _accessor(node, _MEASUREMENT_COLUMNS)
        if key in views.TYPED_MEASUREMENTS:
            return f'CAST(to_json("{views.HIDDEN_PREFIX}{views.TYPED_MEASUREMENTS[key]}") AS JSON)'
        if node.get("type") != "ARRAY_EXTRACT" or len(node.get("children", [])) != 2:
            return None
        call, index = node["children"]
        arguments = sql_tree.function(call, "list_transform")
        if index.get("literal", {}).get("text") != "1" or arguments is None or len(arguments) != 2:
            return None
        items = sql_tree.function(arguments[0], "list_value")
        key = _accessor(items[0], _MEASUREMENT_COLUMNS) if items is not None and len(items) == 1 else None
        function = next((name for lam, name in _conversion_lambdas() if sql_tree.same(lam, arguments[1])), None)
        if key not in views.TYPED_MEASUREMENTS or function not in ("todouble", "toreal"):
            return None
        return f'CAST("{views.HIDDEN_PREFIX}{views.TYPED_MEASUREMENTS[key]}" AS DOUBLE)'

    def _token_conversion(self, node: dict[str, Any]) -> str | None:
        """`toint(customDimensions["gen_ai.usage.input_tokens"])` and friends, read from the typed column.

        duckdb-kql converts a dynamic value with a type-dispatching lambda (`list_transform([v], lambda _v: ...)[1]`)
        that costs several JSON parses a row. For a token count that is an integer literal the answer is known
        without it: the exporter's string of an integer, converted."""
        if not self.typed_columns or node.get("type") != "ARRAY_EXTRACT" or len(node.get("children", [])) != 2:
            return None
        call, index = node["children"]
        if index.get("class") != "CONSTANT" or index.get("literal", {}).get("text") != "1":
            return None
        arguments = sql_tree.function(call, "list_transform")
        if arguments is None or len(arguments) != 2:
            return None
        items = sql_tree.function(arguments[0], "list_value")
        key = _accessor(items[0]) if items is not None and len(items) == 1 else None
        if key not in views.TYPED_INTEGER_DIMENSIONS or self.excluded(key):
            return None
        function = next((name for lam, name in _conversion_lambdas() if sql_tree.same(lam, arguments[1])), None)
        if function is None:
            return None
        slow = copy.deepcopy(node)
        slow["children"][0]["arguments"][0]["expression"]["arguments"][0]["expression"] = \
            sql_tree.expression(self.generic(key))
        typed = f'"{views.HIDDEN_PREFIX}{views.TYPED_INTEGER_DIMENSIONS[key]}"'
        fast = _FAST_CONVERSION[function].format(v=typed)
        return (f"(CASE WHEN {typed} IS NOT NULL AND {self.integer_literal(key)} THEN {fast} "
                f"ELSE {sql_tree.expression_sql(slow)} END)")


# Tokens after which a query may read columns it does not name (so a narrowed schema could change its answer).
_STAR_TOKENS = {"*", "pack_all", "bag_pack", "pack", "project-away", "project-keep", "project-reorder",
                "columnifexists", "getschema", "evaluate", "customDimensions", "Properties"}
_LEAN_TABLES = {"requests", "dependencies", "customEvents", "exceptions", "AppRequests", "AppDependencies",
                "AppEvents", "AppExceptions"}


def _narrow_join_sql(text: str, params: dict[str, Any] | None, schema: dict[str, list[str]],
                     sources: set[str], time_filtered: bool) -> str | None:
    """For joins, unions and lookups (which duckdb-kql translates only with the schema): when the main statement
    spells out its result and nothing reads columns by pattern, translate with the lean-capable tables narrowed to
    the columns the query names, and read those tables from lean sources. Columns a query never names cannot
    change its answer, and every column it names is still there. customDimensions/customMeasurements that are only
    ever indexed, on requests/dependencies alone, are read from typed columns as in _shortcut_sql (`let` sources and
    make-graph nodes land here: duckdb-kql translates them only with the schema)."""
    tokens = _tokens(text)
    indexed = _MEASUREMENT_COLUMNS + _DIMENSION_COLUMNS
    if not _main_output_is_shaped(tokens) or any(
            token.text in _STAR_TOKENS - set(indexed) and not _is_product(tokens, index)
            for index, token in enumerate(tokens)):
        return None
    reads_dimensions = any(token.text in indexed for token in tokens)
    dimension_tables = {table for table in sources if table in views.CLASSIC_TABLES or table in views.WORKSPACE_TABLES}
    if reads_dimensions and not (dimension_tables <= set(_SHORTCUT_TABLES) and _accessors_only(tokens, indexed)):
        return None
    mentioned = {token.text for token in tokens}
    narrowed = {}
    for table, columns in schema.items():
        if table in _LEAN_TABLES:
            kept = [column for column in columns if column in mentioned]
            narrowed[table] = kept or columns[:1]
        else:
            narrowed[table] = columns
    try:
        tree = _parse(_translate(text, params, narrowed).sql_text)
    except QueryError:
        return None
    if tree is None:
        return None
    if reads_dimensions:
        tree = sql_tree.replace_expressions(tree, _Dimensions(views.span_key_excluded, views.TYPED_DIMENSIONS).replace)
    named = _named_columns(tree, time_filtered)
    lean = {table: views.lean_source(table, named) for table in sources if table in _LEAN_TABLES}
    if not lean or not all(lean.values()):
        return None
    rendered = _with_sources(tree, time_filtered, shortcut_sources=lean)  # type: ignore[arg-type]
    return f"SELECT {_PUBLIC_COLUMNS} FROM (\n{rendered}\n)"


_OPERAND_NAMES = ("IDENTIFIER", "LONGLITERAL", "INTLITERAL", "REALLITERAL", "DECIMALLITERAL")


def _is_product(tokens: list[Any], index: int) -> bool:
    """Whether the `*` at `index` multiplies (`a.Cost * a.itemCount`) or bounds a graph path (`[path*1..16]`)
    rather than standing for columns (`arg_max(x, *)`, `where * has`, `project-away a*`): it stands between two
    operands."""
    from duckdb_kql._antlr.KqlLexer import KqlLexer

    if tokens[index].text != "*" or index == 0 or index + 1 >= len(tokens):
        return False
    names = KqlLexer.symbolicNames
    before, after = tokens[index - 1], tokens[index + 1]
    return ((names[before.type] in _OPERAND_NAMES or before.text in (")", "]"))
            and (names[after.type] in _OPERAND_NAMES or after.text == "("))


# --- toint()/tolong()/todouble() of token counts ----------------------------------------------------------------------
_FAST_CONVERSION = {
    # The exporter sends str(int); converting that string: out-of-range toint is null, like TRY_CAST of the text.
    "toint": "CASE WHEN {v} BETWEEN -2147483648 AND 2147483647 THEN CAST({v} AS INTEGER) END",
    "tolong": "{v}",
    "todouble": "CAST({v} AS DOUBLE)",
    "toreal": "CAST({v} AS DOUBLE)",
}
_lambdas: list[tuple[dict[str, Any], str]] | None = None


def _conversion_lambdas() -> list[tuple[dict[str, Any], str]]:
    """The lambdas duckdb-kql converts a dynamic value with, learnt from duckdb-kql itself (so that another
    version's different lambda simply turns this shortcut off)."""
    global _lambdas
    if _lambdas is None:
        import duckdb_kql
        from duckdb_kql.errors import KqlError

        found = []
        for function in _FAST_CONVERSION:
            try:
                tree = sql_tree.parse(str(duckdb_kql.to_sql(f'T | extend x = {function}(customDimensions["k"])')))
            except (KqlError, ValueError):
                continue
            for node in sql_tree.walk(tree):
                arguments = sql_tree.function(node, "list_transform")
                items = sql_tree.function(arguments[0], "list_value") if arguments and len(arguments) == 2 else None
                if items is not None and len(items) == 1 and _accessor(items[0]) == "k":
                    found.append((arguments[1], function))
                    break
        _lambdas = found
    return _lambdas


def _main_output_is_shaped(tokens: list[Any]) -> bool:
    """True when the query's result columns are spelled out by its main statement (the one after the last `;`):
    one of its own pipe operators is summarize/project/count/distinct/graph-match. Then a source computing only the
    columns the SQL names cannot change the result; `let` statements alone do not count."""
    depth, statement_start = 0, 0
    for index, token in enumerate(tokens):
        if token.text in ("(", "[", "{"):
            depth += 1
        elif token.text in (")", "]", "}"):
            depth -= 1
        elif token.text == ";" and depth == 0:
            statement_start = index + 1
    depth = 0
    for index in range(statement_start, len(tokens)):
        text = tokens[index].text
        if text in ("(", "[", "{"):
            depth += 1
        elif text in (")", "]", "}"):
            depth -= 1
        elif text == "|" and depth == 0 and index + 1 < len(tokens):
            if tokens[index + 1].text in _SHAPING_OPERATORS:
                return True
    return False


def _accessors_only(tokens: list[Any], columns: tuple[str, ...] = _DIMENSION_COLUMNS) -> bool:
    """True when customDimensions/Properties (or the other `columns`) are only ever indexed (`x["k"]`, `x.k`),
    never reassigned or expanded."""
    for index, token in enumerate(tokens):
        if token.text in columns:
            following = tokens[index + 1].text if index + 1 < len(tokens) else ""
            if following not in ("[", "."):
                return False
    return True
