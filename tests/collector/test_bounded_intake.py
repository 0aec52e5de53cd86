"""Bounded memory and work before admission: hostile or slow HTTP clients cannot grow the collector or hold it up.

The RSS test runs a real `tracekit collect` process and measures it with psutil, as an operator would see it.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import orjson
import psutil
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (ExportTraceServiceRequest,
                                                                      ExportTraceServiceResponse)

from tests.collector.test_receivers import _post, otlp_json_traces

GIB = 1024**3
TRACE_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def _small_request(span_id: int = 1) -> bytes:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(
        name="normal", trace_id=b"\x01" * 16, span_id=span_id.to_bytes(8, "big"))
    span.start_time_unix_nano, span.end_time_unix_nano = 1_000, 2_000
    return request.SerializeToString()


def _start_collector(tmp_path: Path, *options: str) -> tuple[subprocess.Popen, dict]:
    db = tmp_path / "hostile.duckdb"
    state_path = db.with_name(db.name + ".collector.json")
    process = subprocess.Popen(
        [sys.executable, "-m", "tracekit.cli", "collect", "--db", str(db), "--grpc", "off", "--http", "127.0.0.1:0",
         *options], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    for _ in range(600):
        if state_path.exists():
            return process, json.loads(state_path.read_text())
        if process.poll() is not None:
            raise AssertionError(f"collector failed: {process.stderr.read().decode()}")
        time.sleep(0.05)
    process.kill()
    raise AssertionError("collector did not start")


def _connect(address: tuple[str, int]) -> socket.socket:
    return socket.create_connection(address, timeout=30)


def test_gzip_bombs_that_withhold_their_last_byte_and_idle_connections_keep_rss_bounded(tmp_path):
    """40 bodies of 31 KB gzip inflating to 31 MiB each, never finished, plus 300 connections that never finish
    their headers: the collector stays under 1 GB and still answers a normal request at once."""
    process, state = _start_collector(tmp_path, "--body-timeout", "120", "--header-timeout", "120")
    sockets: list[socket.socket] = []
    try:
        host, port = state["http"].removeprefix("http://").rsplit(":", 1)
        address = (host, int(port))
        collector = psutil.Process(process.pid)
        baseline = collector.memory_info().rss
        bomb = gzip.compress(b"\0" * (31 * 1024 * 1024), compresslevel=9)
        assert len(bomb) < 64 * 1024
        head = (f"POST /v1/traces HTTP/1.1\r\nHost: {state['http']}\r\nContent-Type: application/x-protobuf\r\n"
                f"Content-Encoding: gzip\r\nContent-Length: {len(bomb) + 1}\r\n\r\n").encode()
        for _ in range(40):
            connection = _connect(address)
            connection.sendall(head + bomb)  # one byte short of the declared length
            sockets.append(connection)
        for _ in range(300):
            connection = _connect(address)
            connection.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-")
            sockets.append(connection)
        peak = baseline
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            peak = max(peak, collector.memory_info().rss)
            time.sleep(0.05)

        started = time.monotonic()
        status, _, _ = _post(state["http"] + "/v1/traces", _small_request(), "application/x-protobuf")
        elapsed = time.monotonic() - started
        peak = max(peak, collector.memory_info().rss)
        assert status == 200
        assert elapsed < 10, f"a normal request took {elapsed:.1f} s beside the hostile clients"
        assert peak < GIB, f"collector RSS reached {peak / 2**20:.0f} MiB (from {baseline / 2**20:.0f} MiB)"
    finally:
        for connection in sockets:
            connection.close()
        process.terminate()
        process.wait(timeout=60)


def test_a_body_that_stops_arriving_gets_408_and_frees_its_budget(collector_settings):
    from tracekit.collector.service import Collector

    collector_settings.body_timeout_seconds = 1.0
    with Collector(collector_settings).running() as collector:
        host, port = collector.http_endpoint.removeprefix("http://").rsplit(":", 1)
        with _connect((host, int(port))) as connection:
            connection.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
                               b"Content-Length: 1000\r\n\r\n" + b"\x0a" * 100)
            answer = connection.recv(65536)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        assert collector.pipeline.admission.used == 0
        status, _, _ = _post(collector.http_endpoint + "/v1/traces", _small_request(), "application/x-protobuf")
        assert status == 200


def test_a_connection_that_never_finishes_its_headers_is_closed(collector_settings):
    from tracekit.collector.service import Collector

    collector_settings.header_timeout_seconds = 1.0
    with Collector(collector_settings).running() as collector:
        host, port = collector.http_endpoint.removeprefix("http://").rsplit(":", 1)
        with _connect((host, int(port))) as connection:
            connection.settimeout(15)
            connection.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            started = time.monotonic()
            assert connection.recv(65536) == b""  # closed by the collector, not by our timeout
            assert time.monotonic() - started < 10


def test_bodies_being_read_count_against_the_admission_budget(collector_settings):
    """A body bigger than the queue's free space is refused while it is read (429, retryable), not buffered."""
    from tracekit.collector.service import Collector

    collector_settings.queue_bytes = 1024 * 1024
    with Collector(collector_settings).running() as collector:
        host, port = collector.http_endpoint.removeprefix("http://").rsplit(":", 1)
        filler = b"\0" * (4 * 1024 * 1024)
        bomb = gzip.compress(filler)
        with _connect((host, int(port))) as holder:
            # the first body is taken whole (an idle collector takes any one request) and held: last byte withheld
            holder.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
                           b"Content-Encoding: gzip\r\n" + f"Content-Length: {len(bomb) + 1}\r\n\r\n".encode() + bomb)
            deadline = time.monotonic() + 10
            while collector.pipeline.admission.used < len(filler) and time.monotonic() < deadline:
                time.sleep(0.02)
            assert collector.pipeline.admission.used == len(filler)
            # no Content-Length to refuse up front (chunked): refused while reading, once past the budget
            status, _, headers = _post(collector.http_endpoint + "/v1/traces", iter([bomb]),
                                       "application/x-protobuf", {"Content-Encoding": "gzip"})
            assert status == 429 and "Retry-After" in headers
            assert collector.pipeline.admission.used == len(filler)


def test_a_large_json_request_does_not_hold_up_a_small_protobuf_request(collector):
    """OTLP/JSON is converted in the decode workers, off the event loop and beside the protobuf lane."""
    document = otlp_json_traces()
    template = document["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    document["resourceSpans"][0]["scopeSpans"][0]["spans"] = [
        {**template, "spanId": f"{index + 1:016x}",
         "attributes": [{"key": f"k{key}", "value": {"stringValue": "v" * 20}} for key in range(5)]}
        for index in range(3000)]
    body = orjson.dumps(document)
    finished: dict[str, float] = {}

    def send_json() -> None:
        status, _, _ = _post(collector.http_endpoint + "/v1/traces", body, "application/json")
        finished["json"] = time.monotonic()
        finished["json status"] = status

    sender = threading.Thread(target=send_json)
    sender.start()
    time.sleep(0.5)  # the JSON body is in; its conversion has started
    with grpc.insecure_channel(collector.grpc_endpoint) as channel:
        raw = channel.unary_unary(TRACE_METHOD)(_small_request(2 * 10**6), timeout=60)
    finished["protobuf"] = time.monotonic()
    sender.join(timeout=300)
    assert ExportTraceServiceResponse.FromString(raw).partial_success.rejected_spans == 0
    assert finished["json status"] == 200
    # the small request was answered while the JSON one was still being converted, not after it
    assert finished["json"] - finished["protobuf"] > 0.5, finished
    count = collector.reader().sql("SELECT count(*) AS n FROM spans").column("n")[0].as_py()
    assert count == 3001


def test_bodies_are_read_a_bounded_number_at_a_time(collector_settings, monkeypatch):
    """Past the read slots, a request waits for one: here until the body holding the only slot times out."""
    from tracekit.collector.receivers import http
    from tracekit.collector.service import Collector

    monkeypatch.setattr(http, "MAX_CONCURRENT_BODY_READS", 1)
    collector_settings.body_timeout_seconds = 3.0
    with Collector(collector_settings).running() as collector:
        host, port = collector.http_endpoint.removeprefix("http://").rsplit(":", 1)
        with _connect((host, int(port))) as slow:
            slow.sendall(b"POST /v1/traces HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-protobuf\r\n"
                         b"Content-Length: 10\r\n\r\n\x0a")  # holds the only read slot for 3 s
            time.sleep(0.5)
            started = time.monotonic()
            status, _, _ = _post(collector.http_endpoint + "/v1/traces", _small_request(), "application/x-protobuf")
            waited = time.monotonic() - started
            assert slow.recv(65536).startswith(b"HTTP/1.1 408")
        assert status == 200 and waited > 1.5  # it was read only once the slow body gave the slot back
