"""DNS rebinding: the HTTP receiver and the read API answer only requests naming a local host (or a configured one);
anything else gets 403 before its body is read, and nothing of it is stored. The gRPC port cannot check the name
(grpcio does not expose `:authority`); what a browser can send to it is refused by its transport."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tracekit.collector.host_check import allowed_hosts, host_allowed, host_name
from tracekit.collector.service import Collector
from tracekit.collector.settings import CollectorSettings

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"


def otlp_json(name: str) -> bytes:
    now = time.time_ns()
    return json.dumps({"resourceSpans": [{"resource": {}, "scopeSpans": [{"spans": [{
        "traceId": TRACE_ID, "spanId": f"{abs(hash(name)) % (1 << 63):016x}", "name": name,
        "startTimeUnixNano": str(now - 1000), "endTimeUnixNano": str(now)}]}]}]}).encode()


def post(url: str, path: str, body: bytes, host: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    try:
        connection.request("POST", path, body=body, headers={"Host": host, "Content-Type": "application/json",
                                                             **(headers or {})})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def stored_names(collector: Collector) -> list[str]:
    return sorted(collector.reader().sql("SELECT name FROM spans").column("name").to_pylist())


@pytest.mark.parametrize("host", ["evil.example", "evil.example:4318", "127.0.0.1.evil.example", "localhost.evil.example",
                                  "0.0.0.0", "192.168.1.10:4318", "[fe80::1]:4318"])
def test_rebound_host_gets_403_and_nothing_is_stored(collector: Collector, host: str) -> None:
    status, body = post(collector.http_endpoint, "/v1/traces", otlp_json("rebound"), host)
    assert status == 403
    assert "not a local name" in json.loads(body)["error"]
    status, _ = post(collector.read_api_url, "/v1/sql", json.dumps({"sql": "SELECT 1"}).encode(), host,
                     {"Authorization": f"Bearer {collector._token}"})
    assert status == 403
    assert stored_names(collector) == []


@pytest.mark.parametrize("host", ["localhost", "localhost:{port}", "LOCALHOST.", "127.0.0.1:{port}", "127.8.9.10",
                                  "[::1]:{port}", "[::1]"])
def test_loopback_names_with_or_without_port_are_answered(collector: Collector, host: str) -> None:
    host = host.format(port=urlsplit(collector.http_endpoint).port)
    status, _ = post(collector.http_endpoint, "/v1/traces", otlp_json(host), host)
    assert status == 200
    assert stored_names(collector) == [host]
    status, _ = post(collector.read_api_url, "/v1/sql", json.dumps({"sql": "SELECT 1"}).encode(), host,
                     {"Authorization": f"Bearer {collector._token}"})
    assert status == 200


def test_configured_names_are_answered(tmp_path: Path) -> None:
    settings = CollectorSettings(db_path=tmp_path / "traces.duckdb", grpc=None, http="127.0.0.1:0",
                                 allowed_hosts=("tracekit.internal",))
    with Collector(settings).running() as collector:
        assert post(collector.http_endpoint, "/v1/traces", otlp_json("ok"), "tracekit.internal:4318")[0] == 200
        assert post(collector.http_endpoint, "/v1/traces", otlp_json("no"), "evil.example")[0] == 403
        assert stored_names(collector) == ["ok"]


def _grpc_request_bytes(name: str) -> bytes:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add(
        name=name, trace_id=bytes.fromhex(TRACE_ID), span_id=b"\x01" * 8)
    span.start_time_unix_nano, span.end_time_unix_nano = time.time_ns() - 1000, time.time_ns()
    return request.SerializeToString()


# What a page could make a browser send to the gRPC port under a rebound name: browsers speak HTTP/2 only over TLS,
# so every one of these is HTTP/1.1 (a fetch, its CORS preflight, an h2c upgrade, a WebSocket).
_GRPC_PATH = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_BROWSER_REQUESTS = {  # kind -> (request head, whether a gRPC message follows as its body)
    "fetch POST": (f"POST {_GRPC_PATH} HTTP/1.1\r\nHost: evil.example:4317\r\nOrigin: http://evil.example:4317\r\n"
                   "Content-Type: application/grpc\r\nTE: trailers\r\nContent-Length: {length}\r\n\r\n", True),
    "CORS preflight": (f"OPTIONS {_GRPC_PATH} HTTP/1.1\r\nHost: evil.example:4317\r\n"
                       "Origin: http://evil.example:4317\r\nAccess-Control-Request-Method: POST\r\n"
                       "Access-Control-Request-Headers: content-type\r\n\r\n", False),
    "h2c upgrade": (f"POST {_GRPC_PATH} HTTP/1.1\r\nHost: evil.example:4317\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                    "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nContent-Type: application/grpc\r\n"
                    "Content-Length: {length}\r\n\r\n", True),
    "WebSocket": (f"GET {_GRPC_PATH} HTTP/1.1\r\nHost: evil.example:4317\r\nConnection: Upgrade\r\n"
                  "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                  "\r\n", False),
}


@pytest.mark.parametrize("kind", sorted(_BROWSER_REQUESTS))
def test_what_a_browser_can_send_to_the_grpc_port_gets_no_answer_and_stores_nothing(collector: Collector,
                                                                                     kind: str) -> None:
    """gRPC's `:authority` cannot be checked (grpcio does not expose it), so the receiver relies on this: whatever a
    rebound page makes the browser send is HTTP/1.1, which grpc's HTTP/2-only transport answers with no HTTP
    response at all (its own HTTP/2 SETTINGS frame, then it closes), so the browser sees a network error, reads
    nothing, and nothing reaches the pipeline."""
    host, port = collector.grpc_endpoint.rsplit(":", 1)
    body = _grpc_request_bytes(f"via {kind}")
    message = b"\0" + len(body).to_bytes(4, "big") + body  # a whole gRPC message, as a page could build it
    head, with_body = _BROWSER_REQUESTS[kind]
    request = head.format(length=len(message)).encode() + (message if with_body else b"")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        try:
            while chunk := connection.recv(4096):
                answer += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    assert b"HTTP/" not in answer  # no status line: not a 200, not a 101 Switching Protocols, nothing a page can read
    assert b"grpc-status" not in answer and b"Access-Control" not in answer
    assert answer[3:4] in (b"", b"\x04")  # what there is, is an HTTP/2 SETTINGS frame (type 4) before the close
    assert collector.pipeline.received["traces"] == 0
    assert stored_names(collector) == []


def test_grpc_does_not_check_authority_so_the_port_relies_on_http2(collector: Collector) -> None:
    """The other side of the test above, kept so that a grpcio that starts exposing `:authority` is noticed: a real
    HTTP/2 client naming a rebound host is answered (grpc#38906), which is why the receiver's defence is that a browser
    cannot open such a connection, not a check of the name."""
    from tests.collector.raw_grpc import HostileCall, run_hostile_connection

    host, port = collector.grpc_endpoint.rsplit(":", 1)
    body = _grpc_request_bytes("h2 client, rebound authority")
    call = HostileCall(len(body), len(body), body)
    stop = threading.Event()
    timer = threading.Timer(20, stop.set)
    timer.start()
    try:
        run_hostile_connection((host, int(port)), [call], stop, authority="evil.example:4317")
    finally:
        timer.cancel()
    assert call.status == "0"
    assert stored_names(collector) == ["h2 client, rebound authority"]


@pytest.mark.parametrize("header, name", [("Example.COM:80", "example.com"), ("[::1]:4318", "::1"), ("::1", "::1"),
                                          ("127.0.0.1", "127.0.0.1"), ("localhost.", "localhost")])
def test_host_name(header: str, name: str) -> None:
    assert host_name(header) == name


def test_bind_addresses_and_wildcards() -> None:
    assert host_allowed("192.0.2.7:4318", allowed_hosts([], ["192.0.2.7"]))
    assert not host_allowed("192.0.2.7:4318", allowed_hosts([], ["0.0.0.0", "::"]))
    assert host_allowed("anything.example", allowed_hosts(["*"]))
    assert host_allowed(None, allowed_hosts([]))  # HTTP/1.0 without Host: not a browser


def test_allowed_hosts_flag_and_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tracekit.cli import build_parser
    from tracekit.commands.collect import settings_from_args

    parser = build_parser()
    assert "--allowed-hosts" in parser._subparsers._group_actions[0].choices["collect"].format_help()
    monkeypatch.setenv("TRACEKIT_ALLOWED_HOSTS", "from-env.example")
    args = parser.parse_args(["collect", "--db", str(tmp_path / "t.duckdb")])
    assert settings_from_args(args).allowed_hosts == ("from-env.example",)
    args = parser.parse_args(["collect", "--db", str(tmp_path / "t.duckdb"), "--allowed-hosts", "a.example, b.example"])
    assert settings_from_args(args).allowed_hosts == ("a.example", "b.example")
