"""The screens' header: Textual's `Header`, whose title update tolerates a header already taken apart.

Textual's header updates its title in a callback queued when it mounts (and when a title changes). When the screen
is taken apart before that callback runs (the app exiting right after a screen was built), the header's children are
gone and Textual's callback raises NoMatches out of the app. This header registers the same four watches with a
callback that skips a header without its title.
"""

from __future__ import annotations

from textual.css.query import NoMatches
from textual.dom import NoScreen
from textual.events import Mount
from textual.widget import Widget
from textual.widgets import Header as TextualHeader


class Header(TextualHeader):
    def _on_mount(self, event: Mount) -> None:
        event.prevent_default()  # instead of Textual's Header handler (below), not beside it
        Widget._on_mount(self, event)  # what the handler after it in the class order does

        async def set_title() -> None:
            try:
                self.query_one("HeaderTitle").update(self.format_title())  # type: ignore[attr-defined]
            except (NoScreen, NoMatches):
                pass  # taken apart before the update ran: there is no title left to show

        for node in (self.app, self.screen):
            self.watch(node, "title", set_title)
            self.watch(node, "sub_title", set_title)
