"""Panel evidence: Grafana times to a range, and one query's result summarized without a
timestamp (the summary is part of the verdict cache key)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mcp_server.evidence import grafana_time, number, summarize, time_range
from mcp_server.prometheus import Series

NOW = datetime(2026, 11, 29, 17, 45, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "end", "expected"),
    [
        ("now", False, NOW),
        ("now-1h", False, datetime(2026, 11, 29, 16, 45, 30, tzinfo=UTC)),
        ("now-7d/d", False, datetime(2026, 11, 22, tzinfo=UTC)),
        ("now/d", True, datetime(2026, 11, 29, 23, 59, 59, 999000, tzinfo=UTC)),
        ("now-1M/M", False, datetime(2026, 10, 1, tzinfo=UTC)),
        ("now/w", False, datetime(2026, 11, 23, tzinfo=UTC)),  # a Monday
        ("1764374400000", False, datetime(2025, 11, 29, tzinfo=UTC)),
        ("2026-11-01T00:00:00Z", False, datetime(2026, 11, 1, tzinfo=UTC)),
    ],
)
def test_grafana_times(text: str, end: bool, expected: datetime) -> None:
    assert grafana_time(text, NOW, end=end) == expected


def test_an_empty_range_is_refused() -> None:
    assert time_range("now-1h", "now", NOW) == (NOW.timestamp() - 3600, NOW.timestamp())
    with pytest.raises(ValueError, match="is empty"):
        time_range("now", "now-1h", NOW)


def series(labels: dict[str, str], *values: str) -> Series:
    return Series(labels=labels, points=[(1795970000.0 + i, v) for i, v in enumerate(values)])


def test_a_summary_names_series_by_legend_and_holds_no_time() -> None:
    gpus = [series({"gpu": str(n)}, "10", str(40 + n), "NaN") for n in range(3)]
    text = summarize(gpus, 3, "GPU {{gpu}}")
    assert text == "3 series (GPU 0, GPU 1, GPU 2); last 40 to 42; min 10; max 42"
    assert "1795970" not in text


def test_summaries_of_single_empty_and_truncated_results() -> None:
    assert summarize([series({}, "7")], 1, None) == "1 series; last 7; min 7; max 7"
    assert summarize([], 0, None) == "no data"
    many = [series({"pod": f"p{n}"}, "1") for n in range(10)]
    text = summarize(many, 60, None)
    assert text.startswith("60 series ({pod=p0}, {pod=p1}")
    assert ", ..." in text and text.endswith("(first 10 series)")


def test_numbers_are_short() -> None:
    assert [number(v) for v in (0.0, 0.12345, 91.0345, 12345.6, 3.114e11, 1e-5)] == [
        "0",
        "0.1235",
        "91.03",
        "12346",
        "3.114e+11",
        "1.000e-05",
    ]
