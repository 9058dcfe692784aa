"""query_prometheus against the real Prometheus scraping the demo agent."""

from __future__ import annotations

import httpx
import pytest
from mcp import Client

from mcp_server.server import InferwatchServer, build_server
from tests.mcp_server.support import error_text, make_settings, structured, unreachable_url
from tests.stack import query_until

UP = 'inferwatch_source_up{job="inferwatch-agent"}'


@pytest.fixture
def scraped(demo_prometheus_url: str) -> str:
    """Prometheus once it holds the agent's series."""
    assert query_until(demo_prometheus_url, UP), "Prometheus never scraped the demo agent"
    return demo_prometheus_url


async def test_instant_query_gives_labels_and_one_point_per_series(
    scraped: str, stack_server: InferwatchServer
) -> None:
    async with Client(stack_server) as client:
        result = structured(await client.call_tool("query_prometheus", {"expr": UP}))
    assert result["kind"] == "instant"
    assert result["result_type"] == "vector"
    sources = {series["labels"]["source"] for series in result["series"]}
    assert {"nvml", "vllm", "litellm"} <= sources
    assert all(len(series["points"]) == 1 for series in result["series"])
    assert result["series"][0]["points"][0][1] in ("0", "1")
    assert result["truncated"] is False


async def test_range_query_with_relative_times(
    scraped: str, stack_server: InferwatchServer
) -> None:
    arguments = {"expr": "count(up)", "start": "now-2m", "end": "now", "step": "15s"}
    async with Client(stack_server) as client:
        result = structured(await client.call_tool("query_prometheus", arguments))
    assert result["kind"] == "range"
    assert result["result_type"] == "matrix"
    assert result["step"] == 15
    assert result["end"] - result["start"] == pytest.approx(120, abs=1)
    points = result["series"][0]["points"]
    assert len(points) in range(1, 10)
    assert all(value == "1" for _, value in points)


async def test_scalar_result(scraped: str, stack_server: InferwatchServer) -> None:
    async with Client(stack_server) as client:
        result = structured(await client.call_tool("query_prometheus", {"expr": "1 + 1"}))
    assert result["result_type"] == "scalar"
    assert result["series"] == [{"labels": {}, "points": [[result["time"], "2"]]}]


async def test_syntax_error_passes_prometheus_message_through(
    scraped: str, stack_server: InferwatchServer
) -> None:
    expr = "sum(rate(up[5m])"
    async with httpx.AsyncClient() as http:
        direct = (await http.get(scraped + "/api/v1/query", params={"query": expr})).json()
    async with Client(stack_server) as client:
        message = error_text(await client.call_tool("query_prometheus", {"expr": expr}))
    assert direct["error"] in message
    assert "bad_data" in message


async def test_too_long_a_range_is_refused_with_the_limit(stack_server: InferwatchServer) -> None:
    arguments = {"expr": "up", "start": "now-30d"}
    async with Client(stack_server) as client:
        message = error_text(await client.call_tool("query_prometheus", arguments))
    assert "4w2d" in message  # what was asked
    assert "limit of 1w" in message
    assert "INFERWATCH_MAX_RANGE_SECONDS=604800" in message


async def test_a_step_too_fine_is_raised_to_the_point_limit(
    scraped: str, demo_agent_url: str
) -> None:
    settings = make_settings(
        agent_url=demo_agent_url, prometheus_url=scraped, upstream={"max_points": 50}
    )
    arguments = {"expr": "vector(1)", "start": "now-1h", "step": "1s"}
    async with Client(build_server(settings)) as client:
        result = structured(await client.call_tool("query_prometheus", arguments))
    assert result["step_raised_from"] == 1
    assert result["step"] * 49 >= 3600
    assert 49 <= len(result["series"][0]["points"]) <= 50


async def test_series_beyond_the_cap_are_counted_not_shown(
    scraped: str, demo_agent_url: str
) -> None:
    settings = make_settings(
        agent_url=demo_agent_url, prometheus_url=scraped, upstream={"max_series": 2}
    )
    async with Client(build_server(settings)) as client:
        result = structured(await client.call_tool("query_prometheus", {"expr": UP}))
    assert len(result["series"]) == 2
    assert result["series_total"] >= 6
    assert result["truncated"] is True


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"expr": "up", "time": "yesterday"}, "cannot read time 'yesterday'"),
        ({"expr": "up", "start": "now-1h", "step": "fast"}, "cannot read duration 'fast'"),
        ({"expr": "up", "start": "now", "end": "now-1h"}, "end must be after start"),
        ({"expr": "up", "step": "1m"}, "need start"),
        ({"expr": "up", "time": "now", "start": "now-1h"}, "not both"),
        ({"expr": "  "}, "expr is empty"),
    ],
)
async def test_bad_arguments_say_what_to_give(
    stack_server: InferwatchServer, arguments: dict[str, str], expected: str
) -> None:
    async with Client(stack_server) as client:
        assert expected in error_text(await client.call_tool("query_prometheus", arguments))


async def test_prometheus_down_names_the_url_and_the_setting() -> None:
    url = unreachable_url()
    async with Client(build_server(make_settings(prometheus_url=url))) as client:
        message = error_text(await client.call_tool("query_prometheus", {"expr": "up"}))
    assert url in message
    assert "PROMETHEUS_URL" in message


async def test_a_url_that_is_not_prometheus_is_named(demo_agent_url: str) -> None:
    settings = make_settings(prometheus_url=demo_agent_url)  # the agent: no query API there
    async with Client(build_server(settings)) as client:
        message = error_text(await client.call_tool("query_prometheus", {"expr": "up"}))
    assert f"Prometheus answered HTTP 404 for {demo_agent_url}/api/v1/query" in message
    assert "check PROMETHEUS_URL" in message
