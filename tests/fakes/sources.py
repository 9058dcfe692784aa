"""Sources with scripted behaviour, for the scheduler, store and HTTP tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from prometheus_client.metrics_core import GaugeMetricFamily

from agent.snapshot import Collection


class ScriptedSource:
    """A source whose every poll runs ``behaviour`` (return a Collection or raise)."""

    def __init__(
        self,
        name: str,
        behaviour: Callable[[int], Collection] | None = None,
        *,
        interval_seconds: float = 30.0,
        depends_on: tuple[str, ...] = (),
        hang: bool = False,
    ) -> None:
        self.name = name
        self.interval_seconds = interval_seconds
        self.depends_on = depends_on
        self._behaviour = behaviour or (
            lambda n: Collection(families=(gauge(f"test_{name}_polls", n),))
        )
        self._hang = hang
        self.polls = 0
        self.running = 0
        self.max_running = 0
        self.closed = False
        self.polled = asyncio.Event()
        self._poll_counted = asyncio.Condition()

    async def collect(self) -> Collection:
        self.polls += 1
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        async with self._poll_counted:
            self._poll_counted.notify_all()
        try:
            self.polled.set()
            if self._hang:
                await asyncio.Event().wait()
            return self._behaviour(self.polls)
        finally:
            self.running -= 1

    async def wait_for_polls(self, count: int) -> None:
        async with self._poll_counted:
            await self._poll_counted.wait_for(lambda: self.polls >= count)

    async def aclose(self) -> None:
        self.closed = True


def gauge(name: str, value: float, **labels: str) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, f"test gauge {name}", labels=list(labels))
    family.add_metric(list(labels.values()), value)
    return family
