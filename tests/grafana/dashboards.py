"""The shipped dashboards as the checks see them: files, panels (rows flattened), queries.

Every query is expanded the way Grafana would run it in the tests' stack: variables at their
saved value ("All" where they offer it), ``$__interval`` 1 s and a 1 s scrape interval (the test
Prometheus scrapes every second), so ``$__rate_interval`` is 4 s; ``$__range`` is 5 minutes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from mcp_server.grafana.templating import ALL, dashboard_variables, expand
from tests.grafana.promql import variable_selector

REPO = Path(__file__).resolve().parents[2]
DASHBOARDS = REPO / "grafana" / "dashboards"
PROVISIONING = REPO / "grafana" / "provisioning"
RULES = REPO / "prometheus" / "rules"

DATASOURCE_UID = "inferwatch-prometheus"
DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
EVENT_ONLY = "Event-only:"
UIDS = {
    "overview.json": "inferwatch-overview",
    "gpus.json": "inferwatch-gpus",
    "vllm.json": "inferwatch-vllm",
    "litellm.json": "inferwatch-litellm",
    "langfuse.json": "inferwatch-langfuse",
    "containers.json": "inferwatch-containers",
    "models.json": "inferwatch-models",
}

TEST_INTERVAL_SECONDS = 1.0
TEST_SCRAPE_INTERVAL_SECONDS = 1.0
TEST_RANGE_SECONDS = 300.0

Dashboard = Mapping[str, Any]


@dataclass(frozen=True)
class Query:
    """One PromQL expression a dashboard runs: a panel target, or a variable's selector."""

    dashboard: str
    panel: str
    ref: str
    expr: str
    legend: str
    event_only: bool

    @property
    def where(self) -> str:
        return f"{self.dashboard} / {self.panel!r} / {self.ref}"


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def load_all() -> dict[str, dict[str, Any]]:
    """Every dashboard by uid."""
    dashboards = {}
    for path in dashboard_files():
        data = load(path)
        dashboards[str(data.get("uid") or path.name)] = data
    return dashboards


def panels(dashboard: Dashboard) -> Iterator[dict[str, Any]]:
    """Every panel, rows and the panels inside collapsed rows included."""
    for panel in dashboard.get("panels") or []:
        yield panel
        yield from panel.get("panels") or []


def queries(dashboard: Dashboard) -> list[Query]:
    """Every panel target and variable selector, expanded for the test stack."""
    uid = str(dashboard.get("uid"))
    found = []
    for panel in panels(dashboard):
        event_only = EVENT_ONLY in str(panel.get("description") or "")
        for target in panel.get("targets") or []:
            found.append(
                Query(
                    dashboard=uid,
                    panel=str(panel.get("title")),
                    ref=str(target.get("refId")),
                    expr=expand_for_tests(dashboard, str(target.get("expr") or "")),
                    legend=str(target.get("legendFormat") or ""),
                    event_only=event_only,
                )
            )
    for variable in (dashboard.get("templating") or {}).get("list") or []:
        selector = variable_selector(str(variable.get("definition") or ""))
        if variable.get("type") == "query" and selector:
            found.append(
                Query(
                    dashboard=uid,
                    panel=f"variable {variable.get('name')}",
                    ref="query",
                    expr=expand_for_tests(dashboard, selector),
                    legend="",
                    event_only=False,
                )
            )
    return found


def expand_for_tests(dashboard: Dashboard, expr: str) -> str:
    settings = dashboard_variables(dashboard)
    names = {
        str(v.get("name"))
        for v in (dashboard.get("templating") or {}).get("list") or []
        if v.get("type") != "datasource"
    }
    values = {name: list(settings.defaults.get(name) or [ALL]) for name in names}
    return expand(
        expr,
        values,
        interval_seconds=TEST_INTERVAL_SECONDS,
        range_seconds=TEST_RANGE_SECONDS,
        scrape_interval_seconds=TEST_SCRAPE_INTERVAL_SECONDS,
        all_value=settings.all_value,
        plain=settings.plain,
    )


def rule_queries(path: Path | None) -> list[Query]:
    """Every rule expr of a rules file (``None``: there are none yet, so the test skips)."""
    if path is None:
        pytest.skip(f"no rule files in {RULES.relative_to(REPO)}/: nothing to check yet")
    found = [
        Query(path.name, name, "expr", expr, "", event_only=False)
        for name, expr in rule_exprs(path)
    ]
    if not found:
        pytest.fail(f"{path.relative_to(REPO)} has no rules")
    return found


def rule_files() -> list[Path]:
    return sorted([*RULES.glob("*.yml"), *RULES.glob("*.yaml")]) if RULES.is_dir() else []


def rule_exprs(path: Path) -> list[tuple[str, str]]:
    """(rule name, expr) for every rule in a Prometheus rules file."""
    document = yaml.safe_load(path.read_text()) or {}
    found = []
    for group in document.get("groups") or []:
        for rule in group.get("rules") or []:
            name = str(rule.get("alert") or rule.get("record") or "?")
            found.append((f"{group.get('name')} / {name}", str(rule.get("expr") or "")))
    return found


RULE_FILES = [pytest.param(path, id=path.name) for path in rule_files()] or [
    pytest.param(None, id="rules")
]
