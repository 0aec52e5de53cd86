"""From received bytes to a durable acknowledgement: admit, decode, hand to the writer, wait for the commit.

Receivers (gRPC, HTTP) call `IngestPipeline.export()` from the asyncio loop. Decoding runs off the loop (a thread, or
worker processes so both cores decode), the writer commits in groups, and the call returns only after the commit,
so what a sender sees acknowledged is on disk.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import multiprocessing
from dataclasses import dataclass

from tracekit.collector.admission import Admission
from tracekit.collector.ingest.decode import InvalidRequest
from tracekit.collector.ingest.normalize import Batch
from tracekit.collector.ingest.redact import BatchRedactor, decode_and_redact
from tracekit.collector.writer import StoreWriter

log = logging.getLogger("tracekit.collector.ingest")


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
    """Admission, decoding and durable writes for the three OTLP signals."""

    def __init__(self, writer: StoreWriter, admission: Admission, *, max_request_bytes: int,
                 decode_workers: int = 0, redactor: BatchRedactor | None = None) -> None:
        self._writer = writer
        self._redactor = redactor
        self._admission = admission
        self.max_request_bytes = max_request_bytes
        if decode_workers > 0:
            # spawn, not fork: forking a process that runs gRPC threads is unsafe.
            self._executor: concurrent.futures.Executor = concurrent.futures.ProcessPoolExecutor(
                max_workers=decode_workers, mp_context=multiprocessing.get_context("spawn"))
        else:
            self._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="tracekit-decode")
        self.received = {"traces": 0, "logs": 0, "metrics": 0}
        self.rejected = {"traces": 0, "logs": 0, "metrics": 0}
        self.masked = 0

    @property
    def admission(self) -> Admission:
        return self._admission

    async def export(self, signal: str, payload: bytes) -> ExportResult:
        """Store one OTLP request durably; raise Overloaded, TooLarge or InvalidRequest when it cannot be taken."""
        size = len(payload)
        if size > self.max_request_bytes:
            raise TooLarge(f"request of {size} bytes is over the limit of {self.max_request_bytes} bytes")
        if not self._admission.try_acquire(size):
            raise Overloaded(self._admission.retry_after_seconds())
        try:
            loop = asyncio.get_running_loop()
            batch: Batch = await loop.run_in_executor(self._executor, decode_and_redact, signal, payload,
                                                      self._redactor)
            if batch.accepted:
                await self._commit(loop, batch)
            self.received[signal] += batch.accepted
            self.rejected[signal] += batch.rejected
            self.masked += batch.masked
            if batch.rejected:
                log.warning("%s: rejected %d items: %s", signal, batch.rejected, batch.error_message)
            return ExportResult(batch.accepted, batch.rejected, batch.error_message)
        finally:
            self._admission.release(size)

    async def _commit(self, loop: asyncio.AbstractEventLoop, batch: Batch) -> None:
        committed: asyncio.Future[None] = loop.create_future()

        def done(error: BaseException | None) -> None:
            loop.call_soon_threadsafe(_settle, committed, error)

        self._writer.submit(batch, done)
        await committed

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=False)


def _settle(future: "asyncio.Future[None]", error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


__all__ = ["IngestPipeline", "Overloaded", "TooLarge", "InvalidRequest", "ExportResult"]
