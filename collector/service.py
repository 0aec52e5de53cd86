"""The collector service: owns the store, runs the receivers, the read API and background retention.

    with Collector(CollectorSettings(db_path=path, grpc="127.0.0.1:0", http="127.0.0.1:0")).running() as collector:
        ...  # send OTLP to collector.grpc_endpoint / collector.http_endpoint, read with collector.reader()

`run_forever()` is the headless `tracekit collect`: SIGINT/SIGTERM/SIGHUP stop the receivers, drain what was accepted into
the store, remove the state file, and exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import threading
import time
from pathlib import Path
from typing import Any, Iterator

from aiohttp import web

from tracekit.collector import retention
from tracekit.collector.admission import Admission
from tracekit.collector.allocators import keep_freed_memory
from tracekit.collector.host_check import allowed_hosts, host_check_middleware
from tracekit.collector.exporters.store_writer import StoreWriter
from tracekit.collector.pipeline import IngestPipeline, build_processors
from tracekit.collector.query_views import ViewsInstaller
from tracekit.collector.read_api import ReaderPool, build_read_app
from tracekit.collector.receivers.grpc import start_grpc_server
from tracekit.collector.receivers.http import HTTP_COUNTS, build_http_app, site_options
from tracekit.collector.settings import CollectorSettings, parse_address
from tracekit.errors import ListenError, StoreError
from tracekit.files import write_private_atomically
from tracekit.store.database import COLLECTOR_CHECKPOINT_THRESHOLD, open_store, store_cursor
from tracekit.store.paths import state_file_for
from tracekit.store.reader import LocalReader, process_start, read_state

log = logging.getLogger("tracekit.collector")


class Collector:
    """One collector for one store file."""

    def __init__(self, settings: CollectorSettings) -> None:
        self.settings = settings
        self.db_path = Path(settings.db_path).resolve()
        self.grpc_endpoint: str | None = None   # "127.0.0.1:PORT"
        self.http_endpoint: str | None = None   # "http://127.0.0.1:PORT"
        self.read_api_url: str | None = None
        self.grpc_read_slots: Any = None        # the gRPC receiver's ReadSlots, while it runs
        self._http_counts: dict[str, int] = {}  # the HTTP receiver's counters, while it runs
        self._token = secrets.token_urlsafe(24)
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._serving = False  # set once every receiver listens: an error before that is a startup error
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._connection = None
        self.writer: StoreWriter | None = None
        self.pipeline: IngestPipeline | None = None
        self.views: ViewsInstaller | None = None  # creates the query views in the store shortly after start
        self.started_at = time.time()
        self._background: list[Any] = []  # things with stop() started beside the receivers (forwarders)
        self._shared_reader: LocalReader | None = None
        self.alerting: Any = None  # the AlertScheduler when --alerts is given
        self._alert_rules = None
        if settings.alert_rules:  # a bad rule file stops the start, before any port is taken
            from tracekit.alerts.rules import load_rules

            self._alert_rules = load_rules(settings.alert_rules)
        self.continuous_evaluation: Any = None  # ContinuousEvaluation when --evaluation-rules is given
        self._evaluation_rules = None
        if settings.evaluation_rules:  # likewise: unknown evaluators, a missing judge or package fail the start
            from tracekit.evaluators.rules import load_evaluation_rules

            self._evaluation_rules = load_evaluation_rules(settings.evaluation_rules)
        self._reader_lock = threading.Lock()

    # --- public API ---------------------------------------------------------------------------------------------
    def reader(self) -> LocalReader:
        """A read-only reader on this collector's database, shared by in-process users (tests, the TUI)."""
        if self._connection is None:
            raise StoreError("the collector is not running")
        with self._reader_lock:
            if self._shared_reader is None:
                self._shared_reader = self.new_reader()
            return self._shared_reader

    def new_reader(self) -> LocalReader:
        """A reader on its own connection (for a thread that queries in parallel with others)."""
        if self._connection is None:
            raise StoreError("the collector is not running")
        return LocalReader(store_cursor(self._connection), str(self.db_path))

    def status(self) -> dict[str, Any]:
        """Counters for the read API's /v1/status and for `tracekit collect` logs."""
        pipeline, writer = self.pipeline, self.writer
        return {
            "db": str(self.db_path),
            "grpc": self.grpc_endpoint,
            "http": self.http_endpoint,
            "uptime_seconds": round(time.time() - self.started_at, 1),
            "received": dict(pipeline.received) if pipeline else {},
            "rejected": dict(pipeline.rejected) if pipeline else {},
            "masked_before_storage": pipeline.masked if pipeline else 0,
            "refused_overloaded": pipeline.admission.refused if pipeline else 0,
            "queued_bytes": pipeline.admission.used if pipeline else 0,
            **({"grpc_reading": slots.reading, "grpc_waiting_to_read": slots.waiting,
                "grpc_reads_preempted": slots.preemptions} if (slots := self.grpc_read_slots) else {}),
            **{f"http_{name}": count for name, count in self._http_counts.items()},
            "commits": writer.stats.commits if writer else 0,
            "duplicates_left_out": dict(writer.stats.duplicates) if writer else {},  # copies of items already stored
            "last_ingest_seq": writer.last_sequence if writer else 0,
            "forwarders": [component.status() for component in self._background if hasattr(component, "status")],
            **(self.alerting.status() if self.alerting is not None else {}),
            **(self.continuous_evaluation.status() if self.continuous_evaluation is not None else {}),
            # OS thread id -> name, so per-thread CPU from /proc can be told apart (bench/ingest.py prints it).
            "threads": {str(thread.native_id): thread.name for thread in threading.enumerate()
                        if thread.native_id is not None},
        }

    @contextlib.contextmanager
    def running(self) -> Iterator["Collector"]:
        """Run in a background thread for the duration of the block; stop and drain on exit."""
        self._thread = threading.Thread(target=self._thread_main, name="tracekit-collector", daemon=True)
        self._thread.start()
        try:
            self._ready.wait()
        except BaseException:  # interrupted while starting: stop the thread, which removes the state file
            self.stop()
            raise
        if not self._serving:
            # Startup failed (a port in use, a locked store): the thread ends after recording why.
            self._thread.join()
            raise self._startup_error or StoreError("the collector stopped while starting")
        try:
            yield self
        finally:
            self.stop()

    def stop(self) -> None:
        """Ask a running collector to stop, and wait until it drained."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()

    def run_forever(self, on_ready: Any = None) -> None:
        """Run in this thread until SIGINT/SIGTERM (the `tracekit collect` command)."""
        asyncio.run(self._serve(on_ready=on_ready, install_signals=True))

    # --- internals ----------------------------------------------------------------------------------------------
    def _thread_main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as error:  # surfaced to running() when startup failed
            if not self._serving:
                self._startup_error = error
                self._ready.set()
            else:
                log.exception("collector stopped with an error")

    async def _serve(self, on_ready: Any = None, install_signals: bool = False) -> None:
        settings = self.settings
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        existing = read_state(self.db_path)
        if existing:
            raise StoreError(f"a collector (pid {existing.get('pid')}) already runs for {self.db_path}; "
                             f"its OTLP endpoints: {existing.get('grpc')}, {existing.get('http')}")
        keep_freed_memory()  # before the first request: buffers freed under load are reused, not faulted in again
        self._connection = open_store(self.db_path, memory_limit=settings.memory_limit,
                                      checkpoint_threshold=COLLECTOR_CHECKPOINT_THRESHOLD)
        self.writer = StoreWriter(self._connection, checkpoint_rows=settings.checkpoint_rows,
                                  checkpoint_wal_bytes=settings.checkpoint_wal_bytes)
        self.writer.start()
        self.views = ViewsInstaller(self._connection)
        self.views.start()
        self.pipeline = IngestPipeline(build_processors(settings), self.writer, Admission(settings.queue_bytes),
                                       max_request_bytes=settings.max_request_bytes,
                                       decode_workers=settings.decode_workers)
        runners: list[web.AppRunner] = []
        grpc_server = None
        pool: ReaderPool | None = None
        try:
            pool = ReaderPool(self.new_reader)
            allowed = allowed_hosts(settings.allowed_hosts, [
                parse_address(address, 0)[0] for address in (settings.grpc, settings.http, settings.read_api) if address])
            if settings.grpc:
                host, port = parse_address(settings.grpc, 4317)
                grpc_server, bound = await start_grpc_server(
                    host, port, self.pipeline, token=settings.auth_token,
                    max_message_bytes=settings.max_request_bytes, read_timeout=settings.body_timeout_seconds,
                    idle_timeout=settings.header_timeout_seconds)
                self.grpc_endpoint = f"{host}:{bound}"
                self.grpc_read_slots = grpc_server.read_slots
            if settings.http:
                host, port = parse_address(settings.http, 4318)
                app = build_http_app(self.pipeline, token=settings.auth_token,
                                     body_timeout=settings.body_timeout_seconds)
                runner, bound = await _start_site(app, host, port, allowed,
                                                  **site_options(settings.header_timeout_seconds))
                runners.append(runner)
                self.http_endpoint = f"http://{host}:{bound}"
                self._http_counts = app[HTTP_COUNTS]
            host, port = parse_address(settings.read_api, 0)
            runner, bound = await _start_site(build_read_app(pool, self._token, self.status), host, port, allowed)
            runners.append(runner)
            self.read_api_url = f"http://{host}:{bound}"
            if settings.write_state_file:
                self._write_state()
            self._start_forwarders()
            self._start_alerting()
            self._start_continuous_evaluation()
            retention_task = asyncio.create_task(self._retention_loop())
            if install_signals:
                for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                    self._loop.add_signal_handler(signum, self._stop.set)
            self._serving = True
            self._ready.set()
            if on_ready is not None:
                on_ready(self)
            await self._stop.wait()
            retention_task.cancel()
        finally:
            self._ready.set()
            # Stop taking new requests, let in-flight ones finish (they wait for their commit), then drain.
            if grpc_server is not None:
                await grpc_server.stop(grace=5.0)
            for runner in runners:
                await runner.cleanup()
            for component in (self.alerting, self.continuous_evaluation):
                if component is not None:
                    # Off the loop: a check may be waiting on this loop to store its events.
                    await self._loop.run_in_executor(None, component.stop)
            for component in self._background:
                with contextlib.suppress(Exception):
                    component.stop()
            self.pipeline.close()
            self.views.stop()
            self.writer.stop()
            if pool is not None:
                pool.close()
            if self._shared_reader is not None:
                self._shared_reader.close()
                self._shared_reader = None
            if settings.write_state_file:
                with contextlib.suppress(OSError):
                    state_file_for(self.db_path).unlink()
            self._connection.close()
            self._connection = None

    def _start_forwarders(self) -> None:
        settings = self.settings
        if not (settings.forward_otlp or settings.forward_azure_monitor):
            return
        # only loaded when forwarding is configured
        from tracekit.collector.exporters.forwarders import start_forwarders

        self._background.extend(start_forwarders(self, settings))

    def _start_alerting(self) -> None:
        if not self._alert_rules:
            return
        from tracekit.collector.alerting import AlertScheduler

        self.alerting = AlertScheduler(self._alert_rules, self.new_reader, self.ingest).start()

    def _start_continuous_evaluation(self) -> None:
        if not self._evaluation_rules:
            return
        from tracekit.collector.continuous_evaluation import ContinuousEvaluation

        self.continuous_evaluation = ContinuousEvaluation(self._evaluation_rules, self.new_reader,
                                                          self.ingest).start()

    def ingest(self, signal: str, payload: bytes, timeout: float = 30.0) -> None:
        """Store one serialized OTLP request from another thread of this process, through the pipeline like a
        receiver would, and wait for its commit (the alert scheduler records its events this way)."""
        if self._loop is None or self.pipeline is None:
            raise RuntimeError("the collector is not running")
        asyncio.run_coroutine_threadsafe(self.pipeline.export(signal, payload), self._loop).result(timeout)

    def _write_state(self) -> None:
        state = {
            "pid": os.getpid(),
            "pid_start": process_start(os.getpid()),
            "db": str(self.db_path),
            "grpc": self.grpc_endpoint,
            "http": self.http_endpoint,
            "read_api": self.read_api_url,
            "token": self._token,
            "started_at": self.started_at,
        }
        # 0600 through a fresh temporary file: the token lets its holder read every span in the store
        path = state_file_for(self.db_path)
        try:
            write_private_atomically(path, json.dumps(state).encode())
        except OSError as error:  # e.g. another user's file in a sticky directory such as /tmp
            raise StoreError(f"cannot write the state file {path}: {error.strerror or error}") from None

    def _lowest_forwarder_position(self) -> int | None:
        """The ingest_seq every forwarder has sent up to: retention keeps what comes after it."""
        positions = []
        for forwarder in self._background:
            position = forwarder.status().get("position") if hasattr(forwarder, "status") else None
            positions.append(int(position[0]) if position else 0)
        return min(positions) if positions else None

    async def _retention_loop(self) -> None:
        settings = self.settings
        if settings.retention_days is None and settings.max_db_bytes is None:
            return
        loop = asyncio.get_running_loop()
        while True:
            try:
                keep_after = self._lowest_forwarder_position()
                await loop.run_in_executor(None, self.writer.run_exclusive, lambda con: retention.enforce(
                    con, retention_days=settings.retention_days, max_bytes=settings.max_db_bytes,
                    keep_after_seq=keep_after))
            except Exception:
                log.exception("retention pass failed")
            await asyncio.sleep(settings.retention_interval_seconds)


async def _start_site(app: web.Application, host: str, port: int, allowed: frozenset[str],
                      **options: object) -> tuple[web.AppRunner, int]:
    # First, before a handler reads a body: only local Host names are answered (DNS rebinding, host_check.py).
    app.middlewares.insert(0, host_check_middleware(allowed))
    runner = web.AppRunner(app, access_log=None, **options)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        raise ListenError(f"cannot listen on {host}:{port}: {error.strerror or error} (choose another address with "
                          "--http HOST:PORT, or --http off)") from None
    sockets = site._server.sockets if site._server else []  # type: ignore[union-attr]
    return runner, sockets[0].getsockname()[1] if sockets else port
