"""Running evaluators over items: in parallel, with retries and back-off for the judge, never twice for the same
item and evaluator (unless forced), results handed on in small batches so a crash loses little.

azure-ai-evaluation already retries 429 and 5xx answers itself (up to 10 times, honouring Retry-After), so the
retries here are few: they cover what it does not retry, an answer with no readable score above all.
"""

from __future__ import annotations

import concurrent.futures
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

from tracekit.evaluators.builtin import Evaluator, NotApplicable, Verdict
from tracekit.evaluators.items import Item
from tracekit.store.reader import StoreReader

BATCH = 20


@dataclass
class Tally:
    """What happened for one evaluator."""

    evaluated: int = 0
    already_done: int = 0
    not_applicable: int = 0
    failed: int = 0
    scores: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.scores) if self.scores else None


@dataclass
class Summary:
    items: int = 0
    not_recorded: int = 0        # responses whose content was not recorded (skipped)
    tallies: dict[str, Tally] = field(default_factory=dict)


def already_evaluated(reader: StoreReader) -> set[tuple[str, str]]:
    """(evaluator name, item key) of every evaluation result in the store; a key is a response id or trace/span."""
    table = reader.sql("""
        SELECT json_extract_string(attributes, '$."gen_ai.evaluation.name"') AS name,
               json_extract_string(attributes, '$."gen_ai.response.id"') AS response_id,
               trace_id || '/' || span_id AS span_key
        FROM logs WHERE event_name = 'gen_ai.evaluation.result'
    """)
    done = set()
    for row in table.to_pylist():
        for key in (row["response_id"], row["span_key"]):
            if row["name"] and key:
                done.add((row["name"], key))
    return done


def run_evaluations(items: list[Item], evaluators: list[Evaluator], *, deliver: Callable[[list], None],
                    done: set[tuple[str, str]] = frozenset(), force: bool = False, concurrency: int = 4,
                    attempts: int = 3, backoff_s: float = 0.5,
                    on_progress: Callable[[int, int], None] | None = None) -> Summary:
    """Judge every (item, evaluator) pair not done yet; `deliver(results)` stores batches of verdicts."""
    summary = Summary(items=len(items), tallies={evaluator.name: Tally() for evaluator in evaluators})
    tasks = []
    for item in items:
        if not item.recorded:
            summary.not_recorded += 1
            continue
        for evaluator in evaluators:
            if not force and ((evaluator.name, item.key) in done
                              or (evaluator.name, f"{item.trace_id}/{item.span_id}") in done):
                summary.tallies[evaluator.name].already_done += 1
            else:
                tasks.append((item, evaluator))
    pending: list[tuple[Item, str, Verdict]] = []
    finished = 0
    if on_progress is not None:
        on_progress(0, len(tasks))
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures = {pool.submit(_judge, item, evaluator, attempts, backoff_s): (item, evaluator)
                   for item, evaluator in tasks}
        for future in concurrent.futures.as_completed(futures):
            item, evaluator = futures[future]
            tally = summary.tallies[evaluator.name]
            outcome, value = future.result()
            if outcome == "verdict":
                tally.evaluated += 1
                if value.score is not None:
                    tally.scores.append(value.score)
                pending.append((item, evaluator.name, value))
                if len(pending) >= BATCH:
                    deliver(pending)
                    pending = []
            elif outcome == "not_applicable":
                tally.not_applicable += 1
            else:
                tally.failed += 1
                if value not in tally.errors and len(tally.errors) < 5:
                    tally.errors.append(value)
            finished += 1
            if on_progress is not None:
                on_progress(finished, len(tasks))
    if pending:
        deliver(pending)
    return summary


def _judge(item: Item, evaluator: Evaluator, attempts: int, backoff_s: float) -> tuple[str, object]:
    """('verdict', Verdict), ('not_applicable', reason) or ('failed', reason) after retrying with back-off."""
    reason = ""
    for attempt in range(attempts):
        try:
            return "verdict", evaluator.judge(item)
        except NotApplicable as why:
            return "not_applicable", str(why)
        except Exception as error:  # noqa: BLE001 - a judge failure (429/5xx, unreadable verdict) never stops the run
            reason = f"{type(error).__name__}: {str(error)[:200]}"
            if attempt + 1 < attempts:
                time.sleep(backoff_s * 2 ** attempt)
    return "failed", reason
