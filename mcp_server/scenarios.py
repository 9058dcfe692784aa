"""Scenario files: the model, the loader, and validation against the live stack.

The model lives in ``scenario_model`` and the YAML loader (positions kept) in ``scenario_loader``;
this module adds the checks that need the running stack and is what the CLI, the MCP tools, the
runner and the pytest plugin import:

- PromQL is always checked offline for its structure; when Prometheus answers, it parses each
  query for real (a 400 ``bad_data`` is reported at the query's line).
- Dashboard uids, panel titles and variable names are checked when Grafana answers; when it does
  not, validation says it skipped them (a note), unless Grafana is required.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mcp_server.agent_client import UpstreamError
from mcp_server.grafana.api import GrafanaAPI
from mcp_server.grafana.errors import DashboardNotFound, GrafanaError
from mcp_server.grafana.models import DashboardSpec
from mcp_server.prometheus import PrometheusClient, PrometheusQueryError, QueryRefused
from mcp_server.scenario_loader import (
    Problem,
    ScenarioFile,
    discover,
    load_file,
    load_paths,
    load_text,
)
from mcp_server.scenario_model import (
    CHECK_KINDS,
    Comparator,
    NoEmptyPanelsCheck,
    PromQLCheck,
    Scenario,
    json_schema,
    parse_comparator,
)
from mcp_server.settings import Settings

__all__ = [
    "CHECK_KINDS",
    "Comparator",
    "Problem",
    "Scenario",
    "ScenarioFile",
    "Validation",
    "discover",
    "json_schema",
    "load_file",
    "load_paths",
    "load_text",
    "parse_comparator",
    "schema_text",
    "validate_files",
    "validate_paths",
]

# Validation asks quickly: an unreachable service must not make `validate` slow.
ONLINE_TIMEOUT_SECONDS = 3.0
MAX_PARALLEL_QUERIES = 4


@dataclass
class Validation:
    """The files as loaded, every problem in them, and what could not be checked (notes)."""

    files: list[ScenarioFile]
    notes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[Problem]:
        return [problem for loaded in self.files for problem in _ordered(loaded.problems)]

    @property
    def errors(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def scenarios(self) -> list[Scenario]:
        return [loaded.scenario for loaded in self.files if loaded.scenario is not None]


def _ordered(problems: Iterable[Problem]) -> list[Problem]:
    return sorted(problems, key=lambda problem: (problem.line, problem.col))


async def validate_files(
    files: Sequence[ScenarioFile],
    settings: Settings | None,
    *,
    require_grafana: bool = False,
) -> Validation:
    """Add the online checks to loaded files. ``settings=None``: offline (structure only)."""
    validation = Validation(list(files))
    loaded = [item for item in files if item.scenario is not None]
    if settings is None:
        validation.notes.append(
            "offline: PromQL checked for structure only; dashboards and panels not checked"
        )
        return validation
    prometheus_note, grafana_note = await asyncio.gather(
        _check_promql(loaded, settings), _check_grafana(loaded, settings, require_grafana)
    )
    validation.notes.extend(note for note in (prometheus_note, grafana_note) if note)
    return validation


async def validate_paths(
    paths: Iterable[Path], settings: Settings | None, *, require_grafana: bool = False
) -> Validation:
    return await validate_files(load_paths(paths), settings, require_grafana=require_grafana)


# --- Prometheus ---------------------------------------------------------------------------------


async def _check_promql(files: Sequence[ScenarioFile], settings: Settings) -> str | None:
    queries = [
        (loaded, index, check) for loaded in files for index, check in _promql_checks(loaded)
    ]
    if not queries:
        return None
    upstream = settings.upstream.model_copy(
        update={
            "http_timeout_seconds": min(
                settings.upstream.http_timeout_seconds, ONLINE_TIMEOUT_SECONDS
            )
        }
    )
    client = PrometheusClient(upstream)
    unreachable: list[str] = []
    gate = asyncio.Semaphore(MAX_PARALLEL_QUERIES)

    async def ask(loaded: ScenarioFile, index: int, check: PromQLCheck) -> None:
        if unreachable:
            return
        async with gate:
            if unreachable:
                return
            try:
                await client.query(check.promql)
            except PrometheusQueryError as error:
                rejected = "(bad_data)" in str(error)
                loaded.problems.append(
                    loaded.problem(
                        ("checks", index, "promql"),
                        f"checks[{index}].promql: {error}",
                        severity="error" if rejected else "warning",
                    )
                )
            except QueryRefused as error:
                loaded.problems.append(
                    loaded.problem(("checks", index, "promql"), f"checks[{index}].promql: {error}")
                )
            except UpstreamError as error:
                unreachable.append(str(error))

    try:
        await asyncio.gather(*(ask(*query) for query in queries))
    finally:
        await client.aclose()
    if unreachable:
        return f"PromQL checked for structure only: {unreachable[0]}"
    return None


def _promql_checks(loaded: ScenarioFile) -> list[tuple[int, PromQLCheck]]:
    assert loaded.scenario is not None
    return [
        (index, check)
        for index, check in enumerate(loaded.scenario.checks)
        if isinstance(check, PromQLCheck)
    ]


# --- Grafana ------------------------------------------------------------------------------------


async def _check_grafana(
    files: Sequence[ScenarioFile], settings: Settings, require: bool
) -> str | None:
    if not files:
        return None
    grafana = settings.grafana.model_copy(
        update={
            "http_timeout_seconds": min(
                settings.grafana.http_timeout_seconds, ONLINE_TIMEOUT_SECONDS
            )
        }
    )
    api = GrafanaAPI(grafana)
    dashboards: dict[str, DashboardSpec | DashboardNotFound] = {}
    try:
        for uid in sorted({loaded.scenario.dashboard for loaded in files if loaded.scenario}):
            try:
                dashboards[uid] = await api.dashboard(uid)
            except DashboardNotFound as missing:
                dashboards[uid] = missing
    except GrafanaError as error:
        if not require:
            return (
                f"dashboard uids and panel titles not checked: {error} "
                "(--require-grafana makes this an error)"
            )
        for loaded in files:
            loaded.problems.append(
                loaded.problem(("dashboard",), f"dashboard not checked: {error}")
            )
        return None
    finally:
        await api.aclose()
    for loaded in files:
        assert loaded.scenario is not None
        found = dashboards[loaded.scenario.dashboard]
        if isinstance(found, DashboardNotFound):
            known = ", ".join(sorted(found.known)) or "none"
            loaded.problems.append(
                loaded.problem(
                    ("dashboard",),
                    f"dashboard: Grafana at {settings.grafana.url} has no dashboard with uid "
                    f"{loaded.scenario.dashboard!r}; dashboards: {known}",
                )
            )
        else:
            loaded.problems.extend(_dashboard_problems(loaded, found))
    return None


def _dashboard_problems(loaded: ScenarioFile, spec: DashboardSpec) -> list[Problem]:
    scenario = loaded.scenario
    assert scenario is not None
    titles = [panel.title for panel in spec.panels if panel.title]
    listed = ", ".join(repr(title) for title in titles) or "none"
    problems: list[Problem] = []

    def unknown_panel(loc: tuple[str | int, ...], title: str) -> None:
        problems.append(
            loaded.problem(
                loc,
                f"dashboard {spec.uid!r} has no panel titled {title!r}; panels: {listed}",
            )
        )

    for index, title in enumerate(scenario.panels or []):
        if title not in titles:
            unknown_panel(("panels", index), title)
    for index, check in enumerate(scenario.checks):
        if isinstance(check, NoEmptyPanelsCheck):
            for position, title in enumerate(check.allowed_empty):
                if title not in titles:
                    unknown_panel(("checks", index, "no_empty_panels", "except", position), title)
    names = [variable.name for variable in spec.variables]
    for name in scenario.variables:
        if name not in names:
            problems.append(
                loaded.problem(
                    ("variables", name),
                    f"dashboard {spec.uid!r} has no variable {name!r}; variables: "
                    + (", ".join(names) or "none"),
                    at="key",
                )
            )
    return problems


def schema_text() -> str:
    """The JSON Schema as committed in scenarios/schema.json."""
    return json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n"
