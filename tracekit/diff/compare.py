"""Two runs compared step by step: what differs in each aligned pair, and a summary of the whole.

Per pair: a step only one run has; another tool, model or agent in the same place; different tool arguments;
a different result (tool result, or a model call's output when content was recorded); an error in one run only;
and the change in duration, tokens and cost. The summary says where the runs first diverge and how their total
time, tokens and cost differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tracekit.diff.align import align
from tracekit.diff.steps import Run, Step, load_run
from tracekit.store.reader import StoreReader


@dataclass
class StepDiff:
    """One aligned position: the step of each run (None where that run has no such step) and what differs."""

    index: int
    a: Step | None
    b: Step | None
    changes: list[str] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return not self.changes

    @property
    def duration_delta_ns(self) -> int | None:
        return self.b.duration_ns - self.a.duration_ns if self.a and self.b else None

    @property
    def tokens_delta(self) -> int | None:
        if not (self.a and self.b) or self.a.tokens is None or self.b.tokens is None:
            return None
        return self.b.tokens - self.a.tokens

    @property
    def cost_delta(self) -> float | None:
        if not (self.a and self.b) or self.a.cost_usd is None or self.b.cost_usd is None:
            return None
        return self.b.cost_usd - self.a.cost_usd


@dataclass
class Totals:
    """A run's totals: wall time, model tokens, cost (None when some model call has no known price), errors."""

    steps: int
    duration_ns: int
    tokens: int
    cost_usd: float | None
    errors: int


@dataclass
class RunDiff:
    """The comparison of run A with run B."""

    a: Run
    b: Run
    steps: list[StepDiff]

    @property
    def first_divergence(self) -> StepDiff | None:
        """The first aligned position where the runs differ (None when they do the same steps the same way)."""
        return next((step for step in self.steps if not step.same), None)

    @property
    def identical(self) -> bool:
        return self.first_divergence is None

    def totals(self, which: str) -> Totals:
        run = self.a if which == "a" else self.b
        models = [step for step in run.steps if step.kind == "model"]
        costs = [step.cost_usd for step in models]
        return Totals(
            steps=len(run.steps), duration_ns=run.duration_ns,
            tokens=sum(step.tokens or 0 for step in models),
            cost_usd=None if not costs or any(cost is None for cost in costs) else sum(costs),
            errors=sum(1 for step in run.steps if step.error))


def diff_runs(reader: StoreReader, key_a: str, key_b: str) -> RunDiff:
    """Load both runs (trace, conversation or response ids) and compare them."""
    return compare(load_run(reader, key_a), load_run(reader, key_b))


def compare(a: Run, b: Run) -> RunDiff:
    """Align the steps of two loaded runs and note what differs at each position."""
    return RunDiff(a, b, [StepDiff(index, step_a, step_b, _changes(step_a, step_b))
                          for index, (step_a, step_b) in enumerate(align(a.steps, b.steps))])


def _changes(a: Step | None, b: Step | None) -> list[str]:
    if a is None:
        return ["only in B"]
    if b is None:
        return ["only in A"]
    changes = []
    if a.name != b.name:
        changes.append(f"different {a.kind}")
    if a.arguments != b.arguments and (a.arguments is not None or b.arguments is not None):
        changes.append("different arguments")
    if a.result != b.result and a.result is not None and b.result is not None:
        changes.append("different output" if a.kind == "model" else "different result")
    if bool(a.error) != bool(b.error):
        changes.append("error only in A" if a.error else "error only in B")
    elif a.error and b.error and a.error != b.error:
        changes.append("different error")
    return changes


def to_dict(diff: RunDiff) -> dict[str, Any]:
    """The comparison as plain data (the JSON output of `tracekit diff --format json`)."""
    first = diff.first_divergence
    return {
        "a": _run_dict(diff.a, diff.totals("a")),
        "b": _run_dict(diff.b, diff.totals("b")),
        "identical": first is None,
        "first_divergence": None if first is None else {"index": first.index, "changes": first.changes,
                                                        "a": _step_dict(first.a), "b": _step_dict(first.b)},
        "steps": [{"index": step.index, "changes": step.changes, "a": _step_dict(step.a), "b": _step_dict(step.b),
                   "duration_delta_ms": _ms(step.duration_delta_ns), "tokens_delta": step.tokens_delta,
                   "cost_delta_usd": step.cost_delta} for step in diff.steps],
    }


def _run_dict(run: Run, totals: Totals) -> dict[str, Any]:
    return {"id": run.key, "resolved_as": run.kind, "trace_ids": run.trace_ids, "truncated": run.truncated,
            "steps": totals.steps, "duration_ms": _ms(totals.duration_ns), "tokens": totals.tokens,
            "cost_usd": totals.cost_usd, "errors": totals.errors}


def _step_dict(step: Step | None) -> dict[str, Any] | None:
    if step is None:
        return None
    return {"kind": step.kind, "name": step.name, "trace_id": step.trace_id, "span_id": step.span_id,
            "depth": step.depth, "duration_ms": _ms(step.duration_ns), "error": step.error,
            "input_tokens": step.input_tokens, "output_tokens": step.output_tokens, "cost_usd": step.cost_usd,
            "arguments": step.arguments, "result": step.result}


def _ms(ns: int | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 3)
