"""A local stand-in for the Application Insights ingestion endpoint: accepts `POST .../v2.1/track` and keeps
every envelope it receives, so tests can compare what the real Azure Monitor exporter sends with our views."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from contextlib import contextmanager


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def do_POST(self) -> None:  # noqa: N802 - http.server's interface
        length = int(self.headers.get("Content-Length", 0))
        envelopes = json.loads(self.rfile.read(length))
        with self.server.lock:
            self.server.envelopes.extend(envelopes)
        body = json.dumps({"itemsReceived": len(envelopes), "itemsAccepted": len(envelopes), "appId": None,
                           "errors": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    envelopes: list[dict[str, Any]]
    lock: threading.Lock


@contextmanager
def fake_ingestion() -> Iterator[_Server]:
    """A running fake ingestion server on 127.0.0.1 (ephemeral port); `.envelopes` holds what was posted."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.envelopes = []
    server.lock = threading.Lock()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def connection_string(server: _Server) -> str:
    host, port = server.server_address[:2]
    return f"InstrumentationKey=00000000-0000-0000-0000-000000000001;IngestionEndpoint=http://{host}:{port}/"
