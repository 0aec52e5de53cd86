"""Driving a selection through a sender: pages of rows read once and redacted as read, the cursor, the summary.

The runner lists the selection after the cursor, reads it page by page as rows (rows.RowReader, redacted by the
source), has the sender adapt each page on a prefetch thread (`prepare`) while the previous one is on the wire, and
sends it (`send`). One page (a few hundred spans in store order, with their events, links and correlated log
records) is one batch. A batch is finished when every item in it was delivered or refused for good; only then does
the cursor move past it. A batch cut short (retries exhausted, the process killed) leaves the cursor where it was,
with the items already delivered remembered, so the next run sends only the rest. The cursor is saved after every
batch. Progress is reported through a callback (`ExportProgress` events): the CLI draws its bar and prints the
summary (tracekit/commands/export.py); the collector's forwarders log instead.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol

from tracekit.export.cursor import CursorRecord, CursorStore, cursor_id
from tracekit.export.limits import LimitReport, retime_offset
from tracekit.export.rows import PreparedPage, RowPage, RowReader
from tracekit.export.selection import StoreSource


class Sender(Protocol):
    """A destination (azure.AzureMonitorSender, otlp.OtlpSender). `prepare` adapts a page of rows to what the
    destination takes (on the prefetch thread); `send` delivers it, recording each item's outcome in the cursor
    record. A sender may also set `wants_main_agents` (pages then carry each span's main agent) and offer
    `retime(offset_ns)` (`--retime`)."""

    kind: str
    destination: str
    requests: int
    retries: int
    last_error: str

    def prepare(self, page: RowPage) -> PreparedPage: ...

    def send(self, prepared: PreparedPage, state: CursorRecord,
             on_retry: Callable[[], None] | None = None) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class ExportProgress:
    """One step of a run, for whoever shows progress: `start` (the total is known), `batch` (`done` spans of
    `total` finished), `retry` (the destination failed and is tried again; `message` says why)."""

    event: str
    done: int
    total: int
    seconds: float
    message: str = ""


ProgressCallback = Callable[[ExportProgress], None]


@dataclass
class RefusedItem:
    """One item the destination (or a limit checked here) refused for good."""

    key: str
    name: str
    status: int
    reason: str


@dataclass
class ExportSummary:
    """What an export run did."""

    destination: str
    selected: int = 0                 # spans left to export when the run started
    resumed: bool = False
    spans_done: int = 0               # spans whose batch finished
    delivered: int = 0                # items (spans, events, log records) accepted
    refused: list[RefusedItem] = field(default_factory=list)
    pending: int = 0                  # items still waiting when the run stopped
    limits: LimitReport = field(default_factory=LimitReport)
    redacted: int = 0
    requests: int = 0
    retries: int = 0
    seconds: float = 0.0
    complete: bool = True
    last_error: str = ""
    rejected_by_destination: int = 0  # OTLP partial success: items the endpoint accepted the request but refused
    rejection_message: str = ""

    @property
    def refused_by_reason(self) -> Counter[tuple[int, str]]:
        return Counter((item.status, item.reason) for item in self.refused)

    def to_json(self) -> dict[str, Any]:
        """The summary as JSON-ready data (for --json and for tests)."""
        return {
            "destination": self.destination, "selected_spans": self.selected, "resumed": self.resumed,
            "spans_done": self.spans_done, "items_delivered": self.delivered, "items_refused": len(self.refused),
            "items_pending": self.pending, "complete": self.complete, "requests": self.requests,
            "retries": self.retries, "seconds": round(self.seconds, 3), "too_old": self.limits.too_old,
            "retimed": self.limits.retimed, "trimmed_items": self.limits.trimmed_items,
            "trimmed_keys": dict(self.limits.trimmed_keys), "redacted_values": self.redacted,
            "refused": [{"item": r.key, "name": r.name, "status": r.status, "reason": r.reason}
                        for r in self.refused[:1000]],
            "last_error": self.last_error, "rejected_by_destination": self.rejected_by_destination,
            "rejection_message": self.rejection_message,
        }


def prefetched_pages(keys: list[Any], page_size: int, fetch: Callable[[list[Any]], Any],
                     ) -> Iterator[tuple[list[Any], Any]]:
    """(keys, page) for each page of `keys`, reading the next page with `fetch` on a thread while the caller sends
    this one (sending mostly waits on the network, reading on DuckDB; both release the GIL)."""
    chunks = [keys[start:start + page_size] for start in range(0, len(keys), page_size)]
    if not chunks:
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="export-read") as pool:
        upcoming = pool.submit(fetch, chunks[0])
        for index, chunk in enumerate(chunks):
            page = upcoming.result()
            if index + 1 < len(chunks):
                upcoming = pool.submit(fetch, chunks[index + 1])
            yield chunk, page


@contextmanager
def _frozen_heap() -> Iterator[None]:
    """Keep the cyclic garbage collector off the objects alive before the run (imported modules, the exporter, the
    selection's keys) while it runs: every full collection traversed them all, a large share of the Azure export's
    wall time (docs/export.md). The run's own garbage is collected as usual; `unfreeze` hands the rest back afterwards."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def run_export(
    source: StoreSource,
    sender: Sender,
    cursors: CursorStore,
    *,
    retime: bool = False,
    page_size: int = 500,
    restart: bool = False,
    on_progress: ProgressCallback | None = None,
) -> ExportSummary:
    """Export the selection of `source` through `sender`, resuming from (and updating) the cursor. The source
    redacts what it reads (its `redactor`), so every sender sends masked values."""
    started = time.monotonic()
    masked_before = source.redactor.masked if source.redactor is not None else 0
    key = cursor_id(sender.destination, source.selection.describe())
    record = None if restart else cursors.load(key)
    summary = ExportSummary(destination=sender.destination, resumed=record is not None and (
        record.position is not None or bool(record.delivered)))
    if record is None:
        record = CursorRecord(destination=sender.destination, selection=source.selection.describe())
    keys = source.list_keys(record.position)
    summary.selected = len(keys)
    shift = getattr(sender, "retime", None)
    if retime and shift is None:
        raise ValueError(f"{sender.kind} exports keep their times: --retime is for Azure Monitor")
    if retime and record.retime_offset_ns is None:
        latest = source.latest_end_ns()
        record.retime_offset_ns = retime_offset(latest) if latest else 0
    if shift is not None:
        shift(record.retime_offset_ns if retime else None)
    report = on_progress or (lambda progress: None)

    def tell(event: str, message: str = "") -> None:
        report(ExportProgress(event, summary.spans_done, len(keys), time.monotonic() - started, message))

    rows = RowReader(source)
    main_agents = getattr(sender, "wants_main_agents", False)

    def prepare(chunk: list[Any]) -> PreparedPage:
        # On the prefetch thread: the next page is read (redacted as read) and adapted by the sender while this
        # one is on the wire.
        return sender.prepare(rows.fetch(chunk, with_main_agents=main_agents))

    tell("start")
    with _frozen_heap():
        try:
            for chunk, prepared in prefetched_pages(keys, page_size, prepare):
                batch_items = _batch_items(chunk)
                for item, (status, reason) in prepared.refused.items():
                    record.refused.setdefault(item, [status, reason])
                if prepared.limits is not None:
                    summary.limits.merge(prepared.limits)
                sender.send(prepared, record, on_retry=lambda: tell("retry", sender.last_error))
                if record.pending:
                    summary.complete = False
                    summary.pending = len(record.pending)
                    cursors.save(key, record)
                    break
                delivered = sum(1 for item in record.delivered if _in(item, batch_items))
                refused = [(item_key, outcome) for item_key, outcome in record.refused.items()
                           if _in(item_key, batch_items)]
                names = prepared.rows.span_names() if refused else {}
                for item_key, (status, reason) in refused:
                    name = "log record" if item_key.startswith("log:") else names.get(item_key.split("#")[0], "")
                    summary.refused.append(RefusedItem(item_key, name, int(status), str(reason)))
                summary.delivered += delivered
                record.totals["delivered"] = record.totals.get("delivered", 0) + delivered
                record.totals["refused"] = record.totals.get("refused", 0) + len(refused)
                record.finish_batch(chunk)
                cursors.save(key, record)
                summary.spans_done += len(chunk)
                tell("batch")
            if summary.complete and record.retime_offset_ns is not None:
                # The shift belongs to this pass: a later run over newer spans computes its own.
                record.retime_offset_ns = None
                cursors.save(key, record)
        finally:
            summary.requests = sender.requests
            summary.retries = sender.retries
            summary.last_error = sender.last_error
            summary.rejected_by_destination = (getattr(sender, "rejected_spans", 0)
                                               + getattr(sender, "rejected_log_records", 0))
            summary.rejection_message = getattr(sender, "rejection_message", "")
            summary.redacted = source.redactor.masked - masked_before if source.redactor is not None else 0
            summary.seconds = time.monotonic() - started
    return summary


def _batch_items(chunk: list[Any]) -> tuple[set[str], set[str]]:
    return ({f"{seq}:{trace_id}:{span_id}" for seq, trace_id, span_id in chunk},
            {f"{trace_id}:{span_id}" for _, trace_id, span_id in chunk})


def _in(item: str, batch: tuple[set[str], set[str]]) -> bool:
    if item.startswith("log:"):
        return item[4:4 + 32 + 1 + 16] in batch[1]
    return item.split("#", 1)[0] in batch[0]


@dataclass
class FileSummary:
    """What an OTLP JSON file export wrote."""

    path: str
    spans: int = 0
    log_records: int = 0
    lines: int = 0
    redacted: int = 0
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "spans": self.spans, "log_records": self.log_records, "lines": self.lines,
                "redacted_values": self.redacted, "seconds": round(self.seconds, 3)}


def run_file_export(source: StoreSource, out: Any, *, path: str, page_size: int = 1000,
                    on_progress: ProgressCallback | None = None) -> FileSummary:
    """Write the selection to `out` (a binary file) as OTLP JSON lines: per page one traces line, one logs line."""
    from tracekit.export.otlp_encode import OtlpEncoder
    from tracekit.export.otlp_json import to_json_line

    started = time.monotonic()
    summary = FileSummary(path=path)
    keys = source.list_keys()
    rows = RowReader(source)
    encoder = OtlpEncoder()  # the same direct encoding as `export otlp`: the file keeps what OTLP would
    report = on_progress or (lambda progress: None)
    report(ExportProgress("start", 0, len(keys), 0.0))
    for _, page in prefetched_pages(keys, page_size, rows.fetch):
        if page.keys:
            out.write(to_json_line(encoder.traces(page)))
            summary.lines += 1
            summary.spans += len(page.keys)
        if page.logs:
            out.write(to_json_line(encoder.logs(page)))
            summary.lines += 1
            summary.log_records += len(page.logs)
        report(ExportProgress("batch", summary.spans, len(keys), time.monotonic() - started))
    summary.redacted = source.redactor.masked if source.redactor is not None else 0
    summary.seconds = time.monotonic() - started
    return summary
