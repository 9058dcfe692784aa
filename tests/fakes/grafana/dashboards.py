"""The stand-in's view of dashboard JSON: loading, rows, variables and time ranges as Grafana
reads them."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

JSON = dict[str, Any]

# The provisioned Prometheus datasource (grafana/provisioning/datasources).
DATASOURCE_UID = "inferwatch-prometheus"
DEFAULT_RANGE = ("now-6h", "now")


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    tags: tuple[str, ...]
    model: JSON
    path: Path

    @property
    def slug(self) -> str:
        return slugify(self.title)

    @property
    def url(self) -> str:
        return f"/d/{self.uid}/{self.slug}"


def slugify(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def load_dashboards(folders: Iterable[Path]) -> dict[str, Dashboard]:
    """Every ``*.json`` with a uid in the folders that exist (later folders win on a clash)."""
    found: dict[str, Dashboard] = {}
    for folder in folders:
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.json")):
            model = json.loads(path.read_text())
            # A file may hold the dashboard itself or an API-style {"dashboard": {...}} wrapper.
            model = model.get("dashboard", model)
            uid = model.get("uid")
            if not isinstance(uid, str) or not uid:
                continue
            found[uid] = Dashboard(
                uid=uid,
                title=str(model.get("title", uid)),
                tags=tuple(str(tag) for tag in model.get("tags", [])),
                model=model,
                path=path,
            )
    return found


def visible_panels(model: JSON) -> list[JSON]:
    """Panels a person sees on load: top-level panels and rows; a collapsed row hides its own."""
    return [panel for panel in model.get("panels", []) if isinstance(panel, dict)]


def all_panels(model: JSON) -> list[JSON]:
    """Every panel, the ones inside collapsed rows included (what /d-solo can show)."""
    panels: list[JSON] = []
    for panel in visible_panels(model):
        panels.append(panel)
        panels.extend(p for p in panel.get("panels", []) if isinstance(p, dict))
    return panels


def find_panel(model: JSON, panel_id: int) -> JSON | None:
    return next((p for p in all_panels(model) if p.get("id") == panel_id), None)


def _current_values(variable: JSON) -> list[str]:
    current = variable.get("current") or {}
    value = current.get("value", current.get("text"))
    if value is None:
        options = variable.get("options") or []
        value = options[0].get("value") if options else None
    if value is None:
        return []
    return [str(v) for v in value] if isinstance(value, list) else [str(value)]


def variable_values(model: JSON, from_url: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Each template variable's values: ``var-NAME`` from the URL, else the dashboard's current."""
    values: dict[str, list[str]] = {}
    for variable in (model.get("templating") or {}).get("list", []):
        name = variable.get("name")
        if not isinstance(name, str):
            continue
        if name in from_url:
            values[name] = list(from_url[name])
        elif variable.get("type") == "datasource":
            values[name] = [DATASOURCE_UID]
        else:
            values[name] = _current_values(variable)
    for name, given in from_url.items():
        values.setdefault(name, list(given))
    return values


_RELATIVE = re.compile(r"^now(?:-(\d+)([smhdwMy]))?$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "M": 2592000, "y": 31536000}


def parse_time(value: str, now_ms: int | None = None) -> int | None:
    """Epoch ms for ``now``, ``now-6h`` or epoch ms; None for anything else."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if value.isdigit():
        return int(value)
    match = _RELATIVE.match(value)
    if match is None:
        return None
    amount, unit = match.groups()
    return now_ms - (int(amount) * _UNIT_SECONDS[unit] * 1000 if amount else 0)


def time_range(model: JSON, from_url: str | None, to_url: str | None) -> tuple[int, int]:
    now_ms = int(time.time() * 1000)
    default = model.get("time") or {}
    start = parse_time(from_url or str(default.get("from", DEFAULT_RANGE[0])), now_ms)
    end = parse_time(to_url or str(default.get("to", DEFAULT_RANGE[1])), now_ms)
    if start is None or end is None or start >= end:
        start, end = now_ms - 6 * 3600 * 1000, now_ms
    return start, end


def interpolate_text(text: str, values: Mapping[str, Sequence[str]]) -> str:
    """``$name`` and ``${name}`` in titles, as Grafana shows them (values joined by ' + ')."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            return match.group(0)
        shown = ["All" if v == "$__all" else v for v in values[name]]
        return " + ".join(shown)

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", one, text)
