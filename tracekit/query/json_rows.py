"""Query results as JSON-ready rows: what `tracekit query --format json`, the MCP tools and scripts read."""

from __future__ import annotations

import datetime as dt
import decimal
import json
from typing import Any

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


def _dynamic_columns(table: pa.Table) -> set[str]:
    """Columns holding JSON: tagged by the reader (DuckDB JSON, KQL dynamic), or known by name."""
    return {field.name for field in table.schema
            if field.name in DYNAMIC_COLUMNS or (field.metadata or {}).get(b"tracekit.type") == b"json"}


def rows_for_json(table: pa.Table) -> list[dict[str, Any]]:
    """The table's rows as JSON-ready dicts (timestamps ISO 8601, dynamic columns parsed)."""
    dynamic = _dynamic_columns(table)
    rows = []
    for row in table.to_pylist():
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
