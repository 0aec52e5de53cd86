"""The collector keeps memory freed under load for the next requests (collector/allocators.py)."""

from __future__ import annotations

import platform
import subprocess
import sys

import pyarrow as pa
import pytest

from tracekit.collector.service import Collector

glibc_only = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="the settings are glibc's (other platforms keep their allocators' defaults)")

# Frees 64 MiB of request-sized buffers, then prints the free bytes glibc's heap kept (MiB).
_FREED_AND_KEPT = """
import ctypes, sys
from tracekit.collector.allocators import keep_freed_memory

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "kept":
    assert keep_freed_memory()
buffers = [b"x" * (4 << 20) for _ in range(16)]
del buffers
print(libc.mallinfo2().fordblks >> 20)
"""


def _kept_mib(mode: str) -> int:
    finished = subprocess.run([sys.executable, "-c", _FREED_AND_KEPT, mode], capture_output=True, text=True,
                              check=True)
    return int(finished.stdout)


@glibc_only
def test_freed_request_buffers_stay_in_the_process_for_reuse():
    # glibc's defaults give freed multi-MB buffers back to the kernel (the next request faults them in again)
    assert _kept_mib("default") < 16
    assert _kept_mib("kept") >= 60


@glibc_only
def test_a_running_collector_allocates_arrow_buffers_from_the_kept_heap(collector_settings):
    pa.set_memory_pool(pa.mimalloc_memory_pool())  # as a process starts, whatever ran before in this one
    try:
        with Collector(collector_settings).running():
            assert pa.default_memory_pool().backend_name == "system"
    finally:
        pa.set_memory_pool(pa.mimalloc_memory_pool())
