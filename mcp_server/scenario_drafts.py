"""A first scenario for a dashboard, drafted from its panels, titles and queries.

The draft is YAML with comments, meant to be edited: panel-state checks, one PromQL check per
panel built from the panel's own query ("it returns data"), commented range checks suggested by
the panel's unit, and one expectation per panel phrased so it can be checked on a screenshot.
Panels that show events (errors, restarts, Xid...) are empty when all is well: they are listed
under ``no_empty_panels.except`` and get no "returns data" check. The draft always validates.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mcp_server.grafana.errors import PanelNotFound
from mcp_server.grafana.models import DashboardSpec, PanelSpec, Variable
from mcp_server.scenario_loader import load_text
from mcp_server.scenario_model import SLUG_PATTERN, TimeRange, promql_structure_problem

# Words in a title or query that mark a panel of events: empty ("No data") when all is well.
_EVENT_WORDS = re.compile(
    r"error|xid|restart|fail|reject|evict|oom|preempt|abort|timeout|alert|event|throttl|"
    r"crash|exception|dropped|5xx|429",
    re.IGNORECASE,
)
_NO_DATA_TYPES = {"text", "news", "dashlist", "alertlist", "annolist", "row", "welcome"}

# Grafana's built-in interval variables, replaced by a fixed value a plain query can use.
_BUILTINS = {
    "__rate_interval": "5m",
    "__interval": "1m",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "__interval_ms": "60000",
    "__auto": "1m",
}
_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)(?::\w+)?\]\]")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"\\]*(?:\\.[^"\\]*)*)"')


@dataclass(frozen=True)
class Suggestion:
    """What the draft says about one panel."""

    panel: PanelSpec
    query: str | None
    why_no_query: str | None
    events: bool


def draft_scenario(
    spec: DashboardSpec, panels: Sequence[str] | None = None, *, name: str | None = None
) -> str:
    """The YAML text of a scenario for ``spec`` (only ``panels`` when given), ready to edit.

    Raises PanelNotFound when a title in ``panels`` is not on the dashboard.
    """
    chosen = _chosen_panels(spec, panels)
    span = re.fullmatch(r"now-(\d+[smhdwy])", spec.time_from)
    suggestions = [_suggest(panel, span.group(1) if span else "1h") for panel in chosen]
    text = _render(spec, suggestions, panels, name or _draft_name(spec.uid))
    loaded = load_text(text, Path("<draft>"))
    if not loaded.ok:  # a bug here, never the user's fault: say what broke
        raise AssertionError("draft does not validate:\n" + "\n".join(map(str, loaded.problems)))
    return text


def _chosen_panels(spec: DashboardSpec, panels: Sequence[str] | None) -> list[PanelSpec]:
    shown = [panel for panel in spec.panels if panel.title and panel.type not in _NO_DATA_TYPES]
    if not panels:
        return shown
    by_title = {panel.title: panel for panel in shown}
    missing = [title for title in panels if title not in by_title]
    if missing:
        raise PanelNotFound(spec.uid, missing[0], [panel.title for panel in shown])
    return [by_title[title] for title in dict.fromkeys(panels)]


def _draft_name(uid: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", uid.lower()).strip("-") or "dashboard"
    name = f"{slug}-draft"
    assert re.match(SLUG_PATTERN, name), name
    return name


def _suggest(panel: PanelSpec, span: str) -> Suggestion:
    events = bool(_EVENT_WORDS.search(panel.title)) or any(
        _EVENT_WORDS.search(target.expr) and "increase(" in target.expr for target in panel.targets
    )
    exprs = [target.expr for target in panel.targets if target.expr.strip()]
    if not exprs:
        return Suggestion(panel, None, "it has no PromQL query", events)
    query, why = plain_query(exprs[0], span)
    return Suggestion(panel, query, why, events)


def plain_query(expr: str, span: str = "1h") -> tuple[str | None, str | None]:
    """A panel's query with Grafana's variables replaced so Prometheus can run it as is.

    Interval variables become fixed durations (``$__range`` becomes ``span``); a label
    matcher on a variable is dropped (it would select everything), or becomes ``=~".+"``
    where the selector needs one.
    Returns (query, None), or (None, why it cannot be done).
    """

    query = _drop_variable_matchers(expr)

    def builtin(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name == "__range":
            return span
        return _BUILTINS.get(name, match.group(0))

    query = _VARIABLE.sub(builtin, query).strip()
    left = _VARIABLE.search(query)
    if left:
        return None, f"its query uses the variable {left.group(0)} outside a label matcher"
    problem = promql_structure_problem(query)
    if problem:
        return None, f"its query does not parse here ({problem})"
    return " ".join(query.split()), None


def _drop_variable_matchers(expr: str) -> str:
    """``up{job=~"$job", x="1"}`` -> ``up{x="1"}``: a variable's matcher selects everything."""

    def keep(match: re.Match[str]) -> str:
        return "" if _VARIABLE.search(match.group(3)) else match.group(0)

    dropped = _MATCHER.sub(keep, expr)
    dropped = re.sub(r"\{(?:\s*,)+\s*", "{", dropped)
    dropped = re.sub(r"\s*,(?:\s*,)+", ",", dropped)
    dropped = re.sub(r"\s*,\s*\}", "}", dropped)
    dropped = re.sub(r"(\w)\{\s*\}", r"\1", dropped)
    if re.search(r"\{\s*\}", dropped):  # a selector with no metric name needs one matcher
        return _MATCHER.sub(
            lambda m: f'{m.group(1)}=~".+"' if _VARIABLE.search(m.group(3)) else m.group(0), expr
        )
    return dropped


# --- rendering ----------------------------------------------------------------------------------

# unit -> (range every series should be in, how the values read on screen)
_UNIT_RANGES = {
    "percent": ("between 0 and 100", "with values between 0 and 100 %"),
    "percentunit": ("between 0 and 1", "with values between 0 and 100 %"),
    "celsius": ("between 0 and 110", "with temperatures in °C below 90"),
    "watt": (">= 0", "with values in watts"),
    "bytes": (">= 0", "with values in bytes (KiB, MiB, GiB)"),
    "decbytes": (">= 0", "with values in bytes (kB, MB, GB)"),
    "mbytes": (">= 0", "with values in MB or GB"),
    "s": (">= 0", "with values in seconds"),
    "ms": (">= 0", "with values in milliseconds"),
    "reqps": (">= 0", "with values in requests per second"),
    "cps": (">= 0", "with values per second"),
    "Bps": (">= 0", "with values in bytes per second (B/s, kB/s, MB/s)"),
    "binBps": (">= 0", "with values in bytes per second (B/s, KiB/s, MiB/s)"),
    "hertz": (">= 0", "with values in Hz (MHz, GHz)"),
    "kwatth": (">= 0", "with values in kWh"),
    "ops": (">= 0", "with values in operations per second"),
    "short": (">= 0", ""),
    "none": (">= 0", ""),
    "currencyUSD": (">= 0", "with amounts in US dollars"),
}


def _render(
    spec: DashboardSpec, suggestions: list[Suggestion], panels: Sequence[str] | None, name: str
) -> str:
    out: list[str] = [
        "# yaml-language-server: $schema=./schema.json",
        f"# Drafted by `inferwatch-scenarios new` from the dashboard {spec.title!r} ({spec.uid}).",
        "# Keep what matters, make each expectation something a person can check on the",
        "# screenshot, delete the rest. Then: inferwatch-scenarios validate <this file>",
        f"name: {name}",
        f"description: {_block_text(spec.title + ' shows live data on every panel (drafted)')}",
        f"dashboard: {spec.uid}",
        f"time: {{from: {_time(spec.time_from, 'now-1h')}, to: {_time(spec.time_to, 'now')}}}",
    ]
    out.extend(_variables(spec.variables))
    out += [
        "viewport: {width: 1600, height: 1000}",
        "tags: [nightly]",
        "severity: advisory                  # make it blocking once it has proved stable",
    ]
    titles = [suggestion.panel.title for suggestion in suggestions]
    if panels:
        out.append(f"panels: {_flow(titles)}")
    else:
        out.append(
            "# panels: [...]                  # judge these one by one; omit = whole dashboard"
        )
    out.append("checks:")
    out.append("  - no_panel_errors: {}")
    empty_ok = [suggestion.panel.title for suggestion in suggestions if suggestion.events]
    if empty_ok:
        out.append("  # Event panels: empty ('No data') when all is well.")
        out.append(f"  - no_empty_panels: {{except: {_flow(empty_ok)}}}")
    else:
        out.append("  - no_empty_panels: {}")
    out.append("  - no_loading_panels: {}")
    for suggestion in suggestions:
        out.extend(_check_lines(suggestion))
    out.append("expect:")
    for suggestion in suggestions:
        out.extend(_expectation_lines(suggestion))
    return "\n".join(out) + "\n"


def _check_lines(suggestion: Suggestion) -> list[str]:
    panel = suggestion.panel
    unit = f", unit {panel.unit}" if panel.unit else ""
    lines = [f"  # {panel.title} ({panel.type}{unit})"]
    if suggestion.query is None:
        lines.append(f"  #   no PromQL suggestion: {suggestion.why_no_query}")
        return lines
    query = suggestion.query
    if suggestion.events:
        lines += [
            "  #   an event panel; to require that nothing happened:",
            f"  # - promql: {_quoted(f'sum({query}) or vector(0)')}",
            '  #   expect: "== 0"',
        ]
        return lines
    bounds = _UNIT_RANGES.get(panel.unit or "")
    if _single_value(query):
        expect = ">= 1" if query.startswith("count") else bounds[0] if bounds else ">= 0"
        return [*lines, f"  - promql: {_quoted(query)}", f"    expect: {json.dumps(expect)}"]
    lines += [f"  - promql: {_quoted(f'count({query})')}", '    expect: ">= 1"']
    if bounds:
        lines += [
            "  #   every series in range:",
            f"  # - promql: {_quoted(query)}",
            "  #   for_every_series: true",
            f"  #   expect: {json.dumps(bounds[0])}",
        ]
    return lines


def _single_value(query: str) -> bool:
    """Whether the query is one aggregation over everything (``sum(...)``, no ``by``)."""
    match = re.match(r"^(?:sum|avg|min|max|count)\s*\(", query)
    if match is None:
        return False
    depth = 0
    for index in range(match.end() - 1, len(query)):
        depth += {"(": 1, ")": -1}.get(query[index], 0)
        if depth == 0:
            return index == len(query) - 1
    return False


def _expectation_lines(suggestion: Suggestion) -> list[str]:
    panel = suggestion.panel
    title = panel.title
    named = f'The "{title}"'
    if suggestion.events:
        return [f"  - {_block_text(f'{named} panel shows no events, or says No data')}"]
    words = _UNIT_RANGES.get(panel.unit or "", (None, ""))[1]
    unit = f", {words}" if words else ""
    line = f"{named} panel draws at least one line reaching the right edge (recent data){unit}"
    phrase = {
        "timeseries": line,
        "graph": line,
        "stat": f"{named} stat shows a number{unit}",
        "gauge": f"{named} gauge shows a value{unit}",
        "bargauge": f"{named} panel shows at least one bar{unit}",
        "table": f"{named} table lists at least one row",
        "piechart": f"{named} pie chart shows at least one slice",
        "heatmap": f"{named} heatmap shows coloured cells up to the right edge",
        "state-timeline": f"{named} panel shows at least one state band",
        "status-history": f"{named} panel shows at least one row of states",
        "barchart": f"{named} panel shows at least one bar",
    }.get(panel.type, f"{named} panel shows data{unit}")
    return [f"  - {_block_text(phrase)}"]


# Variables a scenario leaves alone: fixed, or not about what the panels show.
_UNSET_VARIABLE_TYPES = {"constant", "interval", "textbox", "adhoc", "datasource"}


def _variables(variables: Sequence[Variable]) -> list[str]:
    chosen: dict[str, list[str]] = {}
    skipped: list[str] = []
    for variable in variables:
        if variable.type in _UNSET_VARIABLE_TYPES or not variable.name:
            continue
        values = ["all" if value in ("$__all", "All") else value for value in variable.current]
        if variable.include_all and not values:
            values = ["all"]
        if values and re.match(r"^[A-Za-z_]\w*$", variable.name):
            chosen[variable.name] = values
        else:
            skipped.append(variable.name)
    lines = []
    if chosen:
        parts = ", ".join(f"{name}: {_flow(values)}" for name, values in chosen.items())
        lines.append(f"variables: {{{parts}}}")
    for name in skipped:
        lines.append(f"# variables: {{{name}: [...]}}   # pick the values to show")
    return lines


def _time(value: str, fallback: str) -> str:
    try:
        TimeRange.model_validate({"from": value, "to": value})
    except ValueError:
        return fallback
    return _quoted(value)


def _flow(values: Sequence[str]) -> str:
    return "[" + ", ".join(_quoted(value) for value in values) + "]"


_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9 ._/()%-]*$")


def _quoted(text: str) -> str:
    """``text`` as a YAML scalar: plain when that is unambiguous, else double-quoted."""
    if _PLAIN.match(text) and not text.endswith(" ") and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text, ensure_ascii=False)


def _block_text(text: str) -> str:
    """``text`` as a list item in block context: plain unless YAML would read it otherwise."""
    plain = (
        text[:1].isalpha()
        and ": " not in text
        and " #" not in text
        and text == text.strip()
        and "\n" not in text
        and text.lower() not in _YAML_WORDS
    )
    return text if plain else json.dumps(text, ensure_ascii=False)


_YAML_WORDS = {"yes", "no", "on", "off", "true", "false", "null", "none", "~"}
