"""OTLP/gRPC receiver: the TraceService, LogsService and MetricsService `Export` methods.

Requests arrive as raw bytes (no deserializer in gRPC) so that decoding happens once, in the pipeline, on whole
requests. Answers follow the OTLP spec: OK with partial_success when some items were rejected, INVALID_ARGUMENT for a
request that cannot be decoded (or a call without a message), RESOURCE_EXHAUSTED with a RetryInfo trailer when the
collector is busy (the standard exporters honour it and retry), DEADLINE_EXCEEDED for a message that did not arrive
within the read timeout, UNAVAILABLE when the store failed to commit.

Memory before admission: grpcio hands a message over only whole, so its bytes cannot be counted as they arrive (the
HTTP receiver does that). The methods are registered as client-streaming, so the handler runs before the message is
read and reads it only with a read slot (`read_slots.py`); the slots are sized from the admission budget
(`read_slot_count`), and calls waiting for one hold no more than their 64 KiB HTTP/2 window (no BDP growth).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any, Awaitable, Callable

import grpc
from google.protobuf.duration_pb2 import Duration
from google.rpc.error_details_pb2 import RetryInfo
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tracekit.collector.pipeline import ExportResult, IngestPipeline, InvalidRequest, Overloaded, TooLarge
from tracekit.collector.receivers.read_slots import ReadSlots
from tracekit.errors import ListenError

log = logging.getLogger("tracekit.collector.grpc")

MAX_READ_SLOTS = 64              # request messages read at once, at most (see read_slot_count)
MAX_WAITING_READS = 256          # calls waiting for a read slot; more are refused at once (each holds <= 64 KiB)
PREEMPT_READ_AFTER_SECONDS = 2.0  # a read older than this gives its slot up when others wait (read_slots.py)
MAX_CONCURRENT_RPCS = 1024       # grpcio's own limit: reading, waiting and in the pipeline together

SERVICES = {
    "traces": "opentelemetry.proto.collector.trace.v1.TraceService",
    "logs": "opentelemetry.proto.collector.logs.v1.LogsService",
    "metrics": "opentelemetry.proto.collector.metrics.v1.MetricsService",
}


def export_response(signal: str, result: ExportResult) -> Any:
    """The Export*ServiceResponse for a result, with partial_success filled when items were rejected."""
    if signal == "traces":
        response = trace_service_pb2.ExportTraceServiceResponse()
        if result.rejected:
            response.partial_success.rejected_spans = result.rejected
            response.partial_success.error_message = result.error_message
    elif signal == "logs":
        response = logs_service_pb2.ExportLogsServiceResponse()
        if result.rejected:
            response.partial_success.rejected_log_records = result.rejected
            response.partial_success.error_message = result.error_message
    else:
        response = metrics_service_pb2.ExportMetricsServiceResponse()
        if result.rejected:
            response.partial_success.rejected_data_points = result.rejected
            response.partial_success.error_message = result.error_message
    return response


def _retry_trailer(seconds: float) -> tuple[tuple[str, bytes], ...]:
    delay = Duration(seconds=int(seconds), nanos=int((seconds % 1) * 1e9))
    return (("google.rpc.retryinfo-bin", RetryInfo(retry_delay=delay).SerializeToString()),)


def read_slot_count(queue_bytes: int, max_request_bytes: int) -> int:
    """How many request messages the gRPC receiver reads at once: a message being read costs up to twice the request
    limit (grpcio's buffer, then the copy it hands over), and together they may cost what the admission budget
    holds (at least 1, at most MAX_READ_SLOTS). Defaults: 256 MiB / (2 x 32 MiB) = 4."""
    return max(1, min(MAX_READ_SLOTS, queue_bytes // max(1, 2 * max_request_bytes)))


def _handler(signal: str, pipeline: IngestPipeline, token: str | None, slots: ReadSlots,
             read_timeout: float) -> Callable[..., Awaitable[bytes]]:
    async def export(requests: Any, context: grpc.aio.ServicerContext) -> bytes:
        # Registered as a client-streaming method: this runs before the message is read, so nothing of it is
        # held beyond the stream's flow-control window until it has a read slot. (Unary and client-streaming
        # calls look the same on the wire.)
        if token is not None:
            metadata = dict(context.invocation_metadata() or ())
            supplied = str(metadata.get("authorization", ""))
            if not hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode()):
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
        payload = await _read_message(context, pipeline, slots, read_timeout)
        try:
            result = await pipeline.export(signal, payload)
        except Overloaded as error:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(error),
                                trailing_metadata=_retry_trailer(error.retry_after))
        except TooLarge as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except InvalidRequest as error:
            log.warning("refused a %s request: %s", signal, error)
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except Exception as error:  # the store failed: the data is not durable, the sender must retry
            log.exception("could not store a %s request", signal)
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"the store could not commit: {error}",
                                trailing_metadata=_retry_trailer(1.0))
        return export_response(signal, result).SerializeToString()

    return export


async def _read_message(context: grpc.aio.ServicerContext, pipeline: IngestPipeline, slots: ReadSlots,
                        read_timeout: float) -> bytes:
    """The request message, read within `read_timeout` (waiting for a slot included); aborts the call otherwise:
    RESOURCE_EXHAUSTED with a retry delay when the collector is busy (overload), DEADLINE_EXCEEDED for a message that
    did not arrive in time, INVALID_ARGUMENT for a call that carries no message."""
    admission = pipeline.admission
    loop = asyncio.get_running_loop()
    deadline = loop.time() + read_timeout
    if admission.would_refuse(1):  # the queue is full: do not read what could not be taken
        admission.refused += 1
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "collector queue is full",
                            trailing_metadata=_retry_trailer(admission.retry_after_seconds()))
    slot = await slots.acquire(deadline, context.peer())
    if slot is None:
        admission.refused += 1
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "collector is busy reading other requests",
                            trailing_metadata=_retry_trailer(1.0))
    reading = asyncio.ensure_future(context.read())
    preempted = asyncio.ensure_future(slot.preempted.wait())
    try:
        await asyncio.wait((reading, preempted), timeout=max(deadline - loop.time(), 0),
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        preempted.cancel()
        slots.release(slot)
        if not reading.done():
            # The call ends (below, or with the server): its pending read then ends too, with nobody to take it.
            reading.add_done_callback(_discard_result)
    if not reading.done():
        if slot.preempted.is_set():
            admission.refused += 1
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                "the request was too slow to arrive while others waited; retry",
                                trailing_metadata=_retry_trailer(1.0))
        await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED,
                            f"the request message did not arrive within {read_timeout:g} s")
    message = reading.result()
    if message is grpc.aio.EOF:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the call carried no request message")
    return message


def _discard_result(task: "asyncio.Future[Any]") -> None:
    if not task.cancelled():
        task.exception()


async def start_grpc_server(host: str, port: int, pipeline: IngestPipeline, *, token: str | None = None,
                            max_message_bytes: int, read_timeout: float = 30.0,
                            idle_timeout: float = 30.0) -> tuple[grpc.aio.Server, int]:
    """Start the gRPC receiver; return the server and the port it bound (useful when port is 0)."""
    slots = ReadSlots(read_slot_count(pipeline.admission.capacity, max_message_bytes),
                      max_waiting=MAX_WAITING_READS, preempt_after=PREEMPT_READ_AFTER_SECONDS)
    # Past its own limit grpcio answers RESOURCE_EXHAUSTED without a retry delay (not retried by spec-following
    # exporters): a backstop well above what the read slots let wait.
    server = grpc.aio.server(maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS, options=[
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", 4 * 1024 * 1024),
        # Fixed 64 KiB stream windows: with BDP probing grpcio grows every stream's window to megabytes, which a
        # stream waiting for a read slot would fill. A stream being read still gets a window of its whole message.
        ("grpc.http2.bdp_probe", 0),
        # Connections that finish no handshake, or sit without calls, are closed (slow or abandoned clients).
        ("grpc.server_handshake_timeout_ms", int(idle_timeout * 1000)),
        ("grpc.max_connection_idle_ms", int(idle_timeout * 1000)),
        ("grpc.so_reuseport", 0),
    ])
    for signal, service in SERVICES.items():
        method = grpc.stream_unary_rpc_method_handler(_handler(signal, pipeline, token, slots, read_timeout))
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {"Export": method}),))
    try:
        bound = server.add_insecure_port(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    except RuntimeError:  # grpcio's "Failed to bind to address"
        bound = 0
    if bound == 0:
        raise ListenError(f"cannot listen for OTLP/gRPC on {host}:{port}: the port is in use (another collector?); "
                          "choose another with --grpc HOST:PORT, or --grpc off")
    await server.start()
    server.read_slots = slots  # type: ignore[attr-defined]  # for status and tests
    return server, bound
