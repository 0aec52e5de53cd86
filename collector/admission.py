"""Bounded intake: how many request bytes may be decoded or waiting for a commit at once.

When the bound is reached a new request is refused at once with a retryable answer (gRPC RESOURCE_EXHAUSTED with
RetryInfo, HTTP 429 with Retry-After), so the sender's exporter backs off and retries instead of the collector
growing without bound or dropping data silently. Refusing before decoding keeps an overloaded collector from spending
CPU on work it cannot store.
"""

from __future__ import annotations

import threading
import time


class Admission:
    """A byte budget for in-flight requests, with a throughput estimate to suggest a retry delay."""

    def __init__(self, capacity_bytes: int) -> None:
        self.capacity = capacity_bytes
        self._used = 0
        self._lock = threading.Lock()
        self._rate = 0.0  # bytes/s committed, smoothed
        self._last = time.monotonic()
        self.refused = 0

    @property
    def used(self) -> int:
        return self._used

    def try_acquire(self, size: int, held: int = 0) -> bool:
        """Reserve `size` more bytes for a request that already holds `held` (a body read chunk by chunk); False
        when that would pass the bound. A request alone in the queue may take any size (up to the request limit)."""
        with self._lock:
            if self._used > held and self._used + size > self.capacity:
                self.refused += 1
                return False
            self._used += size
            return True

    def would_refuse(self, size: int) -> bool:
        """A cheap early check (no reservation): would a request of `size` bytes be refused right now?"""
        with self._lock:
            return bool(self._used) and self._used + size > self.capacity

    def release(self, size: int) -> None:
        """Return the bytes of a request that finished (committed, rejected or failed)."""
        now = time.monotonic()
        with self._lock:
            self._used -= size
            elapsed = max(now - self._last, 1e-3)
            self._rate = 0.8 * self._rate + 0.2 * (size / elapsed)
            self._last = now

    def retry_after_seconds(self) -> float:
        """How long a refused sender should wait: the time to drain half the queue, between 0.1 and 5 seconds."""
        with self._lock:
            if self._rate <= 0:
                return 1.0
            return min(5.0, max(0.1, (self._used / 2) / self._rate))
