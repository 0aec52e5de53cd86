"""How the collector's process allocates memory: freed buffers stay in the process for the next request.

Every request passes through short-lived buffers a few MB large: the message bytes gRPC hands over, upb's parse, the
compiled decoder's columns, redaction's and cost's Arrow arrays, the writer's concatenation of a commit group. With
glibc's defaults the heap's free top goes back to the kernel once it passes a few MB (and allocations over a
dynamic threshold are mmapped and unmapped one by one); Arrow's default pool (mimalloc) returns freed pages as well.
Each following request then faulted its pages in again and the kernel zeroed them, in every thread of the collector
(docs/decisions/2026-12-07-allocator-reuse.md).

So the collector keeps freed memory: glibc trims a heap only past ALLOCATOR_TRIM_BYTES of free space and serves
every allocation under glibc's mmap ceiling from its heaps, and Arrow allocates through glibc (its system pool), so
the Arrow buffers reuse the same kept memory. What stays is bounded by what the load used at its peak (the admission
budget bounds the request bytes in flight), not by time.
"""

from __future__ import annotations

import ctypes
import logging
import platform

import pyarrow as pa

log = logging.getLogger("tracekit.collector.allocators")

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# Free memory a heap keeps before giving it back: the admission budget's default (collector/settings.py queue_bytes).
ALLOCATOR_TRIM_BYTES = 256 * 1024 * 1024
# Allocations this large or larger are mmapped on their own (glibc's largest dynamic threshold): a request's buffers
# (at most the 32 MiB request limit by default) come from the heaps below it.
ALLOCATOR_MMAP_BYTES = 32 * 1024 * 1024


def keep_freed_memory() -> bool:
    """Set this process's allocators to keep freed memory for reuse (glibc only); True when applied."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    if not (mallopt(_M_TRIM_THRESHOLD, ALLOCATOR_TRIM_BYTES) and mallopt(_M_MMAP_THRESHOLD, ALLOCATOR_MMAP_BYTES)):
        log.warning("glibc refused the collector's allocator settings; keeping its defaults")
        return False
    pa.set_memory_pool(pa.system_memory_pool())
    return True
