"""Browser contexts kept between calls: a context that served a call well opens the next
dashboard, reset to that call's view; one whose call failed is closed; idle ones are closed after
a while."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from PIL import Image

from mcp_server.grafana import browser as browser_module
from mcp_server.grafana.browser import GrafanaBrowser, View
from mcp_server.grafana.errors import DashboardNotReady
from tests.fakes.grafana import GrafanaStandIn
from tests.mcp_server.grafana.conftest import standin_settings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="function")]

STATES = "standin-states"
VIEW = View(time_from="now-15m")
DARK_SMALL = View(time_from="now-15m", theme="dark", width=1280, height=900)


@pytest_asyncio.fixture
async def driver(grafana_standin: GrafanaStandIn, chromium: str) -> AsyncIterator[GrafanaBrowser]:
    browser = GrafanaBrowser(standin_settings(grafana_standin, ready_timeout_seconds=3.0))
    try:
        yield browser
    finally:
        await browser.aclose()


def size_and_corner(png: bytes) -> tuple[tuple[int, int], int]:
    with Image.open(io.BytesIO(png)) as image:
        pixel = image.convert("RGB").getpixel((2, image.height - 2))
        assert isinstance(pixel, tuple)
        return image.size, max(pixel)


async def test_one_context_serves_calls_one_after_another_in_each_ones_view(
    driver: GrafanaBrowser,
) -> None:
    now_ms = int(time.time() * 1000)
    fixed = View(time_from=str(now_ms - 600_000), time_to=str(now_ms - 60_000))
    first = await driver.screenshot_dashboard(STATES, fixed)
    dark = await driver.screenshot_dashboard(STATES, DARK_SMALL)
    again = await driver.screenshot_dashboard(STATES, fixed)
    assert driver.contexts_opened == 1
    assert driver.idle_sessions == 1
    (width, _), light_corner = size_and_corner(again.png)
    assert (width, light_corner > 200) == (1600, True)
    (dark_width, _), dark_corner = size_and_corner(dark.png)
    assert (dark_width, dark_corner < 60) == (1280, True)
    assert again.png == first.png  # the same fixed window, the same pixels: the verdict cache hits


async def test_concurrent_calls_each_get_a_context_then_all_are_kept(
    driver: GrafanaBrowser,
) -> None:
    checks = await asyncio.gather(*(driver.check_dashboard(STATES, VIEW) for _ in range(3)))
    assert all(check.ready for check in checks)
    opened = driver.contexts_opened
    assert 3 <= opened <= 4  # one may have been the spare opened in advance
    assert driver.idle_sessions == 3
    await asyncio.gather(*(driver.check_dashboard(STATES, VIEW) for _ in range(3)))
    assert driver.contexts_opened == opened


async def test_a_context_whose_call_failed_is_not_kept(
    driver: GrafanaBrowser, grafana_standin: GrafanaStandIn
) -> None:
    await driver.check_dashboard(STATES, VIEW)
    with (
        grafana_standin.panel_behaviour(STATES, "GPUs", stuck=True),
        pytest.raises(DashboardNotReady),
    ):
        await driver.check_dashboard(STATES, VIEW)  # takes the kept context, then fails
    assert driver.idle_sessions == 0
    check = await driver.check_dashboard(STATES, VIEW)  # the spare, or a new context
    assert check.ready
    assert driver.idle_sessions == 1


async def test_idle_contexts_are_closed_after_a_while(
    driver: GrafanaBrowser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(browser_module, "IDLE_SESSION_SECONDS", 0.3)
    await driver.check_dashboard(STATES, VIEW)
    assert driver.idle_sessions == 1
    for _ in range(200):  # up to 10 s
        if not driver.idle_sessions:
            break
        await asyncio.sleep(0.05)
    assert driver.idle_sessions == 0
    assert (await driver.check_dashboard(STATES, VIEW)).ready


def queries_since(grafana_standin: GrafanaStandIn, mark: int) -> int:
    return sum(r.path.startswith("/api/ds/query") for r in grafana_standin.requests[mark:])


async def test_a_kept_page_stops_refreshing_itself(
    driver: GrafanaBrowser, grafana_standin: GrafanaStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dashboard with auto-refresh, kept open after the call: it must not go on querying."""
    with grafana_standin.knobs(refresh_seconds=0.5):
        # The control: without the quieting, the kept page queries again within a second.
        monkeypatch.setattr(browser_module, "_QUIET_JS", "() => {}")
        await driver.check_dashboard(STATES, VIEW)
        mark = len(grafana_standin.requests)
        for _ in range(100):  # up to 5 s
            if queries_since(grafana_standin, mark):
                break
            await asyncio.sleep(0.05)
        assert queries_since(grafana_standin, mark) > 0

        monkeypatch.undo()
        await driver.check_dashboard(STATES, VIEW)  # in the same context, quieted after
        assert driver.idle_sessions == 1
        await asyncio.sleep(0.3)  # a query already on its way when the page was quieted
        mark = len(grafana_standin.requests)
        await asyncio.sleep(1.5)  # three refresh periods: silence is what is asserted
        assert queries_since(grafana_standin, mark) == 0
