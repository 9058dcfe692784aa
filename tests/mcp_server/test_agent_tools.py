"""agent_status, list_models, list_gpus against the real demo agent (and one that is down)."""

from __future__ import annotations

import time
from typing import Any

import anyio
import pytest
from aiohttp import web
from mcp import Client

from mcp_server.server import InferwatchServer, build_server
from tests.fakes.http import serve
from tests.mcp_server.support import error_text, make_settings, structured, unreachable_url


async def test_agent_status_reports_readiness_and_every_source(
    stack_server: InferwatchServer,
) -> None:
    async with Client(stack_server) as client:
        status = structured(await client.call_tool("agent_status", {}))
    assert status["ready"] is True
    by_name = {source["name"]: source for source in status["sources"]}
    assert {"litellm", "vllm", "docker", "nvml", "inventory"} <= set(by_name)
    assert by_name["nvml"]["up"] is True
    assert by_name["nvml"]["last_success"].endswith("Z")  # ISO 8601, not epoch seconds


async def test_list_gpus_gives_each_gpu_with_its_processes(stack_server: InferwatchServer) -> None:
    async with Client(stack_server) as client:
        gpus = structured(await client.call_tool("list_gpus", {}))["gpus"]
    assert [gpu["index"] for gpu in gpus] == list(range(len(gpus)))
    assert len(gpus) >= 1
    first = gpus[0]
    assert first["uuid"].startswith("GPU-")
    assert 0 <= first["utilization_percent"] <= 100
    assert first["memory_used_bytes"] <= first["memory_total_bytes"]
    assert any(process["container"] for gpu in gpus for process in gpu["processes"])


async def test_list_models_joins_routes_and_instances(stack_server: InferwatchServer) -> None:
    # The inventory joins the other sources' polls: it may take a cycle or two to fill.
    deadline = time.monotonic() + 20
    models: list[dict[str, Any]] = []
    async with Client(stack_server) as client:
        while not models and time.monotonic() < deadline:
            models = structured(await client.call_tool("list_models", {}))["models"]
            if not models:
                await anyio.sleep(0.2)
    assert models, "the demo agent listed no models within 20 s"
    served = [m for m in models if m["backend"] == "vllm"]
    assert served, models
    instance = served[0]["instances"][0]
    assert instance["url"].startswith("http://127.0.0.1:")
    assert instance["vllm_version"]


async def test_agent_down_names_the_url_and_the_setting() -> None:
    url = unreachable_url()
    async with Client(build_server(make_settings(agent_url=url))) as client:
        for tool in ("agent_status", "list_models", "list_gpus"):
            message = error_text(await client.call_tool(tool, {}))
            assert url in message
            assert "INFERWATCH_AGENT_URL" in message


def _agent_app(readyz: int, sources: object, status: int = 200) -> web.Application:
    """An agent answering as told: for the states the demo agent passes through too fast."""

    async def ready(_: web.Request) -> web.Response:
        return web.Response(status=readyz, text="waiting for the first poll of every source\n")

    async def listing(_: web.Request) -> web.Response:
        return web.json_response(sources, status=status)

    app = web.Application()
    app.router.add_get("/readyz", ready)
    app.router.add_get("/api/v1/sources", listing)
    return app


async def test_an_agent_still_starting_is_reported_not_ready() -> None:
    sources = [{"name": "nvml", "enabled": True, "up": None, "state": None, "errors_total": 0}]
    async with (
        serve(_agent_app(503, sources)) as url,
        Client(build_server(make_settings(agent_url=url))) as client,
    ):
        status = structured(await client.call_tool("agent_status", {}))
    assert status["ready"] is False
    assert status["sources"][0]["name"] == "nvml"
    assert status["sources"][0]["up"] is None


@pytest.mark.parametrize(
    ("sources", "status", "expected"),
    [
        ({"error": "internal error"}, 500, "answered HTTP 500"),
        ({"not": "a list"}, 200, "unexpected shape"),
        ([{"enabled": True}], 200, "unexpected shape"),
    ],
)
async def test_a_broken_agent_answer_is_explained(
    sources: object, status: int, expected: str
) -> None:
    async with (
        serve(_agent_app(200, sources, status)) as url,
        Client(build_server(make_settings(agent_url=url))) as client,
    ):
        message = error_text(await client.call_tool("agent_status", {}))
    assert expected in message
    assert "INFERWATCH_AGENT_URL" in message
