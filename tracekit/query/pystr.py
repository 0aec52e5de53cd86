"""Python's str() of an attribute value, as DuckDB SQL text over its JSON.

The Azure exporter writes `str(value)` for attribute values (customDimensions, targets, names); the views must
print values the same way: `True` not `true`, a sequence as a tuple `('a',)`. DuckDB does not expand a macro inside
a lambda, so these are Python functions that return SQL text to paste where a lambda needs it; the `tk_py_str`
macro (tracekit.query.views) is the same text for everywhere else.
"""

from __future__ import annotations


def _py_repr_sql(s: str) -> str:
    """Python's repr() of the string expression `s`, as the exporter's str() of a tuple shows its elements."""
    escaped = (f"replace(replace(replace(replace({s}, '\\', '\\\\'), chr(10), '\\n'), chr(13), '\\r'), "
               "chr(9), '\\t')")
    return (f"CASE WHEN contains({s}, '''') AND NOT contains({s}, '\"') THEN '\"' || {escaped} || '\"' "
            f"ELSE '''' || replace({escaped}, '''', '\\''') || '''' END")


def _py_scalar_sql(v: str) -> str:
    """Python's str() of one scalar attribute value stored as JSON."""
    return (f"CASE json_type({v}) WHEN 'VARCHAR' THEN {v} ->> '$' "
            f"WHEN 'BOOLEAN' THEN CASE WHEN CAST({v} AS VARCHAR) = 'true' THEN 'True' ELSE 'False' END "
            f"WHEN 'NULL' THEN 'None' ELSE CAST({v} AS VARCHAR) END")


def _py_element_sql(item: str) -> str:
    return (f"CASE WHEN json_type({item}) = 'VARCHAR' THEN {_py_repr_sql(item + ' ->> ' + repr('$'))} "
            f"ELSE {_py_scalar_sql(item)} END")


def py_str_sql(v: str) -> str:
    """Python's str() of an attribute value: the OTel SDK keeps sequences as tuples, so ['a'] prints ('a',)."""
    first = f"json_extract({v}, '$[0]')"  # not `v -> 0`: inside a macro DuckDB reads that as a lambda
    return (f"CASE WHEN json_type({v}) = 'ARRAY' THEN CASE json_array_length({v}) WHEN 0 THEN '()' "
            f"WHEN 1 THEN '(' || {_py_element_sql(first)} || ',)' "
            f"ELSE '(' || array_to_string(list_transform(TRY_CAST({v} AS JSON[]), lambda x: {_py_element_sql('x')}), ', ')"
            f" || ')' END ELSE {_py_scalar_sql(v)} END")
