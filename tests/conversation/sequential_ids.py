"""Predictable trace and span ids (the SDK's IdGenerator hook), so recordings and rendered screens are the same on
every run. Needs only the OpenTelemetry SDK: tests/recordings/record.py uses it in environments without tracekit."""

from __future__ import annotations

from opentelemetry.sdk.trace.id_generator import IdGenerator


class SequentialIds(IdGenerator):
    """Trace ids from `seed << 64` and span ids from `seed << 32`, counting up."""

    def __init__(self, seed: int = 1) -> None:
        self.trace = seed << 64
        self.span = seed << 32

    def generate_trace_id(self) -> int:
        self.trace += 1
        return self.trace

    def generate_span_id(self) -> int:
        self.span += 1
        return self.span
