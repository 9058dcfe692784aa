"""The Grafana driver: Chromium (Playwright, async) looking at dashboards as a person does.

One browser per process, started on first use and reused; each call gets a browser context and
page of its own, confined to the Grafana origin (``confinement``). A context that served a call
well is kept (a few, for a minute) and the next call opens its dashboard there: a new context
costs a renderer process, more CPU than loading most dashboards. Auth: a service-account token
(``Authorization: Bearer``, added only to requests for the Grafana origin), else basic auth
(the same way), falling back to Grafana's login form when basic auth is refused, else anonymous.
A dashboard is judged once ready the way Grafana's renderer judges it (``readiness``), then each
panel's state is read (``panel_states``) with the selectors of the Grafana version the server
reports (``selectors``).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import struct
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import quote, urlencode, urlsplit

from playwright.async_api import (
    APIRequestContext,
    Browser,
    BrowserContext,
    Locator,
    Page,
    Playwright,
    Response,
    StorageState,
    async_playwright,
)
from playwright.async_api import Error as PlaywrightError

from mcp_server.grafana.api import dashboard_path, parse_dashboard
from mcp_server.grafana.confinement import OriginGuard, origin_of
from mcp_server.grafana.errors import (
    DashboardNotFound,
    DashboardNotReady,
    GrafanaAuthError,
    GrafanaError,
    GrafanaHTTPError,
    GrafanaUnreachable,
    NavigationRefused,
    PanelNotFound,
)
from mcp_server.grafana.models import DashboardCheck, DashboardSpec, PanelSpec
from mcp_server.grafana.panel_states import PanelOnPage, read_error_messages, read_panels
from mcp_server.grafana.readiness import RequestTracker, wait_until_ready
from mcp_server.grafana.selectors import Selectors, for_version
from mcp_server.settings import GrafanaSettings

log = logging.getLogger(__name__)

# Debian's Chromium in containers and CI (FACTS.md): no sandbox (no user namespaces), no GPU,
# no /dev/shm, and none of the background traffic a desktop browser makes.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Without it two loads of an unchanged dashboard differ by a few pixels, and the verdict
    # cache (keyed by the screenshot's bytes) would miss almost every time.
    "--disable-partial-raster",
)
MAX_REDIRECTS = 5
IDLE_SESSIONS = 4  # the harness's default concurrency
IDLE_SESSION_SECONDS = 60.0
# Stops what a kept page is loading and every timer it set (Chromium numbers them in order):
# Grafana's auto-refresh would otherwise go on querying while the page waits for a next call.
_QUIET_JS = """() => {
  window.stop();
  const last = setTimeout(() => {}, 0);
  for (let id = 0; id <= last; id += 1) { clearTimeout(id); clearInterval(id); }
}"""


class BrowserUnavailable(GrafanaError):
    def __init__(self, path: str, reason: str) -> None:
        where = path or "Playwright's own Chromium"
        super().__init__(
            f"Chromium ({where}) could not start: {reason}; set CHROMIUM_PATH to a Chromium "
            "binary (Debian: apt-get install chromium -> /usr/bin/chromium) or run "
            "`playwright install chromium`"
        )


@dataclass(frozen=True)
class View:
    """How to open a dashboard."""

    time_from: str = "now-1h"
    time_to: str = "now"
    variables: Mapping[str, Sequence[str]] = field(default_factory=dict)
    theme: Literal["light", "dark"] = "light"
    timezone: str = "utc"
    width: int = 1600
    height: int = 1000
    kiosk: bool = True


DEFAULT_VIEW = View()


@dataclass(frozen=True)
class Capture:
    png: bytes
    check: DashboardCheck
    width: int
    height: int
    panel: str | None = None


def png_size(png: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    if png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        raise ValueError("not a PNG")
    width, height = struct.unpack(">II", png[16:24])
    return int(width), int(height)


@dataclass
class _Session:
    """One call's browser context and page, with what they saw."""

    context: BrowserContext
    page: Page
    guard: OriginGuard
    requests: RequestTracker
    key: int  # the auth generation it was made with: a spare must match
    size: tuple[int, int] = (DEFAULT_VIEW.width, DEFAULT_VIEW.height)
    theme: str = DEFAULT_VIEW.theme
    idle_since: float = 0.0

    def forget_last_call(self) -> None:
        self.guard.forget_last_page()
        self.requests.forget()


class GrafanaBrowser:
    def __init__(self, settings: GrafanaSettings) -> None:
        self._settings = settings
        self._base = settings.url.rstrip("/")
        self._origin = origin_of(self._base)
        self._lock = asyncio.Lock()
        self._login_lock = asyncio.Lock()
        self._playwright: Playwright | None = None
        self._browser: Browser | None = None
        self._api: APIRequestContext | None = None
        self._selectors: Selectors | None = None
        self._storage_state: StorageState | None = None  # the login form's session
        self._form_login = False  # basic auth was refused: log in through the form instead
        self._auth_generation = 0  # bumped by each login: older spare pages are stale
        self._spare: asyncio.Task[_Session] | None = None
        self._idle: list[_Session] = []  # served a call well; the next calls reuse them
        self._closing_tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.launches = 0  # browsers started by this instance (tests and benchmarks read it)
        self.contexts_opened = 0

    @property
    def idle_sessions(self) -> int:
        """Contexts kept open for the next calls."""
        return len(self._idle)

    @property
    def running(self) -> bool:
        return self._browser is not None and self._browser.is_connected()

    # -- public API ------------------------------------------------------------------------

    async def check_dashboard(self, uid: str, view: View = DEFAULT_VIEW) -> DashboardCheck:
        with _browser_failures(uid):
            spec = await self._dashboard(uid)
            async with self._opened(uid, spec, view) as (session, check, panels):
                return await self._with_messages(session, check, panels)

    async def screenshot_dashboard(self, uid: str, view: View = DEFAULT_VIEW) -> Capture:
        """The whole dashboard, every panel rendered (the page's full height)."""
        with _browser_failures(uid):
            spec = await self._dashboard(uid)
            async with self._opened(uid, spec, view) as (session, check, panels):
                png = await session.page.screenshot(full_page=True, animations="disabled")
                check = await self._with_messages(session, check, panels)
        width, height = png_size(png)
        return Capture(png=png, check=check, width=width, height=height)

    async def screenshot_panel(
        self, uid: str, panel: str | int, view: View = DEFAULT_VIEW, *, solo: bool = False
    ) -> Capture:
        """One panel: cropped from the dashboard, or (``solo``) alone on ``/d-solo``, filling
        the viewport."""
        with _browser_failures(uid):
            spec = await self._dashboard(uid)
            target = _find_panel(spec, panel)
            if not solo:
                return (await self._crop_panels(uid, spec, [target], view))[0]
            async with self._opened(uid, spec, view, solo_panel=target) as opened:
                session, check, panels = opened
                png = await session.page.screenshot(animations="disabled")
                check = await self._with_messages(session, check, panels)
        width, height = png_size(png)
        return Capture(png=png, check=check, width=width, height=height, panel=target.title)

    async def screenshot_panels(
        self, uid: str, panels: Sequence[str], view: View = DEFAULT_VIEW
    ) -> list[Capture]:
        """One page load, one crop per panel (by title), in the order asked."""
        with _browser_failures(uid):
            spec = await self._dashboard(uid)
            targets = [_find_panel(spec, title) for title in panels]
            return await self._crop_panels(uid, spec, targets, view)

    async def aclose(self) -> None:
        self._closing = True
        try:
            await self._close_browser()
        finally:
            self._closing = False

    async def _close_browser(self) -> None:
        self._idle = []  # closing the browser closes their contexts
        spare, self._spare = self._spare, None
        if spare is not None:
            spare.cancel()  # if still opening: closing the browser closes its context too
            await asyncio.wait([spare])
            if not spare.cancelled() and spare.exception() is None:
                with contextlib.suppress(PlaywrightError):
                    await spare.result().context.close()
        async with self._lock:
            api, browser, playwright = self._api, self._browser, self._playwright
            self._api = self._browser = self._playwright = None
            for close in (
                api.dispose if api else None,
                browser.close if browser else None,
                playwright.stop if playwright else None,
            ):
                if close is not None:
                    try:
                        await close()
                    except PlaywrightError as error:
                        log.debug("closing the browser: %s", error)

    # -- one page --------------------------------------------------------------------------

    async def _crop_panels(
        self, uid: str, spec: DashboardSpec, targets: Sequence[PanelSpec], view: View
    ) -> list[Capture]:
        shots: dict[int, bytes] = {}
        async with self._opened(uid, spec, view) as (session, check, panels):
            missing = []
            for index, target in enumerate(targets):
                element = await self._panel_element(session.page, target)
                if element is None:
                    missing.append(index)
                else:
                    shots[index] = await element.screenshot(animations="disabled")
            check = await self._with_messages(session, check, panels)
            # Not on the page (inside a collapsed row, say): Grafana shows it alone on /d-solo.
            for index in missing:
                selectors = await self._selectors_for()
                url = self._url(selectors, uid, view, targets[index])
                await self._load_ready(session, selectors, url, uid)
                shots[index] = await session.page.screenshot(animations="disabled")
        captures = []
        for index, target in enumerate(targets):
            png = shots[index]
            width, height = png_size(png)
            captures.append(
                Capture(png=png, check=check, width=width, height=height, panel=target.title)
            )
        return captures

    async def _panel_element(self, page: Page, target: PanelSpec) -> Locator | None:
        selectors = await self._selectors_for()
        by_id = page.locator(selectors.panel_by_id(target.id))
        if await by_id.count():
            return by_id.first
        by_title = page.locator(selectors.css("panel_title", title=target.title))
        if await by_title.count():
            return by_title.first
        return None

    @contextlib.asynccontextmanager
    async def _opened(
        self,
        uid: str,
        spec: DashboardSpec,
        view: View,
        *,
        solo_panel: PanelSpec | None = None,
    ) -> AsyncIterator[tuple[_Session, DashboardCheck, list[PanelOnPage]]]:
        """The dashboard open, ready and read (without error messages yet)."""
        selectors = await self._selectors_for()
        url = self._url(selectors, uid, view, solo_panel)
        async with self._session(view) as session:
            waited = await self._load_ready(session, selectors, url, uid)
            panels = await read_panels(session.page, selectors)
            self._raise_if_left(session)
            check = DashboardCheck(
                uid=uid,
                title=spec.title,
                url=url,
                ready=True,
                waited_seconds=round(waited, 3),
                panels=[panel.state for panel in panels],
            )
            yield session, check, panels

    async def _load_ready(
        self, session: _Session, selectors: Selectors, url: str, uid: str
    ) -> float:
        """Open ``url`` in the session's page and wait until it is ready; seconds waited."""
        started = time.monotonic()
        await self._navigate(session, url)
        readiness = await wait_until_ready(
            session.page,
            session.requests,
            selectors,
            started=started,
            timeout_seconds=self._settings.ready_timeout_seconds,
        )
        self._raise_if_left(session)
        if _on_login_page(session.page):  # the app itself sent us to log in
            raise GrafanaAuthError(self._base, 401)
        if not readiness.ready:
            raise DashboardNotReady(uid, readiness.waited_seconds, readiness.loading)
        return readiness.waited_seconds

    async def _with_messages(
        self, session: _Session, check: DashboardCheck, panels: list[PanelOnPage]
    ) -> DashboardCheck:
        if not any(panel.state.state == "error" for panel in panels):
            return check
        selectors = await self._selectors_for()
        panels = await read_error_messages(session.page, selectors, panels)
        return check.model_copy(update={"panels": [panel.state for panel in panels]})

    def _url(self, selectors: Selectors, uid: str, view: View, solo_panel: PanelSpec | None) -> str:
        params: list[tuple[str, str]] = [("orgId", str(self._settings.org_id))]
        if solo_panel is not None:
            path = selectors.solo_url.replace("{page}", quote(uid, safe=""))
            params.append(("panelId", str(solo_panel.id)))
        else:
            path = selectors.dashboard_url.replace("{uid}", quote(uid, safe=""))
        params += [("from", view.time_from), ("to", view.time_to)]
        params += [(f"var-{name}", value) for name, vs in view.variables.items() for value in vs]
        params += [("timezone", view.timezone), ("theme", view.theme)]
        query = urlencode(params)
        if view.kiosk and solo_panel is None:
            query += "&kiosk"
        return f"{self._base}{path}?{query}"

    @contextlib.asynccontextmanager
    async def _session(self, view: View) -> AsyncIterator[_Session]:
        """A browser context and page for one call: one that served an earlier call well, else
        the spare opened in advance, else a new one."""
        key = self._auth_generation
        session = self._take_idle(key) or await self._take_spare(key)
        if session is None:
            session = await self._new_session(key)
        served = False
        try:
            if session.size != (view.width, view.height):
                await session.page.set_viewport_size({"width": view.width, "height": view.height})
                session.size = (view.width, view.height)
            if session.theme != view.theme:
                await session.page.emulate_media(color_scheme=view.theme)
                session.theme = view.theme
            yield session
            served = True
        finally:
            if not (served and await self._keep_idle(session)):
                with contextlib.suppress(PlaywrightError):
                    await session.context.close()
            if not self._idle:
                self._make_spare(self._auth_generation)

    def _take_idle(self, key: int) -> _Session | None:
        while self._idle:
            session = self._idle.pop()
            if session.key == key and not session.page.is_closed():
                session.forget_last_call()
                return session
            self._close_later(session)
        return None

    async def _keep_idle(self, session: _Session) -> bool:
        """Keep a session whose call went well for the next calls, its page quiet (a dashboard
        that refreshes itself would go on querying); False if it is not wanted."""
        if (
            self._closing
            or not self.running
            or session.key != self._auth_generation
            or session.page.is_closed()
            or len(self._idle) >= IDLE_SESSIONS
        ):
            return False
        try:
            await session.page.evaluate(_QUIET_JS)
        except PlaywrightError:
            return False
        session.idle_since = time.monotonic()
        self._idle.append(session)
        asyncio.get_running_loop().call_later(IDLE_SESSION_SECONDS, self._close_long_idle)
        return True

    def _close_long_idle(self) -> None:
        """An idle session holds a renderer process (~100 MB): closed after a minute unused."""
        cutoff = time.monotonic() - IDLE_SESSION_SECONDS
        for session in [s for s in self._idle if s.idle_since <= cutoff]:
            self._idle.remove(session)
            self._close_later(session)

    def _close_later(self, session: _Session) -> None:
        task = asyncio.get_running_loop().create_task(_close_quietly(session.context))
        self._closing_tasks.add(task)
        task.add_done_callback(self._closing_tasks.discard)

    async def _new_session(self, key: int) -> _Session:
        browser = await self._browser_started()
        self.contexts_opened += 1
        context = await browser.new_context(
            viewport={"width": DEFAULT_VIEW.width, "height": DEFAULT_VIEW.height},
            color_scheme=DEFAULT_VIEW.theme,
            timezone_id="UTC",  # Grafana shows times in the URL's timezone
            service_workers="block",
            accept_downloads=False,
            storage_state=self._storage_state if self._form_login else None,
        )
        try:
            guard = OriginGuard(
                self._origin,
                self._auth_headers(),
                timeout_seconds=self._settings.ready_timeout_seconds + 5,
            )
            await guard.install(context)
            page = await context.new_page()
            guard.watch(page)
        except BaseException:
            with contextlib.suppress(PlaywrightError):
                await context.close()
            raise
        return _Session(context, page, guard, RequestTracker(page), key)

    def _make_spare(self, key: int) -> None:
        if self._spare is None and self.running and not self._closing:
            self._spare = asyncio.get_running_loop().create_task(self._new_session(key))

    async def _take_spare(self, key: int) -> _Session | None:
        spare, self._spare = self._spare, None
        if spare is None:
            return None
        try:
            session = await spare
        except (PlaywrightError, GrafanaError, asyncio.CancelledError):
            return None
        if session.key == key and not session.page.is_closed():
            return session
        with contextlib.suppress(PlaywrightError):
            await session.context.close()
        return None

    async def _navigate(self, session: _Session, url: str) -> None:
        """Open ``url`` following redirects within Grafana (each hop routed, so confined); a
        login page means the credentials were refused (after one try of the login form)."""
        page, guard = session.page, session.guard
        timeout_ms = self._settings.ready_timeout_seconds * 1000
        target, tried_form = url, False
        for _ in range(MAX_REDIRECTS):
            guard.redirect = None
            try:
                response = await page.goto(
                    target, wait_until="domcontentloaded", timeout=timeout_ms
                )
            except PlaywrightError as error:
                self._raise_if_left(session)
                if guard.redirect is not None:
                    target = guard.redirect
                    continue
                raise GrafanaUnreachable(self._base, _first_line(error)) from error
            if response is not None and response.status in (401, 403):
                raise GrafanaAuthError(self._base, response.status)
            if not _on_login_page(page):
                return
            if tried_form or not await self._log_in_with_form():
                raise GrafanaAuthError(self._base, 401)
            tried_form = True
            cookies = (self._storage_state or {}).get("cookies", [])
            await session.context.add_cookies(cast(Any, cookies))  # the same keys
            target = url
        raise GrafanaHTTPError(url, 302, f"more than {MAX_REDIRECTS} redirects")

    def _raise_if_left(self, session: _Session) -> None:
        if session.guard.refused_navigation is not None:
            raise NavigationRefused(session.guard.refused_navigation, self._origin)

    # -- browser, API, auth ----------------------------------------------------------------

    async def _browser_started(self) -> Browser:
        async with self._lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            playwright = await self._playwright_started()
            path = self._settings.chromium_path
            try:
                self._browser = await playwright.chromium.launch(
                    executable_path=path or None, args=list(CHROMIUM_ARGS), headless=True
                )
            except PlaywrightError as error:
                raise BrowserUnavailable(path, _first_line(error)) from error
            self.launches += 1
            return self._browser

    async def _playwright_started(self) -> Playwright:
        """Playwright's driver (under ``self._lock``); the browser is only launched for pages."""
        if self._playwright is None:
            self._playwright = await async_playwright().start()
        return self._playwright

    async def _api_started(self) -> APIRequestContext:
        async with self._lock:
            if self._api is None:
                playwright = await self._playwright_started()
                self._api = await playwright.request.new_context(
                    base_url=self._base,
                    extra_http_headers=self._auth_headers(),
                    timeout=self._settings.http_timeout_seconds * 1000,
                    max_redirects=0,
                    storage_state=self._storage_state if self._form_login else None,
                )
            return self._api

    def _auth_headers(self) -> dict[str, str]:
        settings = self._settings
        if settings.service_account_token is not None:
            return {"Authorization": f"Bearer {settings.service_account_token.get_secret_value()}"}
        if settings.user and settings.password is not None and not self._form_login:
            pair = f"{settings.user}:{settings.password.get_secret_value()}"
            return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
        return {}

    async def _get(self, path: str, params: Mapping[str, str] | None = None) -> tuple[int, Any]:
        api = await self._api_started()
        try:
            response = await api.get(path, params=dict(params or {}), max_redirects=0)
            status = response.status
            try:
                body = await response.json()
            except (PlaywrightError, ValueError):
                body = await response.text()
        except PlaywrightError as error:
            raise GrafanaUnreachable(self._base, _first_line(error)) from error
        return status, body

    async def _selectors_for(self) -> Selectors:
        if self._selectors is None:
            status, body = await self._get("/api/health")
            if status != 200 or not isinstance(body, dict):
                raise GrafanaUnreachable(self._base, f"/api/health answered HTTP {status}")
            self._selectors = for_version(str(body.get("version") or ""))
        return self._selectors

    async def _dashboard(self, uid: str) -> DashboardSpec:
        await self._selectors_for()
        path = dashboard_path(uid)
        if path is None:
            raise DashboardNotFound(uid, await self._known_uids())
        status, body = await self._get(path)
        if status in (401, 403) and await self._log_in_with_form():
            status, body = await self._get(path)
        if status in (401, 403):
            raise GrafanaAuthError(self._base, status)
        if status == 404:
            raise DashboardNotFound(uid, await self._known_uids())
        if status != 200 or not isinstance(body, dict):
            raise GrafanaHTTPError(self._base + path, status, str(body)[:200])
        return parse_dashboard(body.get("dashboard") or {}, uid)

    async def _known_uids(self) -> list[str]:
        status, body = await self._get("/api/search", {"type": "dash-db", "limit": "5000"})
        if status != 200 or not isinstance(body, list):
            return []
        return [str(hit["uid"]) for hit in body if isinstance(hit, dict) and hit.get("uid")]

    async def _log_in_with_form(self) -> bool:
        """Basic auth refused: log in through Grafana's login form once and keep the session.
        False when there is nothing to try (a token, no user, or the form was used already)."""
        settings = self._settings
        if settings.service_account_token is not None or not settings.user:
            return False
        if settings.password is None:
            return False
        async with self._login_lock:
            if self._form_login and self._storage_state is not None:
                return False
            selectors = await self._selectors_for()
            self._form_login = True  # no basic header from here on
            async with self._session(DEFAULT_VIEW) as session:
                await self._navigate_login(session, self._base + selectors.login_url)
                if not await self._submit_login(session.page, selectors):
                    self._form_login = False
                    raise GrafanaAuthError(self._base, 401)
                self._storage_state = await session.context.storage_state()
                self._auth_generation += 1
            async with self._lock:
                api, self._api = self._api, None
            if api is not None:
                await api.dispose()
            return True

    async def _submit_login(self, page: Page, selectors: Selectors) -> bool:
        """Fill in and send Grafana's login form; True once it let us in."""
        settings = self._settings
        assert settings.user is not None and settings.password is not None
        timeout_ms = settings.http_timeout_seconds * 1000

        def is_login_post(response: Response) -> bool:
            return response.request.method == "POST" and _on_login_url(response.url)

        try:
            await page.locator(selectors.css("login_username")).fill(
                settings.user, timeout=timeout_ms
            )
            await page.locator(selectors.css("login_password")).fill(
                settings.password.get_secret_value(), timeout=timeout_ms
            )
            async with page.expect_response(is_login_post, timeout=timeout_ms) as answer:
                await page.locator(selectors.css("login_submit")).click(timeout=timeout_ms)
            if not (await answer.value).ok:
                return False
        except PlaywrightError as error:  # no such form (an SSO-only Grafana, say)
            log.info("Grafana's login form did not work: %s", _first_line(error))
            return False
        return await _left_login(page, selectors, settings.http_timeout_seconds)

    async def _navigate_login(self, session: _Session, url: str) -> None:
        timeout_ms = self._settings.http_timeout_seconds * 1000
        try:
            await session.page.goto(url, wait_until="domcontentloaded", timeout=timeout_ms)
        except PlaywrightError as error:
            self._raise_if_left(session)
            raise GrafanaUnreachable(self._base, _first_line(error)) from error


async def _close_quietly(context: BrowserContext) -> None:
    with contextlib.suppress(PlaywrightError):
        await context.close()


async def _left_login(page: Page, selectors: Selectors, timeout_seconds: float) -> bool:
    """After submitting the login form: True once the page leaves /login (skipping Grafana's
    "change your password" prompt), False when it stays."""
    deadline = time.monotonic() + timeout_seconds
    skip = page.locator(selectors.css("login_skip"))
    while time.monotonic() < deadline:
        if not _on_login_page(page):
            return True
        with contextlib.suppress(PlaywrightError):
            if await skip.count():
                await skip.first.click(timeout=1000)
        await asyncio.sleep(0.1)
    return False


class BrowserFailure(GrafanaError):
    def __init__(self, uid: str, reason: str) -> None:
        super().__init__(f"the browser failed while looking at dashboard {uid!r}: {reason}")


@contextlib.contextmanager
def _browser_failures(uid: str) -> Iterator[None]:
    """Playwright's own errors (a crashed page, a timeout) as a GrafanaError naming the
    dashboard; ours pass through."""
    try:
        yield
    except PlaywrightError as error:
        raise BrowserFailure(uid, _first_line(error)) from error


def _on_login_url(url: str) -> bool:
    return urlsplit(url).path.rstrip("/").endswith("/login")


def _on_login_page(page: Page) -> bool:
    return _on_login_url(page.url)


def _find_panel(spec: DashboardSpec, panel: str | int) -> PanelSpec:
    """A panel by id, or by title (exact, else the one title equal ignoring case; a title of
    digits that matches no title is taken as an id)."""
    panels = [p for p in spec.panels if p.type != "row"]
    found: PanelSpec | None = None
    if isinstance(panel, str):
        found = next((p for p in panels if p.title == panel), None)
        if found is None:
            folded = [p for p in panels if p.title.casefold() == panel.casefold()]
            found = folded[0] if len(folded) == 1 else None
    if found is None and (isinstance(panel, int) or panel.isdigit()):
        found = next((p for p in panels if p.id == int(panel)), None)
    if found is None:
        raise PanelNotFound(spec.uid, panel, [p.title for p in panels])
    return found


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
