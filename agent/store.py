"""The latest snapshot of every source, swapped atomically, plus each source's running record."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from agent.snapshot import Snapshot, SourceState


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """What we know about one source across polls."""

    name: str
    latest: Snapshot | None = None
    last_success: float | None = None
    errors_total: int = 0
    polls_total: int = 0


Listener = Callable[[str], None]


class Store:
    """Readers never lock: they read one immutable mapping; writers replace it under a lock."""

    def __init__(self, sources: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._records: Mapping[str, SourceRecord] = MappingProxyType({})
        self._listeners: list[Listener] = []
        self._first_cycle = threading.Event()
        self.register(sources)

    def register(self, sources: Iterable[str]) -> None:
        """Sources whose first poll readiness waits for (before any poll is stored)."""
        with self._lock:
            new = {name: SourceRecord(name) for name in sources if name not in self._records}
            self._records = MappingProxyType({**self._records, **new})

    def records(self) -> Mapping[str, SourceRecord]:
        return self._records

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(source)`` after every swap, in the writer's thread."""
        self._listeners.append(listener)

    def put(self, snapshot: Snapshot) -> SourceRecord:
        with self._lock:
            previous = self._records.get(snapshot.source, SourceRecord(snapshot.source))
            record = SourceRecord(
                name=snapshot.source,
                latest=snapshot,
                last_success=(
                    snapshot.started_at + snapshot.duration_seconds
                    if snapshot.state is SourceState.UP
                    else previous.last_success
                ),
                errors_total=previous.errors_total + (snapshot.state is not SourceState.UP),
                polls_total=previous.polls_total + 1,
            )
            self._records = MappingProxyType({**self._records, snapshot.source: record})
            complete = all(r.latest is not None for r in self._records.values())
        for listener in self._listeners:
            listener(snapshot.source)
        # Ready only once the listeners (the exposition) have rendered it: /readyz must not
        # answer before /metrics has the data.
        if complete:
            self._first_cycle.set()
        return record

    @property
    def ready(self) -> bool:
        """True once every source has finished at least one poll."""
        return self._first_cycle.is_set()

    def wait_ready(self, timeout: float) -> bool:
        return self._first_cycle.wait(timeout)
