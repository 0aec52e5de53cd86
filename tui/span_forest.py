"""Span rows to a forest for the tree view: children under parents, orphans under placeholders, cycles broken.

Spans arrive out of order (SDKs export children before their parents end), so a trace being written often has
spans whose parent is not in the store yet. Those are grouped under a placeholder node for the missing parent; when
the trace has a root, the placeholders hang under it (the missing span sits somewhere between), otherwise they are
top-level. Bad data with parent cycles never hides spans: anything unreachable from a root is shown at top level.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter

from tracekit.tui.data import SpanRow


@dataclass
class SpanNode:
    """A span in the tree, or a placeholder (`span` is None) for a parent that has not arrived."""

    span_id: str
    span: SpanRow | None
    children: list["SpanNode"] = field(default_factory=list)
    depth: int = 0

    @property
    def missing(self) -> bool:
        return self.span is None

    @property
    def start_ns(self) -> int:
        if self.span is not None:
            return self.span.start_ns
        return min((child.start_ns for child in self.children), default=0)


def build_forest(spans: list[SpanRow]) -> list[SpanNode]:
    """Top-level nodes of the trace, each subtree in start order, depths filled in."""
    ordered = sorted(spans, key=attrgetter("start_ns", "span_id"))
    nodes = {span.span_id: SpanNode(span.span_id, span) for span in ordered}
    roots: list[SpanNode] = []
    placeholders: dict[str, SpanNode] = {}
    for span in ordered:
        node = nodes[span.span_id]
        parent_id = span.parent_span_id
        if not parent_id or parent_id == span.span_id:
            roots.append(node)
        elif parent_id in nodes:
            nodes[parent_id].children.append(node)
        else:
            placeholders.setdefault(parent_id, SpanNode(parent_id, None)).children.append(node)
    orphan_groups = sorted(placeholders.values(), key=lambda node: node.start_ns)
    if len(roots) == 1:
        roots[0].children.extend(orphan_groups)
        roots[0].children.sort(key=lambda node: node.start_ns)
    else:
        roots.extend(orphan_groups)
    reached = _set_depths(roots)
    # Spans caught in a parent cycle are reachable from no root: show them rather than lose them.
    stranded = [nodes[span.span_id] for span in ordered if span.span_id not in reached]
    while stranded:
        node = stranded[0]
        for other in nodes.values():  # cut the cycle where it points back into itself
            if node in other.children:
                other.children.remove(node)
        roots.append(node)
        reached |= _set_depths([node], base=0)
        stranded = [candidate for candidate in stranded if candidate.span_id not in reached]
    roots.sort(key=lambda node: node.start_ns)
    return roots


def _set_depths(roots: list[SpanNode], base: int = 0) -> set[str]:
    reached: set[str] = set()
    stack = [(node, base) for node in reversed(roots)]
    while stack:
        node, depth = stack.pop()
        if node.span_id in reached and node.span is not None:
            continue
        reached.add(node.span_id)
        node.depth = depth
        stack.extend((child, depth + 1) for child in reversed(node.children))
    return reached


def walk(nodes: list[SpanNode]):
    """Every node depth-first in display order."""
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children))
