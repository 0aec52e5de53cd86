"""Waiting for the app's workers, and reading what is on screen as plain text."""

from __future__ import annotations

import time
from typing import Callable

from rich.console import Console
from textual.css.query import NoMatches
from textual.pilot import Pilot


async def wait_for(pilot: Pilot, condition: Callable[[], bool], timeout: float = 15.0) -> None:
    """Let the app run until `condition()` holds (queries run in worker threads).

    A condition that finds no widget counts as not holding yet: the app builds the trace view ahead by pushing and
    popping it inside one batch update, so between two of the app's awaits `app.screen` can briefly be that screen
    (keys wait in the message queue meanwhile; nothing of it is painted)."""
    deadline = time.monotonic() + timeout
    while not _holds(condition):
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for the app")
        await pilot.pause(0.02)
    await pilot.pause()


def _holds(condition: Callable[[], bool]) -> bool:
    try:
        return condition()
    except NoMatches:
        return False


def plain(renderable, width: int = 100_000) -> str:
    """A Rich renderable as plain text (no styles, no escape codes), unwrapped unless `width` is given."""
    console = Console(width=width, record=True, file=open("/dev/null", "w"), color_system=None)
    console.print(renderable)
    return console.export_text()


def shown(static) -> str:
    """What a Static widget shows, as plain text."""
    return plain(static.content)
