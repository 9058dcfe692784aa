"""The runner: one scenario through real Chromium, the Grafana stand-in (fed by the demo
Prometheus), real PromQL checks and the judge against the fake Anthropic server."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from mcp_server.grafana.api import GrafanaAPI
from mcp_server.grafana.browser import GrafanaBrowser
from mcp_server.judge import Judge, MissingAPIKey, RunBudget, VerdictCache
from mcp_server.run_many import Entry, Run
from mcp_server.runner import Harness, ProgressEvent, ScenarioResult, check_prometheus, run_scenario
from mcp_server.scenario_model import Scenario
from mcp_server.settings import GrafanaSettings, Settings
from tests.fakes.anthropic import FAKE_API_KEY, Answer, FakeAnthropic, fake_anthropic
from tests.fakes.grafana import GrafanaStandIn
from tests.fakes.grafana.fixtures import grafana_standin
from tests.stack import binary_or_skip

__all__ = ["fake_anthropic", "grafana_standin"]

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

STATES = "standin-states"
# Numbers a summary must never hold: unix times (s or ms) and ISO dates.
TIMESTAMP = re.compile(r"\b1[6-9]\d{8}(\d{3})?\b|\d{4}-\d{2}-\d{2}T")


def settings_for(standin: GrafanaStandIn, prometheus: str, **judge: Any) -> Settings:
    return Settings(
        upstream={"prometheus_url": prometheus, "http_timeout_seconds": 5.0},
        grafana={
            "url": standin.url,
            "service_account_token": None,
            "user": None,
            "password": None,
            "ready_timeout_seconds": 4.0,
            "http_timeout_seconds": 5.0,
        },
        judge={"api_key": None, **judge},
    )


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def shared_browser(grafana_standin: GrafanaStandIn) -> AsyncIterator[GrafanaBrowser]:
    path = GrafanaSettings().chromium_path
    if path:
        binary_or_skip(path)
    shared = GrafanaBrowser(
        GrafanaSettings(
            url=grafana_standin.url,
            service_account_token=None,
            user=None,
            password=None,
            ready_timeout_seconds=4.0,
        )
    )
    try:
        yield shared
    finally:
        await shared.aclose()


class Harnesses:
    """Harnesses on the module's browser, each with its own judge; closed after the test."""

    def __init__(self, standin: GrafanaStandIn, prometheus: str, browser: GrafanaBrowser) -> None:
        self.standin, self.prometheus, self.browser = standin, prometheus, browser
        self.made: list[Harness] = []

    def __call__(
        self, fake: FakeAnthropic | None = None, *, budget: float = 5.0, cache: Path | None = None
    ) -> Harness:
        judge_settings = {} if fake is None else {"api_key": FAKE_API_KEY, "base_url": fake.url}
        settings = settings_for(self.standin, self.prometheus, **judge_settings)
        judge = None
        if fake is not None:
            judge = Judge(
                settings.judge,
                RunBudget(budget),
                cache=VerdictCache(cache, ttl_seconds=600) if cache else None,
            )
        grafana, prometheus = GrafanaAPI(settings.grafana), check_prometheus(settings)
        owned: list[Any] = [grafana, prometheus, *([judge] if judge else [])]
        harness = Harness(settings, self.browser, grafana, prometheus, judge, owned=owned)
        self.made.append(harness)
        return harness


@pytest_asyncio.fixture(loop_scope="module")
async def harnesses(
    grafana_standin: GrafanaStandIn, demo_prometheus_url: str, shared_browser: GrafanaBrowser
) -> AsyncIterator[Harnesses]:
    made = Harnesses(grafana_standin, demo_prometheus_url, shared_browser)
    yield made
    for harness in made.made:
        await harness.aclose()


def scenario(**fields: Any) -> Scenario:
    return Scenario.model_validate({"name": "under-test", "dashboard": STATES, **fields})


async def test_passing_checks_then_the_judge_with_panel_evidence(
    harnesses: Harnesses, fake_anthropic: FakeAnthropic
) -> None:
    events: list[ProgressEvent] = []
    checked = scenario(
        time={"from": "now-2m", "to": "now"},  # the session's Prometheus is young
        panels=["GPU utilization", "Sources up"],
        checks=[
            {"no_panel_errors": {}},
            {"no_empty_panels": {}},
            {"promql": "count(DCGM_FI_DEV_GPU_UTIL)", "expect": ">= 1"},
            {
                "promql": "DCGM_FI_DEV_GPU_UTIL",
                "expect": "between 0 and 100",
                "for_every_series": True,
            },
        ],
        expect=["One line per GPU", "Every source reads Up"],
    )
    result = await run_scenario(harnesses(fake_anthropic), checked, on_progress=events.append)

    assert result.status == "pass", result.reasons
    assert [c.status for c in result.checks] == ["pass"] * 4
    assert (
        result.checks[3].detail.startswith("all ")
        and "between 0 and 100" in result.checks[3].detail
    )
    assert [(s.label, s.png[:4]) for s in result.screenshots] == [
        ("GPU utilization", b"\x89PNG"),
        ("Sources up", b"\x89PNG"),
    ]
    assert [v.verdict for v in result.verdicts] == ["pass", "pass"]
    assert result.judge is not None and not result.judge.cached
    assert result.judge.input_tokens > result.judge.image_tokens > 0
    assert result.url is not None and "/d/standin-states" in result.url

    (request,) = fake_anthropic.requests
    assert request.expectations == ["One line per GPU", "Every source reads Up"]
    assert len(request.images) == 2
    panels = re.findall(r'<panel title="([^"]*)" state="([^"]*)">([^<]*)</panel>', request.text)
    assert [(title, state) for title, state, _ in panels] == [
        ("GPU utilization", "ok"),
        ("Sources up", "ok"),
    ]
    gpus = panels[0][2]
    assert re.match(r"\d+ series \(GPU \d", gpus), gpus
    assert "max" in gpus and "unit percent" in gpus
    assert not any(TIMESTAMP.search(summary) for _, _, summary in panels)
    stages = [event.stage for event in events]
    assert stages[0] == "browser" and stages[-1] == "done"
    assert {"checks", "evidence", "judge", "judge_text"} <= set(stages)
    streamed = "".join(e.message for e in events if e.stage == "judge_text")
    assert '"verdict"' in streamed


async def test_failing_checks_are_reported_without_asking_claude(
    harnesses: Harnesses, fake_anthropic: FakeAnthropic
) -> None:
    broken = scenario(
        checks=[{"no_panel_errors": {}}, {"no_empty_panels": {"except": ["Missing stat"]}}],
        expect=["Nothing is broken"],
    )
    result = await run_scenario(harnesses(fake_anthropic), broken)

    assert result.status == "fail"
    assert fake_anthropic.requests == []
    errors, empty = result.checks
    assert errors.status == "fail" and "'Broken query': bad_data" in errors.detail
    assert empty.status == "fail" and empty.detail == "'Missing series' show no data"
    assert result.judge is None
    assert result.judge_note == "Claude was not asked: 2 check(s) failed"
    assert [s.label for s in result.screenshots] == ["dashboard"]  # kept for the report
    assert {p.title: p.state for p in result.panels}["Broken query"] == "error"


async def test_panel_checks_look_only_at_the_listed_panels(harnesses: Harnesses) -> None:
    only = scenario(
        panels=["GPU utilization", "GPUs"],
        checks=[{"no_panel_errors": {}}, {"no_empty_panels": {}}, {"no_loading_panels": {}}],
    )
    result = await run_scenario(harnesses(), only)  # checks only: no judge needed
    assert result.status == "pass", result.reasons
    assert [c.detail for c in result.checks] == ["2 panel(s) checked"] * 3
    assert result.judge_note == "no expectations: checks only"


async def test_promql_checks_need_no_browser(
    harnesses: Harnesses, grafana_standin: GrafanaStandIn, shared_browser: GrafanaBrowser
) -> None:
    launches, mark = shared_browser.launches, len(grafana_standin.requests)
    checks = scenario(
        checks=[
            {"promql": "count(DCGM_FI_DEV_GPU_UTIL)", "expect": "== 1000"},
            {"promql": "DCGM_FI_DEV_GPU_UTIL", "expect": "> 1"},
            {"promql": "rate(DCGM_FI_DEV_GPU_UTIL)", "expect": "> 0"},
            {"promql": "inferwatch_no_such_series", "expect": ">= 0", "within": "1s"},
        ]
    )
    result = await run_scenario(harnesses(), checks)

    assert result.status == "fail"
    wrong, many, rejected, empty = result.checks
    assert wrong.status == "fail" and wrong.detail.endswith("== 1000: does not hold")
    assert many.status == "fail" and "aggregate it" in many.detail
    assert rejected.status == "fail" and "Prometheus rejected the query" in rejected.detail
    assert empty.status == "fail"
    assert empty.detail == (
        "inferwatch_no_such_series returned no data (expected >= 0) (after 1 tries, within 1s)"
    )
    assert (shared_browser.launches, len(grafana_standin.requests)) == (launches, mark)
    assert result.screenshots == []


async def test_judged_fail_or_uncertain_fails_the_scenario(
    harnesses: Harnesses, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(Answer(verdicts=["pass", "uncertain", "fail"], reason="cannot read it"))
    asked = scenario(panels=["Sources up"], expect=["Up", "Green", "Seven sources"])
    result = await run_scenario(harnesses(fake_anthropic), asked)
    assert result.status == "fail"
    assert result.reasons == [
        "expectation 2 judged uncertain (0.90): Green -> cannot read it (uncertain)",
        "expectation 3 judged fail (0.90): Seven sources -> cannot read it (fail)",
    ]


async def test_a_reply_off_the_schema_is_an_error_never_a_pass(
    harnesses: Harnesses, fake_anthropic: FakeAnthropic
) -> None:
    fake_anthropic.script(Answer(text='{"verdicts": "all good"}'))
    result = await run_scenario(
        harnesses(fake_anthropic), scenario(panels=["Sources up"], expect=["Up"])
    )
    assert result.status == "error"
    assert result.reasons[0].startswith("the judge's reply was rejected: not JSON of the verdict")
    assert result.verdicts == []


async def test_a_spent_budget_is_reported_per_scenario(
    harnesses: Harnesses, fake_anthropic: FakeAnthropic
) -> None:
    result = await run_scenario(
        harnesses(fake_anthropic, budget=0.0), scenario(panels=["Sources up"], expect=["Up"])
    )
    assert result.status == "error"
    assert result.reasons == [
        "judge budget exhausted: the run budget is 0 USD, so no call to Claude is allowed "
        "(raise INFERWATCH_JUDGE_BUDGET_USD to allow more)"
    ]
    assert fake_anthropic.requests == []


async def test_an_unchanged_view_is_judged_once(
    harnesses: Harnesses, fake_anthropic: FakeAnthropic, tmp_path: Path
) -> None:
    now_ms = int(time.time() * 1000)
    pinned = scenario(
        time={"from": str(now_ms - 120_000), "to": str(now_ms - 5_000)},
        panels=["GPU utilization", "Sources up"],
        expect=["One line per GPU"],
    )
    harness = harnesses(fake_anthropic, cache=tmp_path / "verdicts")
    first = await run_scenario(harness, pinned)
    second = await run_scenario(harness, pinned)
    assert first.judge is not None and second.judge is not None
    assert (first.judge.cached, second.judge.cached) == (False, True)
    assert second.status == "pass" and second.judge.cost_usd == 0
    assert len(fake_anthropic.requests) == 1


async def test_a_stuck_panel_fails_no_loading_panels(
    harnesses: Harnesses, grafana_standin: GrafanaStandIn
) -> None:
    stuck = scenario(panels=["GPUs"], checks=[{"no_loading_panels": {}}])
    with grafana_standin.panel_behaviour(STATES, "GPUs", stuck=True):
        result = await run_scenario(harnesses(), stuck)
    assert result.status == "fail"
    assert [(c.status, c.detail) for c in result.checks] == [("fail", "still loading: 'GPUs'")]


async def test_a_missing_dashboard_is_an_error(harnesses: Harnesses) -> None:
    result = await run_scenario(
        harnesses(), scenario(dashboard="nope", checks=[{"no_panel_errors": {}}])
    )
    assert result.status == "error"
    assert result.reasons[0].startswith("no dashboard with uid 'nope'; dashboards: ")
    assert "standin-states" in result.reasons[0]


async def test_no_api_key_is_said_before_any_browser_work(
    grafana_standin: GrafanaStandIn, demo_prometheus_url: str
) -> None:
    settings = settings_for(grafana_standin, demo_prometheus_url)
    with pytest.raises(MissingAPIKey):
        Harness.open(settings, need_judge=True)
    harness = Harness.open(settings, need_judge=True, strict=False)
    mark = len(grafana_standin.requests)
    try:
        result = await run_scenario(harness, scenario(expect=["Up"]))
    finally:
        await harness.aclose()
    assert result.status == "error"
    assert "ANTHROPIC_API_KEY is not set" in result.reasons[0]
    assert harness.browser.launches == 0
    assert len(grafana_standin.requests) == mark


async def test_a_run_keeps_to_its_concurrency(
    harnesses: Harnesses, grafana_standin: GrafanaStandIn
) -> None:
    running: set[str] = set()
    most = 0

    def watch(event: ProgressEvent) -> None:
        nonlocal most
        if event.stage == "done":
            running.discard(event.scenario)
        else:
            running.add(event.scenario)
            most = max(most, len(running))

    items = [
        Entry(
            "scenarios/slow.yaml",
            scenario(name=f"slow-{n}", panels=["Sources up"], checks=[{"no_panel_errors": {}}]),
        )
        for n in range(4)
    ]
    done: list[ScenarioResult] = []
    with grafana_standin.panel_behaviour(STATES, "Sources up", delay_seconds=0.8):
        run = Run(harnesses(), items, concurrency=2, on_progress=watch, on_done=done.append)
        result = await run.execute()
    assert [r.status for r in result.scenarios] == ["pass"] * 4
    assert [r.name for r in result.scenarios] == [f"slow-{n}" for n in range(4)]
    assert len(done) == 4
    assert most == 2
    assert result.exit_code == 0 and result.concurrency == 2


async def test_an_interrupted_run_reports_the_rest_skipped(
    harnesses: Harnesses, grafana_standin: GrafanaStandIn
) -> None:
    items = [
        Entry(
            "scenarios/slow.yaml",
            scenario(name=f"slow-{n}", panels=["Sources up"], checks=[{"no_panel_errors": {}}]),
        )
        for n in range(3)
    ]
    first_done = asyncio.Event()
    run = Run(harnesses(), items, concurrency=1, on_done=lambda _: first_done.set())
    with grafana_standin.panel_behaviour(STATES, "Sources up", delay_seconds=0.5):
        task = asyncio.create_task(run.execute())
        await asyncio.wait_for(first_done.wait(), timeout=30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    result = run.result(interrupted=True)
    assert result.interrupted
    assert [r.status for r in result.scenarios] == ["pass", "skipped", "skipped"]
    assert result.scenarios[1].reasons == ["not finished: the run was interrupted"]
    assert result.totals.skipped == 2 and result.exit_code == 0
