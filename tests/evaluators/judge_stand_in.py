"""A local HTTP stand-in for the judge model's /chat/completions: it answers each evaluator's prompt with a JSON
verdict the way a real judge does, scripted per test (scores, failures, unreadable answers), and keeps what it was
sent so tests can check what the evaluators asked."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable


class JudgeStandIn:
    """`answer(request_body) -> (status, verdict dict or raw text)`; default: score 4, pass."""

    def __init__(self, answer: Callable[[dict[str, Any]], tuple[int, Any]] | None = None) -> None:
        self.answer = answer or (lambda body: (200, {"explanation": "fine", "reason": "answers the question",
                                                     "score": 4, "status": "pass"}))
        self.requests: list[dict[str, Any]] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                stand_in.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
                status, verdict = stand_in.answer(body)
                if status != 200:
                    payload = json.dumps({"error": {"message": "overloaded", "type": "server_error"}}).encode()
                else:
                    content = verdict if isinstance(verdict, str) else json.dumps(verdict)
                    payload = json.dumps({
                        "id": "chatcmpl-judge", "object": "chat.completion", "created": int(time.time()),
                        "model": body.get("model"),
                        "choices": [{"index": 0, "finish_reason": "stop",
                                     "message": {"role": "assistant", "content": content}}],
                        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/v1"

    def __enter__(self) -> "JudgeStandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
