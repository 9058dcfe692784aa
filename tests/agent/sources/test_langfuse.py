"""The Langfuse source against the fake Langfuse (v3 and v4), and its parsers on sample shapes."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from agent.exposition import FamiliesCollector, Fragment
from agent.scheduler import Poller
from agent.simulator import Fault
from agent.simulator.langfuse_api import FakeLangfuse
from agent.simulator.langfuse_workload import to_ms
from agent.snapshot import Collection, SourceState
from agent.sources.langfuse import (
    MISSING_KEYS,
    REJECTED_KEYS,
    LangfuseSource,
    Scores,
    Windows,
    number,
    retry_after_seconds,
    usage_rows,
)
from agent.store import Store
from agent.upstream import Malformed, UpstreamError
from tests.promtool import needs_promtool, promtool_findings

NOW = datetime(2026, 8, 19, 14, 30, tzinfo=UTC)
PK, SK = "pk-lf-simulated", "sk-lf-simulated"
ALLOWED_LABELS = {"model", "kind", "window", "name", "version"}
ID_LIKE = re.compile(r"sess-|user-|[0-9a-f]{8}-[0-9a-f]{4}-")


class Clock:
    """A clock the test moves by hand; the source and the fake share it."""

    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def fake(clock: Clock) -> AsyncIterator[FakeLangfuse]:
    async with FakeLangfuse(clock=clock, traces_per_day=200) as server:
        yield server


def make_source(
    fake: FakeLangfuse,
    clock: Callable[[], datetime],
    *,
    public_key: str | None = PK,
    secret_key: str | None = SK,
    **kwargs: Any,
) -> LangfuseSource:
    options: dict[str, Any] = {"timeout_seconds": 2.0, "max_response_bytes": 4 * 1024 * 1024}
    options.update(kwargs)
    return LangfuseSource(
        host=fake.url,
        public_key=SecretStr(public_key) if public_key else None,
        secret_key=SecretStr(secret_key) if secret_key else None,
        interval_seconds=60,
        clock=clock,
        **options,
    )


async def collect(fake: FakeLangfuse, clock: Callable[[], datetime], **kwargs: Any) -> Collection:
    source = make_source(fake, clock, **kwargs)
    try:
        return await source.collect()
    finally:
        await source.aclose()


def render(collection: Collection) -> str:
    return Fragment.render(FamiliesCollector(collection.families)).text.decode()


def samples(collection: Collection, name: str) -> dict[tuple[str, ...], float]:
    """Samples of ``name`` keyed by their label values, in label-name order."""
    out = {}
    for family in text_string_to_metric_families(render(collection)):
        for s in family.samples:
            if s.name == name:
                out[tuple(v for _, v in sorted(s.labels.items()))] = s.value
    return out


def expected_scores(fake: FakeLangfuse, start: datetime, now: datetime) -> dict[str, Any]:
    """Per score name: count, missing and mean, straight from the fake's workload."""
    w = fake.workload
    span = w.trace_range(to_ms(start), to_ms(now) + 1, to_ms(now))
    found: dict[str, list[Any]] = {}
    for g in w.scored_traces(span):
        name, data_type = w.score_kind(g)
        value = w.numeric_value(g) if data_type in ("NUMERIC", "BOOLEAN") else "n/a"
        found.setdefault(name, []).append(value)
    out = {}
    for name, values in found.items():
        numeric = [v for v in values if isinstance(v, float)]
        out[name] = {
            "count": len(values),
            "missing": values.count(None),
            "mean": sum(numeric) / len(numeric) if numeric else None,
        }
    return out


def check_against_workload(collection: Collection, fake: FakeLangfuse, *, v3: bool) -> None:
    windows = Windows.at(NOW)
    w = fake.workload
    cost = samples(collection, "inferwatch_langfuse_cost_usd")
    tokens = samples(collection, "inferwatch_langfuse_tokens")
    observations = samples(collection, "inferwatch_langfuse_observations")
    traces = samples(collection, "inferwatch_langfuse_traces")
    for window, start in windows.starts.items():
        span = w.trace_range(to_ms(start), to_ms(NOW) + 1, to_ms(NOW))
        for row in w.usage(span):
            model = row.model or "(none)"
            assert cost[model, window] == pytest.approx(row.cost_usd), (model, window)
            assert tokens["input", model, window] == row.input_tokens
            assert tokens["total", model, window] == row.total_tokens
        assert observations[(window,)] == 2 * len(span)
        if v3:
            assert traces[(window,)] == len(span)
        counts = samples(collection, "inferwatch_langfuse_scores")
        means = samples(collection, "inferwatch_langfuse_score_mean")
        missing = samples(collection, "inferwatch_langfuse_scores_missing_value")
        for name, stats in expected_scores(fake, start, NOW).items():
            assert counts[name, window] == stats["count"], (name, window)
            if stats["mean"] is None:
                assert (name, window) not in means
            else:
                assert means[name, window] == pytest.approx(stats["mean"])
                assert missing[name, window] == stats["missing"]
    assert not traces if not v3 else traces


# -- the two generations ---------------------------------------------------------------------


async def test_v3_reports_every_window_as_the_workload_has_it(
    fake: FakeLangfuse, clock: Clock
) -> None:
    collection = await collect(fake, clock, page_size=50)
    assert collection.state is SourceState.UP and collection.error is None
    check_against_workload(collection, fake, v3=True)
    assert samples(collection, "inferwatch_langfuse_info") == {("3.130.0",): 1.0}
    sessions = samples(collection, "inferwatch_langfuse_sessions")
    assert sessions[("today",)] == fake.workload.sessions(
        fake.workload.trace_range(to_ms(Windows.at(NOW).starts["today"]), None, to_ms(NOW))
    )
    assert fake.request_count("/api/public/v2/scores") >= 3  # paged to the end
    assert fake.request_count("/api/public/v2/metrics") == 0
    assert collection.data["version"] == "3.130.0" and collection.data["generation"] == "v3"
    llama = collection.data["models"]["meta-llama/Llama-3.1-8B-Instruct"]
    assert set(llama) == {
        "cost_usd",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "observations",
    }
    assert set(llama["cost_usd"]) == {"today", "24h", "7d"}
    assert "(none)" in collection.data["models"]


async def test_v4_uses_the_v2_metrics_and_cursor_scores(clock: Clock) -> None:
    async with FakeLangfuse("4.0.0", clock=clock, traces_per_day=200) as fake:
        collection = await collect(fake, clock, page_size=40)
        assert collection.state is SourceState.UP, collection.error
        check_against_workload(collection, fake, v3=False)
        assert fake.request_count("/api/public/v2/metrics") == 2
        assert fake.request_count("/api/public/v3/scores") >= 4  # 7d of scores in pages of 40
        for old in ("/api/public/metrics", "/api/public/traces", "/api/public/v2/scores"):
            assert fake.request_count(old) == 0, old
        assert samples(collection, "inferwatch_langfuse_sessions") == {}
        assert collection.data["unavailable"] == ["sessions", "traces"]


async def test_a_404_switches_generation_once_and_is_remembered(clock: Clock) -> None:
    # A v4 server whose health answer says nothing usable: the 404s must lead the way.
    async with FakeLangfuse("4.1.0", health_version="dev", clock=clock) as fake:
        source = make_source(fake, clock)
        try:
            for _ in range(2):
                collection = await source.collect()
                assert collection.state is SourceState.UP, collection.error
        finally:
            await source.aclose()
        assert fake.request_count("/api/public/metrics") == 1
        assert fake.request_count("/api/public/v2/metrics") == 4
        assert fake.request_count("/api/public/v2/scores") == 1
        assert fake.request_count("/api/public/traces") == 1
        assert fake.request_count("/api/public/sessions") == 1
        assert samples(collection, "inferwatch_langfuse_scores")


async def test_an_upgrade_between_polls_is_followed(fake: FakeLangfuse, clock: Clock) -> None:
    source = make_source(fake, clock)
    try:
        assert (await source.collect()).data["generation"] == "v3"
        fake.version = "4.0.0"
        after = await source.collect()
    finally:
        await source.aclose()
    assert after.state is SourceState.UP and after.data["generation"] == "v4"
    assert fake.request_count("/api/public/v3/scores") >= 1


# -- windows ---------------------------------------------------------------------------------


def test_windows_from_an_injected_clock() -> None:
    just_after_midnight = datetime(2026, 8, 19, 0, 30, tzinfo=UTC)
    windows = Windows.at(just_after_midnight)
    assert windows.starts == {
        "today": datetime(2026, 8, 19, tzinfo=UTC),
        "24h": datetime(2026, 8, 18, 0, 30, tzinfo=UTC),
        "7d": datetime(2026, 8, 13, tzinfo=UTC),
    }
    assert windows.containing(datetime(2026, 8, 18, 23, 0, tzinfo=UTC)) == ["24h", "7d"]
    assert windows.containing(just_after_midnight + timedelta(seconds=1)) == []


async def test_just_after_midnight_today_is_small_and_24h_is_whole(clock: Clock) -> None:
    clock.now = datetime(2026, 8, 19, 0, 36, tzinfo=UTC)
    async with FakeLangfuse(clock=clock, traces_per_day=1000) as fake:
        collection = await collect(fake, clock)
    traces = samples(collection, "inferwatch_langfuse_traces")
    # One trace per 86.4 s from 00:00: 25 before 00:36 (the one at 00:36 is not before "to").
    assert traces[("today",)] == 25
    assert traces[("24h",)] == 1000
    assert traces[("7d",)] == 6000 + 25


# -- parsers on the reference shapes ---------------------------------------------------------

V1_QUERY_ROWS: list[
    dict[str, Any]
] = [  # samples/langfuse/langfuse_metrics_v1_query.json, two rows and a null model
    {
        "time_dimension": "2026-08-19T00:00:00.000Z",
        "providedModelName": "gpt-4o-mini",
        "count_count": "1288",
        "sum_inputTokens": "1210044",
        "sum_outputTokens": "201377",
        "sum_totalTokens": "1411421",
        "sum_totalCost": 14.732215,
    },
    {
        "time_dimension": "2026-08-19T00:00:00.000Z",
        "providedModelName": None,
        "count_count": "1945",
        "sum_inputTokens": "0",
        "sum_outputTokens": "0",
        "sum_totalTokens": "0",
        "sum_totalCost": None,
    },
]


def test_query_rows_coerce_strings_and_name_nulls() -> None:
    rows = usage_rows(V1_QUERY_ROWS, "http://lf/api/public/metrics")
    (day, model, values), (_, none_model, none_values) = rows
    assert day is not None and day.isoformat() == "2026-08-19"
    assert model == "gpt-4o-mini" and values["input"] == 1210044.0
    assert values["cost_usd"] == pytest.approx(14.732215)
    assert none_model == "(none)" and none_values["cost_usd"] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("count_count", "12x"), ("sum_totalCost", "NaN"), ("sum_inputTokens", True)],
)
def test_an_unparsable_number_names_its_field(field: str, value: object) -> None:
    row: dict[str, Any] = {**V1_QUERY_ROWS[0], field: value}
    with pytest.raises(Malformed, match=rf"^http://lf/m: data\[0\]\.{field} is not a number"):
        usage_rows([row], "http://lf/m")
    with pytest.raises(Malformed, match=r"meta\.totalItems"):
        number("many", "meta.totalItems")


def score(name: str, data_type: str, day_time: str, *value: object) -> dict[str, Any]:
    """A score item; no ``value`` argument: the item has no value key (as TEXT scores)."""
    item: dict[str, Any] = {"name": name, "dataType": data_type}
    item["timestamp"] = f"2026-08-{day_time}:00.000Z"
    if value:
        item["value"] = value[0]
    return item


SAMPLE_SCORES = [  # samples/langfuse/langfuse_scores_v2_list.json, the fields that matter
    score("helpfulness", "NUMERIC", "19T14:02", 0.82),
    score("user_feedback", "BOOLEAN", "19T14:03", 1),
    score("user_feedback", "BOOLEAN", "19T14:04", False),
    score("tone", "CATEGORICAL", "19T14:10", None),
    score("reviewer_note", "TEXT", "19T14:20"),
    score("helpfulness", "NUMERIC", "18T20:00", None),
    score("helpfulness", "NUMERIC", "15T20:00", "0.5"),
]


def test_scores_average_only_values_and_count_the_missing() -> None:
    scores = Scores()
    scores.add_page(SAMPLE_SCORES, Windows.at(NOW), "x")
    stats = {key: (s.count, s.missing, s.values, s.total) for key, s in scores.stats.items()}
    assert stats["helpfulness", "today"] == (1, 0, 1, 0.82)
    assert stats["helpfulness", "24h"] == (2, 1, 1, 0.82)
    assert stats["helpfulness", "7d"][:3] == (3, 1, 2)
    assert stats["helpfulness", "7d"][3] == pytest.approx(1.32)
    assert stats["user_feedback", "today"] == (2, 0, 2, 1.0)
    assert stats["tone", "today"] == (1, 0, 0, 0.0)
    assert stats["reviewer_note", "7d"] == (1, 0, 0, 0.0)
    with pytest.raises(Malformed, match=r"x: data\[0\]\.value is not a number"):
        Scores().add_page([{**SAMPLE_SCORES[0], "value": "high"}], Windows.at(NOW), "x")
    with pytest.raises(Malformed, match=r"x: data\[0\]\.timestamp"):
        Scores().add_page([{**SAMPLE_SCORES[0], "timestamp": None}], Windows.at(NOW), "x")


def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert retry_after_seconds("17", NOW) == 17.0
    assert retry_after_seconds("Wed, 19 Aug 2026 14:31:00 GMT", NOW) == 60.0
    assert retry_after_seconds(None, NOW) == retry_after_seconds("soon", NOW) == 60.0


# -- errors ----------------------------------------------------------------------------------


async def test_missing_keys_are_a_configuration_error_without_a_request(
    fake: FakeLangfuse, clock: Clock
) -> None:
    collection = await collect(fake, clock, secret_key=None)
    assert collection.state is SourceState.CONFIG_ERROR and collection.error == MISSING_KEYS
    assert fake.request_count("/api/public/health") == 0


@pytest.mark.parametrize("fault", [Fault.NONE, Fault.UNAUTHORIZED])
async def test_rejected_keys_are_a_configuration_error(
    fake: FakeLangfuse, clock: Clock, fault: Fault
) -> None:
    fake.set_fault(fault)
    secret = "sk-lf-wrong-secret" if fault is Fault.NONE else SK
    collection = await collect(fake, clock, secret_key=secret)
    assert collection.state is SourceState.CONFIG_ERROR
    assert collection.error == f"{REJECTED_KEYS} (HTTP 401)"
    assert samples(collection, "inferwatch_langfuse_info") == {("3.130.0",): 1.0}
    for secret_text in (secret, PK):
        assert secret_text not in repr(collection)


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (Fault.ERROR_500, "HTTP 500"),
        (Fault.GARBAGE, "invalid JSON"),
        (Fault.HUGE, "exceeds cap"),
        (Fault.HANG, "no answer within the timeout"),
    ],
)
async def test_a_broken_server_is_down_with_the_reason(
    fake: FakeLangfuse, clock: Clock, fault: Fault, message: str
) -> None:
    fake.set_fault(fault)
    source = make_source(fake, clock, timeout_seconds=0.5, max_response_bytes=256 * 1024)
    try:
        snapshot = await Poller(Store(["langfuse"]), lambda source: 5.0).poll(source)
    finally:
        await source.aclose()
    assert snapshot.state is SourceState.DOWN
    assert snapshot.error is not None and message in snapshot.error


async def test_rate_limited_skips_polls_until_retry_after(fake: FakeLangfuse, clock: Clock) -> None:
    fake.rate_limit(30)
    source = make_source(fake, clock)
    try:
        with pytest.raises(UpstreamError, match=r"^rate limited, retry after 30 s$"):
            await source.collect()
        clock.now += timedelta(seconds=10)
        with pytest.raises(UpstreamError, match=r"^rate limited, retry after 20 s"):
            await source.collect()
        assert fake.request_count("/api/public/health") == 1  # the skipped poll asked nothing
        clock.now += timedelta(seconds=21)
        assert (await source.collect()).state is SourceState.UP
    finally:
        await source.aclose()


async def test_the_page_cap_keeps_complete_windows_and_reports_the_rest(
    fake: FakeLangfuse, clock: Clock
) -> None:
    collection = await collect(fake, clock, page_size=15, max_pages=1)
    assert collection.state is SourceState.UP
    assert collection.error is not None and "page cap reached" in collection.error
    assert fake.request_count("/api/public/v2/scores") == 1
    counts = samples(collection, "inferwatch_langfuse_scores")
    assert {window for _, window in counts} == {"today"}  # 12 scores so far today: all read
    assert collection.data["partial"] is True
    assert collection.data["windows"]["7d"]["scores_partial"] is True
    assert collection.data["windows"]["today"]["scores_partial"] is False
    # Usage and counts are not paged: still complete.
    assert set(samples(collection, "inferwatch_langfuse_traces")) == {("today",), ("24h",), ("7d",)}


@pytest.mark.parametrize("version", ["3.130.0", "4.0.0"])
async def test_a_10000_trace_day_stays_within_the_page_cap_and_a_second(
    clock: Clock, version: str
) -> None:
    async with FakeLangfuse(version, clock=clock, traces_per_day=10_000) as fake:
        source = make_source(fake, clock, max_pages=50)
        try:
            started = time.process_time()
            collection = await source.collect()
            used = time.process_time() - started
        finally:
            await source.aclose()
        pages = fake.request_count("/api/public/v2/scores") + fake.request_count(
            "/api/public/v3/scores"
        )
    assert collection.state is SourceState.UP
    assert pages <= 50
    assert fake.request_count("/api/public/traces") <= 3
    assert used < 1.0, f"{used:.2f} s of CPU (source and fake together)"
    assert samples(collection, "inferwatch_langfuse_observations")[("24h",)] == 20_000


# -- exposition ------------------------------------------------------------------------------


async def test_no_ids_ever_become_labels(fake: FakeLangfuse, clock: Clock) -> None:
    collection = await collect(fake, clock)
    families = list(text_string_to_metric_families(render(collection)))
    assert {f.name for f in families} >= {
        "inferwatch_langfuse_cost_usd",
        "inferwatch_langfuse_tokens",
        "inferwatch_langfuse_traces",
        "inferwatch_langfuse_observations",
        "inferwatch_langfuse_sessions",
        "inferwatch_langfuse_score_mean",
        "inferwatch_langfuse_scores",
        "inferwatch_langfuse_scores_missing_value",
        "inferwatch_langfuse_info",
    }
    for family in families:
        for s in family.samples:
            assert set(s.labels) <= ALLOWED_LABELS, (s.name, s.labels)
            for value in s.labels.values():
                assert not ID_LIKE.search(value), (s.name, value)
    assert not ID_LIKE.search(repr(collection.data))


@needs_promtool
async def test_promtool_accepts_the_inferwatch_families(fake: FakeLangfuse, clock: Clock) -> None:
    text = render(await collect(fake, clock))
    assert "inferwatch_langfuse_cost_usd" in text
    assert await asyncio.to_thread(promtool_findings, text) == ""
