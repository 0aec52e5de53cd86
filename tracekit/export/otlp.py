"""Sending stored spans and log records to an OTLP endpoint: our own protobuf encoding, gRPC or HTTP transport.

`http://host:4317` or `grpc://host:4317` (or `--protocol grpc`) use OTLP/gRPC; `http(s)://host:4318` (or
`--protocol http/protobuf`) use OTLP/HTTP with `/v1/traces` and `/v1/logs` appended, as `OTEL_EXPORTER_OTLP_ENDPOINT`
does. `https://` means TLS (gRPC too; `OTEL_EXPORTER_OTLP_CERTIFICATE` names a CA file). Headers come from
`--header` or `OTEL_EXPORTER_OTLP_HEADERS`; `OTEL_EXPORTER_OTLP_COMPRESSION=gzip` compresses requests.

Requests are built by `otlp_encode` from the stored rows and sent as serialized bytes (the SDK exporters would need
SDK span objects, which cost more to build than the whole export otherwise). OTLP semantics as the spec gives them:
retryable answers (gRPC UNAVAILABLE, RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED, ABORTED, ...; HTTP 429, 502, 503, 504)
are retried with exponential backoff and jitter, waiting at least what the server asked for (the
`google.rpc.retryinfo-bin` trailer, `Retry-After`); a partial success is counted and reported, never retried (the
server has said those items are bad). A request that still fails leaves its batch pending in the cursor for the next
run. OTLP acknowledges a request as a whole, so items are delivered per batch.
"""

from __future__ import annotations

import gzip
import http.client
import os
import random
import ssl
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any, Callable
from urllib.parse import urlparse

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tracekit.errors import TracekitError
from tracekit.export.cursor import CursorRecord
from tracekit.export.otlp_encode import OtlpEncoder
from tracekit.export.rows import PreparedPage, RowPage

PROTOCOLS = ("grpc", "http/protobuf")
TRACES_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
RETRYABLE_HTTP = frozenset({429, 502, 503, 504})
MAX_BACKOFF_SECONDS = 32.0
PAGE_SIZE = 2000  # spans per request by default (`tracekit export otlp`, forwarding): the requests stay ~1 MB


class OtlpEndpointError(TracekitError):
    """An OTLP endpoint or protocol that cannot be used."""


class DeliveryError(Exception):
    """A request the endpoint did not accept: `retry_after` is set (seconds, maybe 0) when trying again may help."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def choose_protocol(endpoint: str, protocol: str | None) -> str:
    """The OTLP protocol for `endpoint`: as given, else gRPC for port 4317 or a grpc:// URL, else HTTP."""
    if protocol:
        if protocol not in PROTOCOLS:
            raise OtlpEndpointError(f"unknown OTLP protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}")
        return protocol
    parsed = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
    if parsed.scheme == "grpc" or parsed.port == 4317:
        return "grpc"
    return "http/protobuf"


def _http_path(base_path: str, signal: str) -> str:
    base = base_path.rstrip("/")
    for suffix in ("/v1/traces", "/v1/logs"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return f"{base}/v1/{signal}"


def headers_from_env() -> dict[str, str]:
    """`OTEL_EXPORTER_OTLP_HEADERS` (`key1=value1,key2=value2`, values URL-encoded) as a dict."""
    from urllib.parse import unquote

    headers: dict[str, str] = {}
    for item in os.environ.get("OTEL_EXPORTER_OTLP_HEADERS", "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            headers[key.strip().lower()] = unquote(value.strip())
    return headers


def _retry_after_header(value: str | None) -> float | None:
    """Retry-After as seconds: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _ca_file() -> str | None:
    return os.environ.get("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE") or os.environ.get("OTEL_EXPORTER_OTLP_CERTIFICATE")


class GrpcTransport:
    """Unary OTLP/gRPC calls with raw bytes (no generated stubs needed: the request is already serialized)."""

    _RETRYABLE = ("UNAVAILABLE", "RESOURCE_EXHAUSTED", "DEADLINE_EXCEEDED", "ABORTED", "CANCELLED", "OUT_OF_RANGE",
                  "DATA_LOSS")

    def __init__(self, target: str, *, secure: bool, headers: dict[str, str], timeout: float, gzip_: bool) -> None:
        import grpc

        self._grpc = grpc
        options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
        if secure:
            ca_file = _ca_file()
            roots = open(ca_file, "rb").read() if ca_file else None
            self._channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(roots), options=options)
        else:
            self._channel = grpc.insecure_channel(target, options=options)
        self._calls = {signal: self._channel.unary_unary(method) for signal, method in
                       (("traces", TRACES_METHOD), ("logs", LOGS_METHOD))}
        self._metadata = tuple((key.lower(), value) for key, value in headers.items())
        self._timeout = timeout
        self._compression = grpc.Compression.Gzip if gzip_ else None
        self._retryable = {getattr(grpc.StatusCode, name) for name in self._RETRYABLE}

    def export(self, signal: str, body: bytes) -> bytes:
        """Send one serialized request; the serialized response, or DeliveryError."""
        grpc = self._grpc
        try:
            return self._calls[signal](body, timeout=self._timeout, metadata=self._metadata,
                                       compression=self._compression)
        except grpc.RpcError as error:
            code = error.code()
            message = f"gRPC {code.name}: {error.details() or 'no details'}"
            if code not in self._retryable:
                raise DeliveryError(message, None) from None
            raise DeliveryError(message, self._retry_info(error)) from None

    @staticmethod
    def _retry_info(error: Any) -> float:
        """The server's RetryInfo delay (0 when it gave none)."""
        from google.rpc.error_details_pb2 import RetryInfo

        for key, value in error.trailing_metadata() or ():
            if key == "google.rpc.retryinfo-bin":
                try:
                    delay = RetryInfo.FromString(value).retry_delay
                except Exception:  # noqa: BLE001 - a bad trailer only loses the hint
                    return 0.0
                return delay.seconds + delay.nanos / 1e9
        return 0.0

    def close(self) -> None:
        self._channel.close()


class HttpTransport:
    """OTLP/HTTP protobuf POSTs over one kept-alive connection (reopened when the server closes it)."""

    def __init__(self, base: str, *, headers: dict[str, str], timeout: float, gzip_: bool) -> None:
        parsed = urlparse(base)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise OtlpEndpointError(f"cannot use {base!r} as an OTLP/HTTP endpoint: give http(s)://host:port")
        self._https = parsed.scheme == "https"
        self._host = parsed.hostname
        self._port = parsed.port or (443 if self._https else 80)
        self._paths = {signal: _http_path(parsed.path, signal) for signal in ("traces", "logs")}
        self._headers = {"Content-Type": "application/x-protobuf", "User-Agent": "tracekit-export", **headers}
        if gzip_:
            self._headers["Content-Encoding"] = "gzip"
        self._gzip = gzip_
        self._timeout = timeout
        self._connection: http.client.HTTPConnection | None = None

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            if self._https:
                context = ssl.create_default_context(cafile=_ca_file())
                self._connection = http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout,
                                                               context=context)
            else:
                self._connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        return self._connection

    def export(self, signal: str, body: bytes) -> bytes:
        """POST one serialized request; the serialized response, or DeliveryError."""
        if self._gzip:
            body = gzip.compress(body, compresslevel=1)
        try:
            connection = self._connect()
            connection.request("POST", self._paths[signal], body=body, headers=self._headers)
            response = connection.getresponse()
            data = response.read()
        except ssl.SSLCertVerificationError as error:
            self.close()
            raise DeliveryError(f"HTTPS: the server's certificate was refused: {error.verify_message}", None) from None
        except (OSError, http.client.HTTPException) as error:
            self.close()  # a broken keep-alive connection: the next attempt opens a new one
            raise DeliveryError(f"HTTP: {error or type(error).__name__}", 0.0) from None
        if response.will_close:
            self.close()
        if response.status == 200:
            return data
        message = f"HTTP {response.status}: {_status_message(data) or response.reason}"
        if response.status in RETRYABLE_HTTP:
            raise DeliveryError(message, _retry_after_header(response.getheader("Retry-After")) or 0.0)
        raise DeliveryError(message, None)

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _status_message(body: bytes) -> str:
    """The message of an OTLP/HTTP error body (a google.rpc.Status), or the text itself."""
    if not body:
        return ""
    from google.rpc.status_pb2 import Status

    try:
        return Status.FromString(body).message[:300]
    except Exception:  # noqa: BLE001 - not a Status: show the start of the text
        return body[:300].decode("utf-8", "replace")


class OtlpSender:
    """Delivers pages of stored spans and log records to one OTLP endpoint."""

    kind = "otlp"

    def __init__(self, endpoint: str, *, protocol: str | None = None, headers: dict[str, str] | None = None,
                 insecure: bool | None = None, timeout: float = 30.0, max_attempts: int = 8,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if not endpoint:
            raise OtlpEndpointError("no OTLP endpoint: pass --endpoint or set OTEL_EXPORTER_OTLP_ENDPOINT")
        self.protocol = choose_protocol(endpoint, protocol)
        self.destination = f"otlp:{self.protocol}:{endpoint}"
        headers = headers_from_env() if headers is None else headers
        gzip_ = os.environ.get("OTEL_EXPORTER_OTLP_COMPRESSION", "").strip().lower() == "gzip"
        parsed = urlparse(endpoint if "://" in endpoint else f"http://{endpoint}")
        self.transport: GrpcTransport | HttpTransport
        if self.protocol == "grpc":
            plain = insecure if insecure is not None else parsed.scheme in ("http", "grpc")
            self.transport = GrpcTransport(parsed.netloc or endpoint, secure=not plain, headers=headers,
                                           timeout=timeout, gzip_=gzip_)
        else:
            base = endpoint if "://" in endpoint else f"http://{endpoint}"
            self.transport = HttpTransport(base, headers=headers, timeout=timeout, gzip_=gzip_)
        self.encoder = OtlpEncoder()
        self._encoding = threading.Lock()
        self.max_attempts = max(1, max_attempts)
        self._sleep = sleep
        self.requests = 0
        self.retries = 0
        self.last_error = ""
        self.last_retry_after: float | None = None  # the last delay the server asked for (RetryInfo, Retry-After)
        self.rejected_spans = 0                     # partial success: items the endpoint refused, with its reason
        self.rejected_log_records = 0
        self.rejection_message = ""

    def prepare(self, page: RowPage) -> PreparedPage:
        """The page's requests, encoded from its rows and serialized (the runner calls this on its prefetch thread,
        so the next page is encoded while the current one is on the wire)."""
        encoded: dict[str, bytes] = {}
        with self._encoding:
            if page.keys:
                encoded["traces"] = self.encoder.traces(page).SerializeToString()
            if page.logs:
                encoded["logs"] = self.encoder.logs(page).SerializeToString()
        return PreparedPage(rows=page, payload=encoded)

    def send(self, prepared: PreparedPage, state: CursorRecord, on_retry: Callable[[], None] | None = None) -> None:
        """Export what of the page is not delivered yet; a request that cannot be delivered leaves its items pending."""
        page, encoded = prepared.rows, prepared.payload
        done = state.delivered
        span_keys = page.item_keys()
        if span_keys and span_keys[0] not in done:
            response = self._deliver("traces", encoded["traces"], on_retry)
            if response is None:
                state.pending.update((key, None) for key in span_keys)
                # The destination is failing: keep the log records for the next attempt too.
                state.pending.update((key, None) for key in page.log_keys if key not in done)
                return
            partial = ExportTraceServiceResponse.FromString(response).partial_success
            self._partial(partial.rejected_spans, 0, partial.error_message)
            self._delivered(span_keys, state)
        fresh_logs = [key for key in page.log_keys if key not in done]
        if fresh_logs:
            if len(fresh_logs) == len(page.log_keys):
                body = encoded["logs"]
            else:  # a resumed batch: only the records not delivered yet
                with self._encoding:  # the encoder's caches are shared with the prefetch thread
                    body = self.encoder.logs(page, set(fresh_logs)).SerializeToString()
            response = self._deliver("logs", body, on_retry)
            if response is None:
                state.pending.update((key, None) for key in fresh_logs)
                return
            partial = ExportLogsServiceResponse.FromString(response).partial_success
            self._partial(0, partial.rejected_log_records, partial.error_message)
            self._delivered(fresh_logs, state)

    def _deliver(self, signal: str, body: bytes, on_progress: Callable[[], None] | None) -> bytes | None:
        """Send with retries; the response bytes, or None when the request could not be delivered."""
        for attempt in range(1, self.max_attempts + 1):
            self.requests += 1
            try:
                return self.transport.export(signal, body)
            except DeliveryError as error:
                self.last_error = f"{signal}: {error}"
                if error.retry_after is None or attempt == self.max_attempts:
                    return None
                if error.retry_after:
                    self.last_retry_after = error.retry_after
                self.retries += 1
                if on_progress is not None:
                    on_progress()
                backoff = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
                self._sleep(max(backoff, error.retry_after))
        return None

    def _partial(self, spans: int, log_records: int, message: str) -> None:
        if spans or log_records:
            self.rejected_spans += spans
            self.rejected_log_records += log_records
            self.rejection_message = message[:300] or "no reason given"

    @staticmethod
    def _delivered(keys: list[str], state: CursorRecord) -> None:
        pending = state.pending
        if pending:
            for key in keys:
                pending.pop(key, None)
        state.delivered.update(keys)

    def close(self) -> None:
        self.transport.close()
