"""A query result as plain Python rows, for printing: what `tracekit query` needs, without Arrow.

Readers return Arrow tables (`StoreReader.sql`), which the TUI, exports and the read API build on. A command that
only prints a result needs none of that, and importing pyarrow costs a short command more than its query: a local
reader fetches such results straight from DuckDB (`LocalReader.rows`) when every column has a type whose Python
value is the same either way, and converts the Arrow table otherwise.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    import pyarrow as pa

# The Arrow field tag a reader puts on DuckDB JSON columns (KQL `dynamic`), which Arrow carries as plain text.
JSON_FIELD_METADATA = {b"tracekit.type": b"json"}

# DuckDB types whose values DuckDB's fetchall() gives exactly as Arrow's to_pylist() does, and lists of them. Others
# (INTERVAL, MAP, STRUCT, UNION, TIMESTAMP WITH TIME ZONE, TIMESTAMP_NS, UUID, ENUM, fixed-size arrays...) take the
# Arrow path, so a result prints the same whichever path it took.
_PLAIN_TYPE = re.compile(r'(BOOLEAN|TINYINT|SMALLINT|INTEGER|BIGINT|HUGEINT|UTINYINT|USMALLINT|UINTEGER|UBIGINT'
                         r'|FLOAT|DOUBLE|VARCHAR|JSON|DATE|TIME|TIMESTAMP|BLOB|"NULL"|DECIMAL\(\d+,\d+\))(\[\])*')


def plain_type(duckdb_type: str) -> bool:
    """Whether values of `duckdb_type` (DuckDB's name for it) reach Python the same through fetchall() and Arrow."""
    return _PLAIN_TYPE.fullmatch(duckdb_type) is not None


@dataclass
class Rows:
    """Column names, the columns holding JSON text (KQL dynamic), the rows as tuples, and the columns' DuckDB types
    when the rows came straight from DuckDB (all of them plain types; None when they came through Arrow)."""

    columns: list[str]
    json_columns: frozenset[str]
    rows: list[tuple[Any, ...]]
    types: tuple[str, ...] | None = None

    def to_wire(self) -> bytes:
        """JSON for the read API (plain types only): each value written so that from_wire() gives it back equal."""
        assert self.types is not None, "only rows fetched straight from DuckDB travel as JSON"
        encoders = [_converter(kind, _ENCODE) for kind in self.types]
        rows = [[encode(value) for encode, value in zip(encoders, row)] for row in self.rows]
        return json.dumps({"columns": self.columns, "json_columns": sorted(self.json_columns),
                           "types": list(self.types), "rows": rows}).encode()

    @classmethod
    def from_wire(cls, data: bytes) -> "Rows":
        answer = json.loads(data)
        types = tuple(answer["types"])
        decoders = [_converter(kind, _DECODE) for kind in types]
        rows = [tuple(decode(value) for decode, value in zip(decoders, row)) for row in answer["rows"]]
        return cls(answer["columns"], frozenset(answer["json_columns"]), rows, types)

    @classmethod
    def from_arrow(cls, table: pa.Table) -> "Rows":
        names = table.column_names
        json_columns = frozenset(field.name for field in table.schema
                                 if (field.metadata or {}).get(b"tracekit.type") == b"json")
        columns = [table.column(index).to_pylist() for index in range(table.num_columns)]
        return cls(list(names), json_columns, list(zip(*columns)) if columns else [()] * table.num_rows)

    def __eq__(self, other: object) -> bool:  # the same result, however it was fetched
        return isinstance(other, Rows) and (self.columns, self.json_columns, self.rows) == \
            (other.columns, other.json_columns, other.rows)

    def dicts(self) -> list[dict[str, Any]]:
        """The rows as {column: value} (a later column of the same name wins, as in Arrow's to_pylist)."""
        return [dict(zip(self.columns, row)) for row in self.rows]


# How plain-typed values travel as JSON: the types JSON has are sent as they are (floats include NaN and infinities,
# which Python's json reads back); these are written as text.
_ENCODE: dict[str, Callable[[Any], Any]] = {
    "DATE": lambda value: value.isoformat(), "TIME": lambda value: value.isoformat(),
    "TIMESTAMP": lambda value: value.isoformat(), "BLOB": lambda value: value.hex(), "DECIMAL": str,
}
_DECODE: dict[str, Callable[[Any], Any]] = {
    "DATE": dt.date.fromisoformat, "TIME": dt.time.fromisoformat, "TIMESTAMP": dt.datetime.fromisoformat,
    "BLOB": bytes.fromhex, "DECIMAL": decimal.Decimal,
}


def _converter(kind: str, table: dict[str, Callable[[Any], Any]]) -> Callable[[Any], Any]:
    """The function converting one value of DuckDB type `kind` (lists element by element; NULL stays None)."""
    if kind.endswith("[]"):
        item = _converter(kind[:-2], table)
        return lambda value: None if value is None else [item(element) for element in value]
    convert = table.get(kind.split("(")[0])
    if convert is None:
        return lambda value: value
    return lambda value: None if value is None else convert(value)
