"""The span tree with a timing waterfall: one line per span, bars aligned on a shared time axis."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from tracekit import multi_agent, semconv
from tracekit.conversation.literal import literal
from tracekit.store.open_spans import NOT_REPORTING, RUNNING
from tracekit.tui.data import SpanRow
from tracekit.tui.format import format_duration, short_id
from tracekit.tui.span_forest import SpanNode, build_forest, walk

NAME_WIDTH = 52
BAR_WIDTH = 36
EXPAND_DEPTH = 3  # levels opened on first show; deeper subtrees are built when opened
CHILD_BATCH = 300  # children built per node at a time; a marker node loads the next batch
GUIDE = 4  # Tree's default guide width per level

KIND_STYLE = {"agent": "cyan", "model": "magenta", "tool": "yellow", "step": "blue", "plan": "blue",
              "handoff": "cyan", "other": "bright_black"}
ICONS = {"agent": "▶", "model": "✦", "tool": "⚙", "step": "◆", "plan": "☰", "handoff": "⇢", "other": "•"}
LIVE_MARKS = {RUNNING: ("● running ", "bold green"), NOT_REPORTING: ("◌ no longer reporting ", "bold yellow")}


def span_role(span: SpanRow) -> str:
    """What a span is for the tree's icons and colours."""
    operation = span.operation_name or span.name.split(" ", 1)[0]
    if operation in semconv.INFERENCE_OPERATIONS or operation in (semconv.OP_EMBEDDINGS,):
        return "model"
    if operation in semconv.AGENT_OPERATIONS:
        return "agent"
    if operation == semconv.OP_EXECUTE_TOOL:
        return "tool"
    kind = multi_agent.kind_of(operation)  # Microsoft's and OpenTelemetry's spellings alike
    if kind == multi_agent.PLAN:
        return "plan"
    if kind == multi_agent.HANDOFF:
        return "handoff"
    if kind or operation in semconv.MULTI_AGENT_OPERATIONS or span.name.startswith("agent orchestration"):
        return "step"
    return "other"


class SpanTree(Tree[SpanNode]):
    """Spans of one trace; highlighting a span asks the screen to show its details."""

    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False),
        Binding("k", "cursor_up", "Up", show=False),
        Binding("h", "collapse_or_parent", "Collapse", show=False),
        Binding("l", "expand_node", "Expand", show=False),
        Binding("o", "expand_all", "Expand all"),
        Binding("O", "collapse_all", "Collapse all"),
    ]

    class SpanHighlighted(Message):
        """The cursor moved to a span (None for a placeholder)."""

        def __init__(self, span: SpanRow | None) -> None:
            super().__init__()
            self.span = span

    def __init__(self, **kwargs) -> None:
        super().__init__("trace", **kwargs)
        self.show_root = False
        self.guide_depth = GUIDE
        self.trace_start = 0
        self.trace_end = 1
        self.forest: list[SpanNode] = []
        self._span_items: dict[str, TreeNode] = {}  # span id -> built tree node
        self._span_parents: dict[str, SpanNode] = {}  # span id -> parent in the forest
        self._unbuilt: dict[int, tuple[TreeNode, SpanNode]] = {}  # tree node id -> children not built yet
        self._more_markers: dict[int, tuple[TreeNode, list[SpanNode], int, TreeNode]] = {}  # "more" markers

    def show_spans(self, spans: list[SpanRow], *, keep: str | None = None,
                   forest: list[SpanNode] | None = None) -> int:
        """Replace the tree with these spans (`forest`: their forest, when already built); keep the cursor on span
        id `keep` if given, else put it on the first line. Returns the span count.

        Nodes are built lazily: the first EXPAND_DEPTH levels now, deeper levels when opened, and at most
        CHILD_BATCH children at a time, so a 10,000-span trace opens as fast as a small one.
        """
        forest = build_forest(spans) if forest is None else forest
        self.forest = forest
        self.trace_start = min((s.start_ns for s in spans), default=0)
        self.trace_end = max((s.end_ns for s in spans), default=1)
        self.clear()
        self.unselect()  # no cursor line carried over from the spans shown before
        self._span_items, self._unbuilt, self._more_markers = {}, {}, {}
        self._span_parents = {child.span_id: node for node in walk(forest) for child in node.children}
        with self.app.batch_update():
            self._add_children(self.root, forest, 0)
            self.root.expand()
        if (not keep or not self.select_span(keep)) and self.forest:
            self.move_cursor_to_line(0)  # now, so the first frame of the tree already has its cursor
        return len(spans)

    def _add_children(self, parent: TreeNode, children: list[SpanNode], offset: int) -> None:
        """Add children[offset:offset + CHILD_BATCH] under `parent`, then a "more" marker if some remain."""
        for node in children[offset:offset + CHILD_BATCH]:
            label = self.label_for(node)
            if node.children:
                item = parent.add(label, data=node, allow_expand=True)
                self._unbuilt[id(item)] = (item, node)
                if node.depth < EXPAND_DEPTH:
                    self._open_node(item)
            else:
                item = parent.add_leaf(label, data=node)
            self._span_items[node.span_id] = item
        remaining = len(children) - offset - CHILD_BATCH
        if remaining > 0:
            marker = parent.add_leaf(Text(f"… {remaining:,} more spans here: press enter to show them",
                                          style="bold yellow"), data=None)
            marker.data = None
            self._more_markers[id(marker)] = (parent, children, offset + CHILD_BATCH, marker)

    def _open_node(self, item: TreeNode) -> None:
        pending = self._unbuilt.pop(id(item), None)
        if pending is not None:
            self._add_children(item, pending[1].children, 0)
        item.expand()

    def on_tree_node_expanded(self, event: Tree.NodeExpanded) -> None:
        event.stop()
        pending = self._unbuilt.pop(id(event.node), None)
        if pending is not None:
            self._add_children(event.node, pending[1].children, 0)

    def on_tree_node_selected(self, event: Tree.NodeSelected) -> None:
        more = self._more_markers.pop(id(event.node), None)
        if more is None:
            return
        event.stop()
        parent, children, offset, marker = more
        marker.remove()
        self._add_children(parent, children, offset)

    def find(self, text: str) -> list[str]:
        """Ids of the spans whose name, agent, tool or model contains `text` (any case), in display order."""
        needle = text.casefold()
        found = []
        for node in walk(self.forest):
            span = node.span
            if span is None:
                continue
            fields = (span.name, span.agent_name, span.tool_name, span.model, span.span_id)
            if any(needle in value.casefold() for value in fields if value):
                found.append(span.span_id)
        return found

    def select_span(self, span_id: str) -> bool:
        """Move the cursor to a span, building and opening its ancestors."""
        path = []
        node_id: str | None = span_id
        while node_id is not None and node_id not in self._span_items:
            parent = self._span_parents.get(node_id)
            path.append(node_id)
            node_id = parent.span_id if parent is not None else None
        if node_id is None:
            return False
        for ancestor_id in [node_id, *reversed(path)]:
            item = self._span_items.get(ancestor_id)
            if item is None:
                return False  # beyond a "more" marker; the user can page to it
            if ancestor_id != span_id:
                self._open_node(item)
        item = self._span_items[span_id]
        parent_item = item.parent
        while parent_item is not None:
            parent_item.expand()
            parent_item = parent_item.parent
        self.call_after_refresh(self.move_cursor, item)
        return True

    def label_for(self, node: SpanNode) -> Text:
        """Name (icon, colour, error mark) padded to a column, then duration and the waterfall bar."""
        # Expandable nodes get a 2-cell expand icon before the label; leaves do not: pad leaves to line the bars up.
        width = max(12, NAME_WIDTH - GUIDE * node.depth + (0 if node.children else 2))
        if node.span is None:
            label = Text(f"⋯ missing span {short_id(node.span_id, 16)} (not received yet)", style="italic dim")
            label.truncate(width, overflow="ellipsis", pad=True)
            return label
        span = node.span
        role = span_role(span)
        label = Text(ICONS[role] + " ", style=KIND_STYLE[role])
        label.append_text(literal(span.name, limit=200, pretty=False, style="bold" if role != "other" else ""))
        extra = span.agent_name if role == "agent" and span.agent_name and span.agent_name not in span.name else None
        if extra:
            label.append(" ")
            label.append_text(literal(extra, limit=80, pretty=False, style="cyan"))
        if span.status_code == "ERROR":
            label.append(" ✖", style="bold red")
        if span.live_state:  # not ended yet: said before the name is cut to the column
            label = Text.assemble(LIVE_MARKS[span.live_state], label)
        label.truncate(width, overflow="ellipsis", pad=True)
        label.append(f" {format_duration(span.duration_ns):>7} ", style="dim")
        label.append_text(self._bar(span, role))
        return label

    def _bar(self, span: SpanRow, role: str) -> Text:
        total = max(1, self.trace_end - self.trace_start)
        offset = int((span.start_ns - self.trace_start) / total * BAR_WIDTH)
        length = max(1, round(span.duration_ns / total * BAR_WIDTH))
        offset = min(offset, BAR_WIDTH - 1)
        length = min(length, BAR_WIDTH - offset)
        style = "red" if span.status_code == "ERROR" else KIND_STYLE[role]
        return Text.assemble(("·" * offset, "bright_black"), ("━" * length, style),
                             (" " * (BAR_WIDTH - offset - length), ""))

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted) -> None:
        event.stop()
        node = event.node.data
        if node is None:
            return  # a "more" marker
        self.post_message(self.SpanHighlighted(node.span))

    def action_expand_node(self) -> None:
        if self.cursor_node is not None:
            self._open_node(self.cursor_node)

    def action_collapse_or_parent(self) -> None:
        node = self.cursor_node
        if node is None:
            return
        if node.is_expanded and node.children:
            node.collapse()
        elif node.parent is not None and node.parent is not self.root:
            self.move_cursor(node.parent)

    def action_expand_all(self) -> None:
        """Open every subtree (builds all nodes: on a very large trace this takes a moment)."""
        stack = list(self.root.children)
        while stack:
            item = stack.pop()
            if item.allow_expand:
                self._open_node(item)
                stack.extend(item.children)

    def action_collapse_all(self) -> None:
        for node in self.root.children:
            node.collapse_all()
            node.expand()
