"""The dashboards screen: every tile of a shipped dashboard (KQL over the store) drawn as a number, bars, a
sparkline or a table, over a time range the user picks. Tiles run one after another in a worker and appear as
they finish; a tile whose query fails shows its error instead of taking the screen down."""

from __future__ import annotations

import datetime as dt

from rich.panel import Panel
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from tracekit.errors import TracekitError
from tracekit.tui.widgets.header import Header
from tracekit.tui.widgets.key_bar import KeyBar

RANGES: dict[str, dt.timedelta | None] = {
    "1h": dt.timedelta(hours=1), "24h": dt.timedelta(hours=24), "7d": dt.timedelta(days=7), "all": None}


class DashboardsScreen(Screen):
    """Opened with `d`."""

    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("q", "back", "Back", show=False),
        Binding("1", "range('1h')", "Last hour"),
        Binding("2", "range('24h')", "Last 24 h"),
        Binding("3", "range('7d')", "Last 7 days"),
        Binding("4", "range('all')", "All data"),
        Binding("n", "next_dashboard", "Next dashboard"),
        Binding("r", "refresh", "Refresh"),
    ]

    def __init__(self, name: str | None = None, since: str | None = None) -> None:
        super().__init__()
        from tracekit import dashboards

        self.names = dashboards.names()
        self.dashboard_name = name or ("agents" if "agents" in self.names else self.names[0])
        self.board = dashboards.load(self.dashboard_name)
        self.range_name = since or _range_name(self.board.default_since)
        self.finished = 0
        self.generation = 0

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="dashboard-status")
        with VerticalScroll(id="dashboard-scroll"):
            yield Grid(id="tiles")
        yield KeyBar()

    async def on_mount(self) -> None:
        await self.show_board()

    async def show_board(self) -> None:
        grid = self.query_one("#tiles", Grid)
        await grid.remove_children()
        await grid.mount_all([
            Static(Panel(Text("running…", style="dim"), title=Text(tile.title), title_align="left",
                         border_style="bright_black"), id=f"tile-{index}", classes="tile")
            for index, tile in enumerate(self.board.tiles)])
        self.finished = 0
        self.generation += 1
        self.update_status()
        self.run_tiles(self.generation, RANGES[self.range_name])

    @work(thread=True, exclusive=True, group="tiles", exit_on_error=False)
    def run_tiles(self, generation: int, since: dt.timedelta | None) -> None:
        from tracekit.dashboards import run_tile
        from tracekit.dashboards.terminal import render_tile

        for index, tile in enumerate(self.board.tiles):
            if generation != self.generation:
                return
            try:
                renderable = render_tile(tile, run_tile(self.app.reader, tile, since))
            except TracekitError as error:
                renderable = Panel(Text(str(error), style="red"), title=Text(tile.title), title_align="left",
                                   border_style="red")
            self.app.call_from_thread(self.show_tile, generation, index, renderable)

    def show_tile(self, generation: int, index: int, renderable) -> None:
        if generation != self.generation:
            return
        self.query_one(f"#tile-{index}", Static).update(renderable)
        self.finished += 1
        self.update_status()

    def update_status(self) -> None:
        text = Text(self.board.title, style="bold")
        text.append(f"  ·  {self.range_name if self.range_name != 'all' else 'all data'}", style="cyan")
        text.append(f"  ·  {self.finished}/{len(self.board.tiles)} tiles", style="dim")
        if len(self.names) > 1:
            text.append(f"  ·  n: next of {len(self.names)} dashboards", style="dim")
        self.query_one("#dashboard-status", Static).update(text)

    def action_back(self) -> None:
        self.app.pop_screen()

    async def action_range(self, name: str) -> None:
        self.range_name = name
        await self.show_board()

    async def action_refresh(self) -> None:
        await self.show_board()

    async def action_next_dashboard(self) -> None:
        from tracekit import dashboards

        index = (self.names.index(self.dashboard_name) + 1) % len(self.names)
        self.dashboard_name = self.names[index]
        self.board = dashboards.load(self.dashboard_name)
        await self.show_board()


def _range_name(since: dt.timedelta | None) -> str:
    for name, value in RANGES.items():
        if value == since:
            return name
    return "24h"
