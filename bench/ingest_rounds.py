"""The collector's CPU per stored span under `bench/ingest.py`'s load, this checkout and a baseline in alternating rounds.

    python bench/ingest_rounds.py --against PYTHON [--content] [--seconds 8] [--rounds 4]

On a shared machine a single pair of runs moves by 20-40 %; alternating the two collectors round by round (the order
flipped every other round) and taking medians shows smaller differences. Each round starts a fresh collector of
that interpreter's tracekit on a fresh store, loads it over gRPC as `bench/ingest.py` does, and records the
collector's CPU a stored span (and its kernel share), each named thread's, the durable rate and the peak RSS.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ingest  # noqa: E402  (bench/ingest.py: payloads, the load process, the collector's figures)

FIGURES = ("spans_per_s", "cpu_us", "kernel_us", "peak_rss_mib", "decode_us", "writer_us", "main_thread_us",
           "other_threads_us")


def one_round(python: str, payloads: list[bytes], seconds: float, in_flight: int) -> dict[str, float]:
    """Load a fresh collector run by `python` and return its figures."""
    with tempfile.TemporaryDirectory() as tmp:
        collector, state = ingest.start_collector(Path(tmp) / "bench.duckdb", 0, python=python)
        proc = psutil.Process(collector.pid)
        peak, stop = [0], threading.Event()

        def sample() -> None:
            while not stop.wait(0.1):
                try:
                    peak[0] = max(peak[0], proc.memory_info().rss)
                except psutil.Error:
                    return

        threading.Thread(target=sample, daemon=True).start()
        results: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
        load = multiprocessing.get_context("spawn").Process(
            target=ingest.load_process, args=(state["grpc"], payloads, seconds, in_flight, results))
        cpu_before, kernel_before = ingest._cpu_seconds(proc), proc.cpu_times().system
        threads_before = ingest.thread_cpu(proc)
        load.start()
        _, _, elapsed, _ = results.get()
        cpu, kernel = ingest._cpu_seconds(proc) - cpu_before, proc.cpu_times().system - kernel_before
        threads_after = ingest.thread_cpu(proc)
        load.join()
        stop.set()
        stored = max(ingest.count_spans(state)[0], 1)
        names = ingest.thread_names(state)
        collector.terminate()
        collector.wait(timeout=60)
    by_thread = {"decode_us": 0.0, "writer_us": 0.0, "main_thread_us": 0.0, "other_threads_us": 0.0}
    for tid, seconds_used in threads_after.items():
        name = names.get(tid, "")
        key = ("decode_us" if name.startswith("tracekit-decode") else "writer_us" if name == "tracekit-store-writer"
               else "main_thread_us" if name == "MainThread" else "other_threads_us")
        by_thread[key] += 1e6 * (seconds_used - threads_before.get(tid, 0.0)) / stored
    return {"spans_per_s": stored / elapsed, "cpu_us": 1e6 * cpu / stored, "kernel_us": 1e6 * kernel / stored,
            "peak_rss_mib": peak[0] / 2**20, **by_thread}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--against", metavar="PYTHON", required=True,
                        help="the interpreter whose tracekit is the baseline checkout (e.g. main's)")
    parser.add_argument("--content", action="store_true", help="spans with recorded message content")
    parser.add_argument("--seconds", type=float, default=8.0, help="load time of each round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--in-flight", type=int, default=32)
    args = parser.parse_args()

    payloads = [ingest.build_request(seed, args.content) for seed in range(16)]
    runs = {"this": (sys.executable, []), "baseline": (args.against, [])}
    for number in range(args.rounds):
        order = ["this", "baseline"] if number % 2 == 0 else ["baseline", "this"]
        for name in order:
            figures = one_round(runs[name][0], payloads, args.seconds, args.in_flight)
            runs[name][1].append(figures)
            print(f"round {number + 1} {name:<8} " + "  ".join(f"{key} {value:,.1f}" for key, value in figures.items())
                  + f"  load average {os.getloadavg()[0]:.1f}", flush=True)
    print("medians, this / baseline:")
    for key in FIGURES:
        this, baseline = (statistics.median(run[key] for run in runs[name][1]) for name in ("this", "baseline"))
        print(f"  {key:<18} {this:>10,.1f} / {baseline:>10,.1f} = {this / baseline if baseline else 0:.2f}x")


if __name__ == "__main__":
    main()
