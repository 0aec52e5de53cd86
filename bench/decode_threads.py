"""Could more than one thread run the collector's processors (decode, redaction, cost)? How much of their time holds
the GIL, and what one and two threads give on the same requests.

    python bench/decode_threads.py [--content] [--rounds 3]

In this process, on bench/ingest.py's requests (new spans each time), with the collector's processor list
(`build_processors` with default settings):
1. One thread runs the processors; the CPU time of the calls that release the GIL (the compiled decoder's
   `decode_traces` and RE2's matches, each timed around the call, so a little of it held the GIL) is set against
   the thread's whole CPU time. The rest holds the GIL, so more threads can at best run the processors total / held
   times faster, before the event loop and the store writer take their share of the GIL.
2. The processors' ceiling in one and two threads (spans/s of wall time, rounds interleaved), each thread with its
   own copy of the list as the collector gives it. Wall time on a shared machine moves with the other work (and two
   threads take a larger share of a busy machine): read it with the load average printed beside it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import SPANS_PER_REQUEST, build_request, stamp_plan, stamped  # noqa: E402

import re2  # noqa: E402

from tracekit.collector.pipeline import build_processors  # noqa: E402
from tracekit.collector.processors import install, normalize, run_installed, run_processors  # noqa: E402
from tracekit.collector.processors.decode import Received  # noqa: E402
from tracekit.collector.settings import CollectorSettings  # noqa: E402


def _timed(function, spent: list[float]):
    """`function`, adding the CPU time of each call to `spent[0]`."""
    def timed(*args, **kwargs):
        started = time.thread_time()
        try:
            return function(*args, **kwargs)
        finally:
            spent[0] += time.thread_time() - started

    return timed


def gil_split(payloads: list[bytes], rounds: int) -> tuple[float, float]:
    """(CPU microseconds a span of the processors in one thread, of which in calls that release the GIL)."""
    spent = [0.0]
    released = {(re2._re2.RE2, "Match"), (re2._re2.Set, "Match"), (re2._re2.Filter, "Match")}
    if normalize._fastdecode is not None:  # built: traces decode without the GIL
        released.add((normalize._fastdecode, "decode_traces"))
    originals = {(owner, name): getattr(owner, name) for owner, name in released}
    for (owner, name), function in originals.items():
        setattr(owner, name, _timed(function, spent))
    try:
        processors = build_processors(CollectorSettings(db_path=Path("unused.duckdb")))
        run_processors(processors, "traces", Received(payloads[0]))
        totals, in_released = [], []
        for _ in range(rounds):
            spent[0] = 0.0
            started = time.thread_time()
            for payload in payloads:
                run_processors(processors, "traces", Received(payload))
            totals.append(time.thread_time() - started)
            in_released.append(spent[0])
    finally:
        for (owner, name), function in originals.items():
            setattr(owner, name, function)
    spans = len(payloads) * SPANS_PER_REQUEST
    return 1e6 * statistics.median(totals) / spans, 1e6 * statistics.median(in_released) / spans


def ceiling(pool: ThreadPoolExecutor, payloads: list[bytes]) -> float:
    started = time.perf_counter()
    for _ in pool.map(lambda payload: run_installed("traces", Received(payload)), payloads):
        pass
    return len(payloads) * SPANS_PER_REQUEST / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--content", action="store_true", help="spans with recorded message content (~3 KB a span)")
    parser.add_argument("--requests", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    plans = [stamp_plan(build_request(seed, args.content)) for seed in range(args.requests)]
    stamps = iter(range(1, 1 << 40))

    def fresh() -> list[bytes]:
        return [stamped(plan, next(stamps)) for plan in plans]

    size = sum(map(len, fresh())) / (args.requests * SPANS_PER_REQUEST)
    print(f"payload: {args.requests} requests x {SPANS_PER_REQUEST} spans, {size:.0f} bytes/span"
          f"{' (recorded content)' if args.content else ''}")
    total, released = gil_split(fresh(), args.rounds)
    held = total - released
    print(f"processors in one thread   {total:6.1f} us/span of CPU: {released:.1f} in calls that release the GIL "
          f"({100 * released / total:.0f} %), {held:.1f} holding it; at best {total / held:.2f}x with more threads")

    processors = build_processors(CollectorSettings(db_path=Path("unused.duckdb")))
    pools = {threads: ThreadPoolExecutor(threads, initializer=install, initargs=(processors,)) for threads in (1, 2)}
    rates: dict[int, list[float]] = {1: [], 2: []}
    for threads, pool in pools.items():
        ceiling(pool, fresh()[:threads])  # each thread takes its copy of the list and warms it
    for _ in range(args.rounds):
        for threads, pool in pools.items():
            rates[threads].append(ceiling(pool, fresh()))
    for pool in pools.values():
        pool.shutdown()
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"processors' ceiling        1 thread {one:,.0f} spans/s, 2 threads {two:,.0f} spans/s: {two / one:.2f}x "
          f"(median of {args.rounds}, interleaved)")
    print(f"load average               {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
