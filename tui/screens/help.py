"""The key help (`?`): every binding of the screen underneath and of the app, as a table."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

# Keys handled by widgets themselves, listed so the help is complete.
WIDGET_KEYS = {
    "TraceListScreen": [("j / k, ↑ / ↓", "move"), ("g / G", "first / last trace")],
    "TraceViewScreen": [("j / k, ↑ / ↓", "move"), ("h / l, ← / →", "collapse / expand"),
                        ("space", "toggle a subtree"), ("o / O", "expand / collapse all")],
}


def _key_name(key: str) -> str:
    return {"slash": "/", "question_mark": "?", "colon": ":", "escape": "esc"}.get(key, key)


class HelpScreen(ModalScreen[None]):
    """A modal listing the keys; any of esc, q or ? closes it."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, under: Screen) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        table = Table(title=Text("keys", style="bold"), show_header=False, box=None, padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True)
        table.add_column()
        seen: set[str] = set()
        bindings = [*getattr(self.under, "BINDINGS", []), *self.app.BINDINGS]
        for binding in bindings:
            if isinstance(binding, tuple):
                binding = Binding(*binding)
            keys = ", ".join(_key_name(key) for key in binding.key.split(","))
            if keys in seen or not binding.description:
                continue
            seen.add(keys)
            table.add_row(keys, binding.description)
        for keys, description in WIDGET_KEYS.get(type(self.under).__name__, []):
            table.add_row(keys, description)
        with VerticalScroll(id="help-box"):
            yield Static(table)

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(None)
