"""Fixtures for the judge tests: the fake Anthropic server, settings pointing at it, screenshots,
and virtual time (an injected sleep that records delays and advances an injected clock)."""

from __future__ import annotations

import asyncio
import io
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

import pytest
from PIL import Image

from mcp_server.judge import Judge, RunBudget, VerdictCache
from mcp_server.settings import JudgeSettings
from tests.fakes.anthropic import FAKE_API_KEY, FakeAnthropic, fake_anthropic

__all__ = ["fake_anthropic"]

MakeSettings = Callable[..., JudgeSettings]


class MakeJudge(Protocol):
    def __call__(
        self,
        settings: JudgeSettings | None = None,
        *,
        budget: float = 5.0,
        cache: VerdictCache | None = None,
    ) -> Judge: ...


class VirtualTime:
    """``sleep`` returns at once, recording the delay; ``clock`` runs ahead by what was slept."""

    def __init__(self) -> None:
        self.slept: list[float] = []

    def clock(self) -> float:
        return time.monotonic() + sum(self.slept)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.sleep(0)


@pytest.fixture
def virtual_time() -> VirtualTime:
    return VirtualTime()


@pytest.fixture
def judge_settings(fake_anthropic: FakeAnthropic, tmp_path: Path) -> MakeSettings:
    """JudgeSettings for the fake (no .env, cache under tmp_path); keywords override."""

    def make(**overrides: Any) -> JudgeSettings:
        values: dict[str, Any] = {
            "api_key": FAKE_API_KEY,
            "base_url": fake_anthropic.url,
            "model": "claude-sonnet-4-6",
            "max_attempts": 4,
            "scenario_deadline_seconds": 20.0,
            "max_retry_after_seconds": 5.0,
            "cache_dir": tmp_path / "verdicts",
            **overrides,
        }
        return JudgeSettings(_env_file=None, **values)

    return make


def png(width: int, height: int, colour: tuple[int, int, int] = (24, 27, 31)) -> bytes:
    """A flat screenshot-like PNG (Grafana's dark background by default)."""
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture
async def make_judge(
    judge_settings: MakeSettings, virtual_time: VirtualTime
) -> AsyncIterator[MakeJudge]:
    """Judges on virtual time with a seeded jitter; closed after the test."""
    made: list[Judge] = []

    def make(
        settings: JudgeSettings | None = None,
        *,
        budget: float = 5.0,
        cache: VerdictCache | None = None,
    ) -> Judge:
        judge = Judge(
            settings or judge_settings(),
            RunBudget(budget),
            cache=cache,
            sleep=virtual_time.sleep,
            clock=virtual_time.clock,
            rng=random.Random(7),
        )
        made.append(judge)
        return judge

    yield make
    for judge in made:
        await judge.aclose()
