"""A run comparison for people (a Rich table) and for pull requests (Markdown). Every value that came from a span
is shown literally: control characters escaped (tracekit.terminal_text), Markdown's own characters escaped."""

from __future__ import annotations

import re

from rich.console import Group
from rich.table import Table
from rich.text import Text

from tracekit.diff.compare import RunDiff, StepDiff, Totals
from tracekit.diff.steps import Step
from tracekit.terminal_text import clean

CELL_LIMIT = 60


def summary_lines(diff: RunDiff) -> list[str]:
    """Where the runs first diverge and how their totals differ, as plain sentences."""
    first = diff.first_divergence
    a, b = diff.totals("a"), diff.totals("b")
    if first is None:
        where = f"the runs take the same {a.steps} steps"
    else:
        where = f"first divergence at step {first.index + 1}: {_describe(first)}"
    return [
        f"A: {clean(diff.a.key)} ({diff.a.kind}, {a.steps} steps)   B: {clean(diff.b.key)} ({diff.b.kind}, {b.steps} steps)",
        where,
        "time " + _delta_ms(a.duration_ns, b.duration_ns) + "   tokens " + _delta(a.tokens, b.tokens)
        + "   cost " + _delta_cost(a, b) + f"   errors {a.errors} → {b.errors}",
    ]


def to_rich(diff: RunDiff, *, all_steps: bool = True) -> Group:
    """Summary lines and the aligned steps as a table (identical steps dimmed, or left out without `all_steps`)."""
    table = Table(show_lines=False, expand=True)
    for column, justify in (("#", "right"), ("A", "left"), ("B", "left"), ("what differs", "left"),
                            ("Δ time", "right"), ("Δ tokens", "right")):
        table.add_column(column, justify=justify, overflow="fold")
    for step in diff.steps:
        if step.same and not all_steps:
            continue
        style = "dim" if step.same else ""
        table.add_row(str(step.index + 1), _cell(step.a), _cell(step.b),
                      Text(", ".join(step.changes) or "same", style="yellow" if step.changes else "dim"),
                      _signed_ms(step.duration_delta_ns), _signed(step.tokens_delta), style=style)
    return Group(*(Text(line) for line in summary_lines(diff)), table)


def to_markdown(diff: RunDiff, *, all_steps: bool = True) -> str:
    """The comparison as GitHub-flavoured Markdown: the summary, then a table of the aligned steps."""
    lines = ["### Run comparison", ""]
    lines += [f"- {_md(line)}" for line in summary_lines(diff)]
    lines += ["", "| # | A | B | what differs | Δ time | Δ tokens |", "|---:|---|---|---|---:|---:|"]
    for step in diff.steps:
        if step.same and not all_steps:
            continue
        lines.append(f"| {step.index + 1} | {_md(_plain(step.a))} | {_md(_plain(step.b))} | "
                     f"{_md(', '.join(step.changes) or 'same')} | {_signed_ms(step.duration_delta_ns)} | "
                     f"{_signed(step.tokens_delta)} |")
    return "\n".join(lines) + "\n"


def _describe(step: StepDiff) -> str:
    parts = [", ".join(step.changes)]
    if step.a is not None:
        parts.append(f"A {_plain(step.a, indent=False)}")
    if step.b is not None:
        parts.append(f"B {_plain(step.b, indent=False)}")
    return "; ".join(parts)


def _plain(step: Step | None, *, indent: bool = True) -> str:
    if step is None:
        return "—"
    text = ("  " * min(step.depth, 8) if indent else "") + step.label()
    if step.arguments:
        text += " " + _cut(step.arguments)
    if step.error:
        text += f" ✖ {_cut(step.error)}"
    return clean(text)


def _cell(step: Step | None) -> Text:
    return Text(_plain(step), style="red" if step is not None and step.error else "")


def _cut(text: str) -> str:
    return text if len(text) <= CELL_LIMIT else text[:CELL_LIMIT] + "…"


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~])")


def _md(text: str) -> str:
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text).replace("\n", " ")


def _signed(value: int | None) -> str:
    return "" if value is None or value == 0 else f"{value:+,}"


def _signed_ms(ns: int | None) -> str:
    return "" if ns is None or abs(ns) < 500_000 else f"{ns / 1e6:+,.0f} ms"


def _delta(a: int, b: int) -> str:
    return f"{a:,} → {b:,} ({b - a:+,})"


def _delta_ms(a: int, b: int) -> str:
    return f"{a / 1e6:,.0f} ms → {b / 1e6:,.0f} ms ({(b - a) / 1e6:+,.0f} ms)"


def _delta_cost(a: Totals, b: Totals) -> str:
    if a.cost_usd is None or b.cost_usd is None:
        return "— (a model without a known price)"
    return f"${a.cost_usd:.4f} → ${b.cost_usd:.4f} ({b.cost_usd - a.cost_usd:+.4f})"
