"""A background job of the collector that wakes up every few seconds (alert checks, continuous evaluation).

It runs on a daemon thread of its own with one reader of its own, opened on first use (opening one installs the
query views, so it is kept), and stops on `stop()`; an exception in one round is logged and the next round runs.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable

log = logging.getLogger("tracekit.collector")


class PeriodicJob:
    """Subclasses implement `tick()`; `start()` runs it every `interval` seconds until `stop()`."""

    name = "tracekit-periodic"

    def __init__(self, reader_factory: Callable[[], Any], interval: float) -> None:
        self._reader_factory = reader_factory
        self._interval = interval
        self._reader: Any = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)

    @property
    def reader(self) -> Any:
        if self._reader is None:
            self._reader = self._reader_factory()
        return self._reader

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def tick(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:
                log.exception("%s: this round failed", self.name)
            self._stop.wait(self._interval)
