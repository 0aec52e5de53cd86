"""Processors: the steps between a receiver and the store exporter, run in order as one list (collector/pipeline.py).

A processor is an object with `process(signal, data)`. The first one, `decode.Decode`, takes the request bytes and
returns a `Batch`; each later one takes that `Batch` and returns it (changed in place or replaced). The list runs in
the decode workers, off the event loop, each worker (thread or process) with its own copy, so a processor is
picklable and keeps no state that the collector process must see: what it counts goes into the `Batch` (as
redaction's `masked` does).
"""

from __future__ import annotations

import copy
import threading
from typing import Any, Protocol, Sequence


class Processor(Protocol):
    def process(self, signal: str, data: Any) -> Any: ...


def run_processors(processors: Sequence[Processor], signal: str, data: Any) -> Any:
    """Pass one request through every processor in order (module-level so worker processes can run it)."""
    for processor in processors:
        data = processor.process(signal, data)
    return data


# A decode worker (a thread or a process) receives the processor list once, when it starts, not with every request,
# and runs a copy of its own: processors keep caches and counters (redaction's) that are not safe to share between
# threads.
_installed = threading.local()


def install(processors: Sequence[Processor]) -> None:
    """Executor initializer: the list this worker thread or process runs (copied)."""
    _installed.processors = copy.deepcopy(list(processors))


def run_installed(signal: str, data: Any) -> Any:
    return run_processors(_installed.processors, signal, data)
