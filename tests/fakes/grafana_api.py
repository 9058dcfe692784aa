"""Grafana's HTTP API as the MCP server's API client sees it, for tests only.

Serves ``GET /api/health``, ``GET /api/search`` and ``GET /api/dashboards/uid/{uid}`` in Grafana's
shapes (FACTS.md) from dashboard JSON files: the project's ``grafana/dashboards/*.json`` plus the
test fixture in ``tests/fixtures/grafana/``. Auth as Grafana does it: a service-account token or
basic auth when configured (401 ``{"message": ...}`` otherwise), anonymous when neither is.
The full stand-in with Grafana's pages lives in ``tests/fakes/grafana/``; this one is API only.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

REPO = Path(__file__).resolve().parents[2]
FIXTURE_DASHBOARDS = REPO / "tests" / "fixtures" / "grafana"
PROJECT_DASHBOARDS = REPO / "grafana" / "dashboards"


def dashboard_files() -> list[Path]:
    """The fixture dashboard, then the project's dashboards when the repo has them."""
    return sorted(FIXTURE_DASHBOARDS.glob("*.json")) + sorted(PROJECT_DASHBOARDS.glob("*.json"))


def load_dashboards(paths: Iterable[Path]) -> list[dict[str, Any]]:
    models: list[dict[str, Any]] = [json.loads(path.read_text()) for path in paths]
    return models


def slugify(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


@dataclass
class FakeGrafanaAPI:
    dashboards: list[dict[str, Any]] = field(
        default_factory=lambda: load_dashboards(dashboard_files())
    )
    token: str | None = None
    user: str | None = None
    password: str | None = None
    version: str = "13.2.0"
    # path -> Location: answer that path with a 302 instead.
    redirects: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._redirect])
        app.router.add_get("/api/health", self._health)
        app.router.add_get("/api/search", self._search)
        app.router.add_get("/api/moved/search", self._search)
        app.router.add_get("/api/dashboards/uid/{uid}", self._dashboard)
        return app

    @property
    def by_uid(self) -> dict[str, dict[str, Any]]:
        return {str(d["uid"]): d for d in self.dashboards}

    @web.middleware
    async def _redirect(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append((request.path_qs, request.headers.get("Authorization")))
        location = self.redirects.get(request.path)
        if location is not None:
            raise web.HTTPFound(location)
        response: web.StreamResponse = await handler(request)
        return response

    def _authorized(self, request: web.Request) -> bool:
        if self.token is None and self.user is None:
            return True
        header = request.headers.get("Authorization", "")
        if self.token is not None and hmac.compare_digest(header, f"Bearer {self.token}"):
            return True
        if self.user is not None and header.startswith("Basic "):
            pair = base64.b64decode(header.removeprefix("Basic ")).decode()
            return hmac.compare_digest(pair, f"{self.user}:{self.password or ''}")
        return False

    def _unauthorized(self) -> web.Response:
        return web.json_response({"message": "Unauthorized"}, status=401)

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"commit": "0000000", "database": "ok", "version": self.version})

    async def _search(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        kind = request.query.get("type", "dash-db")
        text = request.query.get("query", "").lower()
        tags = set(request.query.getall("tag", []))
        hits = [
            self._hit(number, d)
            for number, d in enumerate(self.dashboards, 1)
            if kind == "dash-db"
            and text in str(d["title"]).lower()
            and tags <= set(d.get("tags", []))
        ]
        return web.json_response(sorted(hits, key=lambda hit: str(hit["title"]).lower()))

    def _hit(self, number: int, model: Mapping[str, Any]) -> dict[str, Any]:
        slug = slugify(str(model["title"]))
        return {
            "id": number,
            "uid": model["uid"],
            "title": model["title"],
            "uri": f"db/{slug}",
            "url": f"/d/{model['uid']}/{slug}",
            "slug": "",
            "type": "dash-db",
            "tags": model.get("tags", []),
            "isStarred": False,
            "folderUid": "inferwatch",
            "folderTitle": "inferwatch",
            "sortMeta": 0,
        }

    async def _dashboard(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return self._unauthorized()
        model = self.by_uid.get(request.match_info["uid"])
        if model is None:
            return web.json_response({"message": "Dashboard not found"}, status=404)
        slug = slugify(str(model["title"]))
        meta = {
            "type": "db",
            "canSave": False,
            "canEdit": False,
            "slug": slug,
            "url": f"/d/{model['uid']}/{slug}",
            "folderTitle": "inferwatch",
            "provisioned": True,
        }
        return web.json_response({"dashboard": model, "meta": meta})
