"""State every simulated server shares: its fault, request counts, latency and random failures.

Faults and counts are written and read from any thread (tests, the demo), hence the locks.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections import Counter
from dataclasses import dataclass

from agent.simulator.config import Fault

DEFAULT_FAULT_DELAY = 10.0


@dataclass(frozen=True)
class FaultState:
    fault: Fault = Fault.NONE
    delay: float = DEFAULT_FAULT_DELAY


class FaultBoard:
    """The current fault of each server, by target name ("litellm", "vllm:0"...)."""

    def __init__(self, targets: list[str]) -> None:
        self._lock = threading.Lock()
        self._states = dict.fromkeys(targets, FaultState())

    @property
    def targets(self) -> list[str]:
        return list(self._states)

    def get(self, target: str) -> FaultState:
        with self._lock:
            return self._states[target]

    def set(self, target: str, state: FaultState) -> None:
        with self._lock:
            self._states[target] = state


class RequestCounter:
    """How many requests each server got on each path."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[tuple[str, str]] = Counter()

    def add(self, target: str, path: str) -> None:
        with self._lock:
            self._counts[target, path] += 1

    def get(self, target: str, path: str) -> int:
        with self._lock:
            return self._counts[target, path]

    def total_for(self, target: str) -> int:
        with self._lock:
            return sum(n for (where, _), n in self._counts.items() if where == target)


@dataclass
class Behaviour:
    """What applies to every request of every server."""

    faults: FaultBoard
    counter: RequestCounter
    latency_seconds: float
    failure_rate: float
    rng: random.Random
    stopping: asyncio.Event

    def fails_at_random(self) -> bool:
        return self.failure_rate > 0 and self.rng.random() < self.failure_rate

    async def sleep(self, seconds: float) -> None:
        """Sleep, but wake up at once when the simulator stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=seconds)
