"""Memory settings for a process that builds megabyte pages and thousands of objects every poll:
glibc's allocator and Python's garbage collector."""

from __future__ import annotations

import ctypes
import gc
import os

_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
BIG_BLOCK_BYTES = 256 * 1024
# Container allocations between young-generation collections (Python's default: 700).
YOUNG_COLLECTION_ALLOCATIONS = 10_000


def release_big_blocks_promptly(threshold: int = BIG_BLOCK_BYTES) -> bool:
    """Give every block of ``threshold`` bytes or more its own mapping, returned to the system
    when it is freed. True if the allocator took the setting.

    glibc raises this threshold each time such a block is freed (up to 32 MiB); from then on the
    pages, response bodies and gzip buffers the agent makes every poll come from the heap, which
    fragments and does not shrink: at 64 vLLM engines the agent held ~45 MiB more for nothing.
    A fixed threshold turns that adjustment off. A ``mmap_threshold`` in ``GLIBC_TUNABLES`` wins;
    other C libraries are left alone."""
    if "mmap_threshold" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this interpreter runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))


def collect_garbage_less_often(allocations: int = YOUNG_COLLECTION_ALLOCATIONS) -> None:
    """Run the cycle collector after ``allocations`` new containers instead of 700, keeping the
    older generations' thresholds. A poll of 256 vLLM engines allocates ~60,000 (HTTP exchanges,
    tasks, families): at 700 the collector ran ~90 times per poll, walking every live sample
    line in a full collection each poll, 15 % of the poll's CPU; at 10,000, ~5 times and 4 %."""
    _, middle, old = gc.get_threshold()
    gc.set_threshold(allocations, middle, old)
