"""Every PromQL expression of every dashboard and alert rule parses in the real Prometheus."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.grafana.dashboards import (
    RULE_FILES,
    Query,
    dashboard_files,
    load,
    queries,
    rule_queries,
)
from tests.grafana.query import Answer, ask_all

pytestmark = pytest.mark.integration

DASHBOARDS = [pytest.param(path, id=path.stem) for path in dashboard_files()]


def failures(answers: list[Answer]) -> list[str]:
    return [
        f"{a.query.where}: {a.error_type}: {a.error}\n      {a.query.expr}"
        for a in answers
        if a.status != "success"
    ]


@pytest.mark.parametrize("path", DASHBOARDS)
def test_dashboard_queries_parse(demo_prometheus_url: str, path: Path) -> None:
    problems = failures(ask_all(demo_prometheus_url, queries(load(path))))
    assert not problems, "\n  ".join(["Prometheus rejected:", *problems])


@pytest.mark.parametrize("path", RULE_FILES)
def test_rule_exprs_parse(demo_prometheus_url: str, path: Path | None) -> None:
    problems = failures(ask_all(demo_prometheus_url, rule_queries(path)))
    assert not problems, "\n  ".join(["Prometheus rejected:", *problems])


def test_a_syntax_error_is_reported_with_the_panel_and_prometheus_message(
    demo_prometheus_url: str,
) -> None:
    broken = Query("inferwatch-vllm", "KV cache usage", "A", "max by (x) (y", "", False)
    (problem,) = failures(ask_all(demo_prometheus_url, [broken]))
    assert "inferwatch-vllm / 'KV cache usage' / A: bad_data:" in problem
    assert "parse error" in problem
