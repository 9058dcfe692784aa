"""Panel evidence for the judge: what each panel's queries return, in one compact line per panel.

Claude reads a screenshot better when it also knows what the panel plots: the number of series,
their names (the panel's legend format applied), and the last, lowest and highest values in
the panel's unit. The queries are the panel's own, with the scenario's variables expanded the
way Grafana expands them, sent to Prometheus over the scenario's time range.

A summary never holds a timestamp: it is part of the verdict cache key, and an unchanged
dashboard over a fixed time range must give the same summary run after run.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from mcp_server.agent_client import UpstreamError
from mcp_server.grafana.models import DashboardSpec, PanelSpec, PanelState, Target
from mcp_server.grafana.templating import dashboard_variables, expand
from mcp_server.judge import PanelEvidence
from mcp_server.prometheus import PrometheusClient, QueryRefused, RangePlan, Series

# Points per series: enough for min/max/last, cheap for Prometheus.
POINTS = 120
MAX_PANELS = 40
MAX_TARGETS = 6
MAX_NAMES = 8
MAX_NAME_CHARS = 48
MAX_SUMMARY_CHARS = 400
PARALLEL_QUERIES = 4

_RELATIVE = re.compile(r"^now(?P<offsets>(?:[+-]\d+[smhdwMy])*)(?:/(?P<round>[smhdwMy]))?$")
_OFFSET = re.compile(r"([+-])(\d+)([smhdwMy])")
_LEGEND = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_FIXED_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def grafana_time(text: str, now: datetime, *, end: bool = False) -> datetime:
    """A Grafana time (``now-1h``, ``now-7d/d``, epoch ms, ISO 8601) as a UTC datetime.

    ``/unit`` rounds to the start of that unit, or, for the end of a range, to its end.
    """
    value = text.strip()
    if value.isdigit():
        number = int(value)
        return datetime.fromtimestamp(number / 1000 if len(value) >= 12 else number, UTC)
    relative = _RELATIVE.match(value)
    if relative is None:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    moment = now.astimezone(UTC)
    for sign, amount, unit in _OFFSET.findall(relative.group("offsets")):
        moment = _shift(moment, int(amount) * (1 if sign == "+" else -1), unit)
    if relative.group("round"):
        unit = relative.group("round")
        moment = _round_down(moment, unit)
        if end:
            moment = _shift(moment, 1, unit) - timedelta(milliseconds=1)
    return moment


def _shift(moment: datetime, amount: int, unit: str) -> datetime:
    if unit in _FIXED_UNITS:
        return moment + timedelta(seconds=amount * _FIXED_UNITS[unit])
    months = amount * (12 if unit == "y" else 1)
    index = moment.year * 12 + moment.month - 1 + months
    year, month = divmod(index, 12)
    return moment.replace(year=year, month=month + 1, day=min(moment.day, 28))


def _round_down(moment: datetime, unit: str) -> datetime:
    if unit == "s":
        return moment.replace(microsecond=0)
    if unit == "m":
        return moment.replace(second=0, microsecond=0)
    if unit == "h":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "d":
        return day
    if unit == "w":
        return day - timedelta(days=day.weekday())
    if unit == "M":
        return day.replace(day=1)
    return day.replace(month=1, day=1)


def time_range(time_from: str, time_to: str, now: datetime | None = None) -> tuple[float, float]:
    """The range as unix seconds (start < end), or ValueError."""
    moment = now or datetime.now(UTC)
    start = grafana_time(time_from, moment).timestamp()
    end = grafana_time(time_to, moment, end=True).timestamp()
    if end <= start:
        raise ValueError(f"the time range {time_from} to {time_to} is empty")
    return start, end


def number(value: float) -> str:
    """Four significant digits, no exponent for everyday magnitudes."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    if 1e-3 <= abs(value) < 1e9:
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return f"{value:.3e}"


def _legend(series: Series, legend: str | None, index: int) -> str:
    if legend and legend != "__auto":
        return _LEGEND.sub(lambda m: series.labels.get(m.group(1), ""), legend).strip()
    shown = {key: value for key, value in series.labels.items() if key != "__name__"}
    if not shown:
        return series.labels.get("__name__", "")
    return "{" + ", ".join(f"{key}={value}" for key, value in sorted(shown.items())) + "}"


def _values(series: Series) -> list[float]:
    values = []
    for _, raw in series.points:
        try:
            value = float(raw)
        except ValueError:
            continue
        if not math.isnan(value):
            values.append(value)
    return values


def summarize(series: Sequence[Series], total: int, legend: str | None) -> str:
    """One query's result: ``3 series (GPU 0, GPU 1, GPU 2); last 12-97; min 3; max 99``."""
    if total == 0:
        return "no data"
    names = [_legend(item, legend, index) for index, item in enumerate(series)]
    names = [
        name if len(name) <= MAX_NAME_CHARS else name[: MAX_NAME_CHARS - 3] + "..."
        for name in names
        if name
    ]
    shown = ", ".join(names[:MAX_NAMES]) + (", ..." if len(names) > MAX_NAMES else "")
    text = f"{total} series" + (f" ({shown})" if shown else "")
    per_series = [values for values in map(_values, series) if values]
    if not per_series:
        return text + "; no numeric values"
    lasts = [values[-1] for values in per_series]
    low = min(min(values) for values in per_series)
    high = max(max(values) for values in per_series)
    last = number(lasts[0]) if len(lasts) == 1 else f"{number(min(lasts))} to {number(max(lasts))}"
    truncated = f" (first {len(series)} series)" if total > len(series) else ""
    return f"{text}; last {last}; min {number(low)}; max {number(high)}{truncated}"


class EvidenceCollector:
    """Panel summaries for one dashboard view (its JSON model, variables and time range)."""

    def __init__(
        self,
        prometheus: PrometheusClient,
        model: Mapping[str, Any],
        spec: DashboardSpec,
        *,
        variables: Mapping[str, Sequence[str]],
        time_from: str,
        time_to: str,
    ) -> None:
        self._prometheus = prometheus
        self._spec = spec
        defaults = dashboard_variables(model)
        self._settings = defaults
        self._variables = {**defaults.defaults, **{k: list(v) for k, v in variables.items()}}
        self._time_from = time_from
        self._time_to = time_to

    async def collect(
        self, titles: Sequence[str] | None, states: Sequence[PanelState]
    ) -> list[PanelEvidence]:
        """Evidence for the panels titled ``titles`` (None: every panel with queries)."""
        panels = [panel for panel in self._spec.panels if panel.type != "row"]
        if titles is not None:
            by_title = {panel.title: panel for panel in panels}
            panels = [by_title[title] for title in titles if title in by_title]
        panels = [panel for panel in panels if _queries(panel)][:MAX_PANELS]
        state_of = {state.title: state.state for state in states}
        try:
            start, end = time_range(self._time_from, self._time_to)
        except ValueError as error:
            return [
                PanelEvidence(panel.title, state_of.get(panel.title, "unknown"), str(error))
                for panel in panels
            ]
        gate = asyncio.Semaphore(PARALLEL_QUERIES)
        summaries = await asyncio.gather(
            *(self._panel(panel, start, end, gate) for panel in panels)
        )
        return [
            PanelEvidence(panel.title, state_of.get(panel.title, "unknown"), summary)
            for panel, summary in zip(panels, summaries, strict=True)
        ]

    async def _panel(
        self, panel: PanelSpec, start: float, end: float, gate: asyncio.Semaphore
    ) -> str:
        span = end - start
        step = max(1.0, math.ceil(span / POINTS))
        targets = _queries(panel)[:MAX_TARGETS]
        parts = []
        for target in targets:
            try:
                expr = expand(
                    target.expr,
                    self._variables,
                    interval_seconds=step,
                    range_seconds=span,
                    all_value=self._settings.all_value,
                    plain=self._settings.plain,
                )
            except ValueError as error:
                parts.append(f"{target.ref_id}: not expanded ({error})")
                continue
            async with gate:
                try:
                    result = await self._prometheus.range(
                        expr, RangePlan(start, end, step, step_raised_from=None)
                    )
                except (UpstreamError, QueryRefused) as error:
                    parts.append(f"{target.ref_id}: query failed ({_first_line(error)})")
                    continue
            summary = summarize(result.series, result.series_total, target.legend)
            parts.append(summary if len(targets) == 1 else f"{target.ref_id}: {summary}")
        unit = f"; unit {panel.unit}" if panel.unit and panel.unit != "none" else ""
        text = "; ".join(parts) + unit
        return text if len(text) <= MAX_SUMMARY_CHARS else text[: MAX_SUMMARY_CHARS - 3] + "..."


def _queries(panel: PanelSpec) -> list[Target]:
    return [target for target in panel.targets if target.expr.strip()]


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:200] if text else type(error).__name__
