"""The verdict cache: what its key covers, TTL, size bound, atomic files."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from mcp_server.judge import JudgeRequest, PanelEvidence, Verdict, VerdictCache
from mcp_server.judge.cache import cache_key

REQUEST = JudgeRequest(
    scenario="gpu-overview",
    expectations=["GPUs are shown", "No errors"],
    images=[("dashboard", b"\x89PNG one"), ("GPU memory", b"\x89PNG two")],
    panels=[PanelEvidence("GPU memory", "ok", "4 series; last 61 GiB")],
    context="now-1h",
)
VERDICTS = [
    Verdict(expectation="GPUs are shown", verdict="pass", confidence=0.9, reason="4 lines"),
    Verdict(expectation="No errors", verdict="uncertain", confidence=0.4, reason="cropped"),
]


def key(request: JudgeRequest = REQUEST, model: str = "claude-sonnet-4-6") -> str:
    return cache_key(request, model=model, prompt_version="1")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_the_key_changes_with_everything_the_verdict_depends_on() -> None:
    variants = [
        key(model="claude-opus-5"),
        cache_key(REQUEST, model="claude-sonnet-4-6", prompt_version="2"),
        key(replace(REQUEST, expectations=["No errors", "GPUs are shown"])),
        key(replace(REQUEST, images=[("dashboard", b"\x89PNG one!"), REQUEST.images[1]])),
        key(replace(REQUEST, images=[("other label", b"\x89PNG one"), REQUEST.images[1]])),
        key(replace(REQUEST, panels=[PanelEvidence("GPU memory", "ok", "4 series; 62 GiB")])),
        key(replace(REQUEST, panels=[PanelEvidence("GPU memory", "error", "4 series")])),
        key(replace(REQUEST, context="now-6h")),
    ]
    assert len({key(), *variants}) == len(variants) + 1


def test_the_scenario_name_is_not_part_of_the_key() -> None:
    assert key(replace(REQUEST, scenario="renamed")) == key()


def test_an_entry_round_trips_until_its_ttl(tmp_path: Path) -> None:
    clock = Clock()
    cache = VerdictCache(tmp_path, ttl_seconds=60, clock=clock)
    cache.put(key(), model="claude-sonnet-4-6", verdicts=VERDICTS)

    clock.now += 59
    entry = cache.get(key())
    assert entry is not None and entry.verdicts == VERDICTS

    clock.now += 1
    assert cache.get(key()) is None
    assert len(cache) == 0  # expired entries are removed when found


def test_past_the_bound_the_oldest_entries_go(tmp_path: Path) -> None:
    clock = Clock()
    cache = VerdictCache(tmp_path, ttl_seconds=3600, max_entries=3, clock=clock)
    keys = [f"{n:064x}" for n in range(5)]
    for k in keys:
        clock.now += 1
        cache.put(k, model="m", verdicts=VERDICTS)

    assert len(cache) == 3
    assert [cache.get(k) is not None for k in keys] == [False, False, True, True, True]


def test_a_damaged_entry_is_a_miss_and_is_removed(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path, ttl_seconds=3600)
    cache.put(key(), model="m", verdicts=VERDICTS)
    (path,) = tmp_path.glob("*.json")
    path.write_text('{"key": "trunc')

    assert cache.get(key()) is None
    assert not path.exists()


def test_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path / "new" / "dir", ttl_seconds=3600)
    for n in range(3):
        cache.put(f"{n:064x}", model="m", verdicts=VERDICTS)
    assert sorted(p.suffix for p in (tmp_path / "new" / "dir").iterdir()) == [".json"] * 3


def test_a_ttl_of_zero_caches_nothing(tmp_path: Path) -> None:
    cache = VerdictCache(tmp_path, ttl_seconds=0)
    cache.put(key(), model="m", verdicts=VERDICTS)
    assert cache.get(key()) is None
    assert len(cache) == 0


def test_a_bound_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        VerdictCache(tmp_path, ttl_seconds=1, max_entries=0)
