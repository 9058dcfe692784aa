"""Dashboard lint: each check takes one dashboard's JSON model and returns its problems."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from typing import Any

from mcp_server.grafana.templating import referenced_variables
from tests.grafana.dashboards import (
    DATASOURCE_REF,
    DATASOURCE_UID,
    EVENT_ONLY,
    Dashboard,
    panels,
)
from tests.grafana.promql import metric_names

NUMERIC_PANELS = frozenset(
    {"timeseries", "stat", "gauge", "bargauge", "table", "state-timeline", "barchart", "piechart"}
)
# Grafana unit ids (packages/grafana-data/src/valueFormats/categories.ts) the dashboards may use;
# add one here after checking it there.
KNOWN_UNITS = frozenset(
    {
        "none",
        "short",
        "percent",
        "percentunit",
        "bytes",
        "decbytes",
        "Bps",
        "bps",
        "s",
        "ms",
        "dtdurations",
        "hertz",
        "celsius",
        "watt",
        "kwatth",
        "joule",
        "currencyUSD",
        "reqps",
        "ops",
        "cps",
        "dateTimeAsIso",
        "dateTimeFromNow",
    }
)
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:\\.|[^"\\])*)"')


def check_identity(dashboard: Dashboard, expected_uid: str) -> list[str]:
    problems = []
    if dashboard.get("uid") != expected_uid:
        problems.append(f"uid is {dashboard.get('uid')!r}, expected {expected_uid!r}")
    if not str(dashboard.get("title") or "").strip():
        problems.append("dashboard has no title")
    if "inferwatch" not in (dashboard.get("tags") or []):
        problems.append(f"tags {dashboard.get('tags')!r} lack 'inferwatch'")
    if not isinstance(dashboard.get("schemaVersion"), int) or dashboard["schemaVersion"] < 41:
        problems.append(f"schemaVersion {dashboard.get('schemaVersion')!r} is not a 12.x/13.x one")
    return problems


def check_panels(dashboard: Dashboard) -> list[str]:
    """Ids unique, titles present and unique, units, grid positions, targets."""
    problems = []
    all_panels = list(panels(dashboard))
    ids = Counter(p.get("id") for p in all_panels)
    problems += [f"panel id {i!r} used {n} times" for i, n in ids.items() if n > 1 or i is None]
    titles = Counter(str(p.get("title") or "").strip() for p in all_panels)
    problems += [f"panel title {t!r} used {n} times" for t, n in titles.items() if n > 1 and t]
    for panel in all_panels:
        name = f"panel {panel.get('id')} {panel.get('title')!r}"
        if not str(panel.get("title") or "").strip():
            problems.append(f"panel {panel.get('id')} has no title")
        grid = panel.get("gridPos") or {}
        if not all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")):
            problems.append(f"{name}: gridPos {grid!r} incomplete")
        elif grid["x"] + grid["w"] > 24:
            problems.append(f"{name}: gridPos {grid!r} is wider than the 24-column grid")
        if panel.get("type") == "row":
            continue
        unit = ((panel.get("fieldConfig") or {}).get("defaults") or {}).get("unit")
        if panel.get("type") in NUMERIC_PANELS:
            if not unit:
                problems.append(f"{name}: no unit")
            elif unit not in KNOWN_UNITS:
                problems.append(f"{name}: unit {unit!r} is not in KNOWN_UNITS")
        for override in (panel.get("fieldConfig") or {}).get("overrides") or []:
            for prop in override.get("properties") or []:
                if prop.get("id") == "unit" and prop.get("value") not in KNOWN_UNITS:
                    problems.append(f"{name}: override unit {prop.get('value')!r} unknown")
        targets = panel.get("targets") or []
        if not targets:
            problems.append(f"{name}: no queries")
        refs = Counter(t.get("refId") for t in targets)
        problems += [f"{name}: refId {r!r} used {n} times" for r, n in refs.items() if n > 1]
        problems += [f"{name}: a target has no expr" for t in targets if not t.get("expr")]
        problems += check_thresholds(name, panel)
    return problems + check_overlaps(dashboard)


def check_overlaps(dashboard: Dashboard) -> list[str]:
    """No two panels share grid cells (the top level, and inside each collapsed row)."""
    top = list(dashboard.get("panels") or [])
    layers = [top, *[p.get("panels") or [] for p in top if p.get("collapsed")]]
    problems = []
    for layer in layers:
        taken: dict[tuple[int, int], str] = {}
        for panel in layer:
            grid = panel.get("gridPos") or {}
            if not all(isinstance(grid.get(k), int) for k in ("x", "y", "w", "h")):
                continue
            for x in range(grid["x"], grid["x"] + grid["w"]):
                for y in range(grid["y"], grid["y"] + grid["h"]):
                    other = taken.setdefault((x, y), str(panel.get("title")))
                    if other != panel.get("title"):
                        problems.append(f"panels {other!r} and {panel.get('title')!r} overlap")
                        break
                else:
                    continue
                break
    return problems


def check_thresholds(name: str, panel: dict[str, Any]) -> list[str]:
    defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
    steps = (defaults.get("thresholds") or {}).get("steps") or []
    if not steps:
        return [f"{name}: no thresholds"]
    if steps[0].get("value") is not None:
        return [f"{name}: the first threshold step must be the base (value null)"]
    values = [s.get("value") for s in steps[1:]]
    if any(not isinstance(v, int | float) for v in values) or values != sorted(values):
        return [f"{name}: threshold values {values!r} are not ascending numbers"]
    return []


def check_datasources(dashboard: Dashboard) -> list[str]:
    """Only the datasource variable (or the provisioned uid) is ever referenced."""
    problems = []
    for path, value in _walk(dashboard, "$"):
        if not path.endswith(".datasource") or value is None:
            continue
        uid = value.get("uid") if isinstance(value, dict) else value
        if uid not in ("${datasource}", DATASOURCE_UID):
            problems.append(f"{path}: datasource {value!r} is hard-coded")
    variables = (dashboard.get("templating") or {}).get("list") or []
    source = [v for v in variables if v.get("name") == "datasource"]
    if (
        not source
        or source[0].get("type") != "datasource"
        or source[0].get("query") != "prometheus"
    ):
        problems.append("no 'datasource' variable of type datasource with query 'prometheus'")
    for panel in panels(dashboard):
        if panel.get("type") == "row":
            continue
        if panel.get("datasource") != DATASOURCE_REF:
            problems.append(f"panel {panel.get('title')!r}: datasource is not {DATASOURCE_REF}")
        for target in panel.get("targets") or []:
            if target.get("datasource") != DATASOURCE_REF:
                problems.append(
                    f"panel {panel.get('title')!r} {target.get('refId')}: datasource is not "
                    f"{DATASOURCE_REF}"
                )
    return problems


def check_variables(dashboard: Dashboard) -> list[str]:
    """Every variable used is defined; multi-value ones only appear in regex matchers."""
    problems = []
    variables = {
        str(v.get("name")): v for v in (dashboard.get("templating") or {}).get("list") or []
    }
    multi = {n for n, v in variables.items() if v.get("multi") or v.get("includeAll")}
    exprs = [
        (f"panel {p.get('title')!r} {t.get('refId')}", str(t.get("expr") or ""))
        for p in panels(dashboard)
        for t in p.get("targets") or []
    ]
    exprs += [(f"variable {n}", str(v.get("definition") or "")) for n, v in variables.items()]
    for where, expr in exprs:
        for name in sorted(referenced_variables(expr) - set(variables)):
            problems.append(f"{where}: uses ${name}, which the dashboard does not define")
        for label, op, value in _MATCHER.findall(expr):
            used = referenced_variables(value) & multi
            if used and op in ("=", "!="):
                problems.append(
                    f'{where}: {label}{op}"{value}" uses multi-value ${sorted(used)[0]}: '
                    "Grafana regex-escapes it, so use =~ or !~"
                )
    return problems


def check_event_only(dashboard: Dashboard) -> list[str]:
    """The marker starts the description, so it reads as a note to the person too."""
    problems = []
    for panel in panels(dashboard):
        description = str(panel.get("description") or "")
        if EVENT_ONLY in description and not description.startswith(EVENT_ONLY):
            problems.append(f"panel {panel.get('title')!r}: put {EVENT_ONLY!r} first")
    return problems


def event_only_titles(dashboard: Dashboard) -> list[str]:
    return [
        str(p.get("title"))
        for p in panels(dashboard)
        if EVENT_ONLY in str(p.get("description") or "")
    ]


def metric_names_of(dashboard: Dashboard) -> set[str]:
    names: set[str] = set()
    for panel in panels(dashboard):
        for target in panel.get("targets") or []:
            names |= metric_names(str(target.get("expr") or ""))
    return names


def _walk(node: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", value
            yield from _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")
