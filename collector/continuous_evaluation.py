"""Continuous evaluation while the collector runs (`tracekit collect --evaluation-rules FILE`).

A thread of its own watches for traces that completed since it last looked (their root span was committed), picks
their agent responses per rule (agent filter, deterministic sample, hourly cap, as Foundry's continuous evaluation
rule does), and judges them on a small worker pool. Verdicts are stored through the collector's own pipeline as
`gen_ai.evaluation.result` events, exactly as `tracekit evaluate` stores them.

It never slows ingest: it reads on its own connection, and the work waiting for a judge is a bounded backlog
(BACKLOG items); when it is full the oldest work is dropped and counted. A response over a rule's hourly cap is
skipped and counted. Its counters are in the collector's status (`/v1/status`, and the TUI's alerts screen).
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import threading
import time
from typing import Any, Callable

from tracekit.collector.periodic import PeriodicJob
from tracekit.evaluators.builtin import Evaluator, NotApplicable
from tracekit.evaluators.items import Item, Selection, in_sample, select_items
from tracekit.evaluators.results import evaluation_request
from tracekit.evaluators.rules import EvaluationRule

log = logging.getLogger("tracekit.collector.continuous_evaluation")

BACKLOG = 1_000
POLL_SECONDS = 2.0
WORKERS = 2
HOUR = 3600.0


class ContinuousEvaluation(PeriodicJob):
    """Finds new agent responses and judges them per rule, off the ingest path."""

    name = "tracekit-evaluation-watch"

    def __init__(self, rules: list[EvaluationRule], reader_factory: Callable[[], Any],
                 ingest: Callable[[str, bytes], Any], *, backlog: int = BACKLOG, poll_seconds: float = POLL_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(reader_factory, interval=poll_seconds)
        self.rules = rules
        self._ingest = ingest
        self._clock = clock
        self._last_seq: int | None = None
        self._backlog: collections.deque[tuple[EvaluationRule, Evaluator, Item]] = collections.deque()
        self._backlog_limit = backlog
        self._recent: dict[str, collections.deque[float]] = {rule.name: collections.deque() for rule in rules}
        self._lock = threading.Lock()
        self.counters = {"evaluated": 0, "failed": 0, "not_applicable": 0, "dropped": 0, "capped": 0,
                         "not_recorded": 0}
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=WORKERS,
                                                           thread_name_prefix="tracekit-evaluation")

    def stop(self) -> None:
        super().stop()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {"evaluation": {"rules": [rule.name for rule in self.rules], "backlog": len(self._backlog),
                                   **self.counters}}

    # --- finding work ---------------------------------------------------------------------------------------------
    def look(self) -> int:
        """Queue the agent responses of traces completed since the last look; returns how many were queued."""
        if self._last_seq is None:  # start with what arrives from now on, not the whole history
            self._last_seq = self._latest_seq()
            return 0
        rows = self.reader.sql(
            "SELECT DISTINCT trace_id, ingest_seq FROM spans WHERE ingest_seq > ? AND parent_span_id IS NULL",
            [self._last_seq]).to_pylist()
        if not rows:
            return 0
        self._last_seq = max(row["ingest_seq"] for row in rows)
        items = select_items(self.reader, Selection(trace_ids=sorted({row["trace_id"] for row in rows})))
        queued = 0
        for item in items:
            if not item.recorded:
                with self._lock:
                    self.counters["not_recorded"] += 1
                continue
            for rule in self.rules:
                if rule.agent and item.agent != rule.agent or not in_sample(item.key, rule.sample):
                    continue
                for evaluator in rule.evaluators:
                    self._enqueue(rule, evaluator, item)
                    queued += 1
        return queued

    def _latest_seq(self) -> int:
        table = self.reader.sql("SELECT coalesce(max(ingest_seq), 0) AS seq FROM spans")
        return int(table.column("seq")[0].as_py())

    def _enqueue(self, rule: EvaluationRule, evaluator: Evaluator, item: Item) -> None:
        with self._lock:
            if len(self._backlog) >= self._backlog_limit:
                self._backlog.popleft()
                self.counters["dropped"] += 1
            self._backlog.append((rule, evaluator, item))

    # --- doing work -------------------------------------------------------------------------------------------------
    def tick(self) -> None:
        self.look()
        self._drain()

    def _drain(self) -> None:
        """Judge what is queued, WORKERS at a time, within each rule's hourly cap; store the verdicts."""
        while not self._stop.is_set():
            batch = []
            with self._lock:
                while self._backlog and len(batch) < WORKERS * 4:
                    rule, evaluator, item = self._backlog.popleft()
                    if not self._within_cap(rule):
                        self.counters["capped"] += 1
                        continue
                    batch.append((evaluator, item))
            if not batch:
                return
            results = []
            for (evaluator, item), outcome in zip(batch, self._pool.map(lambda work: _judge(*work), batch)):
                kind, value = outcome
                with self._lock:
                    self.counters[kind] += 1
                if kind == "evaluated":
                    results.append((item, evaluator.name, value))
            if results:
                self._ingest("logs", evaluation_request(results).SerializeToString())

    def _within_cap(self, rule: EvaluationRule) -> bool:
        now = self._clock()
        recent = self._recent[rule.name]
        while recent and now - recent[0] > HOUR:
            recent.popleft()
        if len(recent) >= rule.max_per_hour:
            return False
        recent.append(now)
        return True


def _judge(evaluator: Evaluator, item: Item) -> tuple[str, Any]:
    try:
        return "evaluated", evaluator.judge(item)
    except NotApplicable as why:
        return "not_applicable", str(why)
    except Exception as error:  # noqa: BLE001 - a judge failure is counted, never fatal
        log.warning("evaluation %s of %s failed: %s", evaluator.name, item.key, error)
        return "failed", str(error)
