"""A Grafana 13.2 stand-in for tests (no Grafana server can run here).

It serves dashboard JSON files with Grafana's URL routes and HTTP API shapes, its auth (service
account token, basic auth, the login form and its session cookie, anonymous), and pages that keep
Grafana's DOM contract, with panels filled from a real Prometheus. Knobs make a panel slow, stuck
or erroring, a dashboard redirect elsewhere, or a page reach for other origins; every request is
recorded with its headers.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import secrets
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import aiohttp
from aiohttp import web
from multidict import MultiMapping

from agent.simulator.background import BackgroundServer
from tests.fakes.grafana import dashboards as dash
from tests.fakes.grafana.expand import expand_expr
from tests.fakes.grafana.page import dashboard_page, login_page, not_found_page
from tests.fakes.grafana.queries import run_query

REPO = Path(__file__).resolve().parents[3]
SELECTORS_FIXTURE = REPO / "tests" / "fixtures" / "e2e-selectors" / "13.2.2.json"
TEST_DASHBOARDS = Path(__file__).parent / "dashboards"
SESSION_COOKIE = "grafana_session"
_PUBLIC = ("/api/health", "/login", "/favicon.ico")

JSON = dict[str, Any]


def _page_selectors(version: str) -> JSON:
    """The DOM contract, read from the pinned @grafana/e2e-selectors values (not from the
    driver's own table, so a wrong value there is caught)."""
    fixture = json.loads(SELECTORS_FIXTURE.read_text())
    resolved = fixture["resolved"]
    table = resolved[version] if version in resolved else resolved[fixture["version"]]
    return {
        "panelTitle": table["components.Panels.Panel.title"],
        "panelHeaderContainer": table["components.Panels.Panel.headerContainer"],
        "panelContent": table["components.Panels.Panel.content"],
        "panelStatus": table["components.Panels.Panel.status"],
        "panelLoadingBar": table["components.Panels.Panel.loadingBar"],
        "panelDataErrorMessage": table["components.Panels.Panel.PanelDataErrorMessage"],
        "loginUsername": table["pages.Login.username"],
        "loginPassword": table["pages.Login.password"],
        "loginSubmit": table["pages.Login.submit"],
    }


def _is_scenes(version: str) -> bool:
    major, minor = (int(part) for part in version.split(".")[:2])
    return (major, minor) >= (11, 3)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # with the query string
    headers: Mapping[str, str]  # names in lower case


@dataclass
class PanelBehaviour:
    delay_seconds: float = 0.0
    stuck: bool = False
    error: str | None = None


@dataclass
class _Knobs:
    panels: dict[tuple[str, int], PanelBehaviour] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    foreign_resources: list[str] = field(default_factory=list)
    popup_url: str | None = None
    navigate_url: str | None = None
    refresh_seconds: float = 0.0


class GrafanaStandIn:
    """``with GrafanaStandIn(folder, prometheus_url) as grafana: ... grafana.url``."""

    def __init__(
        self,
        dashboards_dir: Path,
        prometheus_url: str,
        *,
        token: str | None = None,
        user: str | None = None,
        password: str | None = None,
        anonymous: bool = True,
        extra_dirs: Sequence[Path] = (),
        version: str = "13.2.2",
    ) -> None:
        self.dashboards = dash.load_dashboards([dashboards_dir, *extra_dirs])
        self.prometheus_url = prometheus_url.rstrip("/")
        self.token = token
        self.user = user
        self.password = password
        self.anonymous = anonymous
        self._anonymous_default = anonymous
        self.basic_auth_enabled = True
        self.version = version
        self._version_default = version
        self.requests: list[RecordedRequest] = []
        self.url = ""
        self._knobs = _Knobs()
        self._knobs_lock = threading.Lock()
        self._sessions: set[str] = set()
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._released: asyncio.Event | None = None
        self._background: BackgroundServer[GrafanaStandIn] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Self:
        self._background = BackgroundServer(self, "grafana-standin", GrafanaStandIn._serve)
        self._background.start()
        return self

    def close(self) -> None:
        if self._background is not None:
            self._background.stop()
            self._background = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    async def _serve(self) -> None:
        self._released = asyncio.Event()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))
        app = web.Application(middlewares=[self._record, self._authenticate])
        app.router.add_get("/api/health", self._health)
        app.router.add_get("/api/search", self._search)
        app.router.add_get("/api/dashboards/uid/{uid}", self._dashboard_json)
        app.router.add_get("/api/datasources", self._datasources)
        app.router.add_post("/api/ds/query", self._query)
        app.router.add_get("/login", self._login_form)
        app.router.add_post("/login", self._login)
        app.router.add_get("/logout", self._logout)
        app.router.add_get("/", self._home)
        for prefix in ("/d/{uid}", "/d/{uid}/{slug}"):
            app.router.add_get(prefix, self._dashboard_page)
        for prefix in ("/d-solo/{uid}", "/d-solo/{uid}/{slug}"):
            app.router.add_get(prefix, self._solo_page)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._released is not None:
            self._released.set()  # let stuck queries end
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    # -- knobs -----------------------------------------------------------------------------

    def panel_id(self, uid: str, panel: str | int) -> int:
        if isinstance(panel, int):
            return panel
        for spec in dash.all_panels(self.dashboards[uid].model):
            if spec.get("title") == panel:
                return int(spec["id"])
        raise KeyError(f"{uid} has no panel {panel!r}")

    def set_panel(
        self,
        uid: str,
        panel: str | int,
        *,
        delay_seconds: float = 0.0,
        stuck: bool = False,
        error: str | None = None,
    ) -> None:
        """Make a panel's queries slow (``delay_seconds``), never answer, or fail."""
        key = (uid, self.panel_id(uid, panel))
        with self._knobs_lock:
            self._knobs.panels[key] = PanelBehaviour(delay_seconds, stuck, error)

    @contextlib.contextmanager
    def panel_behaviour(
        self,
        uid: str,
        panel: str | int,
        *,
        delay_seconds: float = 0.0,
        stuck: bool = False,
        error: str | None = None,
    ) -> Iterator[None]:
        self.set_panel(uid, panel, delay_seconds=delay_seconds, stuck=stuck, error=error)
        try:
            yield
        finally:
            with self._knobs_lock:
                self._knobs.panels.pop((uid, self.panel_id(uid, panel)), None)

    @contextlib.contextmanager
    def knobs(
        self,
        *,
        anonymous: bool | None = None,
        basic_auth: bool = True,
        version: str | None = None,
        redirects: Mapping[str, str] | None = None,
        foreign_resources: Sequence[str] = (),
        popup_url: str | None = None,
        navigate_url: str | None = None,
        refresh_seconds: float = 0.0,
    ) -> Iterator[None]:
        """Knobs for the block: ``anonymous`` access, ``basic_auth`` accepted, the Grafana
        ``version`` reported (and whose DOM the pages keep: below 11.3, no Scenes), ``redirects``
        (uid -> URL the page answers 302 to), ``foreign_resources`` (URLs every page loads as
        img, iframe and fetch), ``popup_url`` (window.open on load), ``navigate_url`` (location
        change on load), ``refresh_seconds`` (every page re-runs its panels' queries that often,
        as a dashboard with auto-refresh does)."""
        if anonymous is not None:
            self.anonymous = anonymous
        if version is not None:
            self.version = version
        self.basic_auth_enabled = basic_auth
        with self._knobs_lock:
            self._knobs.redirects = dict(redirects or {})
            self._knobs.foreign_resources = list(foreign_resources)
            self._knobs.popup_url = popup_url
            self._knobs.navigate_url = navigate_url
            self._knobs.refresh_seconds = refresh_seconds
        try:
            yield
        finally:
            self.reset()

    def reset(self) -> None:
        with self._knobs_lock:
            self._knobs = _Knobs()
        self.basic_auth_enabled = True
        self.anonymous = self._anonymous_default
        self.version = self._version_default

    def requests_since(self, mark: int) -> list[RecordedRequest]:
        return self.requests[mark:]

    # -- middlewares -----------------------------------------------------------------------

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        headers = {name.lower(): value for name, value in request.headers.items()}
        self.requests.append(RecordedRequest(request.method, request.path_qs, headers))
        response: web.StreamResponse = await handler(request)
        return response

    def _identity(self, request: web.Request) -> str:
        """'ok', 'invalid' (credentials that fail) or 'none'."""
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return "ok" if self.token is not None and value == self.token else "invalid"
        if scheme.lower() == "basic" and self.basic_auth_enabled:
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except ValueError:
                return "invalid"
            ok = self.user is not None and (user, password) == (self.user, self.password)
            return "ok" if ok else "invalid"
        if request.cookies.get(SESSION_COOKIE) in self._sessions:
            return "ok"
        return "none"

    @web.middleware
    async def _authenticate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path in _PUBLIC:
            response: web.StreamResponse = await handler(request)
            return response
        identity = self._identity(request)
        if identity == "ok" or (identity == "none" and self.anonymous):
            allowed: web.StreamResponse = await handler(request)
            return allowed
        api = request.path.startswith("/api/")
        if identity == "invalid":
            message = (
                "invalid API key"
                if "earer" in request.headers["Authorization"]
                else ("Invalid username or password")
            )
            if api:
                return web.json_response({"message": message}, status=401)
            return web.Response(status=401, text=f"Unauthorized: {message}")
        if api:
            return web.json_response({"message": "Unauthorized"}, status=401)
        raise web.HTTPFound(f"/login?redirectTo={quote(request.path_qs, safe='')}")

    # -- API -------------------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"database": "ok", "version": self.version, "commit": "standin"})

    def _search_hit(self, dashboard: dash.Dashboard) -> JSON:
        return {
            "id": abs(hash(dashboard.uid)) % 10_000,
            "uid": dashboard.uid,
            "title": dashboard.title,
            "uri": f"db/{dashboard.slug}",
            "url": dashboard.url,
            "slug": "",
            "type": "dash-db",
            "tags": list(dashboard.tags),
            "isStarred": False,
            "sortMeta": 0,
        }

    async def _search(self, request: web.Request) -> web.Response:
        query = request.query.get("query", "").lower()
        tags = set(request.query.getall("tag", []))
        kind = request.query.get("type", "dash-db")
        hits = [
            self._search_hit(d)
            for d in sorted(self.dashboards.values(), key=lambda d: d.title.lower())
            if kind == "dash-db" and query in d.title.lower() and tags <= set(d.tags)
        ]
        return web.json_response(hits)

    async def _dashboard_json(self, request: web.Request) -> web.Response:
        dashboard = self.dashboards.get(request.match_info["uid"])
        if dashboard is None:
            return web.json_response({"message": "Dashboard not found"}, status=404)
        return web.json_response(
            {
                "dashboard": {"id": 1, "version": 1, **dashboard.model},
                "meta": {
                    "type": "db",
                    "canSave": False,
                    "canEdit": False,
                    "slug": dashboard.slug,
                    "url": dashboard.url,
                    "provisioned": True,
                    "folderTitle": "Dashboards",
                    "folderUid": "",
                },
            }
        )

    async def _datasources(self, request: web.Request) -> web.Response:
        return web.json_response(
            [
                {
                    "id": 1,
                    "uid": dash.DATASOURCE_UID,
                    "name": "Prometheus",
                    "type": "prometheus",
                    "url": self.prometheus_url,
                    "access": "proxy",
                    "isDefault": True,
                }
            ]
        )

    async def _query(self, request: web.Request) -> web.Response:
        body = await request.json()
        uid = request.headers.get("X-Dashboard-Uid", "")
        panel = int(request.headers.get("X-Panel-Id", "-1"))
        with self._knobs_lock:
            behaviour = self._knobs.panels.get((uid, panel), PanelBehaviour())
        if behaviour.delay_seconds:
            await asyncio.sleep(behaviour.delay_seconds)
        if behaviour.stuck and self._released is not None:
            await self._released.wait()
        queries = body.get("queries", [])
        if behaviour.error is not None:
            results = {
                str(q.get("refId", "A")): {"status": 400, "error": behaviour.error} for q in queries
            }
            return web.json_response({"results": results}, status=400)
        start = dash.parse_time(str(body.get("from", "")))
        end = dash.parse_time(str(body.get("to", "")))
        if start is None or end is None:
            return web.json_response({"message": "invalid time range"}, status=400)
        assert self._session is not None
        answers = await asyncio.gather(
            *(run_query(self._session, self.prometheus_url, q, start, end) for q in queries)
        )
        results = {str(q.get("refId", "A")): a for q, a in zip(queries, answers, strict=True)}
        failed = sum("error" in a for a in answers)
        status = 200 if not failed else 400 if failed == len(answers) else 207
        return web.json_response({"results": results}, status=status)

    # -- login -----------------------------------------------------------------------------

    async def _login_form(self, request: web.Request) -> web.Response:
        page = login_page(_page_selectors(self.version), request.query.get("redirectTo", "/"))
        return web.Response(text=page, content_type="text/html")

    async def _login(self, request: web.Request) -> web.Response:
        body = await request.json()
        if (
            self.user is None
            or body.get("user") != self.user
            or body.get("password") != self.password
        ):
            return web.json_response({"message": "Invalid username or password"}, status=401)
        session = secrets.token_hex(16)
        self._sessions.add(session)
        response = web.json_response({"message": "Logged in", "redirectUrl": "/"})
        response.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="Lax", path="/")
        return response

    async def _logout(self, request: web.Request) -> web.Response:
        self._sessions.discard(request.cookies.get(SESSION_COOKIE, ""))
        raise web.HTTPFound("/login")

    async def _home(self, request: web.Request) -> web.Response:
        links = "".join(
            f"<li><a href='{d.url}'>{d.title}</a></li>" for d in self.dashboards.values()
        )
        return web.Response(text=f"<h1>Home</h1><ul>{links}</ul>", content_type="text/html")

    # -- pages -----------------------------------------------------------------------------

    def _page_model(
        self, request: web.Request, dashboard: dash.Dashboard, solo_panel: JSON | None
    ) -> JSON:
        query = request.query
        from_url = _variables_from(query)
        values = dash.variable_values(dashboard.model, from_url)
        start, end = dash.time_range(dashboard.model, query.get("from"), query.get("to"))
        range_seconds = (end - start) / 1000
        interval_seconds = max(1.0, range_seconds / 1000)
        specs = [solo_panel] if solo_panel is not None else dash.visible_panels(dashboard.model)
        panels = []
        for spec in specs:
            targets = [t for t in spec.get("targets", []) if t.get("expr") and not t.get("hide")]
            panels.append(
                {
                    "id": spec.get("id"),
                    "title": dash.interpolate_text(str(spec.get("title", "")), values),
                    "type": spec.get("type", "timeseries"),
                    "gridPos": spec.get("gridPos"),
                    "collapsed": bool(spec.get("collapsed")),
                    "unit": (spec.get("fieldConfig") or {}).get("defaults", {}).get("unit"),
                    "decimals": (spec.get("fieldConfig") or {}).get("defaults", {}).get("decimals"),
                    "content_text": (spec.get("options") or {}).get("content"),
                    "queries": [
                        {
                            "refId": t.get("refId", "A"),
                            "expr": expand_expr(
                                str(t["expr"]),
                                values,
                                dashboard.model,
                                interval_seconds=interval_seconds,
                                range_seconds=range_seconds,
                            ),
                            "instant": bool(t.get("instant")) and not t.get("range"),
                            "legendFormat": t.get("legendFormat"),
                        }
                        for t in targets
                    ],
                }
            )
        with self._knobs_lock:
            knobs = self._knobs
            foreign, popup, navigate, refresh = (
                list(knobs.foreign_resources),
                knobs.popup_url,
                knobs.navigate_url,
                knobs.refresh_seconds,
            )
        version = self.version
        return {
            "uid": dashboard.uid,
            "title": dashboard.title,
            "scenes": _is_scenes(version),
            "kiosk": "kiosk" in query,
            "solo": solo_panel is not None,
            "theme": query.get("theme", "dark"),
            "from": start,
            "to": end,
            "range_text": f"{query.get('from', 'now-6h')} to {query.get('to', 'now')}",
            "intervalMs": int(interval_seconds * 1000),
            "maxDataPoints": 1000,
            "datasource": dash.DATASOURCE_UID,
            "selectors": _page_selectors(version),
            "panels": panels,
            "foreign": foreign,
            "popup": popup,
            "navigate": navigate,
            "refreshMs": int(refresh * 1000),
        }

    def _redirect_for(self, uid: str) -> str | None:
        with self._knobs_lock:
            return self._knobs.redirects.get(uid)

    async def _dashboard_page(self, request: web.Request) -> web.Response:
        uid = request.match_info["uid"]
        target = self._redirect_for(uid)
        if target is not None:
            raise web.HTTPFound(target)
        dashboard = self.dashboards.get(uid)
        theme = request.query.get("theme", "dark")
        if dashboard is None:
            return web.Response(text=not_found_page(theme), content_type="text/html")
        page = dashboard_page(self._page_model(request, dashboard, None))
        return web.Response(text=page, content_type="text/html")

    async def _solo_page(self, request: web.Request) -> web.Response:
        dashboard = self.dashboards.get(request.match_info["uid"])
        theme = request.query.get("theme", "dark")
        if dashboard is None:
            return web.Response(text=not_found_page(theme), content_type="text/html")
        raw = request.query.get("panelId", "").removeprefix("panel-")
        spec = dash.find_panel(dashboard.model, int(raw)) if raw.isdigit() else None
        if spec is None:
            return web.Response(text="Panel not found", content_type="text/html", status=404)
        page = dashboard_page(self._page_model(request, dashboard, spec))
        return web.Response(text=page, content_type="text/html")


def _variables_from(query: MultiMapping[str]) -> dict[str, list[str]]:
    names = {key.removeprefix("var-") for key in query if key.startswith("var-")}
    return {name: list(query.getall(f"var-{name}")) for name in names}
