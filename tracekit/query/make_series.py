"""`make-series` for the local KQL engine: a thin extension built from what duckdb-kql already translates.

duckdb-kql refuses `make-series`, which Azure Monitor's Agents workbook uses for its runs-over-time chart. Kusto's
operator is a `summarize` by a bin of the axis, followed by spreading each group's values over a fixed array of
bins, with a default where a bin has no rows. So the query is cut in pieces that duckdb-kql does translate:

* the aggregation: the original text with `make-series` read as `summarize`, the axis clause blanked out, and one
  more group key, the bin index `__tk_k = bin((axis - origin) / step, 1)`;
* the scalars (`from`, `to`, `step`, each `default`) as `print v = ...`;
* anything after the operator, over a CTE named `__tk_series`.

Each piece keeps the original text at its original line and column (removed parts become spaces, newlines kept),
so an error in any of them points at the user's own text. The SQL around the pieces spreads the values: one row
per group, the aggregations as JSON arrays over the bins, then the axis array, in Kusto's column order.

Semantics follow the Kusto documentation: bins are `start + k * step` below the exclusive `end`; without `from` the
first bin with data (bins aligned as Kusto's `bin()` aligns them: datetimes on 0001-01-01, numbers on 0); without
`to` the last bin with data; `default` is 0 unless given. The range is computed over the whole input, so every
row's arrays share one axis. Not supported (a clear error): `kind=nonempty`, `hint.*` and the `in range(...)` form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

import duckdb

from tracekit.errors import QueryError

SERIES_CTE = "__tk_series"
_MAIN_ENDERS = {"|", ";"}
_OPEN, _CLOSE = {"(", "[", "{"}, {")", "]", "}"}


@dataclass
class _Aggregation:
    name: str | None  # the `Name =` the user gave, else None (then Kusto's derived name)
    start: int  # char span of the aggregation's text (the `Name =` included), the default excluded
    stop: int
    default: tuple[int, int] | None = None  # span of the default's expression
    default_clause: tuple[int, int] | None = None  # span of `default = expr`, blanked in the summarize


@dataclass
class MakeSeries:
    """Where the pieces of a main statement's `make-series` sit in the query text (character offsets)."""

    statement_start: int  # where the main statement begins (everything before is `let`/`declare` statements)
    keyword: Any  # the `make-series` token
    aggregations: list[_Aggregation] = field(default_factory=list)
    axis: tuple[int, int] = (0, 0)
    axis_clause: tuple[int, int] = (0, 0)  # `on axis from ... to ... step ...`, blanked in the summarize
    start: tuple[int, int] | None = None
    end: tuple[int, int] | None = None
    step: tuple[int, int] = (0, 0)
    has_by: bool = False
    clause_stop: int = 0  # where the operator's text ends
    suffix_pipe: int | None = None  # offset of the `|` after the operator, if any operator follows


Translate = Callable[[str], Any]  # KQL text -> object with .sql_text and .params (kql._Translation)


def find(text: str, tokens: list[Any]) -> MakeSeries | None:
    """The `make-series` of the query's main statement, or None when it has none at its top level.

    A `make-series` elsewhere (inside a `let`, a join's subquery) is left for duckdb-kql to refuse with its position.
    """
    depth, statement_start_index = 0, 0
    for index, token in enumerate(tokens):
        if token.text in _OPEN:
            depth += 1
        elif token.text in _CLOSE:
            depth -= 1
        elif token.text == ";" and depth == 0 and index + 1 < len(tokens):
            statement_start_index = index + 1
    depth = 0
    for index in range(statement_start_index, len(tokens)):
        token = tokens[index]
        if token.text in _OPEN:
            depth += 1
        elif token.text in _CLOSE:
            depth -= 1
        elif (token.text.lower() == "make-series" and depth == 0 and index > statement_start_index
              and tokens[index - 1].text == "|"):
            start = tokens[statement_start_index].start if statement_start_index < len(tokens) else 0
            return _parse(text, tokens, index, start)
    return None


def _error_at(text: str, offset: int, reason: str) -> QueryError:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return QueryError(reason, line=line, column=column)


def _parse(text: str, tokens: list[Any], keyword_index: int, statement_start: int) -> MakeSeries:
    """Split the operator's tokens into aggregations, axis, from/to/step and the by clause."""
    parts = MakeSeries(statement_start=statement_start, keyword=tokens[keyword_index])
    # The operator's own tokens: up to a top-level `|` or `;`.
    depth, stop = 0, len(tokens)
    for index in range(keyword_index + 1, len(tokens)):
        word = tokens[index].text
        if word in _OPEN:
            depth += 1
        elif word in _CLOSE:
            depth -= 1
        elif word in _MAIN_ENDERS and depth == 0:
            stop = index
            break
    own = tokens[keyword_index + 1:stop]
    parts.clause_stop = own[-1].stop + 1 if own else parts.keyword.stop + 1
    if stop < len(tokens) and tokens[stop].text == "|":
        parts.suffix_pipe = tokens[stop].start
    if len(own) >= 3 and own[1].text == "=" and (own[0].text.lower() == "kind" or own[0].text.lower().startswith("hint.")) \
            and (len(own) < 4 or own[3].text != "("):
        raise _error_at(text, own[0].start, f"make-series parameter `{own[0].text}` is not supported by the local "
                                            "KQL engine; see docs/kql.md")

    def top_level(items: list[Any]) -> list[tuple[int, Any]]:
        """(position in `items`, token) of tokens outside brackets."""
        found, level = [], 0
        for position, token in enumerate(items):
            if token.text in _OPEN:
                level += 1
            elif token.text in _CLOSE:
                level -= 1
            elif level == 0:
                found.append((position, token))
        return found

    outer = top_level(own)
    keywords = {token.text.lower(): position for position, token in outer
                if token.text.lower() in ("on", "from", "to", "step", "by", "in")}
    if "on" not in keywords:
        raise _error_at(text, parts.keyword.start, "make-series needs `on AxisColumn ... step ...`")
    on = keywords["on"]
    if "in" in keywords and keywords["in"] > on:
        raise _error_at(text, own[keywords["in"]].start, "the `in range(start, stop, step)` form of make-series is "
                                                         "not supported by the local KQL engine; write "
                                                         "`from start to stop step step`")
    if "step" not in keywords:
        raise _error_at(text, own[on].start, "make-series needs a `step`")

    # Aggregations: comma-separated, each `[Name =] aggregation [default = value]`.
    item_tokens: list[list[Any]] = [[]]
    level = 0
    for token in own[:on]:
        if token.text in _OPEN:
            level += 1
        elif token.text in _CLOSE:
            level -= 1
        if token.text == "," and level == 0:
            item_tokens.append([])
        else:
            item_tokens[-1].append(token)
    for item in item_tokens:
        if not item:
            raise _error_at(text, own[on].start if on < len(own) else parts.keyword.start,
                            "make-series needs an aggregation before `on`")
        name = item[0].text if len(item) > 2 and item[1].text == "=" else None
        default_at = next((position for position, token in top_level(item) if token.text.lower() == "default"
                           and position + 1 < len(item) and item[position + 1].text == "="), None)
        aggregation = _Aggregation(name, item[0].start,
                                   (item[default_at - 1] if default_at else item[-1]).stop + 1)
        if default_at is not None:
            if default_at + 2 >= len(item):
                raise _error_at(text, item[default_at].start, "make-series `default =` needs a value")
            aggregation.default = (item[default_at + 2].start, item[-1].stop + 1)
            aggregation.default_clause = (item[default_at].start, item[-1].stop + 1)
        parts.aggregations.append(aggregation)

    # `on axis [from start] [to end] step step [by ...]`
    order = sorted((position, word) for word, position in keywords.items() if position > on and word != "in")

    def span_until_next(position: int) -> tuple[int, int]:
        following = [p for p, _ in order if p > position]
        last = (following[0] if following else len(own)) - 1
        if last <= position:
            raise _error_at(text, own[position].start, f"make-series `{own[position].text}` needs a value")
        return own[position + 1].start, own[last].stop + 1

    parts.axis = span_until_next(on)
    for position, word in order:
        if word == "from":
            parts.start = span_until_next(position)
        elif word == "to":
            parts.end = span_until_next(position)
        elif word == "step":
            parts.step = span_until_next(position)
    parts.has_by = "by" in keywords and keywords["by"] > keywords["step"]
    axis_clause_stop = own[keywords["by"]].start if parts.has_by else parts.clause_stop
    parts.axis_clause = (own[on].start, axis_clause_stop)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*|\[\s*(['\"]).*\1\s*\]", text[parts.axis[0]:parts.axis[1]].strip()):
        raise _error_at(text, parts.axis[0], "make-series `on` takes a column name")
    return parts


def _blank(text: str) -> str:
    """`text` with every character but newlines turned into a space: removed, but lines and columns kept."""
    return re.sub(r"[^\n]", " ", text)


def _lead_in(region: str, lead: str) -> str:
    """`region` blanked with `lead` written over its start; later lines keep their columns."""
    blank = _blank(region)
    first_line = blank.find("\n")
    first_line = len(blank) if first_line < 0 else first_line
    return lead + blank[min(len(lead), first_line):]


def translate(text: str, parts: MakeSeries, translate_kql: Translate) -> tuple[str, dict[str, Any]]:
    """The SQL of a query whose main statement has a `make-series` (found by `find`), and its parameter values."""
    preamble = text[:parts.statement_start]
    params: dict[str, Any] = {}

    def run(kql: str) -> str:
        translation = translate_kql(kql)
        params.update(translation.params)
        return translation.sql_text

    def scalar(span: tuple[int, int]) -> str:
        """`print v = <the text at span>`, with the expression at its original position."""
        return run(preamble + _lead_in(text[parts.statement_start:span[0]], "print v=") + text[span[0]:span[1]])

    step_sql = scalar(parts.step)
    start_sql = scalar(parts.start) if parts.start else None
    end_sql = scalar(parts.end) if parts.end else None
    defaults = [scalar(aggregation.default) if aggregation.default else "SELECT 0 AS v"
                for aggregation in parts.aggregations]
    time_axis = _is_timespan(step_sql, params)
    origin = text[parts.start[0]:parts.start[1]] if parts.start else (
        "datetime(0001-01-01)" if time_axis else "0")
    axis = text[parts.axis[0]:parts.axis[1]].strip()
    step = text[parts.step[0]:parts.step[1]]
    bin_index = f"__tk_k = bin((({axis}) - ({origin})) / ({step}), 1)"

    # The aggregation: `make-series` read as `summarize`, defaults and the axis clause blanked, the bin added.
    keyword = parts.keyword
    summarize = list(text[:parts.clause_stop])
    summarize[keyword.start:keyword.stop + 1] = "summarize".ljust(keyword.stop + 1 - keyword.start)
    blanked = [aggregation.default_clause for aggregation in parts.aggregations if aggregation.default_clause]
    for start, stop in [*blanked, parts.axis_clause]:
        summarize[start:stop] = _blank(text[start:stop])
    summarize_text = "".join(summarize).rstrip() + (", " if parts.has_by else " by ") + bin_index
    aggregation_sql = run(summarize_text)

    names = [aggregation.name or _derived_name(text[aggregation.start:aggregation.stop], translate_kql)
             for aggregation in parts.aggregations]
    axis_name = axis.strip("[]'\" ") if axis.startswith("[") else axis
    if len(set(names)) != len(names) or axis_name in names:
        raise _error_at(text, parts.aggregations[0].start, "make-series output columns need distinct names; "
                                                           "name the aggregations (`Name = count()`)")

    def quoted(name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    not_groups = ", ".join("'" + name.replace("'", "''") + "'" for name in [*names, "__tk_k"])
    first = "0" if parts.start else "(SELECT min(CAST(__tk_k AS BIGINT)) FROM __tk_ms_rows)"
    if end_sql is not None:
        count = f"CAST(ceil((SELECT v FROM ({run(_span_print(text, parts, preamble, origin))}))) AS BIGINT) - __tk_first"
    else:
        count = "(SELECT max(CAST(__tk_k AS BIGINT)) FROM __tk_ms_rows) - __tk_first + 1"
    origin_sql = f"(SELECT v FROM ({start_sql}))" if start_sql else (
        "TIMESTAMP '0001-01-01'" if time_axis else "0")
    value_lists = ", ".join(f"list({quoted(name)} ORDER BY __tk_k) AS __tk_v{index}"
                            for index, name in enumerate(names))
    arrays = ", ".join(
        f"to_json(list_transform(range(b.__tk_first, b.__tk_first + b.__tk_count), "
        f"lambda i: coalesce(g.__tk_v{index}[list_position(g.__tk_ks, i)], b.__tk_d{index}))) AS {quoted(name)}"
        for index, name in enumerate(names))
    axis_value = "b.__tk_origin + i * b.__tk_step"
    if time_axis:
        axis_value = f"strftime({axis_value}, '%Y-%m-%dT%H:%M:%S.%f') || '0Z'"
    bounds = ", ".join([f"{origin_sql} AS __tk_origin", f"(SELECT v FROM ({step_sql})) AS __tk_step",
                        *(f"(SELECT v FROM ({sql})) AS __tk_d{index}" for index, sql in enumerate(defaults))])
    # With a `by`, the group columns are whatever the summarize named them: every column that is not ours.
    groups = f"COLUMNS(lambda c: NOT starts_with(c, '__tk_') AND c NOT IN ({not_groups})), " if parts.has_by else ""
    outer_groups = "COLUMNS(lambda c: NOT starts_with(c, '__tk_')), " if parts.has_by else ""
    grouping = "GROUP BY ALL" if parts.has_by else "HAVING count(*) > 0"  # no rows, no series (as in Kusto)
    sql = f"""WITH __tk_ms_rows AS (
{aggregation_sql}
),
__tk_ms_bounds0 AS (SELECT {bounds}, {first} AS __tk_first),
__tk_ms_bounds AS (SELECT *, greatest({count}, 0) AS __tk_count FROM __tk_ms_bounds0),
__tk_ms_groups AS (
    SELECT {groups}{value_lists},
           list(CAST(__tk_k AS BIGINT) ORDER BY __tk_k) AS __tk_ks
    FROM __tk_ms_rows, __tk_ms_bounds
    WHERE __tk_k >= __tk_first AND __tk_k < __tk_first + __tk_count
    {grouping}
),
{SERIES_CTE} AS (
    SELECT {outer_groups}{arrays},
           to_json(list_transform(range(b.__tk_first, b.__tk_first + b.__tk_count), lambda i: {axis_value}))
               AS {quoted(axis_name)}
    FROM __tk_ms_groups g, __tk_ms_bounds b
)
"""
    if parts.suffix_pipe is None:
        return sql + f"SELECT * FROM {SERIES_CTE}", params
    suffix = run(preamble + _lead_in(text[parts.statement_start:parts.suffix_pipe], SERIES_CTE)
                 + text[parts.suffix_pipe:])
    return sql + f"SELECT * FROM (\n{suffix}\n)", params


def _span_print(text: str, parts: MakeSeries, preamble: str, origin: str) -> str:
    """`print v = (end - origin) / step`: how many bins from the origin the exclusive end lies."""
    assert parts.end is not None
    end = text[parts.end[0]:parts.end[1]]
    step = text[parts.step[0]:parts.step[1]]
    return preamble + f"print v = (({end}) - ({origin})) / ({step})"


def _derived_name(aggregation: str, translate_kql: Translate) -> str:
    """The column name Kusto (and duckdb-kql) give an unnamed aggregation: `count_`, `sum_itemCount`..."""
    from tracekit.query import sql_tree

    sql = translate_kql(f"{SERIES_CTE} | summarize {aggregation}").sql_text
    try:
        tree = sql_tree.parse(sql)
    except ValueError:
        tree = {}
    # The SELECT over the series' input (`FROM _s0`) whose one output is the aggregation.
    names = [item.get("alias", "") for node in sql_tree.walk(tree)
             if node.get("type") == "SELECT_NODE" and node.get("from_table", {}).get("table_name") == "_s0"
             for item in node.get("select_list", [])]
    if len(names) != 1 or not names[0]:
        raise QueryError(f"make-series: cannot name the aggregation `{aggregation}`; name it (`Name = ...`)")
    return names[0]


def _is_timespan(step_sql: str, params: dict[str, Any]) -> bool:
    """Whether the step is a timespan (then the axis is a datetime), by evaluating the constant step in DuckDB."""
    try:
        with duckdb.connect() as con:
            used = {name: value for name, value in params.items() if f"${name}" in step_sql}
            row = con.execute(f"SELECT typeof(v) FROM ({step_sql})", used or None).fetchone()
        return bool(row) and row[0] == "INTERVAL"
    except duckdb.Error:
        return "INTERVAL" in step_sql
