"""After the demo agent has been scraped a few seconds, every panel's queries return series
(panels whose description starts with "Event-only:" are skipped: they show only incidents)."""

from __future__ import annotations

import time

import pytest

from tests.grafana.dashboards import DASHBOARDS as DASHBOARD_DIR
from tests.grafana.dashboards import EVENT_ONLY, Query, load, load_all, panels, queries
from tests.grafana.query import Answer, poll_until

pytestmark = pytest.mark.integration

# One deadline for the whole module: the first panels wait for the stack's first scrapes, the
# rest answer at once; once it has passed, a panel without data fails after a single query.
DEADLINE_SECONDS = 45


@pytest.fixture(scope="module")
def deadline(demo_prometheus_url: str) -> float:
    return time.monotonic() + DEADLINE_SECONDS


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _panel_queries() -> list[object]:
    params: list[object] = []
    for uid, dashboard in load_all().items():
        by_panel: dict[str, list[Query]] = {}
        for query in queries(dashboard):
            by_panel.setdefault(query.panel, []).append(query)
        params += [pytest.param(found, id=f"{uid}/{panel}") for panel, found in by_panel.items()]
    return params


def _has_series(answer: Answer) -> bool:
    return answer.status != "success" or bool(answer.series)


@pytest.mark.parametrize("found", _panel_queries())
def test_panel_has_data(demo_prometheus_url: str, deadline: float, found: list[Query]) -> None:
    if found[0].event_only:
        pytest.skip(f"{found[0].panel!r} is documented as {EVENT_ONLY!r} (no data while healthy)")
    answers = poll_until(demo_prometheus_url, found, _has_series, _left(deadline))
    problems = [
        f"{a.query.where}: "
        + (f"{a.error_type}: {a.error}" if a.status != "success" else "no series")
        + f"\n      {a.query.expr}"
        for a in answers
        if a.status != "success" or not a.series
    ]
    assert not problems, "\n  ".join(["panels without data:", *problems])


def test_event_only_panels_are_skipped_by_title() -> None:
    titles = {p["title"] for d in load_all().values() for p in panels(d) if "description" in p}
    event_only = [q for d in load_all().values() for q in queries(d) if q.event_only]
    assert {q.panel for q in event_only} <= titles
    assert all(EVENT_ONLY in str(p.get("description")) for p in _panels_named(event_only))


def _panels_named(found: list[Query]) -> list[dict[str, object]]:
    names = {(q.dashboard, q.panel) for q in found}
    return [p for uid, d in load_all().items() for p in panels(d) if (uid, p["title"]) in names]


def test_vllm_panels_show_every_engine_of_both_metric_generations(
    demo_prometheus_url: str, deadline: float
) -> None:
    """The demo runs a 0.33 engine (new names) and a 0.10 engine (old names): every per-engine
    vLLM panel must show both, so neither half of an ``or`` can silently break."""
    engines_up = Query("-", "engines", "-", "inferwatch_vllm_instance_up", "", False)
    (engines,) = poll_until(
        demo_prometheus_url, [engines_up], lambda a: len(a.series) >= 2, _left(deadline)
    )
    expected = {str(s["metric"]["vllm_instance"]) for s in engines.series}
    assert len(expected) >= 2, f"the demo should run two vLLM engines, found {expected}"
    per_engine = [
        q
        for name in ("vllm.json", "overview.json")
        for q in queries(load(DASHBOARD_DIR / name))
        if "vllm:" in q.expr and "{{vllm_instance}}" in q.legend
    ]
    assert per_engine

    def shows_every_engine(answer: Answer) -> bool:
        return {str(s["metric"].get("vllm_instance")) for s in answer.series} >= expected

    answers = poll_until(demo_prometheus_url, per_engine, shows_every_engine, _left(deadline))
    missing = [
        f"{a.query.where}: shows {sorted(str(s['metric'].get('vllm_instance')) for s in a.series)}"
        for a in answers
        if not shows_every_engine(a)
    ]
    assert not missing, f"engines {sorted(expected)} expected:\n  " + "\n  ".join(missing)


def test_a_panel_without_data_is_reported(demo_prometheus_url: str) -> None:
    renamed = Query(
        "inferwatch-vllm", "KV cache usage", "A", "vllm:kv_cache_usage_ratio", "", False
    )
    (answer,) = poll_until(demo_prometheus_url, [renamed], _has_series, timeout=0)
    assert answer.status == "success"
    assert not answer.series
