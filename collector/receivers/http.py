"""OTLP/HTTP receiver: POST /v1/traces, /v1/logs, /v1/metrics in protobuf or JSON, optionally gzip-compressed.

Answers follow the OTLP/HTTP spec: 200 with an Export*ServiceResponse in the request's encoding (partial_success when
items were rejected); 400 with a google.rpc.Status for undecodable input (a broken gzip stream included); 408 for a
body that does not arrive in time; 413 for an oversized body; 415 for an unsupported content type or encoding; 429
with Retry-After when the queue is full; 503 with Retry-After when the store failed. Only 429 and 503 are retryable.

A body is read by this receiver, not buffered by aiohttp: it is inflated here chunk by chunk and every inflated byte
is taken from the admission budget as it arrives, so bodies being read count against the same bound as requests
being decoded; at most `MAX_CONCURRENT_BODY_READS` bodies are read at once, and each must arrive within the body
timeout (the header timeout is aiohttp's keep-alive timeout, armed when a connection opens; see `site_options`).
Compressed bodies are inflated in `INFLATE_THREADS` threads, not on the event loop, a slice at a time. A client
that closes its connection before its body is whole is counted (`clients_gone_mid_body`), not logged as a failure.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import logging
import math
import threading
import zlib

from aiohttp import web
from aiohttp.http_exceptions import PayloadEncodingError
from google.rpc.status_pb2 import Status

from tracekit.collector.admission import Admission
from tracekit.collector.pipeline import IngestPipeline, Overloaded, TooLarge
from tracekit.collector.processors.decode import InvalidRequest, protobuf_response_to_json
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

MAX_CONCURRENT_BODY_READS = 64
# An inflate thread inflates this much of a body at most, then hands it back to the event loop (bodies take turns);
# every slice is taken from the admission budget before the next is inflated.
_INFLATE_SLICE = 1024 * 1024
INFLATE_THREADS = 2
# Content-Encoding -> zlib window bits (32 + 15: gzip or zlib header, detected)
_ENCODINGS = {"gzip": 31, "x-gzip": 31, "deflate": 47}


HTTP_COUNTS: web.AppKey[dict[str, int]] = web.AppKey("http_counts", dict)


class _BodyTimeout(Exception):
    pass


class _ClientGone(Exception):
    """The client closed its connection before its body arrived whole."""


class _Abandoned(Exception):
    """A body that was given up while an inflate thread still worked on it."""


def site_options(header_timeout: float) -> dict[str, object]:
    """aiohttp AppRunner options for the receiver: no automatic inflation (the receiver does it, within the budget),
    and the keep-alive timeout that aiohttp arms when a connection opens, which closes a connection that has not sent
    a whole request header by then (slow clients) as well as idle ones."""
    return {"auto_decompress": False, "keepalive_timeout": header_timeout}


class _Body:
    """An (inflated) body being read and the budget it holds. Pieces are added by the event loop or by an inflate
    thread, so adding and giving the body up take a lock: once given up, a thread still inflating adds nothing more
    and takes no budget that would never be returned."""

    def __init__(self, limit: int, admission: Admission) -> None:
        self.data = bytearray()
        self._limit = limit
        self._admission = admission
        self._lock = threading.Lock()
        self._given_up = False

    def take(self, piece: bytes) -> None:
        with self._lock:
            if self._given_up:
                raise _Abandoned()
            if len(self.data) + len(piece) > self._limit:
                raise TooLarge(f"request is over the limit of {self._limit} bytes")
            if not self._admission.try_acquire(len(piece), held=len(self.data)):
                raise Overloaded(self._admission.retry_after_seconds())
            self.data.extend(piece)

    def give_up(self) -> None:
        """Return the budget held: the body is not passed on."""
        with self._lock:
            self._given_up = True
            self._admission.release(len(self.data))


def _inflate_slice(inflater: "zlib._Decompress", data: bytes, body: _Body) -> bytes | None:
    """Inflate up to `_INFLATE_SLICE` bytes of `data` into `body`; the input to call again with, or None when this
    input is used up. Runs in an inflate thread (zlib lets go of the GIL while it inflates); one call a slice, so
    the thread hands the GIL over once a slice, not once every few kilobytes."""
    try:
        piece = inflater.decompress(data, _INFLATE_SLICE)
    except zlib.error as error:
        raise InvalidRequest(f"the compressed body is not valid: {error}") from None
    body.take(piece)
    if inflater.eof or (not inflater.unconsumed_tail and len(piece) < _INFLATE_SLICE):
        return None
    return inflater.unconsumed_tail  # more input, or output still held inside zlib (a full slice)


async def _read_body(request: web.Request, window_bits: int | None, limit: int, pipeline: IngestPipeline,
                     deadline: float, inflating: concurrent.futures.Executor) -> tuple[bytearray, int]:
    """The whole (inflated) body and the bytes reserved for it in the admission budget; raises Overloaded,
    TooLarge, InvalidRequest (a broken compressed stream), _BodyTimeout or _ClientGone. On a raise nothing stays
    reserved. Compressed bodies are inflated in `inflating`'s threads, a slice at a time, so a gzip bomb costs the
    event loop no more than an ordinary body and bombs being inflated take turns with other compressed bodies."""
    inflater = zlib.decompressobj(window_bits) if window_bits is not None else None
    body = _Body(limit, pipeline.admission)
    loop = asyncio.get_running_loop()
    try:
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise _BodyTimeout()
            try:
                chunk = await asyncio.wait_for(request.content.readany(), remaining)
            except asyncio.TimeoutError:
                raise _BodyTimeout() from None
            except (ConnectionError, PayloadEncodingError) as error:  # closed before the body was whole
                raise _ClientGone(str(error) or type(error).__name__) from None
            if inflater is None:
                if not chunk:
                    return body.data, len(body.data)
                body.take(chunk)
                continue
            if not chunk:
                if not inflater.eof:
                    raise InvalidRequest("the compressed body ends before its stream does (truncated gzip?)")
                return body.data, len(body.data)
            pending: bytes | None = chunk
            while pending is not None:
                pending = await loop.run_in_executor(inflating, _inflate_slice, inflater, pending, body)
                if loop.time() > deadline:
                    raise _BodyTimeout()
    except BaseException:
        body.give_up()
        raise


def _status_response(http_status: int, code: int, message: str, json_body: bool,
                     headers: dict[str, str] | None = None) -> web.Response:
    status = Status(code=code, message=message)
    if json_body:
        return web.Response(status=http_status, body=protobuf_response_to_json(status), content_type=JSON,
                            headers=headers)
    return web.Response(status=http_status, body=status.SerializeToString(), content_type=PROTOBUF, headers=headers)


def build_http_app(pipeline: IngestPipeline, *, token: str | None = None,
                   body_timeout: float = 30.0) -> web.Application:
    """The aiohttp application serving the three OTLP/HTTP paths."""
    limit = pipeline.max_request_bytes
    app = web.Application(client_max_size=limit)
    read_slots = asyncio.Semaphore(MAX_CONCURRENT_BODY_READS)
    inflating = concurrent.futures.ThreadPoolExecutor(max_workers=INFLATE_THREADS,
                                                      thread_name_prefix="tracekit-inflate")
    counts = app[HTTP_COUNTS] = {"clients_gone_mid_body": 0}

    async def stop_inflating(_: web.Application) -> None:
        inflating.shutdown(wait=True, cancel_futures=True)

    app.on_cleanup.append(stop_inflating)

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
        encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding not in _ENCODINGS and encoding not in ("", "identity"):
            return _status_response(415, _INVALID_ARGUMENT,
                                    f"unsupported Content-Encoding {encoding!r}: use gzip, deflate or none", is_json)
        declared = request.content_length
        if declared is not None and declared > limit:
            return _status_response(413, _INVALID_ARGUMENT, f"request is over the limit of {limit} bytes", is_json)
        if declared is not None and pipeline.admission.would_refuse(declared):
            # Refuse before reading the body: an overloaded collector should not buffer what it cannot take.
            pipeline.admission.refused += 1
            retry = str(max(1, math.ceil(pipeline.admission.retry_after_seconds())))
            return _status_response(429, _RESOURCE_EXHAUSTED, "collector queue is full", is_json,
                                    {"Retry-After": retry})
        deadline = asyncio.get_running_loop().time() + body_timeout
        try:
            async with asyncio.timeout(body_timeout):  # waiting for a read slot counts against the body's time
                await read_slots.acquire()
        except TimeoutError:
            return _status_response(408, _INVALID_ARGUMENT, "the request body did not arrive in time", is_json)
        try:
            try:
                body, reserved = await _read_body(request, _ENCODINGS.get(encoding), limit, pipeline, deadline,
                                                  inflating)
            finally:
                read_slots.release()
            # OTLP/JSON is converted in the decode workers with the rest of the decoding, off this loop.
            result = await pipeline.export(signal, bytes(body), json=is_json, reserved=reserved)
        except _BodyTimeout:
            return _status_response(408, _INVALID_ARGUMENT,
                                    f"the request body did not arrive within {body_timeout:g} s", is_json,
                                    {"Connection": "close"})
        except _ClientGone as error:
            # Nobody is left to answer and nothing of the request was stored; its budget is already back.
            counts["clients_gone_mid_body"] += 1
            log.debug("a client closed its connection during a %s body: %s", signal, error)
            return web.Response(status=400)
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
