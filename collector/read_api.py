"""The collector's local read API: how other processes query a store the collector owns.

DuckDB lets one process hold the file read-write, so `tracekit query`, the TUI and exports started while a
collector runs send their read-only SQL here. It listens on 127.0.0.1 only, requires the random bearer token the
collector writes into the state file (readable by the file's owner only), and answers with an Arrow IPC stream.
User SQL reaches the database only through LocalReader.sql: on the readers' own cursors, inside read-only
transactions that are always rolled back (tracekit.store.read_only), never on the writer's connection.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import io
import queue
import threading
from typing import Any, Callable

import orjson
import pyarrow as pa
import pyarrow.ipc
from aiohttp import web

from tracekit.errors import QueryError
from tracekit.store.reader import LocalReader
from tracekit.store.rows import Rows


class ReaderPool:
    """A few reader connections on the collector's database, opened on first use, one query at a time each."""

    def __init__(self, factory: Callable[[], LocalReader], size: int = 2) -> None:
        self._factory = factory
        self._idle: queue.Queue[LocalReader] = queue.Queue()
        self._slots = threading.Semaphore(size)
        self._opened: list[LocalReader] = []
        self._lock = threading.Lock()

    def run(self, sql: str, params: Any) -> pa.Table:
        return self._borrow(lambda reader: reader.sql(sql, params))

    def answer(self, sql: str, params: Any) -> Rows | pa.Table:
        """Plain rows when the result's types allow (sent as JSON), else Arrow."""
        return self._borrow(lambda reader: reader.answer(sql, params))

    def kql(self, text: str, params: dict[str, Any] | None, since: Any, now: Any) -> pa.Table:
        """Translate and run KQL on one of the readers (tracekit.query.kql, with its translation caches)."""
        from tracekit.query.kql import run_kql

        return self._borrow(lambda reader: run_kql(reader, text, params, since=since, now=now))

    def kql_answer(self, text: str, params: dict[str, Any] | None, since: Any, now: Any) -> Rows | pa.Table:
        """kql() for a client that only prints: plain rows when the result's types allow (sent as JSON)."""
        from tracekit.query.kql import kql_answer

        return self._borrow(lambda reader: kql_answer(reader, text, params, since=since, now=now))

    def _borrow(self, use: Callable[[LocalReader], Any]) -> Any:
        """Run `use(reader)` on an idle reader (opening one while fewer than `size` are open)."""
        with self._slots:
            try:
                reader = self._idle.get_nowait()
            except queue.Empty:
                reader = self._factory()
                with self._lock:
                    self._opened.append(reader)
            try:
                return use(reader)
            finally:
                self._idle.put(reader)

    def close(self) -> None:
        with self._lock:
            for reader in self._opened:
                reader.close()
            self._opened.clear()


def _ipc_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pyarrow.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


async def _answer(loop: asyncio.AbstractEventLoop, table: Rows | pa.Table) -> web.Response:
    """JSON for plain rows (tracekit.store.rows), else an Arrow IPC stream."""
    if isinstance(table, Rows):
        return web.Response(body=await loop.run_in_executor(None, table.to_wire), content_type="application/json")
    payload = await loop.run_in_executor(None, _ipc_bytes, table)
    return web.Response(body=payload, content_type="application/vnd.apache.arrow.stream")


def build_read_app(pool: ReaderPool, token: str, status: Callable[[], dict[str, Any]]) -> web.Application:
    """POST /v1/sql {"sql": ..., "params": [...] | {...}} -> Arrow IPC (with "answer": "rows", JSON rows when every
    column has a plain type: tracekit.store.rows); POST /v1/kql (below) -> the same; GET /v1/status -> JSON
    counters."""
    app = web.Application(client_max_size=4 * 1024 * 1024)

    def authorized(request: web.Request) -> bool:
        supplied = request.headers.get("Authorization", "")
        return hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode())

    async def sql(request: web.Request) -> web.Response:
        if not authorized(request):
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        try:
            body = orjson.loads(await request.read())
            query, params = body["sql"], body.get("params")
            if not isinstance(query, str):
                raise TypeError("sql must be a string")
        except (ValueError, KeyError, TypeError) as error:
            return web.json_response({"error": f"bad request: {error}"}, status=400)
        loop = asyncio.get_running_loop()
        try:
            if body.get("answer") == "rows":  # a client that only prints (tracekit query): JSON when types allow
                table = await loop.run_in_executor(None, pool.answer, query, params)
            else:
                table = await loop.run_in_executor(None, pool.run, query, params)
        except QueryError as error:
            return web.json_response({"error": str(error)}, status=400)
        return await _answer(loop, table)

    async def kql(request: web.Request) -> web.Response:
        """POST /v1/kql {"kql": ..., "params": {...}, "since_seconds": n, "now": iso} -> Arrow IPC; errors carry
        their line and column."""
        if not authorized(request):
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        try:
            body = orjson.loads(await request.read())
            text, params = body["kql"], body.get("params") or None
            since = body.get("since_seconds")
            since = dt.timedelta(seconds=float(since)) if since is not None else None
            now = dt.datetime.fromisoformat(body["now"]) if body.get("now") else None
            if not isinstance(text, str) or not isinstance(params, (dict, type(None))):
                raise TypeError("kql must be a string and params an object")
        except (ValueError, KeyError, TypeError) as error:
            return web.json_response({"error": f"bad request: {error}"}, status=400)
        loop = asyncio.get_running_loop()
        run = pool.kql_answer if body.get("answer") == "rows" else pool.kql
        try:
            table = await loop.run_in_executor(None, run, text, params, since, now)
        except QueryError as error:
            return web.json_response({"error": error.args[0] if error.args else str(error), "line": error.line,
                                      "column": error.column}, status=400)
        return await _answer(loop, table)

    async def get_status(request: web.Request) -> web.Response:
        if not authorized(request):
            return web.json_response({"error": "missing or wrong bearer token"}, status=401)
        return web.json_response(status())

    app.router.add_post("/v1/sql", sql)
    app.router.add_post("/v1/kql", kql)
    app.router.add_get("/v1/status", get_status)
    return app
