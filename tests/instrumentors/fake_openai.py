"""A local stand-in for the OpenAI API on 127.0.0.1:0, answering with canned bodies.

Tests queue responses (JSON or server-sent events) and read back the requests the real `openai` client sent.
The canned exchanges live in tests/fixtures/openai/ (see its README): the API's response shapes, including
streamed tool-call fragments, the usage-only final chunk and the Responses API event stream.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openai"


@dataclass
class Canned:
    status: int
    body: str
    content_type: str = "application/json"


def load_exchanges(name: str) -> list[tuple[dict[str, Any], Canned]]:
    """(request JSON, canned response) pairs from one file of tests/fixtures/openai/."""
    data = json.loads((FIXTURES / name).read_text())
    return [(exchange["request"]["body"], Canned(exchange["response"]["status"], exchange["response"]["body"],
                                                 exchange["response"]["content_type"]))
            for exchange in data["exchanges"]]


class FakeOpenAI:
    """Serves queued responses in order, on any POST path; remembers each request's path and JSON body."""

    def __init__(self) -> None:
        self.queue: list[Canned] = []
        self.requests: list[tuple[str, dict[str, Any]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                fake.requests.append((self.path, json.loads(raw or b"{}")))
                canned = fake.queue.pop(0) if fake.queue else Canned(500, '{"error": {"message": "nothing queued"}}')
                body = canned.body.encode()
                self.send_response(canned.status)
                self.send_header("content-type", canned.content_type)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def enqueue(self, canned: Canned | dict[str, Any], status: int = 200) -> None:
        self.queue.append(canned if isinstance(canned, Canned) else Canned(status, json.dumps(canned)))

    def enqueue_sse(self, events: list[dict[str, Any]], *, with_event_names: bool = False) -> None:
        lines = []
        for event in events:
            if with_event_names:
                lines.append(f"event: {event['type']}")
            lines.append(f"data: {json.dumps(event)}\n")
        if not with_event_names:
            lines.append("data: [DONE]\n")
        self.queue.append(Canned(200, "\n".join(lines) + "\n", "text/event-stream"))

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
