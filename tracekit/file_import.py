"""`tracekit import`: OTLP JSON lines files (ours, or the OpenTelemetry Collector file exporter's) into a store.

If a collector runs for the store it owns the file, so the data is sent to it over OTLP/HTTP (protobuf), like any
other sender, and it redacts (with its own policy), stores and acknowledges it as usual. Otherwise the caller's
offline writer (the collector's own decoders, redaction processor and writer, tracekit.collector.offline) writes
them into the file with the import's policy, one transaction per chunk. Either way the data is masked by the one
redaction implementation (tracekit.redaction) before it is stored.
"""

from __future__ import annotations

import gzip
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Iterator

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracekit.errors import CollectorUnavailable, TracekitError
from tracekit.export.otlp_json import MAX_RECORD_BYTES, Request, bounded_lines, read_json_lines
from tracekit.redaction import RedactionPolicy
from tracekit.store.reader import read_state



class ImportFailed(TracekitError):
    """An import that could not complete (the collector refused the data, the file cannot be read)."""


@dataclass
class ImportSummary:
    """What an import stored."""

    source: str
    via: str = ""                    # "collector http://..." or "store file"
    spans: int = 0
    log_records: int = 0
    metric_points: int = 0
    rejected: int = 0
    redacted: int = 0
    redaction: str = "redacted by the import's policy"  # or by the collector's, or not at all
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "via": self.via, "spans": self.spans, "log_records": self.log_records,
                "metric_points": self.metric_points, "rejected": self.rejected, "redacted_values": self.redacted,
                "redaction": self.redaction,
                "errors": self.errors, "seconds": round(self.seconds, 3)}


def open_lines(path: str) -> tuple[IO[bytes], str]:
    """The file's lines (gzip is recognised by its magic bytes), and a name for messages. `-` is stdin."""
    import sys

    if path == "-":
        return sys.stdin.buffer, "stdin"
    try:
        handle: IO[bytes] = open(path, "rb")
    except OSError as error:
        raise ImportFailed(f"cannot read {path}: {error.strerror}") from None
    if handle.read(2) == b"\x1f\x8b":
        handle.close()
        return gzip.open(path, "rb"), path  # type: ignore[return-value]
    handle.seek(0)
    return handle, path


# --- the two ways in ---------------------------------------------------------------------------------------------------
_PATHS = {ExportTraceServiceRequest: "/v1/traces", ExportLogsServiceRequest: "/v1/logs",
          ExportMetricsServiceRequest: "/v1/metrics"}


def _count(request: Request, summary: ImportSummary) -> None:
    if isinstance(request, ExportTraceServiceRequest):
        summary.spans += sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
    elif isinstance(request, ExportLogsServiceRequest):
        summary.log_records += sum(len(s.log_records) for r in request.resource_logs for s in r.scope_logs)
    else:
        summary.metric_points += sum(1 for r in request.resource_metrics for s in r.scope_metrics for _ in s.metrics)


def send_to_collector(requests: Iterable[Request], base_url: str, summary: ImportSummary, *,
                      token: str | None = None, timeout: float = 30.0, attempts: int = 5) -> None:
    """POST each request as OTLP/HTTP protobuf to a running collector, retrying 429/503 as OTLP asks."""
    for request in requests:
        body = request.SerializeToString()
        url = base_url.rstrip("/") + _PATHS[type(request)]
        headers = {"Content-Type": "application/x-protobuf"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        for attempt in range(attempts):
            try:
                with urllib.request.urlopen(urllib.request.Request(url, data=body, headers=headers, method="POST"),
                                            timeout=timeout) as response:
                    _partial_success(type(request), response.read(), summary)
                break
            except urllib.error.HTTPError as error:
                if error.code in (429, 502, 503, 504) and attempt + 1 < attempts:
                    time.sleep(float(error.headers.get("Retry-After") or 2 ** attempt))
                    continue
                raise ImportFailed(f"the collector at {base_url} refused the data ({error.code}): "
                                   f"{error.read()[:200].decode(errors='replace')}") from None
            except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
                raise CollectorUnavailable(f"the collector at {base_url} did not answer: {error}") from None
        _count(request, summary)


def _partial_success(kind: type, payload: bytes, summary: ImportSummary) -> None:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

    response_type = {ExportTraceServiceRequest: ExportTraceServiceResponse,
                     ExportLogsServiceRequest: ExportLogsServiceResponse,
                     ExportMetricsServiceRequest: ExportMetricsServiceResponse}[kind]
    try:
        response = response_type.FromString(payload)
    except Exception:  # noqa: BLE001 - an empty or JSON body carries no partial success
        return
    partial = response.partial_success
    rejected = getattr(partial, "rejected_spans", 0) or getattr(partial, "rejected_log_records", 0) or getattr(
        partial, "rejected_data_points", 0)
    if rejected:
        summary.rejected += rejected
        if partial.error_message and len(summary.errors) < 5:
            summary.errors.append(partial.error_message)


# How requests reach a store no collector owns: collector.offline.write_requests (the command passes it, so this
# module does not depend on the collector's internals). It decodes, redacts with `policy` and writes.
OfflineWriter = Callable[..., None]


def import_file(path: str, db_path: Path, *, write_offline: OfflineWriter, policy: RedactionPolicy | None = None,
                policy_given: bool = False, token: str | None = None,
                max_record_bytes: int = MAX_RECORD_BYTES) -> ImportSummary:
    """Import one OTLP JSON lines file into the store at `db_path`: through its collector when one runs (which
    redacts with its own policy), else with `write_offline` (tracekit.collector.offline.write_requests) into the file
    itself, masked with `policy` (None: as they are). `policy_given`: the user chose the policy; a running collector
    cannot honour that, which is an error rather than a silent change of policy. A line longer than
    `max_record_bytes` stops the import with an error naming it, without being read whole."""
    started = time.monotonic()
    handle, name = open_lines(path)
    summary = ImportSummary(source=name)

    def requests() -> Iterator[Request]:
        yield from read_json_lines(bounded_lines(handle, name, max_record_bytes), name)

    try:
        state = read_state(db_path)
        if state and state.get("http"):
            if policy_given:
                raise ImportFailed(
                    f"a collector runs for {db_path} and redacts everything it stores with its own policy "
                    "(tracekit collect --redaction ...); --redaction-policy and --no-redaction apply only to a store "
                    "no collector owns: stop the collector or leave the option out")
            summary.via = f"collector {state['http']}"
            summary.redaction = "redacted by the collector's policy"
            send_to_collector(requests(), state["http"], summary, token=token)
        else:
            summary.via = f"store file {db_path}"
            if policy is None:
                summary.redaction = "not redacted"

            def observe(request: Request, batch: Any) -> None:
                summary.redacted += batch.masked
                summary.rejected += batch.rejected
                summary.errors.extend(error for error in batch.errors if error not in summary.errors)
                _count(request, summary)

            write_offline(requests(), db_path, observe, policy=policy)
    finally:
        if handle is not None and name != "stdin":
            handle.close()
    summary.seconds = time.monotonic() - started
    return summary
