from __future__ import annotations

import asyncio
import gzip
import json
import socket
import time
from collections.abc import AsyncIterator, Sequence

import httpx
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families

from agent.app import Agent
from agent.settings import Settings
from agent.snapshot import Collection
from agent.sources.base import Source
from tests.fakes.sources import ScriptedSource, gauge


def _labelled(n: int) -> Collection:
    return Collection(families=(gauge("test_value", float(n), model_name='a"b\\c\nd'),))


@pytest.fixture
async def running() -> AsyncIterator[tuple[Agent, str]]:
    """An agent with two scripted sources, serving HTTP on a free loopback port."""
    agent = _agent([ScriptedSource("litellm", _labelled), ScriptedSource("vllm")])
    http = agent.start_http("127.0.0.1", 0)
    try:
        yield agent, http.url
    finally:
        http.shutdown()
        http.server_close()


def _agent(sources: Sequence[Source]) -> Agent:
    return Agent(Settings(), sources=sources, inventory=False)


async def _get(url: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=5) as client:
        return await client.get(url, headers=headers)


async def test_healthz_and_readyz_follow_the_first_cycle(running: tuple[Agent, str]) -> None:
    agent, url = running
    assert (await _get(url + "/healthz")).status_code == 200
    assert (await _get(url + "/readyz")).status_code == 503
    await agent.poller.poll_in_order(agent.sources)
    assert (await _get(url + "/readyz")).status_code == 200


async def test_metrics_in_text_openmetrics_and_gzip(running: tuple[Agent, str]) -> None:
    agent, url = running
    await agent.poller.poll_in_order(agent.sources)

    text = await _get(url + "/metrics")
    assert text.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {f.name: f for f in text_string_to_metric_families(text.text)}
    assert families["test_value"].samples[0].labels["model_name"] == 'a"b\\c\nd'
    assert {s.labels["source"]: s.value for s in families["inferwatch_source_up"].samples} == {
        "litellm": 1.0,
        "vllm": 1.0,
    }
    assert families["inferwatch_build_info"].samples[0].value == 1.0

    om = await _get(url + "/metrics", Accept="application/openmetrics-text;version=1.0.0")
    assert om.headers["content-type"].startswith("application/openmetrics-text")
    assert om.text.endswith("# EOF\n")
    om_names = {f.name for f in parse_om(om.text)}  # type: ignore[no-untyped-call]
    assert om_names >= {"inferwatch_source_up", "test_value"}

    async with httpx.AsyncClient() as client:
        raw = await client.get(url + "/metrics", headers={"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.text == text.text  # httpx decoded it: the same page


async def test_only_documented_routes_and_methods(running: tuple[Agent, str]) -> None:
    _, url = running
    async with httpx.AsyncClient(timeout=5) as client:
        assert (await client.get(url + "/")).status_code == 404
        assert (await client.get(url + "/metrics/../etc/passwd")).status_code == 404
        assert (await client.post(url + "/metrics")).status_code == 405
        assert (await client.delete(url + "/api/v1/sources")).status_code == 405
        head = await client.head(url + "/metrics")
        assert head.status_code == 200 and head.content == b""
        body = await client.request("GET", url + "/metrics", content=b"x" * 10)
        assert body.status_code == 413


async def test_sources_api_lists_every_contract_source(running: tuple[Agent, str]) -> None:
    agent, url = running
    await agent.poller.poll_in_order(agent.sources)
    sources = {s["name"]: s for s in json.loads((await _get(url + "/api/v1/sources")).text)}
    assert set(sources) == {"litellm", "vllm", "docker", "nvml", "langfuse", "huggingface"}
    assert sources["litellm"]["enabled"] and sources["litellm"]["up"]
    assert sources["litellm"]["last_error"] is None
    assert sources["litellm"]["last_success"] <= time.time()
    assert not sources["docker"]["enabled"]


async def test_a_scrape_never_waits_on_a_stalled_upstream() -> None:
    stuck = ScriptedSource("vllm", hang=True, interval_seconds=60)
    agent = _agent([ScriptedSource("litellm", _labelled, interval_seconds=60), stuck])
    stop = asyncio.Event()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    serving = asyncio.create_task(agent.serve(stop, "127.0.0.1", port))
    try:
        async with asyncio.timeout(10):
            await stuck.polled.wait()  # the stalled poll is in flight now
            started = time.perf_counter()
            response = await _get(f"http://127.0.0.1:{port}/metrics")
            elapsed = time.perf_counter() - started
    finally:
        stop.set()
        await serving
    assert response.status_code == 200
    assert elapsed < 1.0
    assert stuck.closed


def test_page_is_rendered_once_per_snapshot_not_per_scrape() -> None:
    agent = _agent([ScriptedSource("litellm", _labelled)])
    asyncio.run(agent.poller.poll_in_order(agent.sources))
    first = agent.exposition.page
    assert agent.exposition.page is first  # scrapes read the same prepared bytes
    assert gzip.decompress(first.text_gzip) == first.text
    asyncio.run(agent.poller.poll_in_order(agent.sources))
    assert agent.exposition.page is not first
