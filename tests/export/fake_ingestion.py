"""A local stand-in for Application Insights' ingestion endpoint, speaking its real protocol; the one the export,
query and instrumentor tests share.

`POST {endpoint}/v2.1/track` with a JSON array of envelopes (optionally gzip); the answer is
`{"itemsReceived": n, "itemsAccepted": k, "appId": null, "errors": [{"index", "statusCode", "message"}]}` with 200,
or 206 when some items were refused; whole-request failures are 4xx/5xx with an optional `Retry-After`. Items older
than 48 hours are refused one by one with the service's own "103: ... older than the allowed min date" message.

Tests script faults with `plan` (whole-request answers consumed one per request) and `item_fault` (a per-envelope
rule returning (statusCode, message) to refuse it). Accepted envelopes are kept in `accepted`.
"""

from __future__ import annotations

import gzip
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

STALE_MESSAGE = ("103: Field 'time' on type 'Envelope' is older than the allowed min date. "
                 "Expected: now - 172800000ms")
IKEY = "00000000-0000-4000-8000-000000000001"


@dataclass
class Planned:
    """A whole-request answer: status and headers (and an optional pause before answering)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


def parse_time(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class FakeIngestion:
    """Run with `with FakeIngestion() as fake:`; `fake.connection_string` points the exporter at it."""

    def __init__(self, *, check_stale: bool = True) -> None:
        self.check_stale = check_stale
        self.plan: deque[Planned] = deque()
        self.item_fault: Callable[[dict[str, Any]], tuple[int, str] | None] | None = None
        self.accepted: list[dict[str, Any]] = []
        self.requests: list[tuple[int, int]] = []   # (items in the request, status answered)
        self.hold: threading.Event | None = None   # when set by a test, requests wait until it is set
        self.on_request: Callable[[int], None] | None = None
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    @property
    def connection_string(self) -> str:
        return f"InstrumentationKey={IKEY};IngestionEndpoint={self.endpoint}/"

    def __enter__(self) -> "FakeIngestion":
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        if self.hold is not None:
            self.hold.set()
        self._server.shutdown()
        self._server.server_close()

    def telemetry(self, base_type: str | None = None) -> list[dict[str, Any]]:
        """Accepted envelopes, without the exporter's own `_OTELRESOURCE_` metric."""
        with self._lock:
            items = [e for e in self.accepted if e["data"]["baseType"] != "MetricData"]
        return [e for e in items if base_type is None or e["data"]["baseType"] == base_type]

    def _answer(self, envelopes: list[dict[str, Any]]) -> tuple[int, dict[str, str], dict[str, Any]]:
        with self._lock:
            planned = self.plan.popleft() if self.plan else None
        if planned is not None and planned.status not in (200, 206):
            if planned.delay:
                time.sleep(planned.delay)
            return planned.status, planned.headers, {
                "itemsReceived": len(envelopes), "itemsAccepted": 0, "appId": None,
                "errors": [{"index": i, "statusCode": planned.status, "message": "planned failure"}
                           for i in range(len(envelopes))]}
        errors = []
        accepted = []
        min_time = time.time() - 172800
        for index, envelope in enumerate(envelopes):
            fault = self.item_fault(envelope) if self.item_fault else None
            if fault is None and self.check_stale and parse_time(envelope["time"]) < min_time:
                fault = (400, STALE_MESSAGE)
            if fault is not None:
                errors.append({"index": index, "statusCode": fault[0], "message": fault[1]})
            else:
                accepted.append(envelope)
        return (206 if errors else 200), (planned.headers if planned else {}), {
            "itemsReceived": len(envelopes), "itemsAccepted": len(accepted), "appId": None, "errors": errors,
            "_accepted": accepted}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The answer goes out as two writes (headers, body): with Nagle's algorithm on, the body waited for the
            # client's delayed ACK, ~40 ms per request, which no real ingestion endpoint adds.
            disable_nagle_algorithm = True

            def log_message(self, *_: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if not self.path.endswith("/v2.1/track"):
                    self._send(404, {}, {"error": "unknown path"})
                    return
                envelopes = json.loads(body)
                if fake.on_request is not None:
                    fake.on_request(len(envelopes))
                if fake.hold is not None:
                    fake.hold.wait()
                    # The client went away while we held the request: the service never answered, nothing counts.
                    return
                status, headers, answer = fake._answer(envelopes)
                accepted = answer.pop("_accepted", [])
                # Record before answering: once the client has its answer, a test may look at once, and on a busy
                # machine this thread might not have run again yet. Withdrawn if the answer cannot be delivered.
                with fake._lock:
                    first = len(fake.accepted)
                    fake.accepted.extend(accepted)
                    fake.requests.append((len(envelopes), status))
                try:
                    self._send(status, headers, answer)
                except OSError:
                    with fake._lock:
                        del fake.accepted[first:first + len(accepted)]
                        fake.requests.remove((len(envelopes), status))

            def _send(self, status: int, headers: dict[str, str], payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler
