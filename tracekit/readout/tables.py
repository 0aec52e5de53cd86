"""Query results and dashboards as data.

A query result is `{"columns": [{"name", "type"}], "rows": [{column: value}], "page": {...}}`; the rows are the
ones `tracekit query --format json` prints (timestamps ISO 8601, `dynamic` columns as JSON values), so an agent and a
script read the same thing. A dashboard is its tiles, each with its KQL and its result in that shape.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable

import pyarrow as pa

from tracekit.durations import parse_duration
from tracekit.errors import QueryError
from tracekit.query.json_rows import rows_for_json
from tracekit.readout.budget import (DEFAULT_CHARS, DEFAULT_ROWS, MAX_CHARS, MAX_ROWS, VALUE_CHARS, check_offset,
                                     clamp, cut, page)
from tracekit.store.reader import StoreReader

LANGUAGES = ("kql", "sql")


def _type_name(field: pa.Field) -> str:
    if (field.metadata or {}).get(b"tracekit.type") == b"json":
        return "dynamic"
    return str(field.type)


def table_data(table: pa.Table, *, offset: int = 0, limit: int | None = None, max_chars: int | None = None,
               value_chars: int | None = None) -> dict[str, Any]:
    """An Arrow result as columns, rows and the page entry; long cell values cut at `value_chars`."""
    columns = [{"name": field.name, "type": _type_name(field)} for field in table.schema]
    window = table.slice(offset, (limit or MAX_ROWS) + 1)
    rows = rows_for_json(window)
    if value_chars is not None:
        how = "run_query with a narrower projection (or substring()) over that cell"
        rows = [{key: cut(value, value_chars, how) for key, value in row.items()} for row in rows]
    kept, info = page(rows, offset=offset, limit=limit or MAX_ROWS, max_chars=max_chars or MAX_CHARS,
                      total=table.num_rows, what="row")
    return {"columns": columns, "rows": kept, "page": info}


def run_query(reader: StoreReader, query: str, *, language: str = "kql", since: str | None = None,
              limit: int | None = None, offset: int | None = None, max_chars: int | None = None) -> dict[str, Any]:
    """Run a read-only KQL or SQL query, as `tracekit query` does, and return a page of its rows.

    Errors (syntax, unknown tables, anything that is not a read) raise QueryError with the position and reason.
    """
    from tracekit.query.kql import run_kql

    if language not in LANGUAGES:
        raise QueryError(f"language {language!r}: expected one of {', '.join(LANGUAGES)}")
    if not query or not query.strip():
        raise QueryError("the query is empty")
    limit = clamp(limit, DEFAULT_ROWS, MAX_ROWS, "limit")
    offset = check_offset(offset)
    max_chars = clamp(max_chars, DEFAULT_CHARS, MAX_CHARS, "max_chars")
    if language == "sql":
        if since:
            raise QueryError("since applies to KQL queries; in SQL write the time predicate yourself")
        table = reader.sql(query)
    else:
        table = run_kql(reader, query, since=parse_duration(since) if since else None)
    result = table_data(table, offset=offset, limit=limit, max_chars=max_chars, value_chars=VALUE_CHARS * 4)
    return {"language": language, **result}


def dashboard_data(reader: StoreReader, name: str, *, since: str | None = None, tiles: list[str] | None = None,
                   rows_per_tile: int | None = 100, on_tile: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run a dashboard's tiles and return them as data: id, title, chart, description, kql and the result.

    `since` is a duration (`24h`, `7d`), `all`, or None for the dashboard's own range. A tile whose query fails
    carries `error` instead of a result; the other tiles still run.
    """
    from tracekit import dashboards

    board = dashboards.load(name)
    if since == "all":
        window: dt.timedelta | None = None
    else:
        window = parse_duration(since) if since else board.default_since
    chosen = [board.tile(tile_id) for tile_id in tiles] if tiles else board.tiles
    shaped = []
    for tile in chosen:
        item: dict[str, Any] = {"id": tile.id, "title": tile.title, "chart": tile.chart,
                                "description": tile.description, "kql": tile.kql}
        try:
            item.update(table_data(dashboards.run_tile(reader, tile, window), limit=rows_per_tile))
        except QueryError as error:
            item["error"] = str(error)
        shaped.append(item)
        if on_tile is not None:
            on_tile()
    return {"name": board.name, "title": board.title, "description": board.description,
            "since": since or (None if window is None else f"{window.total_seconds() / 3600:g}h"), "tiles": shaped}
