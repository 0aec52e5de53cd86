"""Live forwarding: what the collector stores also goes to Azure Monitor and/or an upstream OTLP endpoint.

The durable queue is the store itself. Every stored row has an `ingest_seq` that only grows, so a forwarder keeps,
per destination, a cursor "last span delivered" in (ingest_seq, trace_id, span_id) order, in the store's
`export_cursors` table, and reads what came after it. Ingest never waits for a destination: a slow or unreachable
one only falls behind, its cursor stays put, and it catches up from the store when it answers again (nothing is
lost while the data is retained). Each forwarder is one thread that runs the export engine (tracekit.export.runner)
over what came after its cursor: the same pages of rows, the same senders (Azure Monitor's limits and per-item
retries, OTLP's encoding), the same export redaction policy applied before anything leaves.

A new destination starts at the newest stored span, not at the beginning of history: forwarding is for what
arrives from now on (`tracekit export` sends what was stored before).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from tracekit.export.cursor import CursorRecord, CursorStore, TableCursorStore, cursor_id
from tracekit.export.limits import AZURE_PAGE_SIZE
from tracekit.export.runner import ExportSummary, Sender, run_export
from tracekit.export.selection import Selection, StoreSource
from tracekit.redaction import policy_from_options
from tracekit.redaction.columns import TableRedactor
from tracekit.store.reader import StoreReader

log = logging.getLogger("tracekit.collector.exporters.forwarders")

SELECTION = "forward"
AFTER_EVERYTHING = "~"  # sorts after every hex id: "start after the newest span of this ingest_seq"


@dataclass(eq=False)
class Forwarder:
    """Forwards newly stored spans (with their events, links and log records) to one destination, in a thread."""

    reader: StoreReader
    sender: Sender
    cursors: CursorStore
    _: KW_ONLY
    redactor: TableRedactor | None = None
    poll_interval: float = 1.0
    max_backoff: float = 60.0
    page_size: int = AZURE_PAGE_SIZE
    delivered: int = field(default=0, init=False)
    refused: int = field(default=0, init=False)
    failures: int = field(default=0, init=False)
    last_error: str = field(default="", init=False)

    def __post_init__(self) -> None:
        self.key = cursor_id(self.sender.destination, SELECTION)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------------------------------
    def start(self) -> "Forwarder":
        """Start forwarding in a daemon thread."""
        self._ensure_cursor()
        self._thread = threading.Thread(target=self._loop, name=f"forward-{self.sender.kind}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the batch in flight (its progress is saved) and release the destination's exporters."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.sender.close()

    # --- work ----------------------------------------------------------------------------------------------------
    def _ensure_cursor(self) -> None:
        if self.cursors.load(self.key) is not None:
            return
        newest = self.reader.sql("SELECT max(ingest_seq) AS seq FROM spans").column(0)[0].as_py()
        record = CursorRecord(destination=self.sender.destination, selection=SELECTION)
        if newest is not None:
            record.position = (int(newest), AFTER_EVERYTHING, AFTER_EVERYTHING)
        self.cursors.save(self.key, record)

    def run_once(self) -> ExportSummary:
        """Forward everything stored after the cursor (one pass); stops early if the destination fails."""
        source = StoreSource(self.reader, Selection(description=SELECTION), redactor=self.redactor)
        summary = run_export(source, self.sender, self.cursors, page_size=self.page_size)
        self.delivered += summary.delivered
        self.refused += len(summary.refused)
        for item in summary.refused[:5]:
            log.warning("forward to %s: item %s refused (%s): %s", self.sender.destination, item.key, item.status,
                        item.reason)
        return summary

    def _loop(self) -> None:
        backoff = self.poll_interval
        while not self._stop.is_set():
            try:
                summary = self.run_once()
                complete = summary.complete
                if not complete:
                    self.last_error = summary.last_error
            except Exception as error:  # noqa: BLE001 - a destination problem must never stop the collector
                complete = False
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning("forward to %s failed: %s", self.sender.destination, self.last_error)
            if complete:
                backoff = self.poll_interval
                self._stop.wait(self.poll_interval)
            else:
                self.failures += 1
                self._stop.wait(backoff)
                backoff = min(self.max_backoff, backoff * 2)

    def status(self) -> dict[str, Any]:
        """For the collector's status: where this destination stands."""
        record = self.cursors.load(self.key)
        return {"destination": self.sender.destination, "delivered": self.delivered, "refused": self.refused,
                "pending": len(record.pending) if record else 0,
                "position": list(record.position) if record and record.position else None,
                "failures": self.failures, "last_error": self.last_error, "checked_at": time.time()}


def start_forwarders(collector: Any, settings: Any) -> list[Forwarder]:
    """The forwarders `settings` asks for (`forward_azure_monitor`, `forward_otlp`), started on `collector`'s store.

    Cursors live in the store's export_cursors table, written on the collector's writer connection between commits.
    """
    policy = policy_from_options(getattr(settings, "forward_redaction_policy", None))
    interval = float(getattr(settings, "forward_interval", 1.0))
    senders: list[tuple[Sender, int]] = []   # (sender, page size)
    if settings.forward_azure_monitor:
        from tracekit.export.azure import AzureMonitorSender

        senders.append((AzureMonitorSender(settings.forward_azure_monitor), AZURE_PAGE_SIZE))
    if settings.forward_otlp:
        from tracekit.export.otlp import PAGE_SIZE, OtlpSender

        senders.append((OtlpSender(settings.forward_otlp), PAGE_SIZE))
    forwarders: list[Forwarder] = []
    for sender, page_size in senders:
        # Each forwarder thread queries on its own connection, beside the TUI and the read API, and has its own
        # redactor (it counts what it masked).
        reader = collector.new_reader() if hasattr(collector, "new_reader") else collector.reader()
        forwarders.append(Forwarder(
            reader, sender, TableCursorStore(collector.writer.run_exclusive, reader),
            redactor=TableRedactor(policy) if policy is not None else None, poll_interval=interval,
            page_size=page_size).start())
    return forwarders
