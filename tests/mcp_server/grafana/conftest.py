"""Fixtures of the Grafana driver tests: the Grafana stand-in, a second loopback origin that
records what reaches it, and settings for a driver pointed at the stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio
from aiohttp import web

from mcp_server.settings import GrafanaSettings
from tests.fakes.grafana import GrafanaStandIn
from tests.fakes.http import serve


@dataclass
class OtherOrigin:
    """A loopback server on another port: every request that reaches it is recorded."""

    url: str = ""
    seen: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def app(self) -> web.Application:
        async def record(request: web.Request) -> web.Response:
            self.seen.append((request.path_qs, dict(request.headers)))
            return web.Response(text="<h1>another origin</h1>", content_type="text/html")

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        return app


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def other_origin() -> AsyncIterator[OtherOrigin]:
    origin = OtherOrigin()
    async with serve(origin.app()) as url:
        origin.url = url
        yield origin


def standin_settings(standin: GrafanaStandIn, **overrides: Any) -> GrafanaSettings:
    """Driver settings for the stand-in: nothing from the caller's GRAFANA_* environment."""
    values: dict[str, Any] = {
        "url": standin.url,
        "service_account_token": None,
        "user": None,
        "password": None,
        "ready_timeout_seconds": 5.0,
        "http_timeout_seconds": 5.0,
        **overrides,
    }
    return GrafanaSettings(**values)
