"""Hostile OTLP/HTTP bodies against a real `tracekit collect` process: gzip bombs are inflated off the event loop, so
a normal exporter and the read API are answered promptly while bombs arrive; a client that closes mid-body is not a
store failure.
"""

from __future__ import annotations

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
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

from tests.collector.test_bounded_intake import GIB, _small_request, _start_collector
from tests.collector.test_grpc_bounded_intake import export_one_span, sample_rss
from tests.collector.test_receivers import _post

MIB = 1024 * 1024


def _bomb_head(endpoint: str, length: int) -> bytes:
    return (f"POST /v1/traces HTTP/1.1\r\nHost: {endpoint}\r\nContent-Type: application/x-protobuf\r\n"
            f"Content-Encoding: gzip\r\nContent-Length: {length}\r\n\r\n").encode()


def _send_bombs(endpoint: str, clients: int, seconds: float, sent: "multiprocessing.Value",
                answers: "multiprocessing.Queue[dict[str, int]]") -> None:
    """`clients` connections, each sending a gzip bomb (31 KiB inflating to 31 MiB) without its last byte, and a new
    one as soon as the collector answers (429 once the budget is used up); in this process, for `seconds`."""
    bomb = gzip.compress(bytes(31 * MIB), compresslevel=9)
    host, port = endpoint.rsplit(":", 1)
    head = _bomb_head(endpoint, len(bomb) + 1)
    stop = time.monotonic() + seconds
    seen: collections.Counter[str] = collections.Counter()

    def keep_sending() -> None:
        while time.monotonic() < stop:
            try:
                with socket.create_connection((host, int(port)), timeout=max(0.1, stop - time.monotonic())) as sock:
                    sock.sendall(head + bomb)
                    with sent.get_lock():
                        sent.value += 1
                    # an answer (429) or our timeout at the end: then the next bomb
                    seen[sock.recv(65536).split(b"\r\n", 1)[0].decode()] += 1
            except OSError as error:
                seen[type(error).__name__] += 1

    threads = [threading.Thread(target=keep_sending, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    answers.put(dict(seen))


def _export_normal_span(endpoint: str) -> tuple[bool, float]:
    """A span of the real OpenTelemetry SDK sent by its OTLP/HTTP protobuf exporter; (exported, seconds taken)."""
    return export_one_span(OTLPSpanExporter(endpoint=endpoint + "/v1/traces", timeout=30), "normal-beside-bombs")


def _read_api(state: dict, path: str, body: dict | None = None) -> tuple[bytes, float]:
    request = urllib.request.Request(state["read_api"] + path, data=json.dumps(body).encode() if body else None,
                                     headers={"Authorization": f"Bearer {state['token']}",
                                              "Content-Type": "application/json"})
    started = time.monotonic()
    with urllib.request.urlopen(request, timeout=30) as answer:
        payload = answer.read()
    return payload, time.monotonic() - started


def test_gzip_bombs_being_inflated_do_not_hold_up_an_exporter_or_the_read_api(tmp_path: Path):
    """20 clients keep sending gzip bombs (each withholding its last byte, a new one as soon as one is refused). A
    normal OTLP/HTTP export of the real SDK is stored within 4 s (a retry after a 429 included) and a read API query
    answered within 2 s (the event loop inflated every bomb itself before, and such answers waited for seconds), both
    plus five times what they take without the bombs on this machine, and RSS stays under 1 GB."""
    process, state = _start_collector(tmp_path, "--body-timeout", "60")
    endpoint = state["http"].removeprefix("http://")
    context = multiprocessing.get_context("spawn")
    sent, answers = context.Value("i", 0), context.Queue()
    attacker = context.Process(target=_send_bombs, args=(endpoint, 20, 9.0, sent, answers), daemon=True)
    samples: list[int] = []
    exports: list[tuple[bool, float]] = []
    queries: list[float] = []
    try:
        # This machine's pace without the bombs, in the same run: the bounds below allow for a busy machine.
        calm_export = max(_export_normal_span(state["http"])[1] for _ in range(2))
        calm_query = max(_read_api(state, "/v1/sql", {"sql": "SELECT count(*) FROM spans"})[1] for _ in range(3))
        sampling = sample_rss(process.pid, samples)
        attacker.start()
        # Bombs are arriving and being inflated, the budget filled and refused senders send again (however long the
        # attacker's start takes on this machine).
        deadline = time.monotonic() + 60
        while not json.loads(_read_api(state, "/v1/status")[0])["refused_overloaded"]:
            assert time.monotonic() < deadline and attacker.is_alive(), "the bombs never filled the budget"
            time.sleep(0.1)
        for _ in range(3):  # an export and a query at the same time
            query = threading.Thread(target=lambda: queries.append(
                _read_api(state, "/v1/sql", {"sql": "SELECT count(*) FROM spans"})[1]))
            query.start()
            exports.append(_export_normal_span(state["http"]))
            query.join(timeout=60)
            time.sleep(0.5)
        seen = answers.get(timeout=60)
        attacker.join(timeout=30)
        status, _ = _read_api(state, "/v1/status")
    finally:
        attacker.kill()
        sampling.set()
        process.terminate()
        process.wait(timeout=60)
    peak = max(samples)
    slowest_export = max(elapsed for _, elapsed in exports)
    print(f"\nbombs sent {sent.value}, answers {seen}; exports {[round(e, 2) for _, e in exports]} s; "
          f"queries {[round(q, 2) for q in queries]} s (calm: export {calm_export:.2f} s, query {calm_query:.2f} s); "
          f"RSS peak {peak / MIB:.0f} MiB (from {samples[0] / MIB:.0f})")
    assert sent.value > 20, "the attack did not get going"
    # bombs filled the budget and were refused while inflated: the attack reached the collector
    assert seen.get("HTTP/1.1 429 Too Many Requests", 0) > 0 and json.loads(status)["refused_overloaded"] > 0, seen
    assert all(exported for exported, _ in exports)
    # The bombs may fill the admission budget: the export is then refused with 429 and the SDK retries after the
    # Retry-After second, which is the right answer to overload; the query shows whether the event loop stalls.
    assert slowest_export < 4 + 5 * calm_export, \
        f"a normal export took {slowest_export:.1f} s beside the bombs ({calm_export:.2f} s without)"
    assert len(queries) == 3 and max(queries) < 2 + 5 * calm_query, \
        f"a read API query took {max(queries):.1f} s beside the bombs ({calm_query:.2f} s without)"
    assert peak < GIB, f"collector RSS reached {peak / MIB:.0f} MiB (from {samples[0] / MIB:.0f} MiB)"
    with duckdb.connect(str(tmp_path / "hostile.duckdb"), read_only=True) as store:
        assert store.sql("SELECT count(*) FROM spans WHERE name = 'normal-beside-bombs'").fetchall() == [(5,)]


def test_a_client_that_closes_mid_body_is_not_a_store_failure(tmp_path: Path):
    """Half a body, then the connection closes: no traceback or error in the collector's log, the status counts a
    client gone mid-body (not a refusal or a store failure), its budget is back, and the next request is stored.
    Both a plain and a gzip body."""
    process, state = _start_collector(tmp_path, "--verbose")  # debug lines too
    try:
        endpoint = state["http"].removeprefix("http://")
        host, port = endpoint.rsplit(":", 1)
        plain = _small_request(span_id=7)
        compressed = gzip.compress(bytes(4 * MIB))
        for body, encoding in ((plain, ""), (compressed, "Content-Encoding: gzip\r\n")):
            head = (f"POST /v1/traces HTTP/1.1\r\nHost: {endpoint}\r\nContent-Type: application/x-protobuf\r\n"
                    f"{encoding}Content-Length: {len(body)}\r\n\r\n").encode()
            with socket.create_connection((host, int(port)), timeout=10) as sock:
                sock.sendall(head + body[:len(body) // 2])
                time.sleep(0.3)  # the collector has started on the body
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status = json.loads(_read_api(state, "/v1/status")[0])
            if status["http_clients_gone_mid_body"] == 2:
                break
            time.sleep(0.1)
        assert status["http_clients_gone_mid_body"] == 2, status
        assert status["queued_bytes"] == 0 and status["refused_overloaded"] == 0
        assert status["received"].get("traces", 0) == 0, status
        code, _, _ = _post(state["http"] + "/v1/traces", _small_request(span_id=8), "application/x-protobuf")
        assert code == 200
    finally:
        process.terminate()
        _, log = process.communicate(timeout=60)
    log_text = log.decode()
    assert "Traceback" not in log_text and "could not store" not in log_text, log_text
    gone = [line for line in log_text.splitlines() if "closed its connection" in line]
    assert len(gone) == 2 and all(" DEBUG " in line for line in gone), log_text  # one quiet line per client
    with duckdb.connect(str(tmp_path / "hostile.duckdb"), read_only=True) as store:
        assert store.sql("SELECT count(*) FROM spans").fetchall() == [(1,)]  # the following request, nothing else
