"""Render the stored snapshots as Prometheus exposition, once per snapshot, never per scrape.

Each source's families are rendered into a fragment when its snapshot is swapped in; the page a
scrape gets is the fragments joined, in both formats and gzipped, assembled right after the swap.
A scrape therefore only writes prepared bytes and never waits on an upstream or on rendering.
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import exposition as text_format
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.openmetrics import exposition as openmetrics_format
from prometheus_client.registry import Collector

from agent.passthrough import RawFamily
from agent.snapshot import SourceState
from agent.store import Store

log = logging.getLogger(__name__)

# Text format 0.0.4 (what every Prometheus 2.x parses); the body uses no 1.0-only syntax.
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS_CONTENT_TYPE = openmetrics_format.CONTENT_TYPE_LATEST
_EOF = b"# EOF\n"


class SelfMetricsCollector(Collector):
    """``inferwatch_source_*`` and ``inferwatch_build_info``, read from the store's records."""

    def __init__(self, store: Store, version: str) -> None:
        self._store = store
        self._version = version

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "inferwatch_source_up", "1 if the last poll of the source succeeded.", labels=["source"]
        )
        config_error = GaugeMetricFamily(
            "inferwatch_source_config_error",
            "1 if the upstream rejected the agent's configuration (e.g. credentials).",
            labels=["source"],
        )
        last_success = GaugeMetricFamily(
            "inferwatch_source_last_success_timestamp_seconds",
            "Unix time the last successful poll of the source finished.",
            labels=["source"],
        )
        duration = GaugeMetricFamily(
            "inferwatch_source_collect_duration_seconds",
            "Wall time of the last poll of the source.",
            labels=["source"],
        )
        errors = CounterMetricFamily(
            "inferwatch_source_errors", "Polls of the source that failed.", labels=["source"]
        )
        series = GaugeMetricFamily(
            "inferwatch_source_series",
            "Samples the source contributed to the last exposition.",
            labels=["source"],
        )
        dropped = GaugeMetricFamily(
            "inferwatch_source_series_dropped",
            "Samples of the source's last poll left out because they exceeded the series cap.",
            labels=["source"],
        )
        for name, record in sorted(self._store.records().items()):
            errors.add_metric([name], record.errors_total)
            snapshot = record.latest
            if snapshot is None:
                continue
            up.add_metric([name], 1.0 if snapshot.state is SourceState.UP else 0.0)
            config_error.add_metric([name], float(snapshot.state is SourceState.CONFIG_ERROR))
            duration.add_metric([name], snapshot.duration_seconds)
            series.add_metric([name], snapshot.series)
            dropped.add_metric([name], snapshot.dropped_series)
            if record.last_success is not None:
                last_success.add_metric([name], record.last_success)
        build = GaugeMetricFamily(
            "inferwatch_build_info",
            "inferwatch agent build; value is always 1.",
            labels=["version"],
        )
        build.add_metric([self._version], 1.0)
        yield from (up, config_error, last_success, duration, errors, series, dropped, build)


class FamiliesCollector(Collector):
    """A fixed set of families (one snapshot's) as a Collector."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = tuple(families)

    def collect(self) -> Iterable[Metric]:
        return self._families


@dataclass(frozen=True, slots=True)
class Fragment:
    text: bytes
    openmetrics: bytes

    @classmethod
    def render(cls, collector: Collector, raw: Iterable[RawFamily] = ()) -> Fragment:
        raw = tuple(raw)
        om = openmetrics_format.generate_latest(collector)  # type: ignore[no-untyped-call]
        return cls(
            text=text_format.generate_latest(collector) + "".join(f.text() for f in raw).encode(),
            openmetrics=om.removesuffix(_EOF) + "".join(f.openmetrics() for f in raw).encode(),
        )


EMPTY_FRAGMENT = Fragment(b"", b"")


@dataclass(frozen=True, slots=True)
class Page:
    """One complete exposition in every variant a scrape may ask for. The plain variants stay in
    their per-source pieces (joined, each would be one more copy of megabytes); the compressed
    ones are whole."""

    text_parts: tuple[bytes, ...]
    text_gzip: bytes
    openmetrics_parts: tuple[bytes, ...]
    openmetrics_gzip: bytes

    @property
    def text(self) -> bytes:
        return b"".join(self.text_parts)

    @property
    def openmetrics(self) -> bytes:
        return b"".join(self.openmetrics_parts)

    @classmethod
    def assemble(cls, fragments: Iterable[Fragment]) -> Page:
        fragments = list(fragments)
        text = tuple(f.text for f in fragments if f.text)
        openmetrics = (*(f.openmetrics for f in fragments if f.openmetrics), _EOF)
        return cls(text, _gzip(text), openmetrics, _gzip(openmetrics))


def _gzip(parts: Iterable[bytes]) -> bytes:
    """The parts as one gzip member (fastest level, no timestamp: equal pages, equal bytes)."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return b"".join([*(compressor.compress(part) for part in parts), compressor.flush()])


class Exposition:
    """Keeps the current :class:`Page` up to date as snapshots are swapped into the store."""

    def __init__(self, store: Store, version: str) -> None:
        self._store = store
        self._self_metrics = SelfMetricsCollector(store, version)
        self._lock = threading.Lock()
        self._fragments: dict[str, Fragment] = {}
        self._page = Page.assemble([self._render_self()])
        store.subscribe(self.refresh)

    @property
    def page(self) -> Page:
        return self._page

    def refresh(self, source: str) -> None:
        """Re-render ``source``'s fragment and reassemble the page. Never raises."""
        record = self._store.records().get(source)
        snapshot = record.latest if record else None
        try:
            fragment = (
                Fragment.render(FamiliesCollector(snapshot.families), snapshot.raw)
                if snapshot is not None and (snapshot.families or snapshot.raw)
                else EMPTY_FRAGMENT
            )
        except Exception:
            log.exception("could not render the %s snapshot; its series are left out", source)
            fragment = EMPTY_FRAGMENT
        with self._lock:
            self._fragments[source] = fragment
            parts = [
                self._render_self(),
                *(self._fragments[name] for name in sorted(self._fragments)),
            ]
            self._page = Page.assemble(parts)

    def _render_self(self) -> Fragment:
        try:
            return Fragment.render(self._self_metrics)
        except Exception:
            log.exception("could not render the agent's own metrics")
            return EMPTY_FRAGMENT
