"""The memory settings the agent makes at start: big blocks mapped apart and returned when freed,
even after one was freed (where glibc's own rule would start taking them from the heap); the
young generation collected less often."""

from __future__ import annotations

import gc
import platform
import subprocess
import sys
import textwrap

import pytest

from agent.memory import collect_garbage_less_often, release_big_blocks_promptly

glibc_only = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the setting is glibc's; other C libraries differ"
)

# Allocate a 1 MiB block, free it, allocate another: is the second one a mapping of its own?
# mallinfo2() (glibc 2.33+) counts the bytes in such mappings.
PROBE = textwrap.dedent(
    """
    import ctypes, sys
    from agent.memory import collect_garbage_less_often, release_big_blocks_promptly

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost")]

    mallinfo2 = ctypes.CDLL(None).mallinfo2
    mallinfo2.restype = MallInfo2
    if sys.argv[1] == "set":
        assert release_big_blocks_promptly()
    first = bytearray(1 << 20)
    del first
    before = mallinfo2().hblkhd
    second = bytearray(1 << 20)
    print(mallinfo2().hblkhd - before >= 1 << 20)
    """
)


def mapped_apart(mode: str) -> bool:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.strip() == "True"


@glibc_only
def test_big_blocks_stay_mapped_apart_after_one_is_freed() -> None:
    assert mapped_apart("set")


@glibc_only
def test_without_the_setting_glibc_moves_them_to_the_heap() -> None:
    """What the setting is for: glibc's default after the first big block is freed."""
    assert not mapped_apart("unset")


def test_a_threshold_in_glibc_tunables_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=1048576")
    assert not release_big_blocks_promptly()


def test_the_young_generation_is_collected_less_often() -> None:
    before = gc.get_threshold()
    try:
        collect_garbage_less_often(5000)
        assert gc.get_threshold() == (5000, *before[1:])
        gc.collect()
        kept: list[list[int]] = [[] for _ in range(2000)]
        # 2,000 new containers and no collection yet (the default would have run two by now,
        # each resetting the count).
        assert gc.get_count()[0] > 1000
        assert len(kept) == 2000
    finally:
        gc.set_threshold(*before)
