"""A gRPC client speaking HTTP/2 itself (the `h2` package), for what grpcio's client never does: send part of a
message and stall, declare a compressed message that inflates to the request limit, end a call without its message,
or name any `:authority`."""

from __future__ import annotations

import base64
import socket
import threading
import time

import h2.config
import h2.connection
import h2.events
import h2.exceptions
from google.rpc.error_details_pb2 import RetryInfo

from tests.collector.test_bounded_intake import TRACE_METHOD

_ZEROS = bytes(64 * 1024)


class HostileCall:
    """One gRPC call on a raw HTTP/2 connection: a message prefix declaring `declared` bytes (flagged compressed
    when `compressed`), then `body` (or zeros) up to `sent` bytes; the stream ends only if the whole message was
    sent."""

    def __init__(self, declared: int, sent: int, body: bytes | None = None, compressed: bool = False) -> None:
        self.declared, self.sent, self.body, self.compressed = declared, sent, body, compressed
        self.offset = 0  # of the body bytes sent so far
        self.ended = False
        self.status: str | None = None
        self.retry_info: str | None = None  # the google.rpc.retryinfo-bin trailer (base64, as on the wire)

    def chunk(self, limit: int) -> bytes:
        size = min(limit, self.sent - self.offset, len(_ZEROS))
        data = self.body[self.offset:self.offset + size] if self.body is not None else _ZEROS[:size]
        self.offset += size
        return data


def retry_delay(retry_info: str | None) -> float:
    """The retry delay of a google.rpc.retryinfo-bin trailer (base64, as on the wire), in seconds."""
    assert retry_info, "a RESOURCE_EXHAUSTED answer without RetryInfo"
    raw = base64.b64decode(retry_info + "=" * (-len(retry_info) % 4))
    return RetryInfo.FromString(raw).retry_delay.ToTimedelta().total_seconds()


def run_hostile_connection(address: tuple[str, int], calls: list[HostileCall], stop: threading.Event,
                           authority: str = "127.0.0.1") -> None:
    """Open the calls on one connection and send what flow control lets through until each call is answered, the
    collector closes the connection, or `stop` is set."""
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    with socket.create_connection(address, timeout=30) as sock:
        sock.settimeout(0.05)
        connection.initiate_connection()
        by_stream: dict[int, HostileCall] = {}
        for call in calls:
            stream = connection.get_next_available_stream_id()
            headers = [(":method", "POST"), (":scheme", "http"), (":path", TRACE_METHOD), (":authority", authority),
                       ("content-type", "application/grpc"), ("te", "trailers")]
            if call.compressed:
                headers.append(("grpc-encoding", "gzip"))
            connection.send_headers(stream, headers)
            connection.send_data(stream, bytes([int(call.compressed)]) + call.declared.to_bytes(4, "big"))
            by_stream[stream] = call
        while not stop.is_set() and any(call.status is None for call in calls):
            for stream, call in by_stream.items():
                while call.status is None and call.offset < call.sent:
                    window = min(connection.local_flow_control_window(stream), connection.max_outbound_frame_size)
                    if window <= 0:
                        break
                    connection.send_data(stream, call.chunk(window))
                if call.status is None and not call.ended and call.offset == call.sent == call.declared:
                    connection.end_stream(stream)
                    call.ended = True
            try:
                sock.sendall(connection.data_to_send())
                received = sock.recv(1 << 16)
            except socket.timeout:
                continue
            except OSError:
                return
            if not received:
                return
            for event in connection.receive_data(received):
                if isinstance(event, (h2.events.TrailersReceived, h2.events.ResponseReceived)):
                    headers = dict(event.headers)
                    call = by_stream.get(event.stream_id)
                    if call is not None and "grpc-status" in headers:
                        call.status = headers["grpc-status"]
                        call.retry_info = headers.get("google.rpc.retryinfo-bin")
                elif isinstance(event, h2.events.StreamReset) and event.stream_id in by_stream:
                    by_stream[event.stream_id].status = by_stream[event.stream_id].status or "reset"


def keep_attacking(address: tuple[str, int], make_calls, stop: threading.Event, answers: list[HostileCall]) -> None:
    """Open connections carrying `make_calls()` one after the other until `stop`, keeping every call's answer."""
    while not stop.is_set():
        calls = make_calls()
        try:
            run_hostile_connection(address, calls, stop)
        except (OSError, h2.exceptions.ProtocolError):
            time.sleep(0.05)
        answers.extend(calls)
