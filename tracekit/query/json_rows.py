"""Query results as JSON-ready rows: what `tracekit query --format json`, the MCP tools and scripts read."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from typing import TYPE_CHECKING, Any

from tracekit.store.rows import Rows

if TYPE_CHECKING:
    import pyarrow as pa


def json_value(value: Any) -> Any:
    """A value from a result row as JSON can carry it (times ISO 8601, decimals as numbers, bytes as hex)."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(key): json_value(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_value(item) for item in value]
    return value


# Columns that hold JSON text (KQL `dynamic`). DuckDB's JSON type reaches Arrow as plain strings, so they are known
# by name: the App Insights dynamic columns and the store's JSON columns.
DYNAMIC_COLUMNS = frozenset({"customDimensions", "customMeasurements", "Properties", "Measurements", "details",
                             "Details", "attributes", "body"})


def rows_for_json(table: pa.Table | Rows) -> list[dict[str, Any]]:
    """The table's rows as JSON-ready dicts (timestamps ISO 8601, dynamic columns parsed). Columns hold JSON when
    the reader tagged them (DuckDB JSON, KQL dynamic) or are known by name."""
    result = table if isinstance(table, Rows) else Rows.from_arrow(table)
    dynamic = result.json_columns | (DYNAMIC_COLUMNS & set(result.columns))
    rows = []
    for row in result.dicts():
        out = {}
        for key, value in row.items():
            if key in dynamic and isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    pass
            out[key] = json_value(value)
        rows.append(out)
    return rows
