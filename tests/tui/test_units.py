"""Pure parts of the TUI: the filter language, the span forest, literal text."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tracekit.conversation.literal import clean, literal
from tracekit.tui.data import SpanRow
from tracekit.tui.filters import FilterError, parse_filter
from tracekit.tui.span_forest import build_forest, walk


@pytest.mark.parametrize("text, column, message", [
    ("checkout colour:blue", 10, "unknown filter key 'colour'"),
    ("agent:", 1, "agent: needs a value"),
    ("status:maybe", 1, "status: expects error or ok"),
    ("x since:yesterday", 3, "neither a duration"),
    ("trace:xyz", 1, "trace: expects hex digits"),
    ('agent:"open', 7, "unclosed quote"),
])
def test_filter_errors_point_at_the_term(text, column, message):
    with pytest.raises(FilterError, match=message) as failure:
        parse_filter(text)
    assert failure.value.column == column


def test_filter_terms_compile_to_bound_parameters():
    now = datetime(2026, 1, 15, 12, 0, tzinfo=timezone.utc)
    compiled = parse_filter('since:2h agent:"trip planner" model:gpt-4* https://x', now=now)
    assert compiled.params[0] == "2026-01-15 10:00:00"  # text, so it travels as JSON to a collector's read API
    assert compiled.params[1] == "trip planner"
    assert compiled.params[2:4] == ["gpt-4%", "gpt-4%"]
    assert "https://x" in compiled.params[4]  # a URL is free text, not an unknown key
    assert all("'" not in condition.replace("'\\'", "") for condition in compiled.span_conditions)


def _row(span_id: str, parent: str | None, start: int) -> SpanRow:
    return SpanRow("t", span_id, parent, span_id, "INTERNAL", start, start + 10, "UNSET", None, None, None, None,
                   None, None, None, None, 1)


def test_forest_places_orphans_and_breaks_cycles():
    rows = [_row("root", None, 0), _row("a", "root", 1), _row("orphan", "lost", 2), _row("x", "y", 3),
            _row("y", "x", 4)]
    forest = build_forest(rows)
    shown = [(node.span_id, node.depth) for node in walk(forest)]
    assert ("root", 0) in shown and ("a", 1) in shown
    assert ("lost", 1) in shown and ("orphan", 2) in shown  # placeholder under the root
    assert {span for span, _ in shown} >= {"x", "y"}  # the cycle is cut, nothing disappears
    assert next(node for node in walk(forest) if node.span_id == "lost").missing


def test_literal_escapes_controls_and_bidi_and_never_parses_markup():
    hostile = "[bold]x[/bold]\x1b]52;c;SGk=\x07\r\u202eevil\x9b"
    text = literal(hostile, pretty=False)
    assert text.plain == "[bold]x[/bold]\\x1b]52;c;SGk=\\x07\\x0d\\u202eevil\\x9b"
    assert text.spans == []
    assert clean("tab\there") == "tab    here"
    cut = literal("A" * 10_000, limit=100)
    assert cut.plain.startswith("A" * 100) and "showing 100 of 10,000 characters" in cut.plain
