"""Validation against the live stack: dashboard uids, panel titles and variables from Grafana
(the fake Grafana API serving dashboard JSON), PromQL from a real Prometheus."""

from __future__ import annotations

import asyncio
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcp_server.prometheus import PrometheusClient
from mcp_server.scenario_loader import ScenarioFile, load_paths, load_text
from mcp_server.scenario_model import PromQLCheck
from mcp_server.scenarios import Validation, validate_files
from mcp_server.settings import Settings
from tests.fakes.grafana_api import FakeGrafanaAPI, dashboard_files, load_dashboards
from tests.fakes.http import serve
from tests.mcp_server.support import make_settings
from tests.stack import REPO, query_until

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "scenarios"
STARTERS = REPO / "scenarios"


@pytest.fixture
async def fixture_grafana() -> AsyncIterator[str]:
    """Grafana's API serving only the test dashboard (uid inferwatch-gpus)."""
    fake = FakeGrafanaAPI(dashboards=load_dashboards([FIXTURES / "dashboards" / "gpus.json"]))
    async with serve(fake.app()) as url:
        yield url


def scenario(text: str) -> ScenarioFile:
    loaded = load_text(textwrap.dedent(text), Path("s.yaml"))
    assert loaded.ok, loaded.problems
    return loaded


async def validate(text: str, settings: Settings, *, require: bool = False) -> Validation:
    return await validate_files([scenario(text)], settings, require_grafana=require)


def missing(title: str) -> str:
    return f"dashboard 'inferwatch-gpus' has no panel titled {title!r}"


def located(validation: Validation) -> list[str]:
    return [f"{p.line}:{p.col}: {p.message}" for p in validation.problems]


async def test_a_scenario_matching_the_dashboard_passes(fixture_grafana: str) -> None:
    validation = await validate(
        """\
        name: gpus
        dashboard: inferwatch-gpus
        variables: {instance: [all]}
        panels: [GPU utilization, Xid errors]
        checks:
          - no_empty_panels: {except: [Xid errors]}
        """,
        make_settings(grafana_url=fixture_grafana),
    )
    assert validation.ok and validation.problems == [] and validation.notes == []


async def test_an_unknown_dashboard_uid_lists_the_known_ones(fixture_grafana: str) -> None:
    validation = await validate(
        """\
        name: gpus
        dashboard: inferwatch-gpu
        expect: [a]
        """,
        make_settings(grafana_url=fixture_grafana),
    )
    assert located(validation) == [
        f"2:12: dashboard: Grafana at {fixture_grafana} has no dashboard with uid "
        "'inferwatch-gpu'; dashboards: inferwatch-gpus"
    ]


async def test_unknown_panels_and_variables_are_reported_where_they_are_named(
    fixture_grafana: str,
) -> None:
    validation = await validate(
        """\
        name: gpus
        dashboard: inferwatch-gpus
        variables: {instance: [all], node: [a]}
        panels:
          - GPU utilization
          - GPU utilisation
        checks:
          - no_empty_panels: {except: [Xid errors, ECC errors]}
        """,
        make_settings(grafana_url=fixture_grafana),
    )
    panels = "'GPU utilization', 'GPU memory used', 'Xid errors', 'GPUs', 'About'"
    assert located(validation) == [
        "3:30: dashboard 'inferwatch-gpus' has no variable 'node'; variables: instance",
        f"6:5: {missing('GPU utilisation')}; panels: {panels}",
        f"8:44: {missing('ECC errors')}; panels: {panels}",
    ]


async def test_an_unreachable_grafana_is_a_note_unless_required() -> None:
    text = """\
        name: gpus
        dashboard: inferwatch-gpus
        expect: [a]
        """
    settings = make_settings()
    relaxed = await validate(text, settings)
    assert relaxed.ok and relaxed.problems == []
    [note] = relaxed.notes
    assert note.startswith("dashboard uids and panel titles not checked: Grafana at ")
    assert "(--require-grafana makes this an error)" in note

    strict = await validate(text, settings, require=True)
    [problem] = strict.problems
    assert (problem.line, problem.col) == (2, 12) and not strict.ok
    assert problem.message.startswith("dashboard not checked: Grafana at ")


async def test_an_unreachable_prometheus_leaves_the_structural_check_and_a_note() -> None:
    validation = await validate(
        """\
        name: q
        dashboard: d
        checks:
          - promql: rate(up)
            expect: ">= 0"
        """,
        make_settings(),
    )
    assert validation.ok
    assert any(
        note.startswith("PromQL checked for structure only: Prometheus at ")
        for note in validation.notes
    )


def test_offline_validation_says_what_it_skipped() -> None:
    validation = asyncio.run(
        validate_files([scenario("name: a\ndashboard: b\nexpect: [c]\n")], None)
    )
    assert validation.ok
    assert validation.notes == [
        "offline: PromQL checked for structure only; dashboards and panels not checked"
    ]


@pytest.mark.integration
async def test_prometheus_rejects_bad_promql_at_the_query(demo_prometheus_url: str) -> None:
    validation = await validate(
        """\
        name: q
        dashboard: d
        checks:
          - promql: count(up)
            expect: ">= 1"
          - promql: rate(up)
            expect: ">= 0"
        """,
        make_settings(prometheus_url=demo_prometheus_url),
    )
    [problem] = validation.problems
    assert (problem.line, problem.col, problem.severity) == (6, 13, "error")
    assert problem.message.startswith(
        "checks[1].promql: Prometheus rejected the query (bad_data): "
    )
    assert "range vector" in problem.message


@pytest.mark.integration
async def test_the_starter_scenarios_match_the_shipped_dashboards_and_prometheus(
    demo_prometheus_url: str,
) -> None:
    fake = FakeGrafanaAPI(dashboards=load_dashboards(dashboard_files()))
    async with serve(fake.app()) as grafana_url:
        settings = make_settings(grafana_url=grafana_url, prometheus_url=demo_prometheus_url)
        validation = await validate_files(load_paths([STARTERS]), settings, require_grafana=True)
    assert validation.problems == [] and validation.notes == []
    assert len(validation.scenarios) >= 7


@pytest.mark.integration
async def test_the_starter_promql_checks_hold_on_the_demo_stack(demo_prometheus_url: str) -> None:
    await asyncio.to_thread(query_until, demo_prometheus_url, "DCGM_FI_DEV_GPU_UTIL")
    client = PrometheusClient(make_settings(prometheus_url=demo_prometheus_url).upstream)
    failing: dict[str, str] = {}
    try:
        for loaded in load_paths([STARTERS]):
            assert loaded.scenario is not None, loaded.problems
            for check in loaded.scenario.checks_of(PromQLCheck):
                ok, why = await _assess(client, check, deadline=time.monotonic() + 15)
                if not ok:
                    failing[f"{loaded.scenario.name}: {check.describe()}"] = why
    finally:
        await client.aclose()
    assert failing == {}


async def _assess(
    client: PrometheusClient, check: PromQLCheck, deadline: float
) -> tuple[bool, str]:
    """The check's verdict, asked again while it fails (a fresh demo stack fills in a few
    scrapes: rates need two samples)."""
    while True:
        result = await client.query(check.promql)
        samples = [(series.labels, float(series.points[-1][1])) for series in result.series]
        ok, why = check.assess(samples)
        if ok or time.monotonic() > deadline:
            return ok, why
        await asyncio.sleep(0.2)


async def test_the_authoring_guide_example_is_valid_for_the_shipped_dashboard() -> None:
    guide = (STARTERS / "README.md").read_text()
    example = guide.split("```yaml\n")[1].split("```")[0]
    loaded = load_text(example, Path("README.md"))
    assert loaded.ok, loaded.problems
    fake = FakeGrafanaAPI(dashboards=load_dashboards(dashboard_files()))
    async with serve(fake.app()) as grafana_url:
        validation = await validate_files([loaded], make_settings(grafana_url=grafana_url))
    assert validation.problems == []
