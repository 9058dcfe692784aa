"""What the soak watches while it runs: each fault episode, the agent's log lines, its sources'
state changes, and what Prometheus saw; and the report they make."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from agent.store import Store
from bench.common import table


@dataclass
class Episode:
    """One fault on one upstream, then a quiet spell for it to recover."""

    upstream: str
    kind: str
    started: float = 0.0
    healed: float = 0.0
    ended: float = 0.0
    warnings: int = 0
    errors: int = 0
    tracebacks: int = 0
    marked: bool = False
    """The source was marked down, showed the failure in its error (the Hub serving stale
    facts), or had series cut by the cap (NVML's "huge"), during the fault."""
    recovered_after: float | None = None
    """Seconds from the heal to the source's first good poll; None: not within the spell."""
    rss_mib: float = 0.0
    """Resident memory of the process when the episode ended."""

    def row(self) -> tuple[object, ...]:
        recovery = "no" if self.recovered_after is None else f"{self.recovered_after:.1f} s"
        return (
            f"{self.upstream} {self.kind}",
            f"{self.healed - self.started:.0f} s",
            "yes" if self.marked else "no",
            recovery,
            self.warnings,
            self.errors,
            self.tracebacks,
            f"{self.rss_mib:.0f} MiB",
        )


class Recorder(logging.Handler):
    """Counts the agent's log records per episode and follows its sources' states."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.episodes: list[Episode] = []
        self.outside_warnings = 0
        self.outside_errors = 0
        self.tracebacks = 0
        self._lock = threading.Lock()

    @property
    def current(self) -> Episode | None:
        episode = self.episodes[-1] if self.episodes else None
        return episode if episode is not None and not episode.ended else None

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith("agent.") or record.name.startswith("agent.simulator"):
            return  # the simulated upstreams' own complaints are not the agent's
        with self._lock:
            episode = self.current
            error = record.levelno >= logging.ERROR
            if record.exc_info:
                self.tracebacks += 1
                if episode is not None:
                    episode.tracebacks += 1
            if episode is None:
                self.outside_errors += error
                self.outside_warnings += not error
            elif error:
                episode.errors += 1
            else:
                episode.warnings += 1

    def watch(self, store: Store) -> None:
        store.subscribe(lambda source: self._on_poll(store, source))

    def _on_poll(self, store: Store, source: str) -> None:
        record = store.records().get(source)
        snapshot = record.latest if record else None
        episode = self.current
        if snapshot is None or episode is None or episode.upstream != source:
            return
        now = time.monotonic()
        if not episode.healed:
            failing = not snapshot.up or bool(snapshot.error) or snapshot.dropped_series > 0
            episode.marked = episode.marked or failing
        elif snapshot.up and not snapshot.error and episode.recovered_after is None:
            episode.recovered_after = now - episode.healed


@dataclass
class ScrapeFigures:
    scrapes: int
    failed: int
    max_duration_seconds: float
    last_error: str


@dataclass
class SoakResult:
    seconds: float
    scrape_interval: float
    scrapes: ScrapeFigures
    rss_start_mib: float
    rss_end_mib: float
    rss_peak_mib: float
    recorder: Recorder
    machine: str
    started_at: str

    @property
    def ok(self) -> bool:
        return self.scrapes.failed == 0 and self.scrapes.scrapes > 0

    def markdown(self) -> str:
        r = self.recorder
        rows = [e.row() for e in r.episodes]
        marked = sum(e.marked for e in r.episodes)
        recovered = sum(e.recovered_after is not None for e in r.episodes)
        return "\n".join(
            [
                "# Soak",
                "",
                f"Written by `python -m bench.soak` on {self.started_at} UTC, {self.machine}.",
                f"The demo stack ran {self.seconds:.0f} s with one random fault at a time on one",
                "simulated upstream (the kinds of tests/agent/faults/stack.py), a quiet spell",
                f"after each, while a real Prometheus scraped the agent every "
                f"{self.scrape_interval:g} s.",
                "",
                table(
                    ("figure", "value", "goal"),
                    [
                        ("scrapes", self.scrapes.scrapes, ""),
                        ("scrapes failed", self.scrapes.failed, "0"),
                        (
                            "max scrape duration",
                            f"{self.scrapes.max_duration_seconds * 1000:.0f} ms",
                            "",
                        ),
                        (
                            "RSS at start (after the first cycle)",
                            f"{self.rss_start_mib:.0f} MiB",
                            "",
                        ),
                        ("RSS at end", f"{self.rss_end_mib:.0f} MiB", ""),
                        ("RSS peak", f"{self.rss_peak_mib:.0f} MiB", ""),
                        ("faults marked on their source", f"{marked} of {len(r.episodes)}", "all"),
                        (
                            "sources up again after the fault",
                            f"{recovered} of {len(r.episodes)}",
                            "all",
                        ),
                        ("agent tracebacks logged", r.tracebacks, "0"),
                        (
                            "agent warnings / errors outside faults",
                            f"{r.outside_warnings} / {r.outside_errors}",
                            "",
                        ),
                    ],
                ),
                "",
                "RSS is the whole process: the agent and every simulated upstream in it.",
                f"Last scrape error: {self.scrapes.last_error or 'none'}.",
                "",
                "Per fault (log lines the agent wrote at WARNING and at ERROR while it lasted):",
                "",
                table(
                    (
                        "fault",
                        "lasted",
                        "marked",
                        "recovered after heal",
                        "warnings",
                        "errors",
                        "tracebacks",
                        "RSS after",
                    ),
                    rows,
                ),
                "",
            ]
        )
