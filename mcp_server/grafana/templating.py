"""Grafana's template variables in a Prometheus query, expanded the way Grafana 13 does it.

Two steps, as in Grafana:

1. The browser replaces dashboard variables (``$var``, ``${var}``, ``${var:format}``,
   ``[[var]]``). Without a format, Prometheus' own formatter applies: a single-value variable
   without "All" is only quote-escaped; a multi-value or "All" variable is regex-escaped for a
   PromQL string (``a.b`` -> ``a\\\\.b``) and several values become ``(a|b)``, so such variables
   belong in ``=~`` matchers. "All" becomes the variable's custom ``allValue`` unescaped, or
   ``.*`` (Grafana would list every option; for a regex matcher that selects the same series).
2. Grafana's server replaces the built-in interval and range variables (``$__interval``,
   ``$__interval_ms``, ``$__range``, ``$__range_s``, ``$__range_ms``, ``$__rate_interval``,
   ``$__rate_interval_ms`` and their ``${...}`` forms), with
   ``$__rate_interval = max($__interval + scrape interval, 4 x scrape interval)``.

Variables not given are left as written, as Grafana leaves unknown variables.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

ALL = "$__all"
"""The value Grafana stores when "All" is selected."""

DEFAULT_SCRAPE_INTERVAL_SECONDS = 15.0
"""Grafana's scrape interval for a Prometheus data source without ``timeInterval``."""

# Grafana's variable syntax (templateSrv): $var | [[var:format]] | ${var.fieldPath:format}
_VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}", re.ASCII
)
_REGEX_META = re.compile(r"[\\^$*+?.()|\[\]{}/]")
_PROMETHEUS_REGEX_META = re.compile(r"[$^*{}\[\]+?.()|]")

_NS_PER_MS = 1_000_000
_NS_PER_S = 1_000_000_000


@dataclass(frozen=True)
class DashboardVariables:
    """What expansion needs to know of a dashboard's variables (see :func:`dashboard_variables`)."""

    all_value: Mapping[str, str] = field(default_factory=dict)
    """Custom ``allValue`` per variable that has one."""
    plain: frozenset[str] = frozenset()
    """Variables neither multi-value nor offering "All": Grafana does not regex-escape them."""
    defaults: Mapping[str, list[str]] = field(default_factory=dict)
    """The values saved as current in the dashboard (``[ALL]`` for "All")."""


def expand(
    expr: str,
    variables: Mapping[str, Sequence[str]],
    *,
    interval_seconds: float,
    range_seconds: float,
    scrape_interval_seconds: float = DEFAULT_SCRAPE_INTERVAL_SECONDS,
    all_value: Mapping[str, str] | None = None,
    plain: Collection[str] = (),
) -> str:
    """``expr`` with every given variable and every built-in interval variable replaced.

    ``variables`` maps names to selected values (``[ALL]`` for "All"); ``interval_seconds`` is the
    panel's computed ``$__interval`` (its step), ``range_seconds`` the dashboard time range.
    ``plain`` names single-value variables without "All" (see :class:`DashboardVariables`).
    Raises ``ValueError`` for a format Grafana has but this module does not implement, and for
    several values given to a plain variable.
    """
    customs = all_value or {}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        fmt = match.group(3) or match.group(6)
        if name.startswith("__") or name not in variables:
            return match.group(0)
        return _format(name, list(variables[name]), fmt, customs.get(name), name in plain)

    expanded = _VARIABLE.sub(replace, expr)
    return _expand_builtins(expanded, interval_seconds, range_seconds, scrape_interval_seconds)


def referenced_variables(expr: str) -> set[str]:
    """Names of the dashboard variables ``expr`` uses (not built-ins, not regex ``$1`` groups)."""
    names = set()
    for match in _VARIABLE.finditer(expr):
        name = match.group(1) or match.group(2) or match.group(4)
        if not name.startswith("__") and not name.isdigit():
            names.add(name)
    return names


def rate_interval_seconds(interval_seconds: float, scrape_interval_seconds: float) -> float:
    """Grafana's ``$__rate_interval``: ``max(interval + scrape interval, 4 x scrape interval)``."""
    return max(interval_seconds + scrape_interval_seconds, 4 * scrape_interval_seconds)


def dashboard_variables(dashboard: Mapping[str, Any]) -> DashboardVariables:
    """Read the variable settings expansion needs from a dashboard's JSON model."""
    all_values: dict[str, str] = {}
    plain: set[str] = set()
    defaults: dict[str, list[str]] = {}
    templating = dashboard.get("templating") or {}
    for variable in templating.get("list") or []:
        name = str(variable.get("name") or "")
        if not name or variable.get("type") == "datasource":
            continue
        if variable.get("allValue"):
            all_values[name] = str(variable["allValue"])
        if not variable.get("multi") and not variable.get("includeAll"):
            plain.add(name)
        current = (variable.get("current") or {}).get("value")
        if current is not None:
            values = current if isinstance(current, list) else [current]
            defaults[name] = [ALL if str(v) in (ALL, "All") else str(v) for v in values]
    return DashboardVariables(all_value=all_values, plain=frozenset(plain), defaults=defaults)


# -- dashboard variables --------------------------------------------------------------------------


def _format(
    name: str, values: list[str], fmt: str | None, custom_all: str | None, plain: bool
) -> str:
    if ALL in values:
        if custom_all is None:
            return ".*"
        if fmt == "text":
            return "All"
        if fmt == "percentencode":
            return _percent_encode(custom_all)
        return custom_all
    if plain and len(values) != 1:
        raise ValueError(f"variable {name!r} takes one value, got {len(values)}: {values!r}")
    if fmt is None:
        return _prometheus_format(values, plain)
    format_id = fmt.split(":", 1)[0]
    formatter = _FORMATS.get(format_id)
    if formatter is None:
        known = ", ".join(sorted(_FORMATS))
        raise ValueError(
            f"variable format {format_id!r} in ${{{name}:{fmt}}} is not one of {known}"
        )
    return formatter(values[0] if plain else values)


def _prometheus_format(values: list[str], plain: bool) -> str:
    """Grafana's Prometheus ``interpolateQueryExpr`` (classic escaping)."""
    if plain:
        return values[0].replace("\\", "\\\\").replace("'", "\\\\'")
    escaped = [_prometheus_regex_escape(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def _prometheus_regex_escape(value: str) -> str:
    return _PROMETHEUS_REGEX_META.sub(
        lambda m: "\\\\" + m.group(0), value.replace("\\", "\\\\\\\\")
    )


def _regex(value: str | list[str]) -> str:
    if isinstance(value, str):
        return _escape_regex(value)
    escaped = [_escape_regex(v) for v in value]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def _escape_regex(value: str) -> str:
    return _REGEX_META.sub(lambda m: "\\" + m.group(0), value)


Formatter = Callable[[str | list[str]], str]


def _joined(separator: str) -> Formatter:
    def join(value: str | list[str]) -> str:
        return value if isinstance(value, str) else separator.join(value)

    return join


def _json(value: str | list[str]) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _glob(value: str | list[str]) -> str:
    if isinstance(value, list) and len(value) > 1:
        return "{" + ",".join(value) + "}"
    return value if isinstance(value, str) else ",".join(value)


def _quoted(quote_char: str, escaped: str) -> Formatter:
    def quote_all(value: str | list[str]) -> str:
        items = [value] if isinstance(value, str) else value
        return ",".join(quote_char + v.replace(quote_char, escaped) + quote_char for v in items)

    return quote_all


def _sql_string(value: str | list[str]) -> str:
    items = [value] if isinstance(value, str) else value
    return ",".join("'" + v.replace("'", "''").replace('"', '\\"') + "'" for v in items)


def _percent_encode(value: str | list[str]) -> str:
    text = value if isinstance(value, str) else "{" + ",".join(value) + "}"
    # encodeURIComponent plus the sub-delims !'()* (Grafana's encodeURIComponentStrict)
    return quote(text, safe="-_.~")


_FORMATS: dict[str, Formatter] = {
    "raw": _joined(","),
    "regex": _regex,
    "pipe": _joined("|"),
    "csv": _joined(","),
    "json": _json,
    "glob": _glob,
    "text": _joined(" + "),
    "singlequote": _quoted("'", "\\'"),
    "doublequote": _quoted('"', '\\"'),
    "sqlstring": _sql_string,
    "percentencode": _percent_encode,
}


# -- built-in interval and range variables (Grafana's server side) --------------------------------


def _expand_builtins(
    expr: str, interval_seconds: float, range_seconds: float, scrape_interval_seconds: float
) -> str:
    step_ns = round(interval_seconds * 1000) * _NS_PER_MS
    range_ms = round(range_seconds * 1000)
    range_s = math.floor(range_ms / 1000 + 0.5)
    rate_ms = round(rate_interval_seconds(interval_seconds, scrape_interval_seconds) * 1000)
    replacements = (
        ("__interval_ms", str(step_ns // _NS_PER_MS)),
        ("__interval", _format_interval(step_ns)),
        ("__range_ms", str(range_ms)),
        ("__range_s", str(range_s)),
        ("__range", f"{range_s}s"),
        ("__rate_interval_ms", str(rate_ms)),
        ("__rate_interval", _go_duration(rate_ms * _NS_PER_MS)),
    )
    for name, value in replacements:
        expr = expr.replace("$" + name, value)
    for name, value in replacements:
        expr = expr.replace("${" + name + "}", value)
    return expr


def _format_interval(ns: int) -> str:
    """gtime.FormatInterval: the largest whole unit, truncated."""
    units = (
        ("y", 365 * 86400 * _NS_PER_S),
        ("d", 86400 * _NS_PER_S),
        ("h", 3600 * _NS_PER_S),
        ("m", 60 * _NS_PER_S),
        ("s", _NS_PER_S),
        ("ms", _NS_PER_MS),
    )
    for suffix, size in units:
        if ns >= size:
            return f"{ns // size}{suffix}"
    return "1ms"


def _go_duration(ns: int) -> str:
    """Go's ``time.Duration.String`` for a non-negative duration (``4s``, ``2m0s``, ``1.5s``)."""
    if ns == 0:
        return "0s"
    if ns < _NS_PER_S:
        for suffix, size in (("ms", _NS_PER_MS), ("µs", 1000)):
            if ns >= size:
                return _with_fraction(ns, size) + suffix
        return f"{ns}ns"
    hours, rest = divmod(ns, 3600 * _NS_PER_S)
    minutes, rest = divmod(rest, 60 * _NS_PER_S)
    seconds = _with_fraction(rest, _NS_PER_S) + "s"
    if hours:
        return f"{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{minutes}m{seconds}"
    return seconds


def _with_fraction(value: int, unit: int) -> str:
    whole, fraction = divmod(value, unit)
    if not fraction:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}.{fraction:0{digits}d}".rstrip("0")
