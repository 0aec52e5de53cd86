"""Dashboards as data: KQL tiles with titles and chart kinds, one TOML file per dashboard in this folder.

    >>> import tracekit.dashboards as dashboards
    >>> dashboards.names()
    ['agents']
    >>> board = dashboards.load("agents")
    >>> [tile.id for tile in board.tiles][:2]
    ['runs_total', 'success_rate']

`run_tile(reader, tile, since)` runs one tile over the store (the TUI's dashboard screen and
`tracekit dashboards show` use it); `tracekit.dashboards.workbook.to_workbook(board)` builds the Azure Monitor
Workbook that runs the same KQL in Application Insights.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass, field
from importlib import resources

import pyarrow as pa

from tracekit.errors import TracekitError

CHART_KINDS = ("number", "bar", "line", "table")


class DashboardError(TracekitError):
    """A dashboard that does not exist or whose definition is invalid."""


@dataclass(frozen=True)
class Tile:
    """One panel: a KQL query and how to draw its result."""

    id: str
    title: str
    kql: str
    chart: str  # "number" (first value of the first row), "bar", "line" (a time series) or "table"
    description: str = ""


@dataclass(frozen=True)
class Dashboard:
    """A named set of tiles, shown over one time range (`default_since` unless the user picks another)."""

    name: str
    title: str
    tiles: list[Tile] = field(default_factory=list)
    description: str = ""
    default_since: dt.timedelta | None = None

    def tile(self, tile_id: str) -> Tile:
        """The tile with this id."""
        for tile in self.tiles:
            if tile.id == tile_id:
                return tile
        raise DashboardError(f"dashboard {self.name!r} has no tile {tile_id!r}")


def names() -> list[str]:
    """The dashboards that ship with tracekit, by name."""
    return sorted(entry.name[:-5] for entry in resources.files(__name__).iterdir() if entry.name.endswith(".toml"))


def load(name: str) -> Dashboard:
    """Read a dashboard definition (raises DashboardError for an unknown name or an invalid file)."""
    if name not in names():
        raise DashboardError(f"no dashboard named {name!r}; available: {', '.join(names())}")
    data = tomllib.loads(resources.files(__name__).joinpath(f"{name}.toml").read_text(encoding="utf-8"))
    return parse(data, name)


def parse(data: dict, name: str) -> Dashboard:
    """A Dashboard from its TOML data, checked: unique tile ids, known chart kinds, non-empty KQL."""
    tiles = []
    seen: set[str] = set()
    for raw in data.get("tiles", []):
        try:
            tile = Tile(id=raw["id"], title=raw["title"], kql=raw["kql"].strip(), chart=raw["chart"],
                        description=raw.get("description", ""))
        except KeyError as missing:
            raise DashboardError(f"dashboard {name!r}: a tile lacks {missing}") from None
        if tile.chart not in CHART_KINDS:
            raise DashboardError(f"dashboard {name!r}, tile {tile.id!r}: chart must be one of {CHART_KINDS}")
        if tile.id in seen or not tile.kql:
            raise DashboardError(f"dashboard {name!r}, tile {tile.id!r}: duplicate id or empty query")
        seen.add(tile.id)
        tiles.append(tile)
    since = data.get("default_since")
    return Dashboard(name=data.get("name", name), title=data.get("title", name), tiles=tiles,
                     description=data.get("description", ""),
                     default_since=_duration(since) if since else None)


def _duration(text: str) -> dt.timedelta:
    units = {"m": "minutes", "h": "hours", "d": "days"}
    return dt.timedelta(**{units[text[-1]]: float(text[:-1])})


def run_tile(reader, tile: Tile, since: dt.timedelta | None) -> pa.Table:
    """Run one tile's KQL over the store behind `reader`, limited to the last `since` (None: all data)."""
    from tracekit.query.kql import run_kql

    return run_kql(reader, tile.kql, since=since)
