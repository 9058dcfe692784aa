"""What every source is: a named thing that polls one upstream and returns a Collection."""

from __future__ import annotations

from typing import Protocol

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
