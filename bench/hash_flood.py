"""Hash flooding: decode CPU of a span whose attribute keys were built to collide, against ordinary keys.

Run: `python bench/hash_flood.py [--keys 65536]`. Builds one request whose keys all fall in one slot of an unseeded
FNV-1a table with linear probing (what the compiled decoder used to de-duplicate keys; built block by block: the low
bits of FNV-1a depend only on the low bits of its state), and one with the same number of ordinary keys, and prints
the compiled decoder's CPU time for each, with and without the attribute count limit. With keys hashed through a
per-process SipHash key the ratio stays near 1; the unseeded table took seconds for the crafted request.
"""

from __future__ import annotations

import argparse
import time

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from tracekit.collector.processors import normalize
from tracekit.collector.processors.anyvalue import UNLIMITED, AttributeLimits

FNV_PRIME, FNV_BASIS, MASK64 = 1099511628211, 1469598103934665603, (1 << 64) - 1


def fnv1a(state: int, data: bytes) -> int:
    for byte in data:
        state = ((state ^ byte) * FNV_PRIME) & MASK64
    return state


def colliding_keys(count: int) -> list[bytes]:
    """`count` (a power of two) keys with one FNV-1a slot in a table of 2 * count slots."""
    mask = 2 * count - 1
    state, pairs = FNV_BASIS, []
    while len(pairs) < count.bit_length() - 1:
        seen: dict[int, bytes] = {}
        for index in range(1 << 20):
            block = bytes(97 + (index >> shift) % 26 for shift in (0, 5, 10, 15))
            slot = fnv1a(state, block) & mask
            if slot in seen and seen[slot] != block:
                pairs.append((seen[slot], block))
                state = fnv1a(state, block)
                break
            seen[slot] = block
    keys = [b""]
    for first, second in pairs:
        keys = [key + first for key in keys] + [key + second for key in keys]
    assert len({fnv1a(FNV_BASIS, key) & mask for key in keys}) == 1
    return keys


def request_with(keys: list[bytes]) -> bytes:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(
        name="flood", trace_id=b"\x01" * 16, span_id=b"\x02" * 8)
    span.attributes.extend(KeyValue(key=key.decode(), value=AnyValue(int_value=1)) for key in keys)
    return request.SerializeToString()


def decode_cpu(payload: bytes, limits: AttributeLimits) -> float:
    parsed = ExportTraceServiceRequest.FromString(payload)
    best = float("inf")
    for _ in range(3):  # the fastest round: other work on the machine only ever adds time
        started = time.process_time()
        normalize.decode_traces_payload(payload, parsed, limits)
        best = min(best, time.process_time() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=65536, help="keys per span, a power of two")
    args = parser.parse_args()
    if normalize._fastdecode is None:
        raise SystemExit("the compiled decoder is not built")
    crafted = colliding_keys(args.keys)
    width = len(crafted[0])  # the same length, so only the collisions differ
    ordinary = [f"k{index:0{width - 1}d}".encode() for index in range(len(crafted))]
    for label, limits in (("limit 128", AttributeLimits()), ("no limit", AttributeLimits(*[UNLIMITED] * 5))):
        crafted_cpu = decode_cpu(request_with(crafted), limits)
        ordinary_cpu = decode_cpu(request_with(ordinary), limits)
        print(f"{len(crafted):,} keys, {label:<9}  crafted {crafted_cpu * 1000:8.1f} ms   ordinary "
              f"{ordinary_cpu * 1000:8.1f} ms   crafted/ordinary {crafted_cpu / ordinary_cpu:5.2f}")


if __name__ == "__main__":
    main()
