"""Comparing two agent runs step by step: `tracekit diff A B` and the TUI's compare screen.

    steps.py   a run (trace, conversation or response id) -> its ordered steps: agents, model calls, tools, hand-offs
    align.py   two step lists -> aligned pairs (a global sequence alignment, so an inserted step lines up)
    compare.py aligned pairs -> per-step differences and a summary (first divergence, totals and their deltas)
    render.py  the comparison as a terminal table, JSON or Markdown
"""

from tracekit.diff.compare import RunDiff, diff_runs

__all__ = ["RunDiff", "diff_runs"]
