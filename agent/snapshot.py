"""What one poll of one source produced: metric families, JSON data, and how the poll went."""

from __future__ import annotations

import copy
import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
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
    dropped_series: int = 0
    """Samples left out because the poll exceeded the source's series cap."""

    @property
    def up(self) -> bool:
        return self.state is SourceState.UP

    @classmethod
    def from_collection(
        cls,
        source: str,
        collection: Collection,
        started_at: float,
        duration: float,
        max_series: int | None = None,
    ) -> Snapshot:
        """The snapshot of a finished poll; past ``max_series`` samples, the rest is dropped.

        Whole families are kept in the order the source gave them, then the family that crosses
        the cap is cut, so an upstream inventing label values cannot grow the exposition.
        """
        families, raw, dropped = _capped(collection.families, collection.raw, max_series)
        return cls(
            source=source,
            families=families,
            raw=raw,
            data=MappingProxyType(dict(collection.data)),
            state=collection.state,
            error=collection.error,
            started_at=started_at,
            duration_seconds=duration,
            dropped_series=dropped,
        )

    @classmethod
    def failed(cls, source: str, error: str, started_at: float, duration: float) -> Snapshot:
        return cls(source, (), (), _EMPTY, SourceState.DOWN, error, started_at, duration)

    @property
    def series(self) -> int:
        return sum(len(f.samples) for f in self.families) + sum(len(f.samples) for f in self.raw)


def _capped(
    families: tuple[Metric, ...], raw: tuple[RawFamily, ...], max_series: int | None
) -> tuple[tuple[Metric, ...], tuple[RawFamily, ...], int]:
    total = sum(len(f.samples) for f in families) + sum(len(f.samples) for f in raw)
    if max_series is None or total <= max_series:
        return tuple(families), tuple(raw), 0
    room = max_series
    kept_families: list[Metric] = []
    for family in families:
        if room <= 0:
            break
        if len(family.samples) > room:
            family = copy.copy(family)
            family.samples = family.samples[:room]
        kept_families.append(family)
        room -= len(family.samples)
    kept_raw: list[RawFamily] = []
    for raw_family in raw:
        if room <= 0:
            break
        if len(raw_family.samples) > room:
            raw_family = replace(raw_family, samples=raw_family.samples[:room])
        kept_raw.append(raw_family)
        room -= len(raw_family.samples)
    return tuple(kept_families), tuple(kept_raw), total - max_series
