"""A query result as plain Python rows, for printing: what `tracekit query` needs, without Arrow.

Readers return Arrow tables (`StoreReader.sql`), which the TUI, exports and the read API build on. A command that
only prints a result needs none of that, and importing pyarrow costs a short command more than its query: a local
reader fetches such results straight from DuckDB (`LocalReader.rows`) when every column has a type whose Python
value is the same either way, and converts the Arrow table otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
    """Column names, the columns holding JSON text (KQL dynamic), and the rows as tuples."""

    columns: list[str]
    json_columns: frozenset[str]
    rows: list[tuple[Any, ...]]

    @classmethod
    def from_arrow(cls, table: pa.Table) -> "Rows":
        names = table.column_names
        json_columns = frozenset(field.name for field in table.schema
                                 if (field.metadata or {}).get(b"tracekit.type") == b"json")
        columns = [table.column(index).to_pylist() for index in range(table.num_columns)]
        return cls(list(names), json_columns, list(zip(*columns)) if columns else [()] * table.num_rows)

    def dicts(self) -> list[dict[str, Any]]:
        """The rows as {column: value} (a later column of the same name wins, as in Arrow's to_pylist)."""
        return [dict(zip(self.columns, row)) for row in self.rows]
