"""Draw a dashboard's tile results in the terminal with Rich: big numbers, bar charts, sparklines and tables.

All cell text goes through rich.text.Text, so span content is shown literally and can never act as Rich markup.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import pyarrow as pa
from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tracekit.dashboards import Tile
from tracekit.terminal_text import clean

_BLOCKS = " ▁▂▃▄▅▆▇█"
BAR_WIDTH = 30


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, decimal.Decimal)) and not isinstance(value, bool)


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if 0 < abs(value) < 1:  # costs in USD, shares: a fraction keeps three significant digits, not "0.0"
            return f"{value:.3g}"
        return f"{value:,.1f}" if abs(value) < 1e15 else f"{value:.3g}"
    if isinstance(value, decimal.Decimal):
        return _fmt(float(value)) if value != value.to_integral_value() else f"{int(value):,}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return clean(str(value))


def render_tile(tile: Tile, table: pa.Table) -> RenderableType:
    """One tile as a Rich panel."""
    rows = table.to_pylist()
    if not rows:
        body: RenderableType = Text("no data in the time range", style="dim")
    elif tile.chart == "number":
        body = Text(_fmt(next(iter(rows[0].values()))), style="bold cyan", justify="center")
    elif tile.chart == "bar":
        body = _bars(table.column_names, rows)
    elif tile.chart == "line":
        body = _sparkline(table.column_names, rows)
    else:
        body = _table(table.column_names, rows)
    return Panel(body, title=Text(tile.title), title_align="left", border_style="blue")


def _label_and_values(columns: list[str], rows: list[dict[str, Any]]) -> tuple[str, list[str]]:
    numeric = [c for c in columns if any(_is_number(row[c]) for row in rows)]
    labels = [c for c in columns if c not in numeric]
    return (labels[0] if labels else columns[0]), numeric


def _bars(columns: list[str], rows: list[dict[str, Any]]) -> RenderableType:
    label, numeric = _label_and_values(columns, rows)
    if not numeric:
        return _table(columns, rows)
    main = numeric[0]
    peak = max((float(row[main] or 0) for row in rows), default=0) or 1
    grid = Table.grid(padding=(0, 1))
    grid.add_column(justify="right")
    grid.add_column()
    grid.add_column(justify="right")
    for column in numeric[1:]:
        grid.add_column(justify="right")
    grid.add_row(Text(label, style="dim"), Text(main, style="dim"), Text(""),
                 *(Text(c, style="dim") for c in numeric[1:]))
    for row in rows[:20]:
        share = float(row[main] or 0) / peak
        bar = "█" * int(round(share * BAR_WIDTH)) or ("▏" if row[main] else "")
        grid.add_row(Text(_fmt(row[label]) or "(empty)"), Text(bar, style="green"), Text(_fmt(row[main])),
                     *(Text(_fmt(row[c])) for c in numeric[1:]))
    return grid


def _sparkline(columns: list[str], rows: list[dict[str, Any]]) -> RenderableType:
    _, numeric = _label_and_values(columns, rows)
    if not numeric:
        return _table(columns, rows)
    series = [c for c in columns[1:] if c not in numeric]
    if series:
        return _series_sparklines(columns[0], series[0], numeric[0], rows)
    values = [float(row[numeric[0]] or 0) for row in rows]
    top = max(values) or 1
    line = "".join(_BLOCKS[min(8, int(round(v / top * 8)))] for v in values[-120:])
    first = rows[0][columns[0]]
    last = rows[-1][columns[0]]
    caption = f"{_fmt(first)} → {_fmt(last)}   max {_fmt(max(values))}   total {_fmt(sum(values))}"
    return Group(Text(line, style="green"), Text(caption, style="dim"))


def _series_sparklines(time: str, label: str, value: str, rows: list[dict[str, Any]]) -> RenderableType:
    """A time series split by a label column (cost by model per hour): one sparkline per label, on the same time
    axis and scale, so the lines compare at a glance; a time a label has no row for stays blank."""
    times = sorted({row[time] for row in rows if row[time] is not None})[-120:]
    position = {moment: index for index, moment in enumerate(times)}
    lines: dict[Any, list[float]] = {}
    for row in rows:
        if row[time] in position:
            line = lines.setdefault(row[label], [0.0] * len(times))
            line[position[row[time]]] += float(row[value] or 0)
    top = max((v for line in lines.values() for v in line), default=0) or 1
    grid = Table.grid(padding=(0, 1))
    grid.add_column(justify="right")
    grid.add_column()
    grid.add_column(justify="right")
    grid.add_row(Text(label, style="dim"), Text(""), Text(f"total {value}", style="dim"))
    ordered = sorted(lines.items(), key=lambda item: (-sum(item[1]), str(item[0])))
    for name, line in ordered[:20]:
        # a time with any amount draws at least the lowest bar: a cheap model is not drawn as having no calls
        spark = "".join(_BLOCKS[max(v > 0, min(8, int(round(v / top * 8))))] for v in line)
        grid.add_row(Text(_fmt(name) or "(empty)"), Text(spark, style="green"), Text(_fmt(sum(line))))
    caption = f"{_fmt(times[0])} → {_fmt(times[-1])}   {len(times)} points   max {_fmt(top)}" if times else ""
    return Group(grid, Text(caption, style="dim"))


def _table(columns: list[str], rows: list[dict[str, Any]]) -> RenderableType:
    view = Table(header_style="bold", box=None)
    for column in columns:
        view.add_column(Text(column), justify="right" if any(_is_number(r[column]) for r in rows) else "left")
    for row in rows[:20]:
        view.add_row(*(Text(_fmt(row[column])) for column in columns))
    return view
