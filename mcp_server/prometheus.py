"""Prometheus' HTTP query API, read-only and bounded.

Only ``GET /api/v1/query`` and ``GET /api/v1/query_range`` are ever called. A range query may span
at most ``max_range_seconds`` and return at most ``max_points`` points per series (a step too
fine is raised to fit, and the result says so); at most ``max_series`` series come back, the rest
are counted. Prometheus' own error message (a PromQL syntax error, say) is passed through.
"""

from __future__ import annotations

import math
import re
import time as clock
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from mcp_server.agent_client import UpstreamError, UpstreamHTTP
from mcp_server.settings import UpstreamSettings

# Points per series when the caller gives no step: enough for a trend, cheap to read.
DEFAULT_POINTS = 120
MAX_EXPR_CHARS = 10_000

_UNIT_SECONDS = {
    "ms": 0.001,
    "s": 1,
    "m": 60,
    "h": 3600,
    "d": 86400,
    "w": 7 * 86400,
    "y": 365 * 86400,
}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_RELATIVE = re.compile(r"now\s*(?:([+-])\s*(\S+))?")


class QueryRefused(ValueError):
    """The query breaks a limit or cannot be understood; the message says how to fix it."""


class PrometheusQueryError(UpstreamError):
    """Prometheus answered with an error (its message is kept as it was)."""


def parse_duration(text: str) -> float:
    """``90``, ``1.5``, ``30s``, ``5m``, ``1h30m``, ``500ms`` -> seconds."""
    value = text.strip()
    try:
        return float(value)
    except ValueError:
        pass
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise QueryRefused(
            f"cannot read duration {text!r}: use seconds (30) or units (30s, 5m, 1h30m, 1d)"
        )
    return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)


def parse_time(text: str, now: float) -> float:
    """``now``, ``now-1h``, unix seconds, or RFC 3339 (``2026-11-30T12:00:00Z``) -> unix seconds."""
    value = text.strip()
    relative = _RELATIVE.fullmatch(value)
    if relative:
        sign, offset = relative.groups()
        if offset is None:
            return now
        seconds = parse_duration(offset)
        return now - seconds if sign == "-" else now + seconds
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise QueryRefused(
            f"cannot read time {text!r}: use now, now-1h, unix seconds or RFC 3339 "
            "(2026-11-30T12:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def describe_seconds(seconds: float) -> str:
    """3600 -> '1h', 90000 -> '1d1h', 45 -> '45s'."""
    left = round(seconds)
    if left <= 0:
        return f"{seconds:g}s"
    out = []
    for unit in ("w", "d", "h", "m", "s"):
        size = int(_UNIT_SECONDS[unit])
        count, left = divmod(left, size)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


@dataclass(frozen=True)
class RangePlan:
    start: float
    end: float
    step: float
    step_raised_from: float | None


def plan_range(
    start: float, end: float, step: float | None, max_range: float, max_points: int
) -> RangePlan:
    """Check a range against the limits; pick or raise the step so points <= max_points."""
    span = end - start
    if span <= 0:
        raise QueryRefused("end must be after start")
    if span > max_range:
        raise QueryRefused(
            f"range of {describe_seconds(span)} is longer than the limit of "
            f"{describe_seconds(max_range)} (INFERWATCH_MAX_RANGE_SECONDS={max_range:g}); "
            "narrow start/end"
        )
    if step is not None and step <= 0:
        raise QueryRefused("step must be positive")
    # points = floor(span / step) + 1, so step >= span / (max_points - 1) keeps them in bounds.
    finest = span / (max_points - 1) if max_points > 1 else span
    if step is None:
        return RangePlan(start, end, max(1.0, math.ceil(max(finest, span / DEFAULT_POINTS))), None)
    if step < finest:
        return RangePlan(start, end, float(math.ceil(finest * 1000) / 1000), step)
    return RangePlan(start, end, step, None)


class Series(BaseModel):
    labels: dict[str, str]
    points: list[tuple[float, str]] = Field(description="[unix seconds, value]")


class QueryResult(BaseModel):
    expr: str
    kind: Literal["instant", "range"]
    result_type: str
    time: float | None = None
    start: float | None = None
    end: float | None = None
    step: float | None = None
    step_raised_from: float | None = Field(None, description="step asked for, too fine")
    series: list[Series]
    series_total: int
    truncated: bool
    warnings: list[str] = Field(default_factory=list)


class PrometheusClient:
    def __init__(self, settings: UpstreamSettings, now: Callable[[], float] = clock.time) -> None:
        self._settings = settings
        self._now = now
        self._http = UpstreamHTTP(
            "Prometheus", settings.prometheus_url, "PROMETHEUS_URL", settings.http_timeout_seconds
        )

    @property
    def url(self) -> str:
        return self._http.base_url

    async def query(
        self,
        expr: str,
        *,
        time: str | None = None,
        start: str | None = None,
        end: str | None = None,
        step: str | None = None,
    ) -> QueryResult:
        """Instant query unless ``start`` is given; then a range query up to ``end`` (now)."""
        expr = expr.strip()
        if not expr:
            raise QueryRefused("expr is empty: give a PromQL expression such as up")
        if len(expr) > MAX_EXPR_CHARS:
            raise QueryRefused(f"expr is {len(expr)} characters; the limit is {MAX_EXPR_CHARS}")
        now = round(self._now(), 3)  # what Prometheus is sent is what the result says
        if start is None:
            if end is not None or step is not None:
                raise QueryRefused("end and step need start (a range query); or give only time")
            return await self.instant(expr, round(parse_time(time, now), 3) if time else now)
        if time is not None:
            raise QueryRefused("give time (instant) or start/end/step (range), not both")
        plan = plan_range(
            round(parse_time(start, now), 3),
            round(parse_time(end, now), 3) if end else now,
            parse_duration(step) if step else None,
            self._settings.max_range_seconds,
            self._settings.max_points,
        )
        return await self.range(expr, plan)

    async def instant(self, expr: str, at: float) -> QueryResult:
        data, warnings = await self._get("/api/v1/query", {"query": expr, "time": f"{at:.3f}"})
        series, total = self._series(data)
        return QueryResult(
            expr=expr,
            kind="instant",
            result_type=str(data.get("resultType")),
            time=at,
            series=series,
            series_total=total,
            truncated=total > len(series),
            warnings=warnings,
        )

    async def range(self, expr: str, plan: RangePlan) -> QueryResult:
        params = {
            "query": expr,
            "start": f"{plan.start:.3f}",
            "end": f"{plan.end:.3f}",
            "step": f"{plan.step:g}",
        }
        data, warnings = await self._get("/api/v1/query_range", params)
        series, total = self._series(data)
        return QueryResult(
            expr=expr,
            kind="range",
            result_type=str(data.get("resultType")),
            start=plan.start,
            end=plan.end,
            step=plan.step,
            step_raised_from=plan.step_raised_from,
            series=series,
            series_total=total,
            truncated=total > len(series),
            warnings=warnings,
        )

    async def _get(self, path: str, params: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
        params = {**params, "timeout": f"{self._settings.http_timeout_seconds:g}s"}
        response = await self._http.get(path, params)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):  # not Prometheus: a proxy's error page, another service
            raise self._http.unexpected(response)
        if body.get("status") == "error":
            raise PrometheusQueryError(
                f"Prometheus rejected the query ({body.get('errorType')}): {body.get('error')}"
            )
        data = body.get("data")
        if response.status_code != 200 or not isinstance(data, dict):
            raise self._http.unexpected(response)
        notes = [*body.get("warnings", []), *body.get("infos", [])]
        return data, [str(note) for note in notes]

    def _series(self, data: dict[str, Any]) -> tuple[list[Series], int]:
        kind, result = data.get("resultType"), data.get("result")
        if kind in ("scalar", "string"):
            return [Series(labels={}, points=[_point(result)])], 1
        rows = result if isinstance(result, list) else []
        shown = rows[: self._settings.max_series]
        series = [
            Series(
                labels={str(k): str(v) for k, v in row.get("metric", {}).items()},
                points=(
                    [_point(p) for p in row.get("values", [])]
                    if kind == "matrix"
                    else [_point(row.get("value"))]
                ),
            )
            for row in shown
        ]
        return series, len(rows)

    async def aclose(self) -> None:
        await self._http.aclose()


def _point(raw: Any) -> tuple[float, str]:
    if isinstance(raw, list | tuple) and len(raw) == 2:
        return float(raw[0]), str(raw[1])
    return 0.0, str(raw)
