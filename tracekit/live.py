"""Agents in flight, the sending side: a start record for every span as it starts, and a heartbeat while any is open.

A span is exported only when it ends, so without these a stuck agent is invisible. `LiveSpanProcessor` (added by
`tracekit.configure()`) emits, for each span that starts in the process (tracekit's and any other
instrumentation's), one OTLP log record, the event `tracekit.span.started`, whose context is the span's own trace
and span id, carrying its parent span id, name, kind and the attributes known at start, timestamped with the span's
start. While spans are open a background thread emits `tracekit.heartbeat` every `interval` seconds, naming nothing
but the process (its resource), so a reader can tell a process that stopped sending from one still working.

Both go through the logger provider `configure()` built, so the same redaction processor, attribute limits and
batching apply as to every other record. The read side is tracekit.store.open_spans.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor

from tracekit.live_records import (ATTR_INTERVAL, ATTR_KIND, ATTR_NAME, ATTR_PARENT, DEFAULT_INTERVAL_S, HEARTBEAT,
                                   SPAN_STARTED)

__all__ = ["LiveSpanProcessor", "live_enabled", "heartbeat_interval", "SPAN_STARTED", "HEARTBEAT"]

ENV_LIVE = "TRACEKIT_LIVE"
ENV_INTERVAL = "TRACEKIT_LIVE_HEARTBEAT_INTERVAL"
_SCOPE = "tracekit.live"


def live_enabled(live: bool | None) -> bool:
    """`live` when given, else TRACEKIT_LIVE (false/0/no/off turn it off), else on."""
    if live is not None:
        return live
    return os.environ.get(ENV_LIVE, "").strip().lower() not in ("0", "false", "no", "off")


def heartbeat_interval(interval: float | None = None) -> float:
    """Seconds between heartbeats: `interval`, else TRACEKIT_LIVE_HEARTBEAT_INTERVAL, else 10."""
    if interval is None:
        raw = os.environ.get(ENV_INTERVAL, "").strip()
        try:
            interval = float(raw) if raw else DEFAULT_INTERVAL_S
        except ValueError:
            raise ValueError(f"{ENV_INTERVAL}={raw!r}: expected a number of seconds") from None
    if not interval > 0:
        raise ValueError(f"heartbeat interval must be positive, got {interval!r}")
    return float(interval)


class LiveSpanProcessor(SpanProcessor):
    """Emits a start record on every span start and keeps a heartbeat going while spans are open."""

    def __init__(self, logger_provider: Any, *, interval: float | None = None) -> None:
        from tracekit import __version__

        self._logger = logger_provider.get_logger(_SCOPE, __version__)
        self.interval = heartbeat_interval(interval)
        self._open = 0
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._stopped = False
        self._thread: threading.Thread | None = None
        if hasattr(os, "register_at_fork"):
            after_fork = weakref.WeakMethod(self._after_fork)
            os.register_at_fork(after_in_child=lambda: (method := after_fork()) and method())

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        """Send the start record (the span's own context, so the record carries its trace and span id)."""
        if not span.context.trace_flags.sampled:
            return  # recorded but not sampled: it is never exported, so it would look open for ever
        parent = span.parent
        attributes = dict(span.attributes or {})
        attributes[ATTR_NAME] = span.name
        attributes[ATTR_KIND] = span.kind.name
        if parent is not None:
            attributes[ATTR_PARENT] = format(parent.span_id, "016x")
        self._logger.emit(timestamp=span.start_time, context=trace.set_span_in_context(span),
                          event_name=SPAN_STARTED, attributes=attributes)
        with self._lock:
            self._open += 1
            if self._thread is None and not self._stopped:
                self._thread = threading.Thread(target=self._beat, name="tracekit-heartbeat", daemon=True)
                self._thread.start()

    def on_end(self, span: Any) -> None:  # noqa: D102 - the span itself is the end record
        if span.context.trace_flags.sampled:
            with self._lock:
                self._open = max(0, self._open - 1)  # a forked child may end spans its parent counted

    def _after_fork(self) -> None:
        # The child has no heartbeat thread and may not inherit a usable lock: start afresh.
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._open, self._thread = 0, None

    def _beat(self) -> None:
        # The first beat goes out at once, so a reader knows this process's interval even if it dies before the next.
        with self._lock:
            while not self._stopped:
                if self._open > 0:
                    # Emitted with the lock held: a log emit only queues the record, and it keeps shutdown simple.
                    self._logger.emit(timestamp=time.time_ns(), event_name=HEARTBEAT,
                                      attributes={ATTR_INTERVAL: self.interval})
                self._wake.wait(self.interval)

    def shutdown(self) -> None:
        """Stop the heartbeat thread."""
        with self._lock:
            self._stopped = True
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=5)

    def force_flush(self, timeout_millis: int = 30000) -> bool:  # noqa: D102 - records flush with the logger provider
        return True
