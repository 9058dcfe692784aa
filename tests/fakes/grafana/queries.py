"""``POST /api/ds/query`` as Grafana's Prometheus datasource answers it: each query sent to the
real Prometheus, its result returned as data frames (or Prometheus' error, passed through)."""

from __future__ import annotations

import math
from typing import Any

import aiohttp

JSON = dict[str, Any]


def _number(text: str) -> float | None:
    value = float(text)
    return None if math.isnan(value) or math.isinf(value) else value


def _frame(
    ref_id: str, labels: dict[str, str], times: list[int], values: list[float | None], kind: str
) -> JSON:
    return {
        "schema": {
            "refId": ref_id,
            "meta": {"type": kind, "typeVersion": [0, 1]},
            "fields": [
                {"name": "Time", "type": "time", "typeInfo": {"frame": "time.Time"}},
                {
                    "name": "Value",
                    "type": "number",
                    "typeInfo": {"frame": "float64", "nullable": True},
                    "labels": labels,
                },
            ],
        },
        "data": {"values": [times, values]},
    }


def frames_from(ref_id: str, data: JSON) -> list[JSON]:
    """Prometheus' ``data`` (matrix, vector or scalar) as Grafana data frames."""
    kind = data.get("resultType")
    result = data.get("result", [])
    if kind == "matrix":
        return [
            _frame(
                ref_id,
                series.get("metric", {}),
                [int(float(t) * 1000) for t, _ in series.get("values", [])],
                [_number(v) for _, v in series.get("values", [])],
                "timeseries-multi",
            )
            for series in result
        ]
    if kind == "vector":
        return [
            _frame(
                ref_id,
                sample.get("metric", {}),
                [int(float(sample["value"][0]) * 1000)],
                [_number(sample["value"][1])],
                "numeric-multi",
            )
            for sample in result
        ]
    if kind == "scalar":
        return [
            _frame(
                ref_id, {}, [int(float(result[0]) * 1000)], [_number(result[1])], "numeric-multi"
            )
        ]
    return []


async def run_query(
    session: aiohttp.ClientSession, prometheus_url: str, query: JSON, start_ms: int, end_ms: int
) -> JSON:
    """One query of a ``/api/ds/query`` body -> its entry in ``results``."""
    ref_id = str(query.get("refId", "A"))
    expr = str(query.get("expr", ""))
    if query.get("instant"):
        path, params = "/api/v1/query", {"query": expr, "time": f"{end_ms / 1000:.3f}"}
    else:
        step = max(float(query.get("intervalMs", 15000)) / 1000, 1.0)
        # Prometheus refuses more than 11,000 points per series.
        step = max(step, (end_ms - start_ms) / 1000 / 11000)
        path = "/api/v1/query_range"
        params = {
            "query": expr,
            "start": f"{start_ms / 1000:.3f}",
            "end": f"{end_ms / 1000:.3f}",
            "step": f"{step:g}",
        }
    try:
        async with session.get(prometheus_url + path, params=params) as response:
            body = await response.json(content_type=None)
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        return {
            "status": 502,
            "error": f'Post "{prometheus_url}{path}": {error}',
            "errorSource": "downstream",
        }
    if body.get("status") != "success":
        message = f"{body.get('errorType', 'error')}: {body.get('error', 'unknown error')}"
        return {"status": response.status, "error": message, "errorSource": "downstream"}
    return {"status": 200, "frames": frames_from(ref_id, body.get("data", {}))}
