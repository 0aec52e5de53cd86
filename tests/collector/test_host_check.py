"""DNS rebinding: the HTTP receiver and the read API answer only requests naming a local host (or a configured one);
anything else gets 403 before its body is read, and nothing of it is stored."""

from __future__ import annotations

import http.client
import json
import socket
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


def test_http_to_the_grpc_port_stores_nothing(collector: Collector) -> None:
    """What a rebound page could send to the gRPC port is HTTP/1.1; the HTTP/2-only server does not take it."""
    host, port = collector.grpc_endpoint.rsplit(":", 1)
    body = otlp_json("via-grpc-port")
    request = (f"POST /opentelemetry.proto.collector.trace.v1.TraceService/Export HTTP/1.1\r\nHost: evil.example\r\n"
               f"Content-Type: application/grpc\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        try:
            while chunk := connection.recv(4096):
                answer += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    assert not answer.startswith(b"HTTP/1.1 200")
    assert stored_names(collector) == []


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
