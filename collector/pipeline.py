"""From received bytes to a durable acknowledgement: admission, the processors, the store exporter, the commit.

Receivers (gRPC, HTTP) call `IngestPipeline.export()` from the asyncio loop. The request is admitted against the
memory budget, then runs through the list of processors (`build_processors`: decode, then redaction, ...) off the
loop (a thread, or worker processes so both cores decode), the store writer commits in groups, and the call returns
only after the commit, so what a sender sees acknowledged is on disk.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
from dataclasses import dataclass
from typing import Sequence

from tracekit.collector.admission import Admission
from tracekit.collector.exporters.store_writer import StoreWriter
from tracekit.collector.processors import Processor, install, run_installed
from tracekit.collector.processors.cost import CostProcessor
from tracekit.collector.processors.decode import Decode, InvalidRequest, Received
from tracekit.collector.processors.normalize import Batch
from tracekit.collector.processors.redaction import BatchRedactor
from tracekit.collector.settings import CollectorSettings

log = logging.getLogger("tracekit.collector.pipeline")


def build_processors(settings: CollectorSettings) -> list[Processor]:
    """The processors every request runs through, in order, as the settings ask for them."""
    processors: list[Processor] = [Decode(settings.attribute_limits)]
    policy = settings.redaction_policy()
    if not policy.is_noop:
        processors.append(BatchRedactor(policy))
    processors.append(CostProcessor())
    return processors


class Overloaded(Exception):
    """The intake bound is reached; the sender should retry after `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"collector queue is full; retry after {retry_after:.1f}s")
        self.retry_after = retry_after


class TooLarge(Exception):
    """The request is over the configured maximum size."""


@dataclass
class ExportResult:
    """What the receivers report back: accepted and rejected item counts (OTLP partial success)."""

    accepted: int
    rejected: int
    error_message: str


class IngestPipeline:
    """Admission, the processors and durable writes for the three OTLP signals."""

    def __init__(self, processors: Sequence[Processor], exporter: StoreWriter, admission: Admission, *,
                 max_request_bytes: int, decode_workers: int = 0) -> None:
        self.processors = list(processors)
        self._exporter = exporter
        self._admission = admission
        self.max_request_bytes = max_request_bytes
        if decode_workers > 0:
            # spawn, not fork: forking a process that runs gRPC threads is unsafe. Each worker gets the list once.
            self._executor: concurrent.futures.Executor = concurrent.futures.ProcessPoolExecutor(
                max_workers=decode_workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=install, initargs=(self.processors,))
            self._process = run_installed
            self._json_executor = self._executor
        else:
            # One thread: the processors hold the GIL for about half their time, and a second thread gained nothing
            # on 2 cores (docs/decisions/2026-12-07-one-decode-thread.md). Each thread runs its own copy of the list.
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="tracekit-decode", initializer=install, initargs=(self.processors,))
            self._process = run_installed
            # OTLP/JSON takes far longer per byte than protobuf: its own thread, so it never queues protobuf
            # requests behind it (one at a time, which also bounds the memory its parse trees take).
            self._json_executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="tracekit-decode-json", initializer=install,
                initargs=(self.processors,))
        self.received = {"traces": 0, "logs": 0, "metrics": 0}
        self.rejected = {"traces": 0, "logs": 0, "metrics": 0}
        self.masked = 0
        self._decoding = 0  # requests admitted and not yet handed to the store writer
        exporter.incoming = lambda: self._decoding

    @property
    def admission(self) -> Admission:
        return self._admission

    async def export(self, signal: str, payload: bytes, *, json: bool = False, reserved: int = 0) -> ExportResult:
        """Store one OTLP request (protobuf, or OTLP/JSON with `json`) durably; raise Overloaded, TooLarge or
        InvalidRequest when it cannot be taken. `reserved`: bytes the receiver already took from the admission
        budget for this request while reading it; they are released here, whatever happens."""
        size = len(payload)
        if size > self.max_request_bytes:
            self._admission.release(reserved)
            raise TooLarge(f"request of {size} bytes is over the limit of {self.max_request_bytes} bytes")
        if reserved:
            size = reserved
        elif not self._admission.try_acquire(size):
            raise Overloaded(self._admission.retry_after_seconds())
        self._decoding += 1
        decoding = True
        try:
            loop = asyncio.get_running_loop()
            executor = self._json_executor if json else self._executor
            try:
                batch: Batch = await loop.run_in_executor(executor, self._process, signal, Received(payload, json))
            except (InvalidRequest, concurrent.futures.BrokenExecutor):
                raise
            except Exception as error:
                # The same bytes would fail the same way again: a permanent error for the sender, never a retry.
                log.exception("could not decode a %s request", signal)
                raise InvalidRequest(f"the request could not be decoded: {type(error).__name__}: {error}") from None
            self._decoding -= 1
            decoding = False
            if batch.accepted:
                await self._commit(loop, batch)
            self.received[signal] += batch.accepted
            self.rejected[signal] += batch.rejected
            self.masked += batch.masked
            if batch.rejected:
                log.warning("%s: rejected %d items: %s", signal, batch.rejected, batch.error_message)
            return ExportResult(batch.accepted, batch.rejected, batch.error_message)
        finally:
            if decoding:
                self._decoding -= 1
            self._admission.release(size)

    async def _commit(self, loop: asyncio.AbstractEventLoop, batch: Batch) -> None:
        committed: asyncio.Future[None] = loop.create_future()

        def done(error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, committed, error)

        self._exporter.submit(batch, done)
        await committed

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)
        self._json_executor.shutdown(wait=True, cancel_futures=False)


def _settle(future: "asyncio.Future[None]", error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


__all__ = ["IngestPipeline", "Overloaded", "TooLarge", "InvalidRequest", "ExportResult"]
