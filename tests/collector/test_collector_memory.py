"""The collector's memory under normal heavy load: agents with content recording on (~4 KB a span), many requests in
flight, for long enough that DuckDB's rows not yet checkpointed pass its memory limit. The real `tracekit collect`
runs in its own process with its default settings; the senders are raw OTLP/gRPC requests from another process.
Its RSS stays under the bound, and every acknowledged span is stored (docs/decisions/2026-12-07-collector-memory.md).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import psutil

from tests.collector.test_bounded_intake import GIB, TRACE_METHOD

MIB = 1024 * 1024
SPANS_PER_REQUEST = 256
TRACE_MARK = b"\xfe\xca\xfe\xca\xfe\xca\xfe\xca"  # the first 8 bytes of every trace id, replaced by each send's number
START_MARK = b"\x39\xfe\xca\xfe"  # start_time_unix_nano (field 7, fixed64) whose 3 low bytes are replaced likewise
# The load runs until this much was acknowledged (~12 s on a quiet machine, longer on a busy one): enough that
# main's old settings (2 GB, a 512 MiB WAL) checkpoint during the load and pass 1 GiB, so the test fails on them.
ENOUGH_BYTES = 640 * MIB
SECONDS = 150.0  # only a bound for a collector that stops answering; the volume, not the time, ends the load


def _ids(rng: random.Random, size: int) -> bytes:
    return bytes(rng.choice(range(0xfe)) for _ in range(size))  # no 0xfe: the marks occur nowhere else


def _content(rng: random.Random) -> str:
    """~3 KB of message JSON as content recording produces it, varied so DuckDB cannot compress it to nothing."""
    cities = ["Seattle", "Paris", "Tokyo", "Lisbon", "Nairobi", "Toronto", "Berlin", "Oslo", "Lima", "Cairo"]
    messages = []
    for _ in range(rng.randrange(4, 7)):
        a, b = rng.sample(cities, 2)
        messages.append({"role": "user", "parts": [{"type": "text", "content":
                         f"Find me a flight from {a} to {b} on 2026-{rng.randrange(1, 13):02d}-"
                         f"{rng.randrange(1, 29):02d} under {rng.randrange(180, 2400)} USD, returning after the "
                         f"workshop; my manager {rng.getrandbits(40):x} approved it."}]})
        flights = [{"flight": rng.randrange(10, 9999), "fare_usd": rng.randrange(90, 3200),
                    "depart": f"{rng.randrange(5, 23):02d}:{rng.randrange(60):02d}", "seats_left": rng.randrange(1, 40)}
                   for _ in range(4)]
        messages.append({"role": "tool", "parts": [{"type": "tool_call_response", "id": f"call_{rng.getrandbits(64):x}",
                                                    "response": json.dumps(flights)}]})
    return json.dumps(messages)


def _request(seed: int) -> bytes:
    """A template request of chat spans with recorded content; `_stamped` makes each send new spans."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

    rng = random.Random(seed)
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(KeyValue(key="service.name", value=AnyValue(string_value="agents")))
    scope_spans = resource_spans.scope_spans.add()
    base = (time.time_ns() - 10**12) & ~0xFFFFFF
    for index in range(SPANS_PER_REQUEST):
        span = scope_spans.spans.add()
        span.trace_id = TRACE_MARK + _ids(rng, 8)
        span.span_id = _ids(rng, 8)
        span.name = "chat gpt-4o"
        span.start_time_unix_nano = base + (index << 24) + 0xFECAFE
        span.end_time_unix_nano = base + (index << 24) + 2 * 10**9
        for key, value in (("gen_ai.operation.name", "chat"), ("gen_ai.request.model", "gpt-4o"),
                           ("gen_ai.input.messages", _content(rng)), ("gen_ai.output.messages", _content(rng)[:600])):
            span.attributes.append(KeyValue(key=key, value=AnyValue(string_value=value)))
    payload = request.SerializeToString()
    assert payload.count(TRACE_MARK) == SPANS_PER_REQUEST and payload.count(START_MARK) == SPANS_PER_REQUEST
    return payload


def _stamped(template: bytes, number: int) -> bytes:
    return template.replace(TRACE_MARK, number.to_bytes(8, "big")).replace(
        START_MARK, b"\x39" + (number & 0xFFFFFF).to_bytes(3, "little"))


def _send(target: str, seconds: float, in_flight: int, results: "multiprocessing.Queue") -> None:
    """Raw OTLP/gRPC exports with `in_flight` calls at once until ENOUGH_BYTES were acknowledged (or `seconds` passed);
    reports the send numbers acknowledged and the bytes they carried. Overload answers are retried, as exporters do."""
    import grpc

    templates = [_request(seed) for seed in range(8)]

    async def main() -> tuple[list[int], int]:
        acknowledged: list[int] = []
        sent_bytes = 0
        numbers = iter(range(1, 1 << 40))
        deadline = time.monotonic() + seconds
        async with grpc.aio.insecure_channel(target) as channel:
            export = channel.unary_unary(TRACE_METHOD)

            async def worker() -> None:
                nonlocal sent_bytes
                while time.monotonic() < deadline and sent_bytes < ENOUGH_BYTES:
                    number = next(numbers)
                    payload = _stamped(templates[number % len(templates)], number)
                    while True:
                        try:
                            await export(payload, timeout=60)
                            break
                        except grpc.aio.AioRpcError as error:
                            if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                                raise
                            await asyncio.sleep(0.05)
                    acknowledged.append(number)
                    sent_bytes += len(payload)

            await asyncio.gather(*(worker() for _ in range(in_flight)))
        return acknowledged, sent_bytes

    results.put(asyncio.run(main()))


def test_rss_stays_bounded_under_sustained_content_heavy_load(tmp_path: Path) -> None:
    db = tmp_path / "load.duckdb"
    state_path = db.with_name(db.name + ".collector.json")
    process = subprocess.Popen([sys.executable, "-m", "tracekit.cli", "collect", "--db", str(db), "--grpc",
                                "127.0.0.1:0", "--http", "off"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(1200):
            if state_path.exists() or process.poll() is not None:
                break
            time.sleep(0.05)
        assert state_path.exists(), f"collector did not start: {process.stderr.read().decode()}"
        state = json.loads(state_path.read_text())
        collector = psutil.Process(process.pid)
        peak = 0
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.is_set():
                peak = max(peak, collector.memory_info().rss)
                time.sleep(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        sender = context.Process(target=_send, args=(state["grpc"], SECONDS, 16, results))
        sender.start()
        acknowledged, sent_bytes = results.get(timeout=SECONDS + 60)
        sender.join()
        process.send_signal(signal.SIGTERM)  # the final checkpoint counts too
        assert process.wait(timeout=120) == 0
        stop.set()
        sampler.join()
    finally:
        if process.poll() is None:
            process.kill()
    print(f"\n{len(acknowledged) * SPANS_PER_REQUEST:,} spans ({sent_bytes / MIB:,.0f} MiB of OTLP) acknowledged; "
          f"peak collector RSS {peak / MIB:,.0f} MiB; load average {os.getloadavg()[0]:.1f}")
    # Enough went through for DuckDB's data not yet checkpointed (~1.25x the OTLP bytes) to pass its memory limit.
    assert sent_bytes >= ENOUGH_BYTES, f"only {sent_bytes / MIB:.0f} MiB were acknowledged in {SECONDS:.0f} s"
    assert peak < GIB, f"peak collector RSS {peak / MIB:,.0f} MiB"
    con = duckdb.connect(str(db), read_only=True)
    stored = dict(con.execute("SELECT substr(trace_id, 1, 16) AS stamp, count(*) FROM spans GROUP BY ALL").fetchall())
    con.close()
    missing = [number for number in acknowledged if stored.get(f"{number:016x}") != SPANS_PER_REQUEST]
    assert not missing, f"{len(missing)} acknowledged requests are not stored whole, e.g. send {missing[0]}"


def test_memory_settings_reach_duckdb_and_the_checkpointer(tmp_path: Path, monkeypatch) -> None:
    """Environment variables set them, flags win over the environment, and the running collector applies them."""
    import argparse

    from tracekit.collector.service import Collector
    from tracekit.commands._options import add_db_argument
    from tracekit.commands.collect import add_collector_arguments, settings_from_args

    monkeypatch.setenv("TRACEKIT_MEMORY_LIMIT", "300MB")
    monkeypatch.setenv("TRACEKIT_CHECKPOINT_WAL_SIZE", "64MiB")
    parser = argparse.ArgumentParser()
    add_db_argument(parser)
    add_collector_arguments(parser)
    settings = settings_from_args(parser.parse_args(["--db", str(tmp_path / "s.duckdb"), "--grpc", "127.0.0.1:0",
                                                     "--http", "off", "--checkpoint-wal-size", "96MiB"]))
    settings.write_state_file = False
    assert (settings.memory_limit, settings.checkpoint_wal_bytes) == ("300MB", 96 * MIB)
    with Collector(settings).running() as collector:
        limit = collector._connection.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
        assert limit.replace(" ", "") in {"286.1MiB", "300.0MB"}, limit
        assert collector.writer._checkpointer._wal_bytes == 96 * MIB
