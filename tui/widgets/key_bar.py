"""The key bar at the bottom of every screen: the screen's shown bindings on one line, clickable.

It replaces Textual's Footer, which mounts one widget per key and recomposes them all whenever focus or the
bindings change (about ten times while a screen opens): here a binding change is one repaint of one line of text.
It looks like the Footer (same design colours) and a click on a key presses it, as on the Footer.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.widget import Widget

PALETTE_BORDER = "▏"


class KeyBar(Widget, can_focus=False):
    """`key description` pairs of the screen's active bindings (`show=True`), the command palette on the right."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES = {"key-bar--key", "key-bar--description", "key-bar--hover", "key-bar--border"}
    DEFAULT_CSS = """
    KeyBar {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
        .key-bar--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        .key-bar--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        .key-bar--hover {
            background: $block-hover-background;
        }
        .key-bar--border {
            color: $foreground 20%;
        }
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._regions: list[tuple[int, int, str, bool]] = []  # (start, end, key, enabled) of each key's cells
        self._hover: int | None = None  # x of the pointer while it is over the bar

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self._bindings_changed)

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def _bindings_changed(self, _screen) -> None:
        self.refresh()

    def _keys(self) -> tuple[list[tuple[str, str, str, bool]], tuple[str, str, str, bool] | None]:
        """(key, shown key, description, enabled) per action, in binding order; and the command palette's."""
        app = self.app
        active = self.screen.active_bindings
        keys: dict[str, tuple[str, str, str, bool]] = {}
        for _namespace, binding, enabled, _tooltip in active.values():
            if binding.show and binding.action not in keys:
                keys[binding.action] = (binding.key, app.get_key_display(binding), binding.description, enabled)
        palette = None
        if app.ENABLE_COMMAND_PALETTE and app.COMMAND_PALETTE_BINDING in active:
            _namespace, binding, enabled, _tooltip = active[app.COMMAND_PALETTE_BINDING]
            palette = (binding.key, app.get_key_display(binding), binding.description, enabled)
            keys.pop(binding.action, None)
        return list(keys.values()), palette

    def _key_text(self, key: tuple[str, str, str, bool], start: int) -> Text:
        _key, shown, description, enabled = key
        text = Text.assemble((f" {shown} ", self.get_component_rich_style("key-bar--key")),
                             (f"{description} " if description else "",
                              self.get_component_rich_style("key-bar--description")))
        return self._style_key(text, enabled, start)

    def _style_key(self, text: Text, enabled: bool, start: int) -> Text:
        """Dim a disabled key; highlight the key under the pointer."""
        if not enabled:
            text.stylize("dim")
        if self._hover is not None and start <= self._hover < start + text.cell_len:
            text.stylize(self.get_component_rich_style("key-bar--hover"))
        return text

    def render(self) -> Text:
        keys, palette = self._keys()
        line = Text(no_wrap=True, overflow="crop", end="")
        regions = []
        for key in keys:
            start = line.cell_len
            line.append_text(self._key_text(key, start))
            regions.append((start, line.cell_len, key[0], key[3]))
        if palette is not None:  # on the right, after a thin border, as the Footer shows it
            _key, shown, description, enabled = palette
            tail_start = max(0, self.size.width - len(shown) - len(description) - 3)
            line.truncate(tail_start, pad=True)
            regions = [region for region in regions if region[1] <= tail_start]
            line.append(PALETTE_BORDER, self.get_component_rich_style("key-bar--border"))
            start = line.cell_len
            tail = Text.assemble((shown, self.get_component_rich_style("key-bar--key")),
                                 (f" {description}", self.get_component_rich_style("key-bar--description")))
            self._style_key(tail, enabled, start)
            line.append_text(tail)
            line.append(" ")
            regions.append((start, line.cell_len, palette[0], enabled))
        self._regions = regions
        return line

    def _key_at(self, x: int) -> tuple[str, bool] | None:
        for start, end, key, enabled in self._regions:
            if start <= x < end:
                return key, enabled
        return None

    def on_mouse_down(self, event: events.MouseDown) -> None:
        found = self._key_at(event.x)
        if found is None:
            return
        key, enabled = found
        if enabled:
            self.app.simulate_key(key)
        else:
            self.app.bell()

    def on_mouse_move(self, event: events.MouseMove) -> None:
        if self._hover != event.x:
            self._hover = event.x
            self.refresh()

    def on_leave(self, _event: events.Leave) -> None:
        self._hover = None
        self.refresh()
