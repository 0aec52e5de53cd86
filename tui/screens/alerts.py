"""Alert rules and their latest state (`tracekit collect --alerts FILE` records them), and the collector's
continuous evaluation counters; Enter on a firing rule goes back to the trace list filtered to what fired (its
agent, tool or model, over the rule's window)."""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from tracekit.conversation.literal import literal
from tracekit.errors import TracekitError
from tracekit.tui.data import AlertState, alert_states
from tracekit.tui.format import clock
from tracekit.tui.screens.table_screen import TableScreen
from tracekit.tui.widgets.header import Header
from tracekit.tui.widgets.key_bar import KeyBar

STATE_STYLE = {"fired": "bold red", "resolved": "green", "error": "bold yellow"}
# Dimension names (as rules commonly name them) -> the trace list's filter keys.
FILTER_KEYS = {"agent": "agent", "agentname": "agent", "agent_name": "agent", "tool": "tool", "toolname": "tool",
               "tool_name": "tool", "model": "model", "service": "service", "cloud_rolename": "service"}


def filter_for(alert: AlertState) -> str:
    """A trace-list filter for what made `alert` fire: its first firing row's known dimensions, over its window."""
    terms = []
    row = alert.rows[0] if alert.rows else {}
    for dimension, value in row.items():
        key = FILTER_KEYS.get(dimension.lower())
        if key and value not in (None, ""):
            text = str(value).replace('"', "")
            terms.append(f'{key}:"{text}"' if " " in text else f"{key}:{text}")
    if alert.window:
        terms.append(f"since:{alert.window}")
    return " ".join(terms)


class AlertsScreen(TableScreen):
    """Opened with `a`."""

    BINDINGS = [
        Binding("r", "refresh", "Refresh"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.alerts: list[AlertState] = []
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(Text("alerts: loading…", style="dim"), id="alerts-status")
        yield Static("", id="evaluation-status")
        yield DataTable(id="alerts", cursor_type="row", zebra_stripes=True)
        yield Static("", id="alert-details")
        yield KeyBar()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for label, width in (("state", 9), ("since", 18), ("sev", 3), ("rule", 34), ("condition", 16),
                             ("window", 6), ("rows that fired", 60)):
            table.add_column(label, width=width)
        table.focus()
        self.load()

    @work(thread=True, exclusive=True, group="alerts", exit_on_error=False)
    def load(self) -> None:
        try:
            alerts = alert_states(self.app.reader)
            status = self.app.collector_status() if self.app.collector_status else {}
        except TracekitError as error:
            self.app.call_from_thread(self.notify, str(error), severity="error", title="query failed")
            return
        self.app.call_from_thread(self.show_evaluation, status.get("evaluation"))
        self.app.call_from_thread(self.show, alerts)

    def show_evaluation(self, state: dict | None) -> None:
        """The continuous evaluation's counters (`tracekit collect --evaluation-rules`), when it runs."""
        if not state:
            text = Text("continuous evaluation: off (tracekit collect --evaluation-rules FILE)", style="dim")
        else:
            text = Text("continuous evaluation: ", style="bold")
            text.append(f"{len(state['rules'])} rule(s) · {state['evaluated']} judged · {state['failed']} failed · "
                        f"backlog {state['backlog']} · dropped {state['dropped']} · over the hourly cap "
                        f"{state['capped']} · content not recorded {state['not_recorded']}")
        self.query_one("#evaluation-status", Static).update(text)

    def show(self, alerts: list[AlertState]) -> None:
        self.alerts = alerts
        table = self.query_one(DataTable)
        table.clear()
        for alert in alerts:
            rows = alert.error or "; ".join(", ".join(f"{k}={v}" for k, v in row.items()) for row in alert.rows)
            table.add_row(Text(alert.state, style=STATE_STYLE.get(alert.state, "")), Text(clock(alert.since_ns)),
                          Text(str(alert.severity)), literal(alert.name, limit=200, pretty=False, style="bold"),
                          literal(alert.condition, limit=80, pretty=False),
                          literal(alert.window, limit=20, pretty=False), literal(rows, limit=400, pretty=False))
        firing = sum(alert.firing for alert in alerts)
        if alerts:
            status = Text(f"{firing} of {len(alerts)} rule(s) firing", style="bold red" if firing else "bold green")
            status.append(" · Enter shows the traces of a firing rule", style="dim")
        else:
            status = Text("no alert states recorded: run the collector with --alerts FILE "
                          "(see `tracekit alerts --help`)", style="dim")
        self.query_one("#alerts-status", Static).update(status)
        self.loaded = True

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if 0 <= event.cursor_row < len(self.alerts):
            alert = self.alerts[event.cursor_row]
            self.query_one("#alert-details", Static).update(literal(alert.description, limit=400, pretty=False))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if not 0 <= event.cursor_row < len(self.alerts):
            return
        from tracekit.tui.screens.trace_list import TraceListScreen

        text = filter_for(self.alerts[event.cursor_row])
        self.app.pop_screen()
        screen = self.app.screen
        if isinstance(screen, TraceListScreen):
            screen.apply_filter(text)

    def action_refresh(self) -> None:
        self.load()
