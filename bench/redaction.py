"""Redaction and cost stages alone, steadier than the whole ingest run on a shared machine.

    python bench/redaction.py [--rounds 5] [--requests 8] [--plain] [--against PYTHON]

CPU time of one thread a span for the collector's redaction processor (default policy), the RE2 screen of the span
attributes alone (part of that stage: the rest is the work on the rows it flags) and the cost processor, on the
requests `bench/ingest.py --content` sends (`--plain`: its spans without message content), decoded outside the timing.
Each round runs one process of this checkout and, with `--against`, one of a baseline checkout (an interpreter whose
tracekit is that checkout), one after the other, so both see the same load; the medians and their ratio are printed
with the load average. Also prints the share of span attribute rows the redaction screen flags and the share the
policy then changes (a flagged row left unchanged is screening work the screen could have spared).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path


def worker(requests: int, content: bool) -> dict[str, float]:
    """This interpreter's figures (run in a process of its own)."""
    import tracekit

    sys.path.insert(0, str(Path(tracekit.__file__).resolve().parents[1]))  # that checkout's bench.ingest
    from bench.ingest import SPANS_PER_REQUEST, build_request
    from tracekit.collector.processors.cost import CostProcessor
    from tracekit.collector.processors.decode import decode_payload
    from tracekit.collector.processors.redaction import BatchRedactor
    from tracekit.redaction import RedactionPolicy
    from tracekit.redaction.screen import flag_rows

    policy = RedactionPolicy.default()
    payloads = [build_request(seed, content) for seed in range(requests)]
    spans = len(payloads) * SPANS_PER_REQUEST
    redactor, pricer = BatchRedactor(policy), CostProcessor()
    pricer.process("traces", redactor.process("traces", decode_payload("traces", payloads[0])))  # compile, load
    timings: dict[str, list[float]] = {"redaction": [], "cost": [], "screen": []}
    for _ in range(3):
        batches = [decode_payload("traces", payload) for payload in payloads]
        started = time.thread_time()
        for batch in batches:  # the screen of the span attributes alone (part of the redaction stage)
            flag_rows(policy, batch.tables["spans"].column("attributes"))
        timings["screen"].append(time.thread_time() - started)
        for stage, processor in (("redaction", redactor), ("cost", pricer)):
            started = time.thread_time()
            for batch in batches:
                processor.process("traces", batch)
            timings[stage].append(time.thread_time() - started)
    flagged = changed = attribute_bytes = 0
    for payload in payloads:
        table = decode_payload("traces", payload).tables["spans"]
        column = table.column("attributes")
        attribute_bytes += sum(chunk.buffers()[2].size for chunk in column.chunks)
        rows = flag_rows(policy, column)
        flagged += len(rows)
        masked = BatchRedactor(policy).process("traces", decode_payload("traces", payload)).tables["spans"]
        changed += sum(before != after for before, after in zip(column.take(rows).to_pylist(),
                                                                 masked.column("attributes").take(rows).to_pylist()))
    figures = {stage: 1e6 * statistics.median(values) / spans for stage, values in timings.items()}
    return {**figures, "flagged": flagged / spans, "changed": changed / spans, "bytes": attribute_bytes / spans}


def run(python: str, args: argparse.Namespace) -> dict[str, float]:
    command = [python, __file__, "--worker", "--requests", str(args.requests)] + (["--plain"] if args.plain else [])
    finished = subprocess.run(command, capture_output=True, text=True, cwd="/")  # tracekit from the interpreter
    if finished.returncode:
        raise SystemExit(f"{python} failed:\n{finished.stdout}{finished.stderr}")
    return json.loads(finished.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=8, help="512-span requests a round")
    parser.add_argument("--plain", action="store_true", help="spans without recorded message content")
    parser.add_argument("--against", metavar="PYTHON", help="a baseline interpreter, measured in alternate rounds")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.requests, not args.plain)))
        return
    runs: dict[str, list[dict[str, float]]] = {"this": [], "baseline": []}
    loads = []
    for _ in range(args.rounds):
        runs["this"].append(run(sys.executable, args))
        if args.against:
            runs["baseline"].append(run(args.against, args))
        loads.append(os.getloadavg()[0])
    print(f"{args.rounds} rounds x {args.requests * 512} spans{'' if args.plain else ' (recorded content)'}, "
          f"load average {min(loads):.1f}-{max(loads):.1f}")
    medians = {name: {key: statistics.median(run[key] for run in values) for key in values[0]}
               for name, values in runs.items() if values}
    for name, figures in medians.items():
        mb = figures["bytes"] / figures["redaction"]
        screen = figures.get("screen")  # (a baseline checkout's bench may not time it)
        print(f"  {name:<9} redaction {figures['redaction']:6.2f} us/span ({mb:,.0f} MB/s of attributes"
              + (f"; its attribute screen {screen:.2f} us/span, {figures['bytes'] / screen:,.0f} MB/s" if screen else "")
              + f")   cost {figures['cost']:5.2f} us/span   screen flags {figures['flagged']:.1%} of rows, "
              f"the policy changes {figures['changed']:.1%}")
    if "baseline" in medians:
        for stage in ("redaction", "screen", "cost"):
            ratio = medians["this"][stage] / medians["baseline"][stage]
            print(f"  {stage}: this / baseline = {ratio:.2f}x")


if __name__ == "__main__":
    main()
