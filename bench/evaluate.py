"""Benchmark: what `tracekit evaluate` adds around Microsoft's evaluators, with a judge that answers at once.

    python bench/evaluate.py [--conversations 30] [--concurrency 4] [--evaluator coherence]

Writes the demo's conversations into a store through a real collector (content recorded), then judges every agent
response twice, against a local stand-in for the judge model that answers immediately:

- baseline: azure-ai-evaluation's evaluator called directly on the same inputs, from the same number of threads;
- tracekit: `tracekit evaluate` end to end in this process: selecting the responses and reading their recorded
  conversations from the store, judging, and storing each verdict as a gen_ai.evaluation.result event.

Both print evaluations per second; the ratio is the share of the time that is tracekit's (selection, input
building, storing), since the judge itself costs nothing here. A real judge takes about a second a call, so in use
the judge dominates whatever this reports.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.evaluators.judge_stand_in import JudgeStandIn  # noqa: E402


def _write_store(path: Path, conversations: int) -> None:
    from tracekit.collector.service import Collector
    from tracekit.collector.settings import CollectorSettings
    from tracekit.demo import run_demo

    with Collector(CollectorSettings(db_path=path, grpc="127.0.0.1:0", http="127.0.0.1:0")).running() as collector:
        sent = run_demo(f"http://{collector.grpc_endpoint}", conversations=conversations)
        while collector.reader().sql("SELECT count(*) AS n FROM spans").column("n")[0].as_py() < sent:
            time.sleep(0.1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=30)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--evaluator", default="coherence")
    args = parser.parse_args()

    from tracekit.evaluators.builtin import make_evaluators
    from tracekit.evaluators.items import Selection, select_items
    from tracekit.evaluators.judge import judge_from
    from tracekit.evaluators.results import evaluation_request
    from tracekit.evaluators.runner import run_evaluations
    from tracekit.store.reader import open_reader

    with tempfile.TemporaryDirectory() as tmp, JudgeStandIn() as stand_in:
        template = Path(tmp) / "template.duckdb"
        _write_store(template, args.conversations)
        judge = judge_from(stand_in.url, "gpt-4o", "bench-key")
        evaluator = make_evaluators([args.evaluator], judge)[0]

        reader = open_reader(template)
        items = select_items(reader, Selection())
        reader.close()
        evaluator.judge(items[0])  # warm-up: the package's prompt templates load on first use
        started = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(evaluator.judge, items))
        baseline = time.perf_counter() - started

        store = Path(tmp) / "traces.duckdb"
        shutil.copyfile(template, store)
        from tracekit.collector.offline import write_requests

        started = time.perf_counter()
        reader = open_reader(store)
        selected = select_items(reader, Selection())
        reader.close()
        summary = run_evaluations(selected, [evaluator], concurrency=args.concurrency,
                                  deliver=lambda results: write_requests([evaluation_request(results)], store))
        ours = time.perf_counter() - started
        judged = summary.tallies[evaluator.name].evaluated

    print(f"{len(items)} agent responses from {args.conversations} demo conversations, evaluator {args.evaluator}, "
          f"{args.concurrency} threads, judge answering at once")
    print(f"baseline  azure-ai-evaluation called directly   {len(items) / baseline:8.1f} evaluations/s")
    print(f"tracekit  select + judge + store               {judged / ours:8.1f} evaluations/s   "
          f"({ours / baseline:.2f}x the baseline's time)")
    return 0 if judged == len(items) else 1


if __name__ == "__main__":
    sys.exit(main())
