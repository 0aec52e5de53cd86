"""Bounded memory before admission on the gRPC receiver: hostile gRPC clients cannot grow the collector past 1 GB or
keep a normal exporter out, overload answers are retryable (RESOURCE_EXHAUSTED with RetryInfo), malformed calls are
not.

The hostile clients speak HTTP/2 themselves (`raw_grpc.py`).
"""

from __future__ import annotations

import asyncio
import collections
import gzip
import json
import multiprocessing
import socket
import threading
import time
import urllib.request
from pathlib import Path

import duckdb
import grpc
import h2.config
import h2.connection
import h2.events
import psutil
import pytest
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from tests.collector.test_bounded_intake import GIB, TRACE_METHOD, _small_request, _start_collector
from tests.collector.raw_grpc import HostileCall, keep_attacking, retry_delay, run_hostile_connection
from tracekit.collector.receivers.read_slots import ReadSlots

MIB = 1024 * 1024


def _export_normal_span(endpoint: str) -> tuple[bool, float]:
    """A span of the real OpenTelemetry SDK sent by its gRPC exporter; (exported, seconds taken)."""
    return export_one_span(OTLPSpanExporter(endpoint=endpoint, insecure=True, timeout=20), "normal-during-attack")


def export_one_span(exporter: SpanExporter, name: str) -> tuple[bool, float]:
    """A span of the real OpenTelemetry SDK sent by `exporter` (which retries what is retryable); (exported,
    seconds taken)."""
    provider = TracerProvider(resource=Resource.create({"service.name": "normal-sender"}))
    span = provider.get_tracer("test").start_span(name)
    span.end()
    started = time.monotonic()
    result = exporter.export([span])
    elapsed = time.monotonic() - started
    exporter.shutdown()
    return result is SpanExportResult.SUCCESS, elapsed


def sample_rss(pid: int, samples: list[int]) -> threading.Event:
    """Append the process's RSS to `samples` every 50 ms (from now) until the returned event is set."""
    collector = psutil.Process(pid)
    samples.append(collector.memory_info().rss)
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append(collector.memory_info().rss)
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()
    return stop


def _attack(address: tuple[str, int], done: "multiprocessing.Event", seconds: float,
            answers: "multiprocessing.Queue[list[tuple]]") -> None:
    """The hostile clients, in their own process (so their Python does not slow the normal sender), until `done` is
    set and calls were answered both as malformed and as busy (at most `seconds`): each thread keeps one kind of
    attack going, opening new calls as the old ones are answered."""
    bomb = gzip.compress(bytes(31 * MIB), compresslevel=9)
    attackers = (
        # 4 connections x 6 calls: 30 MiB of a declared 32 MiB, then nothing
        [lambda: [HostileCall(32 * MIB - 16, 30 * MIB) for _ in range(6)]] * 4
        # 2 connections x 10 gzip bombs (31 KiB on the wire, 31 MiB inflated), whole
        + [lambda: [HostileCall(len(bomb), len(bomb), bomb, compressed=True) for _ in range(10)]] * 2
        # 2 connections x 4 whole 24 MiB messages (zeros: not a valid request once read)
        + [lambda: [HostileCall(24 * MIB, 24 * MIB) for _ in range(4)]] * 2
    )
    stop = threading.Event()
    calls: list[HostileCall] = []
    threads = [threading.Thread(target=keep_attacking, args=(address, make, stop, calls), daemon=True)
               for make in attackers]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + seconds
    answered = lambda: {call.status for call in list(calls)}  # noqa: E731
    while time.monotonic() < deadline and not (done.is_set() and {"3", "8"} <= answered()):
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    answers.put([(call.status, call.retry_info) for call in calls])


def test_hostile_grpc_clients_keep_rss_under_1gb_and_a_normal_exporter_gets_through(tmp_path: Path):
    """Against a real `tracekit collect` with default limits (32 MiB requests, 256 MiB queue): streams that send
    30 MiB of a 32 MiB message and stall, gzip bombs inflating to 31 MiB, whole 24 MiB messages, all at once and
    renewed as they are answered. The collector's RSS stays under 1 GB and a normal exporter's span is stored within
    seconds (10 s plus five times what it takes without the attack on this machine)."""
    process, state = _start_collector(tmp_path, "--grpc", "127.0.0.1:0", "--http", "off")
    host, port = state["grpc"].rsplit(":", 1)
    context = multiprocessing.get_context("spawn")
    answers, done = context.Queue(), context.Event()
    attacker = context.Process(target=_attack, args=((host, int(port)), done, 90.0, answers), daemon=True)
    samples: list[int] = []
    try:
        calm = max(_export_normal_span(state["grpc"])[1] for _ in range(2))  # this machine's pace, without the attack
        sampling = sample_rss(process.pid, samples)
        attacker.start()
        started = time.monotonic()
        # The attack is under way (read slots taken, busy calls refused) however long its start takes on this machine.
        deadline = time.monotonic() + 60
        while not ((status := collector_status(state))["grpc_reading"] and status["refused_overloaded"]):
            assert time.monotonic() < deadline and attacker.is_alive(), f"the attack did not get going: {status}"
            time.sleep(0.1)
        under_way = time.monotonic() - started
        exported, elapsed = _export_normal_span(state["grpc"])
        done.set()
        hostile = answers.get(timeout=120)
        attacker.join(timeout=30)
    finally:
        attacker.kill()
        sampling.set()
        process.terminate()
        process.wait(timeout=60)
    peak = max(samples)
    statuses = collections.Counter(status for status, _ in hostile)
    # the figures, for `pytest -s` (docs/decisions/2026-12-07-grpc-read-slots.md)
    print(f"\ncollector RSS peak {peak / MIB:.0f} MiB (from {samples[0] / MIB:.0f} MiB); "
          f"attack under way after {under_way:.1f} s; normal export {elapsed:.1f} s (without the attack {calm:.2f} s); "
          f"hostile calls answered by status: {dict(statuses)}")
    assert exported, "the normal exporter's span was not acknowledged"
    assert elapsed < 10 + 5 * calm, \
        f"the normal export took {elapsed:.1f} s beside the hostile clients ({calm:.2f} s without)"
    assert peak < GIB, f"collector RSS reached {peak / MIB:.0f} MiB (from {samples[0] / MIB:.0f} MiB)"
    # the attack reached the collector: whole messages were read and refused as malformed (not retryable), busy
    # and stalled calls were told to retry later, with a delay
    assert statuses[str(grpc.StatusCode.INVALID_ARGUMENT.value[0])] > 0, statuses
    assert statuses[str(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])] > 0, statuses
    assert all(retry_delay(retry) > 0 for status, retry in hostile if status == "8")
    with duckdb.connect(str(tmp_path / "hostile.duckdb"), read_only=True) as store:
        assert store.sql("SELECT name FROM spans").fetchall() == [("normal-during-attack",)] * 3


def collector_status(state: dict) -> dict:
    """The `tracekit collect` process's counters, from its read API."""
    request = urllib.request.Request(state["read_api"] + "/v1/status",
                                     headers={"Authorization": f"Bearer {state['token']}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.loads(answer.read())


def _raw_status(collector, calls: list[HostileCall], seconds: float = 20) -> list[HostileCall]:
    host, port = collector.grpc_endpoint.rsplit(":", 1)
    stop = threading.Event()
    timer = threading.Timer(seconds, stop.set)
    timer.start()
    try:
        run_hostile_connection((host, int(port)), calls, stop)
    finally:
        timer.cancel()
    return calls


def test_a_message_that_stops_arriving_gets_deadline_exceeded_and_frees_its_slot(collector_settings):
    from tracekit.collector.service import Collector

    collector_settings.body_timeout_seconds = 1.0
    with Collector(collector_settings).running() as collector:
        started = time.monotonic()
        [call] = _raw_status(collector, [HostileCall(1000, 100)])
        assert call.status == str(grpc.StatusCode.DEADLINE_EXCEEDED.value[0])
        assert time.monotonic() - started < 10
        slots = collector.grpc_read_slots
        assert slots.reading == 0 and collector.pipeline.admission.used == 0
        with grpc.insecure_channel(collector.grpc_endpoint) as channel:
            channel.unary_unary(TRACE_METHOD)(_small_request(), timeout=10)


def test_a_call_without_a_message_is_invalid_not_retryable(collector):
    [call] = _raw_status(collector, [HostileCall(0, 0)], seconds=5)  # prefix only, declared 0: an empty message
    assert call.status == "0"  # an empty request is a valid (empty) ExportTraceServiceRequest
    host, port = collector.grpc_endpoint.rsplit(":", 1)
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        connection.initiate_connection()
        connection.send_headers(1, [(":method", "POST"), (":scheme", "http"), (":path", TRACE_METHOD),
                                    (":authority", "127.0.0.1"), ("content-type", "application/grpc"),
                                    ("te", "trailers")], end_stream=True)
        sock.sendall(connection.data_to_send())
        status = None
        while status is None:
            for event in connection.receive_data(sock.recv(1 << 16)):
                if isinstance(event, (h2.events.TrailersReceived, h2.events.ResponseReceived)):
                    status = dict(event.headers).get("grpc-status", status)
    assert status == str(grpc.StatusCode.INVALID_ARGUMENT.value[0])


def test_a_stalled_read_gives_its_slot_to_a_waiting_sender_with_a_retryable_answer(collector_settings, monkeypatch):
    """With one read slot, a sender that stalls mid-message is preempted once another waits: the stalled call gets
    RESOURCE_EXHAUSTED with RetryInfo, the waiting one is stored."""
    from tracekit.collector.receivers import grpc as grpc_receiver
    from tracekit.collector.service import Collector

    monkeypatch.setattr(grpc_receiver, "PREEMPT_READ_AFTER_SECONDS", 0.5)
    collector_settings.queue_bytes = 2 * collector_settings.max_request_bytes  # one read slot
    with Collector(collector_settings).running() as collector:
        stalled = [HostileCall(10 * MIB, 5 * MIB)]
        attacker = threading.Thread(target=_raw_status, args=(collector, stalled))
        attacker.start()
        deadline = time.monotonic() + 10
        while collector.grpc_read_slots.reading == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        started = time.monotonic()
        with grpc.insecure_channel(collector.grpc_endpoint) as channel:
            channel.unary_unary(TRACE_METHOD)(_small_request(), timeout=10)
        assert time.monotonic() - started < 5
        attacker.join(timeout=30)
        [call] = stalled
        assert call.status == str(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])
        assert retry_delay(call.retry_info) > 0
        assert collector.reader().sql("SELECT count(*) AS n FROM spans").column("n")[0].as_py() == 1
        assert collector.status()["grpc_reads_preempted"] == 1


def test_too_many_waiting_senders_are_refused_at_once_with_retry_info(collector_settings, monkeypatch):
    from tracekit.collector.receivers import grpc as grpc_receiver
    from tracekit.collector.service import Collector

    monkeypatch.setattr(grpc_receiver, "MAX_WAITING_READS", 0)
    monkeypatch.setattr(grpc_receiver, "PREEMPT_READ_AFTER_SECONDS", 60)
    collector_settings.queue_bytes = 2 * collector_settings.max_request_bytes  # one read slot
    collector_settings.body_timeout_seconds = 30
    with Collector(collector_settings).running() as collector:
        stop = threading.Event()
        host, port = collector.grpc_endpoint.rsplit(":", 1)
        holder = threading.Thread(target=run_hostile_connection,
                                  args=((host, int(port)), [HostileCall(1000, 10)], stop))
        holder.start()
        try:
            deadline = time.monotonic() + 10
            while collector.grpc_read_slots.reading == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            with grpc.insecure_channel(collector.grpc_endpoint) as channel:
                with pytest.raises(grpc.RpcError) as refused:
                    channel.unary_unary(TRACE_METHOD)(_small_request(), timeout=10)
            assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            trailers = dict(refused.value.trailing_metadata())
            delay = RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"]).retry_delay
            assert delay.ToTimedelta().total_seconds() > 0
        finally:
            stop.set()
            holder.join(timeout=30)


async def test_read_slots_go_to_waiters_in_order_and_preempt_only_stale_reads():
    slots = ReadSlots(1, max_waiting=2, preempt_after=0.3)
    loop = asyncio.get_running_loop()
    first = await slots.acquire(loop.time() + 1)
    assert first is not None and slots.reading == 1
    second = asyncio.ensure_future(slots.acquire(loop.time() + 5))
    third = asyncio.ensure_future(slots.acquire(loop.time() + 5))
    await asyncio.sleep(0.1)
    assert not first.preempted.is_set()  # not stale yet
    assert await slots.acquire(loop.time() + 1) is None  # two wait already
    await asyncio.wait_for(first.preempted.wait(), 2)  # stale while others wait: asked to give the slot up
    assert slots.preemptions == 1
    slots.release(first)
    granted = await asyncio.wait_for(second, 1)
    assert granted is not None and not third.done()
    slots.release(granted)
    assert await asyncio.wait_for(third, 1) is not None
    alone = ReadSlots(1, max_waiting=2, preempt_after=0.01)
    held = await alone.acquire(loop.time() + 1)
    await asyncio.sleep(0.05)
    assert not held.preempted.is_set()  # nobody waits: a long read keeps its slot


async def test_read_slots_take_turns_between_connections():
    """A connection with many waiting calls does not keep a later connection's call waiting behind all of them."""
    slots = ReadSlots(1, max_waiting=10, preempt_after=60)
    loop = asyncio.get_running_loop()
    held = await slots.acquire(loop.time() + 1, "busy")
    busy = [asyncio.ensure_future(slots.acquire(loop.time() + 5, "busy")) for _ in range(3)]
    await asyncio.sleep(0.01)
    other = asyncio.ensure_future(slots.acquire(loop.time() + 5, "other"))
    await asyncio.sleep(0.01)
    order = []
    for _ in range(4):
        slots.release(held)
        await asyncio.sleep(0.01)
        for name, waiter in [("busy", call) for call in busy] + [("other", other)]:
            if waiter.done() and waiter.result() not in [slot for _, slot in order]:
                held = waiter.result()
                order.append((name, held))
    assert [name for name, _ in order] == ["busy", "other", "busy", "busy"]


def test_a_full_queue_refuses_a_grpc_call_before_reading_it_with_retry_info(collector_settings):
    """While the admission budget is used up (here by an HTTP body being read), a gRPC call is refused before its
    message is read: RESOURCE_EXHAUSTED with RetryInfo, which exporters retry."""
    from tracekit.collector.service import Collector

    collector_settings.queue_bytes = 1024 * 1024
    with Collector(collector_settings).running() as collector:
        host, port = collector.http_endpoint.removeprefix("http://").rsplit(":", 1)
        bomb = gzip.compress(bytes(4 * MIB))
        with socket.create_connection((host, int(port)), timeout=30) as holder:
            holder.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
                           b"Content-Encoding: gzip\r\n" + f"Content-Length: {len(bomb) + 1}\r\n\r\n".encode() + bomb)
            deadline = time.monotonic() + 10
            while collector.pipeline.admission.used < 4 * MIB and time.monotonic() < deadline:
                time.sleep(0.02)
            # only 10 bytes of the message are sent: an answer now means it was refused without waiting to read it
            [call] = _raw_status(collector, [HostileCall(1000, 10)], seconds=10)
            assert call.status == str(grpc.StatusCode.RESOURCE_EXHAUSTED.value[0])
            assert retry_delay(call.retry_info) > 0
        assert collector.reader().sql("SELECT count(*) AS n FROM spans").column("n")[0].as_py() == 0
