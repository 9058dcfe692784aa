"""A hostile upstream that invents label values cannot grow the exposition past the cap."""

from __future__ import annotations

import logging

import pytest
from prometheus_client.metrics_core import GaugeMetricFamily

from agent.exposition import Exposition
from agent.passthrough import RawFamily
from agent.scheduler import Poller
from agent.snapshot import Collection
from agent.store import Store
from tests.fakes.sources import ScriptedSource

CAP = 500


def _inventing(poll: int) -> Collection:
    """Each poll: 400 gauge samples and 400 raw samples, all with never-seen label values."""
    family = GaugeMetricFamily("hostile_requests", "made up", labels=["request_id"])
    for i in range(400):
        family.add_metric([f"p{poll}-r{i}"], 1.0)
    raw = RawFamily(
        name="hostile_raw",
        type="gauge",
        help="made up",
        samples=tuple(f'hostile_raw{{id="p{poll}-{i}"}} 1' for i in range(400)),
    )
    return Collection(families=(family,), raw=(raw,))


def _samples(page: bytes, prefix: str) -> list[str]:
    return [line for line in page.decode().splitlines() if line.startswith(prefix)]


async def test_a_source_inventing_labels_stays_within_its_cap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = Store(["hostile"])
    exposition = Exposition(store, "test")
    poller = Poller(store, lambda source: 5.0, max_series=CAP)
    source = ScriptedSource("hostile", _inventing)
    with caplog.at_level(logging.WARNING, logger="agent.scheduler"):
        for _ in range(5):
            snapshot = await poller.poll(source)
            assert snapshot.series == CAP
            assert snapshot.dropped_series == 300
    page = exposition.page.text
    assert len(_samples(page, "hostile_requests{")) == 400
    assert len(_samples(page, "hostile_raw{")) == 100  # cut where the cap was reached
    assert 'p5-r0"' in page.decode() and "p4-" not in page.decode()  # replaced, not accumulated
    assert 'inferwatch_source_series_dropped{source="hostile"} 300.0' in page.decode()
    warnings = [r for r in caplog.records if "exceeded its cap" in r.getMessage()]
    assert len(warnings) == 1  # once when it starts, not every poll


async def test_a_source_under_its_cap_loses_nothing() -> None:
    store = Store(["calm"])
    exposition = Exposition(store, "test")
    snapshot = await Poller(store, lambda source: 5.0, max_series=10_000).poll(
        ScriptedSource("calm", _inventing)
    )
    assert (snapshot.series, snapshot.dropped_series) == (800, 0)
    assert 'inferwatch_source_series_dropped{source="calm"} 0.0' in exposition.page.text.decode()
