"""Driving a selection through a sender: pages, shaping, redaction, the cursor, a progress bar and a summary.

One page (a few hundred spans in store order, with their events, links and correlated log records) is one batch.
A batch is finished when every item in it was delivered or refused for good; only then does the cursor move past
it. A batch cut short (retries exhausted, the process killed) leaves the cursor where it was, with the items
already delivered remembered, so the next run sends only the rest. The cursor is saved after every batch.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol, Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from tracekit.export.cursor import CursorRecord, CursorStore, cursor_id
from tracekit.export.limits import AzureShaper, LimitReport, retime_offset
from tracekit.export.rebuild import StoredSpan
from tracekit.export.rows import RowPage, RowReader
from tracekit.export.selection import SpanPage, StoreSource
from tracekit.terminal_text import clean

TOO_OLD = "older than 48 hours: Application Insights refuses it (use --retime)"


class Sender(Protocol):
    """A destination: azure.AzureMonitorSender (takes rebuilt SDK spans through `send`; its `prepare_spans` builds
    their envelopes on the prefetch thread, handed to `send` as `envelopes=`) or otlp.OtlpSender, which sets
    `reads_rows = True` and takes RowPages instead (`prepare` on the prefetch thread, then `send_page`)."""

    kind: str
    destination: str
    requests: int
    retries: int
    last_error: str

    def send(self, spans: Sequence[StoredSpan], logs: Sequence[Any], log_keys: Sequence[str],
             state: CursorRecord, on_progress: Callable[[], None] | None = None) -> None: ...

    def close(self) -> None: ...


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
    shaper: AzureShaper | None = None,
    retime: bool = False,
    page_size: int = 500,
    restart: bool = False,
    console: Console | None = None,
    show_progress: bool = True,
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
    if shaper is not None and retime:
        if record.retime_offset_ns is None:
            latest = source.latest_end_ns()
            record.retime_offset_ns = retime_offset(latest) if latest else 0
        shaper.retime_offset_ns = record.retime_offset_ns
    console = console or Console(stderr=True)
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
        TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[note]}"), TimeElapsedColumn(),
        console=console, disable=not show_progress, transient=False)
    with _frozen_heap(), progress:
        task = progress.add_task(f"export to {sender.kind}", total=len(keys), rate="", note="")
        # Senders that encode OTLP themselves read rows; the others (Azure Monitor) take rebuilt SDK spans.
        read_rows = read_spans = None
        if getattr(sender, "reads_rows", False) and shaper is None:
            row_reader = RowReader(source)

            def read_rows(chunk: list[Any]) -> RowPage:
                # On the prefetch thread: the next page is read, redacted and encoded while this one is on the wire.
                page = row_reader.fetch(chunk)
                sender.prepare(page)  # type: ignore[attr-defined]
                return page
        else:
            def read_spans(chunk: list[Any]) -> PreparedPage:
                # On the prefetch thread: the next page is read, redacted, shaped and turned into envelopes while
                # this one is on the wire.
                return _prepare_page(source.fetch(chunk, with_main_agents=shaper is not None), sender,
                                     shaper=shaper)

        def note_retry() -> None:
            progress.update(task, note=f"retrying: {_shown(sender.last_error)[:60]}")

        try:
            for chunk, page in prefetched_pages(keys, page_size, read_rows or read_spans):
                batch_items = _batch_items(chunk)
                if isinstance(page, RowPage):
                    # OTLP: rows, redacted and encoded straight to protobuf by read_rows (no SDK objects).
                    names = {f"{seq}:{trace_id}:{span_id}": name for (seq, trace_id, span_id), name
                             in zip(page.keys, page.spans.get("name", ()))} if record.refused else {}
                    sender.send_page(page, record, on_progress=note_retry)  # type: ignore[attr-defined]
                else:
                    for item in page.too_old:
                        record.refused.setdefault(item, [400, TOO_OLD])
                    summary.limits.merge(page.limits)
                    names = page.names
                    extra = {"envelopes": page.envelopes} if page.envelopes is not None else {}
                    sender.send(page.spans, page.logs, page.log_keys, record, on_progress=note_retry, **extra)
                if record.pending:
                    summary.complete = False
                    summary.pending = len(record.pending)
                    cursors.save(key, record)
                    break
                delivered = sum(1 for item in record.delivered if _in(item, batch_items))
                refused = 0
                for item_key, (status, reason) in record.refused.items():
                    if _in(item_key, batch_items):
                        refused += 1
                        name = "log record" if item_key.startswith("log:") else names.get(item_key.split("#")[0], "")
                        summary.refused.append(RefusedItem(item_key, name, int(status), str(reason)))
                summary.delivered += delivered
                record.totals["delivered"] = record.totals.get("delivered", 0) + delivered
                record.totals["refused"] = record.totals.get("refused", 0) + refused
                record.finish_batch(chunk)
                cursors.save(key, record)
                summary.spans_done += len(chunk)
                elapsed = max(time.monotonic() - started, 1e-9)
                progress.update(task, advance=len(chunk), rate=f"{summary.spans_done / elapsed:,.0f} spans/s",
                                note="")
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
class PreparedPage:
    """One page of SDK spans made ready to send on the prefetch thread: redacted, shaped to the destination's limits,
    and, for senders that build their own payload (`prepare_spans`), its envelopes per span."""

    spans: list[StoredSpan]
    logs: list[Any]
    log_keys: list[str]
    names: dict[str, str]                     # item key of each span -> span name, for the summary
    too_old: list[str] = field(default_factory=list)   # item keys the limits refused (older than 48 hours)
    limits: LimitReport = field(default_factory=LimitReport)
    envelopes: list[Any] | None = None        # from sender.prepare_spans, aligned with `spans`


def _prepare_page(page: SpanPage, sender: Sender, *, shaper: AzureShaper | None) -> PreparedPage:
    from tracekit.export.azure import span_item_keys

    spans, logs, log_keys = page.spans, page.logs, page.log_keys
    prepared = PreparedPage(spans=[], logs=[], log_keys=[], names={
        span_item_keys(span)[0]: span.name for span in page.spans})
    if shaper is None:
        prepared.spans, prepared.logs, prepared.log_keys = list(spans), list(logs), list(log_keys)
    else:
        for span in spans:
            key = (span.trace_id_hex, span.span_id_hex)
            shaped = shaper.span(span, prepared.limits, page.main_agents.get(key), page.costs.get(key))
            if shaped is None:
                prepared.too_old.extend(span_item_keys(span))
            else:
                prepared.spans.append(shaped)
        for item, record_log in zip(log_keys, logs):
            shaped_log = shaper.log(record_log, prepared.limits)
            if shaped_log is None:
                prepared.too_old.append(item)
            else:
                prepared.logs.append(shaped_log)
                prepared.log_keys.append(item)
    prepare_spans = getattr(sender, "prepare_spans", None)
    if prepare_spans is not None:
        prepared.envelopes = prepare_spans(prepared.spans)
    return prepared


def _shown(text: str) -> str:
    """Span names, reasons and destination answers, printed as they are: no Rich markup, no terminal controls."""
    return escape(clean(text))


def print_summary(summary: ExportSummary, console: Console | None = None, *, max_items: int = 20) -> None:
    """The end-of-run report: counts, what limits changed, and each refusal (span content shown literally)."""
    console = console or Console(stderr=True)
    status = "[green]complete[/]" if summary.complete else "[yellow]stopped; run the same command again to resume[/]"
    console.print(f"Export to {_shown(summary.destination)}: {status}")
    table = Table(show_header=False, box=None, padding=(0, 2))
    rate = summary.spans_done / summary.seconds if summary.seconds else 0.0
    rows = [
        ("spans selected (left to send)", f"{summary.selected:,}" + ("  (resumed)" if summary.resumed else "")),
        ("spans done", f"{summary.spans_done:,} in {summary.seconds:.1f} s ({rate:,.0f}/s)"),
        ("items accepted", f"{summary.delivered:,} (spans, span events, log records)"),
        ("items refused", f"{len(summary.refused):,}"),
        ("items pending", f"{summary.pending:,}"),
        ("requests / retries", f"{summary.requests:,} / {summary.retries:,}"),
    ]
    if summary.rejected_by_destination:
        rows.append(("rejected by the destination", f"{summary.rejected_by_destination:,} items (OTLP partial "
                                                    f"success): {summary.rejection_message}"))
    if summary.limits.retimed:
        rows.append(("retimed", f"{summary.limits.retimed:,} spans (original start in tracekit.original_start_time)"))
    if summary.limits.too_old:
        rows.append(("too old", f"{summary.limits.too_old:,} items older than 48 h not sent (re-run with "
                                             "--retime --restart to send them shifted to now)"))
    if summary.limits.trimmed_items:
        keys = ", ".join(f"{k} x{n}" for k, n in summary.limits.trimmed_keys.most_common(5))
        rows.append(("trimmed", f"{summary.limits.trimmed_items:,} items to fit 8 KB / 64 KB ({keys})"))
    if summary.redacted:
        rows.append(("redacted", f"{summary.redacted:,} values"))
    if summary.last_error and not summary.complete:
        rows.append(("last error", summary.last_error))
    for label, value in rows:
        table.add_row(label, _shown(value))
    console.print(table)
    if summary.refused:
        console.print("Refused:")
        for (status_code, reason), count in summary.refused_by_reason.most_common():
            console.print(f"  {count:,} x {status_code}: {_shown(reason)}")
        for item in summary.refused[:max_items]:
            console.print(f"  {_shown(item.key)} {_shown(item.name)!s}: {item.status} {_shown(item.reason)}")
        if len(summary.refused) > max_items:
            console.print(f"  ... and {len(summary.refused) - max_items:,} more (see --json)")


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


def run_file_export(source: StoreSource, out: Any, *, path: str, page_size: int = 1000, console: Console | None = None,
                    show_progress: bool = True) -> FileSummary:
    """Write the selection to `out` (a binary file) as OTLP JSON lines: per page one traces line, one logs line."""
    from tracekit.export.otlp_encode import OtlpEncoder
    from tracekit.export.otlp_json import to_json_line

    started = time.monotonic()
    summary = FileSummary(path=path)
    keys = source.list_keys()
    rows = RowReader(source)
    encoder = OtlpEncoder()  # the same direct encoding as `export otlp`: the file keeps what OTLP would
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=console or Console(stderr=True), disable=not show_progress)
    with progress:
        task = progress.add_task("write OTLP JSON", total=len(keys))
        for _, page in prefetched_pages(keys, page_size, rows.fetch):
            if page.keys:
                out.write(to_json_line(encoder.traces(page)))
                summary.lines += 1
                summary.spans += len(page.keys)
            if page.logs:
                out.write(to_json_line(encoder.logs(page)))
                summary.lines += 1
                summary.log_records += len(page.logs)
            progress.update(task, advance=len(page.keys))
    summary.redacted = source.redactor.masked if source.redactor is not None else 0
    summary.seconds = time.monotonic() - started
    return summary
