"""The MCP server's upstreams (the agent, Prometheus, Grafana's API) failing in every way: each
tool answers with an error that names the upstream and the setting, within a bounded time, leaves
no task behind, and works again on the first call after the upstream recovers."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import pytest
from aiohttp import web
from mcp import Client

from mcp_server.server import build_server
from tests.fakes.http import serve
from tests.mcp_server.support import error_text, make_settings

TIMEOUT = 0.5
FAULTS = ("refusing", "slow", "garbage", "huge", "error", "reset", "flapping")

GOOD: dict[str, Any] = {
    "/readyz": {"ready": True},
    "/api/v1/sources": [
        {"name": "litellm", "enabled": True, "up": True, "state": "up", "last_error": None}
    ],
    "/api/v1/query": {
        "status": "success",
        "data": {"resultType": "vector", "result": [{"metric": {}, "value": [1.0, "1"]}]},
    },
    "/api/search": [{"uid": "u", "title": "T", "url": "/d/u/t", "tags": []}],
}


@dataclass
class Upstream:
    """One loopback server; ``fault`` decides how it answers the next request."""

    fault: str | None = None
    requests: int = 0

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        fault = self.fault
        if fault == "flapping":
            fault = "error" if self.requests % 2 else None
        if fault == "refusing":
            return web.Response(status=503, text="upstream is refusing")
        if fault == "error":
            return web.Response(status=500, text="internal error")
        if fault == "slow":
            await asyncio.sleep(TIMEOUT * 10)
        if fault == "garbage":
            return web.Response(text="<html>\x00\xff not json", content_type="application/json")
        if fault in ("huge", "reset"):
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            await response.prepare(request)
            await response.write(b'{"data": [' + b'"x",' * 1000)
            if fault == "reset":
                assert request.transport is not None
                request.transport.close()  # the upstream restarts mid-body
                return response
            chunk = b'"' + b"x" * 65536 + b'",'
            for _ in range(100_000):  # an endless body: ~6.5 GB if nobody stops reading
                await response.write(chunk)
            return response
        body = GOOD.get(request.path, {})
        return web.json_response(body, status=200)


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[Upstream, str]]:
    state = Upstream()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", state.handle)
    async with serve(app) as url:
        yield state, url


def _our_tasks() -> int:
    """Tasks on the loop, without the fake upstream's own connection handlers."""
    return sum(
        1
        for task in asyncio.all_tasks()
        if not getattr(task.get_coro(), "__qualname__", "").startswith("RequestHandler")
    )


Call = Callable[[Client], Coroutine[Any, Any, Any]]
TOOLS: dict[str, tuple[str, Call, str]] = {
    "agent": (
        "agent_url",
        lambda c: c.call_tool("agent_status", {}),
        "INFERWATCH_AGENT_URL",
    ),
    "prometheus": (
        "prometheus_url",
        lambda c: c.call_tool("query_prometheus", {"expr": "up"}),
        "PROMETHEUS_URL",
    ),
    "grafana": (
        "grafana_url",
        lambda c: c.call_tool("list_dashboards", {}),
        "GRAFANA",
    ),
}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("which", sorted(TOOLS))
async def test_a_failing_upstream_gives_an_actionable_error_then_recovers(
    upstream: tuple[Upstream, str], which: str, fault: str
) -> None:
    state, url = upstream
    setting_key, call, setting_name = TOOLS[which]
    urls: dict[str, Any] = {setting_key: url}
    settings = make_settings(
        **urls,
        upstream={"http_timeout_seconds": TIMEOUT},
        grafana={"http_timeout_seconds": TIMEOUT},
    )
    threads_before = threading.active_count()
    tasks_before = _our_tasks()
    async with Client(build_server(settings)) as client:
        state.fault = fault
        started = time.perf_counter()
        result = await call(client)
        took = time.perf_counter() - started
        if fault == "flapping" and not result.is_error:
            result = await call(client)  # the first answer happened to be a good one
        message = error_text(result)
        assert url.removeprefix("http://") in message or setting_name in message, message
        assert took < 5 * TIMEOUT + 2, f"{which}/{fault} took {took:.1f}s"
        state.fault = None
        recovered = await call(client)
        assert not recovered.is_error, json.dumps(recovered.model_dump(), default=str)[:500]
    assert _our_tasks() <= tasks_before
    assert threading.active_count() <= threads_before + 1  # anyio's worker thread may linger
