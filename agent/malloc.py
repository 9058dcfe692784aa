"""glibc's allocator settings for a process that builds megabyte pages every poll."""

from __future__ import annotations

import ctypes
import os

_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
BIG_BLOCK_BYTES = 256 * 1024


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
