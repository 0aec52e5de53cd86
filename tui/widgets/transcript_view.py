"""The conversation transcript: one block per entry, a lane colour per agent, stepping turn by turn."""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from tracekit.conversation.model import Transcript
from tracekit.conversation.render import AGENT_COLOURS, Block, blocks, summary

MAX_BLOCKS = 600  # mounting thousands of widgets is slow; the rest is one key away


class TranscriptBlock(Static):
    """One rendered entry or turn header."""

    def __init__(self, block: Block, lane: int | None, **kwargs) -> None:
        classes = f"block kind-{block.kind}" + (f" lane-{lane % len(AGENT_COLOURS)}" if lane is not None else "")
        super().__init__(block.renderable, classes=classes, **kwargs)
        self.block = block


class TranscriptView(VerticalScroll):
    """A transcript as a column of blocks."""

    can_focus = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.transcript: Transcript | None = None
        self.turn_widgets: list[TranscriptBlock] = []
        self.current_turn = -1
        self.shown_blocks = 0
        self._blocks: list[Block] = []

    async def show(self, transcript: Transcript, *, limit: int | None, max_blocks: int = MAX_BLOCKS) -> None:
        """Render the transcript (first `max_blocks` blocks; `more()` adds the next batch)."""
        self.transcript = transcript
        self._blocks = blocks(transcript, limit=limit)
        self.current_turn = -1
        self.turn_widgets = []
        await self.remove_children()
        await self.mount(Static(summary(transcript), classes="summary"))
        self.shown_blocks = 0
        await self._mount_next(max_blocks)

    async def _mount_next(self, count: int) -> None:
        assert self.transcript is not None
        batch = self._blocks[self.shown_blocks:self.shown_blocks + count]
        widgets = []
        for block in batch:
            lane = self.transcript.agents.index(block.agent) if block.agent in self.transcript.agents else None
            widget = TranscriptBlock(block, lane)
            if block.kind == "turn":
                self.turn_widgets.append(widget)
            widgets.append(widget)
        self.shown_blocks += len(batch)
        for old in self.query(".more"):
            await old.remove()
        await self.mount_all(widgets)
        remaining = len(self._blocks) - self.shown_blocks
        if remaining > 0:
            await self.mount(Static(Text(f"… {remaining:,} more entries: press m to show them", style="bold yellow"),
                                    classes="more"))

    async def more(self) -> None:
        """Show the next batch of blocks."""
        if self.transcript is not None and self.shown_blocks < len(self._blocks):
            await self._mount_next(MAX_BLOCKS)

    def step(self, delta: int) -> int:
        """Move to the next (+1) or previous (-1) turn; returns the turn index now current (-1 when none)."""
        if not self.turn_widgets:
            return -1
        return self.select_turn(self.current_turn + delta)

    def select_turn(self, index: int, *, scroll: bool = True) -> int:
        """Make turn `index` (clamped) the current one, highlighted, and scroll it to the top when asked."""
        if not self.turn_widgets:
            return -1
        target = min(max(index, 0), len(self.turn_widgets) - 1)
        if 0 <= self.current_turn < len(self.turn_widgets):
            self.turn_widgets[self.current_turn].remove_class("current")
        self.current_turn = target
        widget = self.turn_widgets[target]
        widget.add_class("current")
        if scroll:
            self.scroll_to_widget(widget, top=True, animate=False)
        return target
