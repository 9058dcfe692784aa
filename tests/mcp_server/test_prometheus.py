"""Times, durations and the range plan of the Prometheus client (no server needed)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mcp_server.prometheus import (
    QueryRefused,
    describe_seconds,
    parse_duration,
    parse_time,
    plan_range,
)

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30", 30),
        ("1.5", 1.5),
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("2d", 172800),
        ("1w", 604800),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5 minutes", "1h-5m", "m5", "1hh"])
def test_unreadable_durations_are_refused(text: str) -> None:
    with pytest.raises(QueryRefused, match="cannot read duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("now-1h", NOW - 3600),
        ("now - 15m", NOW - 900),
        ("now+1d", NOW + 86400),
        ("1700000000", 1_700_000_000),
        ("2026-11-30T12:00:00Z", 1_796_040_000),
        ("2026-11-30T12:00:00", 1_796_040_000),  # no zone: UTC
        ("2026-11-30T13:00:00+01:00", 1_796_040_000),
    ],
)
def test_times(text: str, expected: float) -> None:
    assert parse_time(text, NOW) == expected


def test_limits_are_described_the_way_people_write_them() -> None:
    assert describe_seconds(604800) == "1w"
    assert describe_seconds(90000) == "1d1h"
    assert describe_seconds(45) == "45s"


def test_default_step_aims_at_about_120_points() -> None:
    plan = plan_range(NOW - 3600, NOW, None, max_range=86400, max_points=1100)
    assert plan.step == 30
    assert plan.step_raised_from is None


def test_default_step_is_at_least_a_second() -> None:
    assert plan_range(NOW - 60, NOW, None, max_range=86400, max_points=1100).step == 1


def test_a_fine_enough_step_is_kept() -> None:
    plan = plan_range(NOW - 600, NOW, 10, max_range=86400, max_points=1100)
    assert (plan.step, plan.step_raised_from) == (10, None)


@given(
    span=st.floats(min_value=0.001, max_value=7 * 86400),
    step=st.one_of(st.none(), st.floats(min_value=0.001, max_value=86400)),
    max_points=st.integers(min_value=2, max_value=11000),
)
def test_points_never_exceed_the_limit(span: float, step: float | None, max_points: int) -> None:
    plan = plan_range(NOW - span, NOW, step, max_range=7 * 86400, max_points=max_points)
    points = math.floor((plan.end - plan.start) / plan.step) + 1
    assert points <= max_points
    if step is not None and plan.step_raised_from is None:
        assert plan.step == step


def test_a_range_over_the_limit_is_refused_with_the_limit() -> None:
    with pytest.raises(QueryRefused) as refused:
        plan_range(NOW - 8 * 86400, NOW, None, max_range=7 * 86400, max_points=1100)
    assert str(refused.value) == (
        "range of 1w1d is longer than the limit of 1w (INFERWATCH_MAX_RANGE_SECONDS=604800); "
        "narrow start/end"
    )


def test_a_non_positive_step_is_refused() -> None:
    with pytest.raises(QueryRefused, match="step must be positive"):
        plan_range(NOW - 60, NOW, 0, max_range=86400, max_points=1100)
