"""The screens' header (tracekit/tui/widgets/header.py) survives its screen being taken apart before its title
update runs, which Textual's own header does not: the app would end with NoMatches (seen when a test's app exited
right after a screen was built). With Textual's `Header` in its place, the test fails with NoMatches for
HeaderTitle (textual 8.2)."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.screen import Screen

from tracekit.tui.widgets.header import Header


def _app(header_class: type) -> App:
    class Titled(Screen):
        def compose(self) -> ComposeResult:
            yield header_class()

    class Flicker(App):
        async def on_mount(self) -> None:
            self.title = "tracekit"
            for _ in range(20):  # a screen built and taken apart at once, its header's title update still queued
                screen = Titled()
                await self.push_screen(screen)
                self.title = f"{self.title}."
                await screen.remove_children()
                self.pop_screen()

    return Flicker()


async def _run(app: App) -> None:
    async with app.run_test() as pilot:
        await pilot.pause(0.05)


async def test_a_header_taken_apart_before_its_title_update():
    app = _app(Header)
    await _run(app)
    assert app.return_code in (None, 0)

