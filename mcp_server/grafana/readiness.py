"""When a dashboard is ready, decided the way Grafana's own image renderer decides it.

Wait about a second for the app to start its queries, then poll until no HTTP request is in
flight, ``window.__grafanaSceneContext && window.__grafanaRunningQueryCount > 0`` is false, no
panel shows its loading bar, and the DOM is the same across two checks. Panels below the fold
only render once scrolled into view, so the page is scrolled through first (and again whenever
it grows).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page, Request

from mcp_server.grafana.selectors import Selectors, attribute_css

SETTLE_SECONDS = 1.0
POLL_SECONDS = 0.1
# Requests that stay open by design are not "in flight" work.
_LONG_LIVED = frozenset({"eventsource", "websocket"})

# The element that scrolls the dashboard: the document (Grafana 11.3+ scrolls the body), else
# the tallest scrollable element (older Grafana scrolls an inner container).
_SCROLLER_JS = """
const scroller = () => {
  const doc = document.scrollingElement || document.documentElement;
  if (doc.scrollHeight > doc.clientHeight + 1) return doc;
  let best = doc;
  const all = document.body ? document.body.getElementsByTagName('*') : [];
  for (let i = 0; i < all.length && i < 20000; i += 1) {
    const el = all[i];
    if (el.scrollHeight <= el.clientHeight + 1 || el.scrollHeight <= best.scrollHeight) continue;
    const overflow = getComputedStyle(el).overflowY;
    if (overflow === 'auto' || overflow === 'scroll') best = el;
  }
  return best;
};
"""

_SCROLL_THROUGH_JS = (
    "async () => {"
    + _SCROLLER_JS
    + """
  const el = scroller();
  const frames = () => new Promise((done) =>
    requestAnimationFrame(() => requestAnimationFrame(done)));
  let y = 0;
  for (let i = 0; i < 100 && y < el.scrollHeight - el.clientHeight; i += 1) {
    y = Math.min(el.scrollHeight - el.clientHeight, y + Math.max(100, el.clientHeight * 0.8));
    el.scrollTop = y;
    await frames();
  }
  el.scrollTop = 0;
  await frames();
  return el.scrollHeight;
}"""
)

_PROBE_JS = (
    "(s) => {"
    + _SCROLLER_JS
    + """
  const loading = [];
  for (const section of document.querySelectorAll(s.sections)) {
    if (!section.querySelector(s.loadingBar)) continue;
    const testid = section.getAttribute('data-testid') || section.getAttribute('aria-label') || '';
    loading.push(testid.startsWith(s.prefix) ? testid.slice(s.prefix.length) : testid);
  }
  const body = document.body;
  return {
    scenes: Boolean(window.__grafanaSceneContext),
    running: Number(window.__grafanaRunningQueryCount || 0),
    loading,
    signature: body ? `${body.innerHTML.length}:${body.getElementsByTagName('*').length}` : '',
    height: scroller().scrollHeight,
  };
}"""
)


def panel_sections_css(selectors: Selectors) -> str:
    """Every panel's <section>: its test id starts with the title selector's prefix."""
    prefix = selectors.panel_title_prefix
    attribute = "data-testid" if prefix.startswith("data-testid") else "aria-label"
    return f'[{attribute}^="{prefix}"]'


def probe_args(selectors: Selectors) -> dict[str, str]:
    return {
        "sections": panel_sections_css(selectors),
        "prefix": selectors.panel_title_prefix,
        "loadingBar": attribute_css(selectors.panel_loading_bar),
    }


class RequestTracker:
    """HTTP requests of a page that have started and not yet finished or failed."""

    def __init__(self, page: Page) -> None:
        self._open: set[Request] = set()
        page.on("request", self._started)
        page.on("requestfinished", self._ended)
        page.on("requestfailed", self._ended)

    def _started(self, request: Request) -> None:
        if request.resource_type not in _LONG_LIVED:
            self._open.add(request)

    def _ended(self, request: Request) -> None:
        self._open.discard(request)

    def forget(self) -> None:
        """Before the page opens another URL: the last page's requests no longer count."""
        self._open.clear()

    @property
    def in_flight(self) -> int:
        return len(self._open)


@dataclass
class Readiness:
    ready: bool
    waited_seconds: float
    loading: list[str] = field(default_factory=list)


async def scroll_through(page: Page) -> float:
    """Scroll to the bottom in steps (so lazy panels mount) and back; returns the page height."""
    height: Any = await page.evaluate(_SCROLL_THROUGH_JS)
    return float(height)


async def wait_until_ready(
    page: Page,
    requests: RequestTracker,
    selectors: Selectors,
    *,
    started: float,
    timeout_seconds: float,
) -> Readiness:
    """Poll until the dashboard is ready or ``timeout_seconds`` after ``started`` (a
    ``time.monotonic()`` taken before navigating) have passed."""
    deadline = started + timeout_seconds
    args = probe_args(selectors)
    scrolled_height = -1.0
    previous: str | None = None
    loading: list[str] = []
    while True:
        now = time.monotonic()
        try:
            probe: dict[str, Any] = await page.evaluate(_PROBE_JS, args)
            if float(probe["height"]) > scrolled_height + 1:
                scrolled_height = await scroll_through(page)
                previous = None
                continue
        except PlaywrightError:  # navigating: the document is being replaced
            previous = None
            probe = {}
        loading = list(probe.get("loading", []))
        busy = (
            not probe
            or requests.in_flight > 0
            or (probe["scenes"] and probe["running"] > 0)
            or bool(loading)
        )
        signature = None if busy else str(probe["signature"])
        settled = now >= started + SETTLE_SECONDS
        if settled and signature is not None and signature == previous:
            return Readiness(True, time.monotonic() - started)
        if now >= deadline:
            return Readiness(False, time.monotonic() - started, loading)
        previous = signature
        await asyncio.sleep(max(0.0, min(now + POLL_SECONDS, deadline) - time.monotonic()))
