"""Fixtures for the MCP server tests: servers wired to the demo stack or to the fake Grafana API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mcp_server.server import InferwatchServer, build_server
from mcp_server.settings import Settings
from tests.fakes.grafana_api import FakeGrafanaAPI
from tests.fakes.http import serve
from tests.mcp_server.support import make_settings


@pytest.fixture
def fake_grafana() -> FakeGrafanaAPI:
    """The fake's behaviour; start it with ``grafana_url`` (tests may change it first)."""
    return FakeGrafanaAPI()


@pytest.fixture
async def grafana_url(fake_grafana: FakeGrafanaAPI) -> AsyncIterator[str]:
    async with serve(fake_grafana.app()) as url:
        yield url


@pytest.fixture
def stack_settings(demo_agent_url: str, demo_prometheus_url: str) -> Settings:
    return make_settings(agent_url=demo_agent_url, prometheus_url=demo_prometheus_url)


# Servers, not clients: a client is entered in the test itself (``async with Client(server)``),
# since anyio's cancel scopes must be left in the task that entered them, and pytest-asyncio
# finalizes async fixtures in another task.


@pytest.fixture
def stack_server(stack_settings: Settings) -> InferwatchServer:
    """A server wired to the demo agent and the real Prometheus."""
    return build_server(stack_settings)


@pytest.fixture
def grafana_server(grafana_url: str) -> InferwatchServer:
    """A server wired to the fake Grafana API (anonymous access)."""
    return build_server(make_settings(grafana_url=grafana_url))
