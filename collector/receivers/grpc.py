"""OTLP/gRPC receiver: the TraceService, LogsService and MetricsService `Export` methods.

Requests arrive as raw bytes (no deserializer in gRPC) so that decoding happens once, in the pipeline, on whole
requests. Answers follow the OTLP spec: OK with partial_success when some items were rejected, INVALID_ARGUMENT for a
request that cannot be decoded, RESOURCE_EXHAUSTED with a RetryInfo trailer when the queue is full (the standard
exporters honour it and retry), UNAVAILABLE when the store failed to commit.
"""

from __future__ import annotations

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
from tracekit.errors import ListenError

log = logging.getLogger("tracekit.collector.grpc")

MAX_CONCURRENT_RPCS = 128

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


def _handler(signal: str, pipeline: IngestPipeline, token: str | None) -> Callable[..., Awaitable[bytes]]:
    async def export(payload: bytes, context: grpc.aio.ServicerContext) -> bytes:
        if token is not None:
            metadata = dict(context.invocation_metadata() or ())
            supplied = str(metadata.get("authorization", ""))
            if not hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode()):
                await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")
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


async def start_grpc_server(host: str, port: int, pipeline: IngestPipeline, *, token: str | None = None,
                            max_message_bytes: int) -> tuple[grpc.aio.Server, int]:
    """Start the gRPC receiver; return the server and the port it bound (useful when port is 0)."""
    # Each concurrent RPC may hold a whole request in memory before admission sees it: bound how many there are
    # (gRPC answers RESOURCE_EXHAUSTED beyond that, which exporters retry).
    server = grpc.aio.server(maximum_concurrent_rpcs=MAX_CONCURRENT_RPCS, options=[
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ("grpc.so_reuseport", 0),
    ])
    for signal, service in SERVICES.items():
        method = grpc.unary_unary_rpc_method_handler(_handler(signal, pipeline, token))
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, {"Export": method}),))
    try:
        bound = server.add_insecure_port(f"[{host}]:{port}" if ":" in host else f"{host}:{port}")
    except RuntimeError:  # grpcio's "Failed to bind to address"
        bound = 0
    if bound == 0:
        raise ListenError(f"cannot listen for OTLP/gRPC on {host}:{port}: the port is in use (another collector?); "
                          "choose another with --grpc HOST:PORT, or --grpc off")
    await server.start()
    return server, bound
