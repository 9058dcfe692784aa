"""What every source is: a named thing that polls one upstream and returns a Collection."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from agent.snapshot import Collection


class Source(Protocol):
    """One upstream. ``collect`` may raise :class:`agent.upstream.UpstreamError` (the source is
    down, with that message); it is cancelled when it overruns the job timeout."""

    @property
    def name(self) -> str: ...

    @property
    def interval_seconds(self) -> float: ...

    @property
    def depends_on(self) -> tuple[str, ...]:
        """Sources whose snapshots this one reads; ``--once`` runs them first."""
        ...

    async def collect(self) -> Collection: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Watching(Protocol):
    """A source that also follows its upstream's events while the agent serves, and asks for
    an early poll (of itself or another source, by name) through ``wake``."""

    def watch(self, wake: Callable[[str], None]) -> None: ...
