"""OTLP/HTTP receiver: POST /v1/traces, /v1/logs, /v1/metrics in protobuf or JSON, optionally gzip-compressed.

Answers follow the OTLP/HTTP spec: 200 with an Export*ServiceResponse in the request's encoding (partial_success when
items were rejected); 400 with a google.rpc.Status for undecodable input; 413 for an oversized body; 415 for an
unsupported content type; 429 with Retry-After when the queue is full; 503 with Retry-After when the store failed.
"""

from __future__ import annotations

import hmac
import logging
import math

from aiohttp import web
from google.rpc.status_pb2 import Status

from tracekit.collector.processors.decode import InvalidRequest, json_to_protobuf, protobuf_response_to_json
from tracekit.collector.pipeline import IngestPipeline, Overloaded, TooLarge
from tracekit.collector.receivers.grpc import export_response

log = logging.getLogger("tracekit.collector.http")

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
PATHS = {"/v1/traces": "traces", "/v1/logs": "logs", "/v1/metrics": "metrics"}

# gRPC codes in google.rpc.Status bodies
_INVALID_ARGUMENT = 3
_RESOURCE_EXHAUSTED = 8
_UNAUTHENTICATED = 16
_UNAVAILABLE = 14


def _status_response(http_status: int, code: int, message: str, json_body: bool,
                     headers: dict[str, str] | None = None) -> web.Response:
    status = Status(code=code, message=message)
    if json_body:
        return web.Response(status=http_status, body=protobuf_response_to_json(status), content_type=JSON,
                            headers=headers)
    return web.Response(status=http_status, body=status.SerializeToString(), content_type=PROTOBUF, headers=headers)


def build_http_app(pipeline: IngestPipeline, *, token: str | None = None) -> web.Application:
    """The aiohttp application serving the three OTLP/HTTP paths."""
    limit = pipeline.max_request_bytes
    app = web.Application(client_max_size=limit)

    async def export(request: web.Request) -> web.Response:
        signal = PATHS[request.path]
        content_type = request.content_type
        is_json = content_type == JSON
        if token is not None:
            supplied = request.headers.get("Authorization", "")
            if not hmac.compare_digest(supplied.encode(), f"Bearer {token}".encode()):
                return _status_response(401, _UNAUTHENTICATED, "missing or wrong bearer token", is_json)
        if content_type not in (PROTOBUF, JSON):
            return _status_response(
                415, _INVALID_ARGUMENT,
                f"unsupported Content-Type {content_type!r}: use {PROTOBUF} or {JSON}", False)
        declared = request.content_length
        if declared is not None and pipeline.admission.would_refuse(declared):
            # Refuse before reading the body: an overloaded collector should not buffer what it cannot take.
            pipeline.admission.refused += 1
            retry = str(max(1, math.ceil(pipeline.admission.retry_after_seconds())))
            return _status_response(429, _RESOURCE_EXHAUSTED, "collector queue is full", is_json,
                                    {"Retry-After": retry})
        try:
            # aiohttp inflates gzip/deflate bodies while reading and counts the inflated bytes against
            # client_max_size, so a compression bomb ends in 413 without being held in memory whole.
            body = await request.read()
            payload = json_to_protobuf(signal, body) if is_json else body
            result = await pipeline.export(signal, payload)
        except web.HTTPRequestEntityTooLarge:
            return _status_response(413, _INVALID_ARGUMENT, f"request is over the limit of {limit} bytes", is_json)
        except TooLarge as error:
            return _status_response(413, _INVALID_ARGUMENT, str(error), is_json)
        except InvalidRequest as error:
            log.warning("refused a %s request: %s", signal, error)
            return _status_response(400, _INVALID_ARGUMENT, str(error), is_json)
        except Overloaded as error:
            retry = str(max(1, math.ceil(error.retry_after)))
            return _status_response(429, _RESOURCE_EXHAUSTED, str(error), is_json, {"Retry-After": retry})
        except Exception as error:  # the store failed: nothing of this request is durable
            log.exception("could not store a %s request", signal)
            return _status_response(503, _UNAVAILABLE, f"the store could not commit: {error}", is_json,
                                    {"Retry-After": "1"})
        response = export_response(signal, result)
        if is_json:
            return web.Response(body=protobuf_response_to_json(response), content_type=JSON)
        return web.Response(body=response.SerializeToString(), content_type=PROTOBUF)

    for path in PATHS:
        app.router.add_post(path, export)
    return app
