"""The fake Langfuse speaks the reference samples' shapes, consistently across endpoints."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from agent.simulator import Fault
from agent.simulator.langfuse_api import FakeLangfuse, FakeLangfuseThread, major_version
from agent.simulator.langfuse_workload import decode_cursor, encode_cursor

NOW = datetime(2026, 8, 19, 14, 30, tzinfo=UTC)
AUTH = ("pk-lf-simulated", "sk-lf-simulated")
DAY = {"fromTimestamp": "2026-08-18T00:00:00.000Z", "toTimestamp": "2026-08-19T00:00:00.000Z"}
# Keys of the reference samples' items (samples/langfuse/*.json).
TRACE_KEYS = {
    "id", "externalId", "timestamp", "name", "input", "output", "sessionId", "release", "version",
    "userId", "metadata", "tags", "public", "bookmarked", "environment", "projectId", "createdAt",
    "updatedAt", "htmlPath", "latency", "totalCost", "observations", "scores",
}  # fmt: skip
SCORE_V2_KEYS = {
    "id", "projectId", "traceId", "sessionId", "observationId", "datasetRunId", "name", "source",
    "dataType", "timestamp", "createdAt", "updatedAt", "authorUserId", "comment", "metadata",
    "configId", "queueId", "environment",
}  # fmt: skip
SCORE_V3_KEYS = {
    "id", "projectId", "name", "value", "dataType", "source", "timestamp", "environment",
    "createdAt", "updatedAt", "subject",
}  # fmt: skip
DAILY_USAGE_KEYS = {
    "model", "inputUsage", "outputUsage", "totalUsage", "countObservations", "countTraces",
    "totalCost",
}  # fmt: skip


@pytest.fixture
async def v3() -> AsyncIterator[FakeLangfuse]:
    async with FakeLangfuse(clock=lambda: NOW, traces_per_day=300) as fake:
        yield fake


@pytest.fixture
async def v4() -> AsyncIterator[FakeLangfuse]:
    async with FakeLangfuse("4.0.0", clock=lambda: NOW, traces_per_day=300) as fake:
        yield fake


async def get(fake: FakeLangfuse, path: str, auth: Any = AUTH, **params: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=fake.url, auth=auth) as client:
        return await client.get("/api/public" + path, params=params)


def usage_query(**extra: Any) -> str:
    query = {
        "view": "observations",
        "dimensions": [{"field": "providedModelName"}],
        "metrics": [
            {"measure": "count", "aggregation": "count"},
            {"measure": "inputTokens", "aggregation": "sum"},
            {"measure": "totalCost", "aggregation": "sum"},
        ],
        "filters": [],
        **DAY,
        **extra,
    }
    return json.dumps(query)


async def test_health_needs_no_key_and_the_rest_does(v3: FakeLangfuse) -> None:
    health = await get(v3, "/health", auth=None)
    assert health.json() == {"version": "3.130.0", "status": "OK"}
    assert (await get(v3, "/traces", auth=None)).status_code == 401
    assert (await get(v3, "/traces", auth=("pk-lf-simulated", "nope"))).status_code == 401
    assert (await get(v3, "/traces")).status_code == 200
    assert v3.request_count("/api/public/traces") == 3


async def test_lists_page_with_meta_and_refuse_big_limits(v3: FakeLangfuse) -> None:
    assert (await get(v3, "/traces", limit=101)).status_code == 400
    first = (await get(v3, "/traces", limit=100, page=1, **DAY)).json()
    last = (await get(v3, "/traces", limit=100, page=3, **DAY)).json()
    assert first["meta"] == {"page": 1, "limit": 100, "totalItems": 300, "totalPages": 3}
    assert set(first["data"][0]) == TRACE_KEYS
    stamps = [t["timestamp"] for t in first["data"] + last["data"]]
    assert stamps == sorted(stamps, reverse=True)  # newest first
    assert last["data"][-1]["timestamp"] == "2026-08-18T00:00:00.000Z"
    sessions = (await get(v3, "/sessions", limit=1, **DAY)).json()
    assert sessions["meta"]["totalItems"] == 60
    assert set(sessions["data"][0]) == {"id", "createdAt", "projectId", "environment"}


async def test_v2_scores_carry_every_data_type_and_the_nulls(v3: FakeLangfuse) -> None:
    body = (await get(v3, "/v2/scores", limit=100, **DAY)).json()
    assert body["meta"]["totalItems"] == 30
    by_type: dict[str, list[dict[str, Any]]] = {}
    for score in body["data"]:
        assert set(score) >= SCORE_V2_KEYS and "trace" in score
        by_type.setdefault(score["dataType"], []).append(score)
    assert set(by_type) == {"NUMERIC", "BOOLEAN", "CATEGORICAL", "TEXT"}
    assert all(s["value"] is None and s["stringValue"] for s in by_type["CATEGORICAL"])
    assert all("value" not in s for s in by_type["TEXT"])
    assert any(s["value"] is None for s in by_type["NUMERIC"])
    assert {s["value"] for s in by_type["BOOLEAN"]} == {0.0, 1.0}
    lean = (await get(v3, "/v2/scores", limit=1, fields="score", **DAY)).json()
    assert "trace" not in lean["data"][0]


async def test_daily_and_query_metrics_agree_with_the_lists(v3: FakeLangfuse) -> None:
    daily = (await get(v3, "/metrics/daily", **DAY)).json()
    assert daily["meta"]["totalItems"] == 1
    day = daily["data"][0]
    assert day["date"] == "2026-08-18" and day["countTraces"] == 300
    assert day["countObservations"] == 600
    assert {u["model"] for u in day["usage"]} == {*v3.workload.models, None}
    assert all(set(u) == DAILY_USAGE_KEYS for u in day["usage"])
    rows = await get(v3, "/metrics", query=usage_query(timeDimension={"granularity": "day"}))
    data = rows.json()["data"]
    assert all(isinstance(r["count_count"], str) for r in data)  # as ClickHouse sends UInt64
    assert {r["time_dimension"] for r in data} == {"2026-08-18T00:00:00.000Z"}
    assert sum(float(r["count_count"]) for r in data) == day["countObservations"]
    assert sum(r["sum_totalCost"] for r in data) == pytest.approx(day["totalCost"])
    by_model = {r["providedModelName"]: r for r in data}
    for usage in day["usage"]:
        assert float(by_model[usage["model"]]["sum_inputTokens"]) == usage["inputUsage"]
    traces = json.dumps(
        {"view": "traces", "metrics": [{"measure": "count", "aggregation": "count"}], **DAY}
    )
    assert (await get(v3, "/metrics", query=traces)).json()["data"] == [{"count_count": "300"}]


async def test_v4_hides_the_v3_endpoints_and_pages_scores_by_cursor(v4: FakeLangfuse) -> None:
    for path in ("/metrics/daily", "/metrics", "/traces", "/sessions", "/v2/scores"):
        assert (await get(v4, path)).status_code == 404, path
    rows = (await get(v4, "/v2/metrics", query=usage_query())).json()["data"]
    assert sum(float(r["count_count"]) for r in rows) == 600
    traces = json.dumps({"view": "traces", "metrics": [], **DAY})
    assert (await get(v4, "/v2/metrics", query=traces)).status_code == 400
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(10):
        params = {"limit": 12, **DAY, **({"cursor": cursor} if cursor else {})}
        body = (await get(v4, "/v3/scores", **params)).json()
        seen.extend(body["data"])
        cursor = body["meta"].get("cursor")
        if cursor is None:
            break
    assert len(seen) == 30 and len({s["id"] for s in seen}) == 30
    assert all(set(s) == SCORE_V3_KEYS for s in seen)
    assert {type(s["value"]) for s in seen if s["dataType"] == "BOOLEAN"} == {bool}
    assert (await get(v4, "/v3/scores", cursor="garbage!")).status_code == 400


async def test_faults_rate_limits_and_the_upgrade(v3: FakeLangfuse) -> None:
    v3.set_fault(Fault.ERROR_500)
    assert (await get(v3, "/health")).status_code == 500
    v3.set_fault(Fault.UNAUTHORIZED)
    assert (await get(v3, "/health")).status_code == 200
    assert (await get(v3, "/traces")).status_code == 401
    v3.set_fault(Fault.NONE)
    v3.rate_limit(12.5)
    limited = await get(v3, "/traces")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "13"
    v3.rate_limit(0)
    v3.version = "4.2.0"
    assert (await get(v3, "/traces")).status_code == 404
    assert (await get(v3, "/health")).json()["version"] == "4.2.0"


def test_versions_and_cursors() -> None:
    assert [major_version(v) for v in ("3.130.0", "v4.0.1", "dev")] == [3, 4, 3]
    assert decode_cursor(encode_cursor(1234)) == 1234
    with pytest.raises(ValueError):
        FakeLangfuse(models=())


def test_the_thread_runner_serves_sync_callers() -> None:
    with FakeLangfuseThread("3.130.0", clock=lambda: NOW) as fake:
        answer = httpx.get(fake.url + "/api/public/health", timeout=5)
    assert answer.json()["version"] == "3.130.0"
