"""Keeps a browser context on one origin: Grafana's.

Every request is routed. A request to another origin is aborted before it leaves, whatever asked
for it (a link, a script, an iframe, a popup, a redirect). Requests to Grafana get the auth
header here, so it never reaches another origin. Playwright does not route the hops of a
redirect (the browser follows them on its own, carrying the added header along), so requests to
Grafana are fetched with redirects off and each hop is checked: a main-frame navigation that
redirects within Grafana is handed back to the caller to open (so it is routed too); any other
same-origin redirect is followed here.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from urllib.parse import urljoin, urlsplit

from playwright.async_api import BrowserContext, Page, Route, WebSocketRoute
from playwright.async_api import Error as PlaywrightError

log = logging.getLogger(__name__)

MAX_REDIRECTS = 8
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


def origin_of(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port
    default = {"http": 80, "https": 443}.get(parts.scheme)
    host = (parts.hostname or "").lower()
    netloc = host if port is None or port == default else f"{host}:{port}"
    return f"{parts.scheme}://{netloc}"


class OriginGuard:
    """One per browser context: ``await guard.install(context)`` before its first page."""

    def __init__(
        self, origin: str, auth_headers: Mapping[str, str], *, timeout_seconds: float
    ) -> None:
        self.origin = origin_of(origin)
        self._auth = dict(auth_headers)
        self._timeout_ms = timeout_seconds * 1000
        self._main: Page | None = None
        self.refused: list[str] = []  # every URL kept from loading, in order
        self.refused_navigation: str | None = None  # the main frame tried to leave
        self.redirect: str | None = None  # the main frame was redirected within Grafana
        self.closed_popups: list[str] = []

    def forget_last_page(self) -> None:
        """Before the context's page opens another dashboard: what it saw was the last call's."""
        self.refused, self.refused_navigation, self.redirect = [], None, None
        self.closed_popups = []

    def allowed(self, url: str) -> bool:
        return origin_of(url) == self.origin

    async def install(self, context: BrowserContext) -> None:
        await context.route("**/*", self._route)
        await context.route_web_socket(lambda url: not self.allowed(url), self._refuse_socket)
        context.on("page", self._on_page)

    def watch(self, page: Page) -> None:
        """``page`` is the one whose main frame must stay on Grafana (the context's first page
        is taken as that one anyway)."""
        self._main = page

    def _is_main_navigation(self, route: Route) -> bool:
        request = route.request
        if not request.is_navigation_request() or self._main is None:
            return False
        try:
            return request.frame == self._main.main_frame
        except PlaywrightError:  # a frame of a popup that is already gone
            return False

    async def _refuse(self, route: Route, url: str) -> None:
        self.refused.append(url)
        if self._is_main_navigation(route) and self.refused_navigation is None:
            self.refused_navigation = url
        with contextlib.suppress(PlaywrightError):
            await route.abort("blockedbyclient")

    async def _route(self, route: Route) -> None:
        request = route.request
        url = request.url
        if not self.allowed(url):
            await self._refuse(route, url)
            return
        try:
            headers = {**await request.all_headers(), **self._auth}
            # HTTP/2 pseudo-headers are not headers one may send.
            headers = {k: v for k, v in headers.items() if not k.startswith(":")}
            for _ in range(MAX_REDIRECTS):
                response = await route.fetch(
                    url=url, headers=headers, max_redirects=0, timeout=self._timeout_ms
                )
                if response.status not in _REDIRECTS:
                    await route.fulfill(response=response)
                    return
                target = urljoin(url, response.headers.get("location", ""))
                if not self.allowed(target):
                    await self._refuse(route, target)
                    return
                if self._is_main_navigation(route):
                    self.redirect = target
                    await route.abort("aborted")
                    return
                url = target
            await self._refuse(route, url)
        except PlaywrightError as error:
            # The page or context closed while the request was on its way (a stuck query, say).
            log.debug("request to %s ended: %s", url, error)
            with contextlib.suppress(PlaywrightError):
                await route.abort("failed")

    async def _refuse_socket(self, socket: WebSocketRoute) -> None:
        self.refused.append(socket.url)
        await socket.close(code=1008, reason="inferwatch: only the Grafana origin is allowed")

    async def _on_page(self, page: Page) -> None:
        if self._main is None:  # the context's first page is the one we open
            self._main = page
            return
        if page is self._main:
            return
        # A popup: nothing but the page we opened may run.
        self.closed_popups.append(page.url)
        with contextlib.suppress(PlaywrightError):
            await page.close()
