"""What one poll of one source produced: metric families, JSON data, and how the poll went."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from prometheus_client.metrics_core import Metric

from agent.passthrough import RawFamily

_EMPTY: Mapping[str, Any] = MappingProxyType({})


class SourceState(enum.Enum):
    UP = "up"
    DOWN = "down"
    CONFIG_ERROR = "config_error"
    """The upstream answered but rejected our configuration (e.g. a wrong API key)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Collection:
    """What a source returns from one poll. Raising instead means the source is down.

    ``families`` are built by the source; ``raw`` are upstream families passed through as lines.
    """

    families: tuple[Metric, ...] = ()
    raw: tuple[RawFamily, ...] = ()
    data: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    state: SourceState = SourceState.UP
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One finished poll of one source. Never mutated after it is stored."""

    source: str
    families: tuple[Metric, ...]
    raw: tuple[RawFamily, ...]
    data: Mapping[str, Any]
    state: SourceState
    error: str | None
    started_at: float
    duration_seconds: float

    @property
    def up(self) -> bool:
        return self.state is SourceState.UP

    @classmethod
    def from_collection(
        cls, source: str, collection: Collection, started_at: float, duration: float
    ) -> Snapshot:
        return cls(
            source=source,
            families=tuple(collection.families),
            raw=tuple(collection.raw),
            data=MappingProxyType(dict(collection.data)),
            state=collection.state,
            error=collection.error,
            started_at=started_at,
            duration_seconds=duration,
        )

    @classmethod
    def failed(cls, source: str, error: str, started_at: float, duration: float) -> Snapshot:
        return cls(source, (), (), _EMPTY, SourceState.DOWN, error, started_at, duration)

    @property
    def series(self) -> int:
        return sum(len(f.samples) for f in self.families) + sum(len(f.samples) for f in self.raw)
