"""Polling: one APScheduler job per source, each poll bounded by a hard timeout.

Every outcome of a poll (data, an upstream error, a timeout, a bug) becomes a Snapshot in the
store; nothing a source does can stop the scheduler or the other sources.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from agent.snapshot import Snapshot, SourceState
from agent.sources.base import Source
from agent.store import Store
from agent.upstream import UpstreamError

log = logging.getLogger(__name__)


class Poller:
    """Runs one poll of one source and stores the resulting snapshot."""

    def __init__(
        self,
        store: Store,
        timeout_for: Callable[[Source], float],
        max_series: int | None = None,
    ) -> None:
        self._store = store
        self._timeout_for = timeout_for
        self._max_series = max_series

    async def poll(self, source: Source) -> Snapshot:
        started = time.time()
        clock = time.perf_counter()
        timeout = self._timeout_for(source)
        try:
            async with asyncio.timeout(timeout):
                collection = await source.collect()
        except TimeoutError:
            snapshot = Snapshot.failed(
                source.name,
                f"poll exceeded its {timeout:g}s timeout",
                started,
                time.perf_counter() - clock,
            )
        except UpstreamError as exc:
            snapshot = Snapshot.failed(source.name, str(exc), started, time.perf_counter() - clock)
        except Exception as exc:
            log.exception("source %s failed unexpectedly", source.name)
            snapshot = Snapshot.failed(
                source.name,
                f"internal error: {type(exc).__name__}: {exc}",
                started,
                time.perf_counter() - clock,
            )
        else:
            snapshot = Snapshot.from_collection(
                source.name, collection, started, time.perf_counter() - clock, self._max_series
            )
        previous = self._store.records().get(source.name)
        _log_transition(previous.latest if previous else None, snapshot)
        _log_cap(previous.latest if previous else None, snapshot, self._max_series)
        # Rendering the new snapshot is CPU work: keep it off the event loop.
        await asyncio.to_thread(self._store.put, snapshot)
        return snapshot

    async def poll_in_order(self, sources: Sequence[Source]) -> None:
        """Poll every source once; a source waits for the sources it depends on."""
        for layer in dependency_layers(sources):
            await asyncio.gather(*(self.poll(source) for source in layer))


def dependency_layers(sources: Sequence[Source]) -> list[list[Source]]:
    """Group sources so each group depends only on earlier groups (unknown names are ignored)."""
    remaining = {source.name: source for source in sources}
    done: set[str] = set()
    layers: list[list[Source]] = []
    while remaining:
        layer = [
            s
            for s in remaining.values()
            if all(d in done or d not in remaining for d in s.depends_on)
        ]
        if not layer:  # a cycle: run the rest together rather than never
            layer = list(remaining.values())
        layers.append(layer)
        for source in layer:
            done.add(source.name)
            del remaining[source.name]
    return layers


def _log_transition(previous: Snapshot | None, current: Snapshot) -> None:
    """One line per change of state, none while a source stays as it was."""
    if previous is not None and previous.state is current.state:
        return
    if current.state is SourceState.UP:
        if previous is not None:
            log.info("source %s is up again", current.source)
        return
    what = "misconfigured" if current.state is SourceState.CONFIG_ERROR else "down"
    log.warning("source %s is %s: %s", current.source, what, current.error)


def _log_cap(previous: Snapshot | None, current: Snapshot, cap: int | None) -> None:
    """One warning when a source starts exceeding its series cap, one line when it stops."""
    was_over = previous is not None and previous.dropped_series > 0
    if current.dropped_series and not was_over:
        log.warning(
            "source %s exceeded its cap of %s series; %d were dropped "
            "(see inferwatch_source_series_dropped; raise INFERWATCH_MAX_SERIES_PER_SOURCE)",
            current.source,
            cap,
            current.dropped_series,
        )
    elif was_over and not current.dropped_series and current.up:
        log.info("source %s is within its series cap again", current.source)


class AgentScheduler:
    """An AsyncIOScheduler with one interval job per source, on the running event loop."""

    def __init__(self, sources: Sequence[Source], poller: Poller, jitter_seconds: float) -> None:
        self._sources = list(sources)
        self._poller = poller
        self._jitter = jitter_seconds
        self._scheduler = AsyncIOScheduler(timezone="UTC")
        self._running: set[str] = set()
        self._again: set[str] = set()
        self._lock = threading.Lock()
        self._idle = asyncio.Event()
        self._idle.set()
        # Set once a source's first poll finished: a dependent's first poll waits for it, so the
        # inventory and the Hub lookups have data from the first cycle, not one interval later.
        self._first_done = {source.name: asyncio.Event() for source in self._sources}

    async def _wait_for_dependencies(self, source: Source) -> None:
        """Before a source's first poll, wait (bounded) for its dependencies' first polls."""
        pending = [
            (self._first_done[name], dependency)
            for dependency in self._sources
            if (name := dependency.name) in source.depends_on
            and not self._first_done[name].is_set()
        ]
        if not pending:
            return
        bound = max(dependency.interval_seconds for _, dependency in pending)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(bound):
                await asyncio.gather(*(event.wait() for event, _ in pending))

    def start(self) -> None:
        """Must be called from within the running event loop; first polls start at once."""
        now = datetime.now(self._scheduler.timezone)
        for source in self._sources:
            self._scheduler.add_job(
                self._poll,
                IntervalTrigger(seconds=source.interval_seconds, jitter=self._jitter),
                args=[source],
                id=source.name,
                name=f"poll {source.name}",
                max_instances=1,
                coalesce=True,
                misfire_grace_time=max(1, int(source.interval_seconds)),
                next_run_time=now,
            )
        self._scheduler.start()

    async def _poll(self, source: Source) -> None:
        with self._lock:
            self._running.add(source.name)
            self._idle.clear()
        try:
            await self._wait_for_dependencies(source)
            await self._poller.poll(source)
        finally:
            self._first_done[source.name].set()
            with self._lock:
                self._running.discard(source.name)
                again = source.name in self._again
                self._again.discard(source.name)
                if not self._running:
                    self._idle.set()
            if again:
                self.run_soon(source.name)

    def run_soon(self, source_name: str) -> None:
        """Poll ``source_name`` now instead of at its next tick (e.g. a new container appeared).

        Safe from any thread. A poll already running is followed by another one as soon as it
        ends, rather than skipped: what woke us may have happened after it read its upstream.
        """
        with self._lock:
            if source_name in self._running:
                self._again.add(source_name)
                return
        job = self._scheduler.get_job(source_name)
        if job is not None:
            job.modify(
                next_run_time=datetime.now(self._scheduler.timezone) + timedelta(milliseconds=1)
            )

    def next_runs(self) -> dict[str, float | None]:
        runs: dict[str, float | None] = {}
        for source in self._sources:
            job = self._scheduler.get_job(source.name)
            when = job.next_run_time if job is not None else None
            runs[source.name] = when.timestamp() if when is not None else None
        return runs

    async def shutdown(self, grace_seconds: float = 5.0) -> None:
        """Start no new polls, give running ones ``grace_seconds`` to finish, cancel the rest."""
        if not self._scheduler.running:
            return
        self._scheduler.pause()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace_seconds):
                await self._idle.wait()
        self._scheduler.shutdown(wait=False)
