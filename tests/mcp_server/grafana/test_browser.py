"""The Grafana driver against the Grafana stand-in, with real Chromium and real Prometheus data:
readiness, panel states, lazy panels, screenshots, bad input, one browser reused."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from PIL import Image

from mcp_server.grafana.browser import GrafanaBrowser, View, png_size
from mcp_server.grafana.errors import DashboardNotFound, DashboardNotReady, PanelNotFound
from mcp_server.grafana.models import PanelState
from tests.fakes.grafana import GrafanaStandIn
from tests.mcp_server.grafana.conftest import standin_settings

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

STATES = "standin-states"
LAZY = "standin-lazy"
VIEW = View(time_from="now-15m")
# The stand-in lays panels out on Grafana's grid: 24 columns over 1600 - 2 x 16 px, rows of
# 30 px plus 8 px margins.
HALF_WIDTH_8_ROWS = (780, 296)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def driver(grafana_standin: GrafanaStandIn, chromium: str) -> AsyncIterator[GrafanaBrowser]:
    browser = GrafanaBrowser(standin_settings(grafana_standin, ready_timeout_seconds=4.5))
    try:
        yield browser
    finally:
        await browser.aclose()


def by_title(panels: list[PanelState]) -> dict[str, PanelState]:
    return {panel.title: panel for panel in panels}


def decoded_size(png: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(png)) as image:
        image.load()  # fails on a truncated or corrupt file
        assert image.format == "PNG"
        return image.size


async def test_ready_dashboard_reads_every_panel_state(driver: GrafanaBrowser) -> None:
    check = await driver.check_dashboard(STATES, VIEW)
    assert check.ready
    assert (check.uid, check.title) == (STATES, "Stand-in: panel states")
    panels = by_title(check.panels)
    assert [p.title for p in check.panels] == [
        "GPU utilization",
        "Sources up",
        "Missing stat",
        "Missing series",
        "Broken query",
        "GPUs",
        "GPU memory used",
    ]
    assert {panels[t].state for t in ("GPU utilization", "Sources up", "GPUs")} == {"ok"}
    assert panels["GPU memory used"].state == "ok"
    # The data error message test id, and the stat panel's plain "No data" text.
    assert panels["Missing series"] == PanelState(
        id=4, title="Missing series", state="no_data", message="No data"
    )
    assert panels["Missing stat"].state == "no_data"
    # Prometheus' own message, read from the status tooltip.
    broken = panels["Broken query"]
    assert broken.state == "error"
    assert broken.message is not None
    assert "parse error" in broken.message
    assert broken.message.startswith("bad_data:")
    assert [p.id for p in check.panels] == [1, 2, 3, 4, 5, 6, 7]


async def test_slow_panel_is_waited_for(
    driver: GrafanaBrowser, grafana_standin: GrafanaStandIn
) -> None:
    with grafana_standin.panel_behaviour(STATES, "Sources up", delay_seconds=2.0):
        check = await driver.check_dashboard(STATES, VIEW)
    assert by_title(check.panels)["Sources up"].state == "ok"
    assert check.waited_seconds >= 2.0


async def test_stuck_panel_times_out_naming_it(
    driver: GrafanaBrowser, grafana_standin: GrafanaStandIn
) -> None:
    with (
        grafana_standin.panel_behaviour(STATES, "GPUs", stuck=True),
        pytest.raises(DashboardNotReady) as caught,
    ):
        await driver.check_dashboard(STATES, VIEW)
    assert caught.value.loading == ["GPUs"]
    assert "still loading: 'GPUs'" in str(caught.value)


async def test_erroring_panel_shows_the_error_message(
    driver: GrafanaBrowser, grafana_standin: GrafanaStandIn
) -> None:
    with grafana_standin.panel_behaviour(STATES, 1, error="Post: context deadline exceeded"):
        check = await driver.check_dashboard(STATES, VIEW)
    assert by_title(check.panels)["GPU utilization"] == PanelState(
        id=1, title="GPU utilization", state="error", message="Post: context deadline exceeded"
    )


async def test_panels_below_the_fold_are_scrolled_into_view_and_read(
    driver: GrafanaBrowser, grafana_standin: GrafanaStandIn
) -> None:
    mark = len(grafana_standin.requests)
    check = await driver.check_dashboard(LAZY, VIEW)
    assert [(p.title, p.state) for p in check.panels] == [
        ("Top stat", "ok"),
        ("Below the fold", "ok"),
        ("Far below", "ok"),
        ("Deep empty stat", "no_data"),
    ]
    queried = {
        r.headers.get("x-panel-id")
        for r in grafana_standin.requests_since(mark)
        if r.path.startswith("/api/ds/query")
    }
    assert queried == {"1", "2", "3", "4"}


async def test_unknown_uid_lists_the_dashboards(driver: GrafanaBrowser) -> None:
    with pytest.raises(DashboardNotFound) as caught:
        await driver.check_dashboard("no-such-dashboard")
    assert {STATES, LAZY} <= set(caught.value.known)
    assert "standin-states" in str(caught.value)


async def test_unknown_panel_lists_the_panels(driver: GrafanaBrowser) -> None:
    with pytest.raises(PanelNotFound) as caught:
        await driver.screenshot_panel(STATES, "No such panel", VIEW)
    assert caught.value.known == [
        "GPU utilization",
        "Sources up",
        "Missing stat",
        "Missing series",
        "Broken query",
        "GPUs",
        "GPU memory used",
    ]
    with pytest.raises(PanelNotFound):
        await driver.screenshot_panel(STATES, 99, VIEW)


async def test_dashboard_screenshot_is_the_full_page(driver: GrafanaBrowser) -> None:
    capture = await driver.screenshot_dashboard(LAZY, VIEW)
    # 88 grid rows (88 x 38 - 8 px) and the grid's margins: far taller than the viewport.
    assert decoded_size(capture.png) == (capture.width, capture.height) == (1600, 3352)
    assert capture.panel is None
    assert [p.state for p in capture.check.panels] == ["ok", "ok", "ok", "no_data"]


async def test_dashboard_screenshot_in_the_view_asked_for(driver: GrafanaBrowser) -> None:
    view = View(time_from="now-15m", theme="dark", width=1280, height=900, kiosk=False)
    capture = await driver.screenshot_dashboard(STATES, view)
    width, height = decoded_size(capture.png)
    assert width == 1280
    assert height >= 900
    assert capture.check.url.endswith("&timezone=utc&theme=dark")
    with Image.open(io.BytesIO(capture.png)) as image:
        background = image.convert("RGB").getpixel((2, height - 2))
    assert isinstance(background, tuple)
    assert max(background) < 60  # the dark theme


async def test_panel_screenshot_is_the_panel_crop(driver: GrafanaBrowser) -> None:
    capture = await driver.screenshot_panel(STATES, "GPU utilization", VIEW)
    assert capture.panel == "GPU utilization"
    assert decoded_size(capture.png) == (capture.width, capture.height) == HALF_WIDTH_8_ROWS


async def test_several_panels_from_one_page_load(
    driver: GrafanaBrowser, grafana_standin: GrafanaStandIn
) -> None:
    mark = len(grafana_standin.requests)
    captures = await driver.screenshot_panels(STATES, ["Broken query", "GPU utilization"], VIEW)
    assert [c.panel for c in captures] == ["Broken query", "GPU utilization"]
    assert [png_size(c.png) for c in captures] == [(780, 220), HALF_WIDTH_8_ROWS]
    pages = [r for r in grafana_standin.requests_since(mark) if r.path.startswith("/d/")]
    assert len(pages) == 1
    assert by_title(captures[0].check.panels)["Broken query"].state == "error"


async def test_solo_panel_fills_the_viewport(
    driver: GrafanaBrowser, grafana_standin: GrafanaStandIn
) -> None:
    mark = len(grafana_standin.requests)
    capture = await driver.screenshot_panel(STATES, "Sources up", VIEW, solo=True)
    assert decoded_size(capture.png) == (1600, 1000)
    assert [(p.title, p.state) for p in capture.check.panels] == [("Sources up", "ok")]
    solo = [r.path for r in grafana_standin.requests_since(mark) if r.path.startswith("/d-solo/")]
    assert len(solo) == 1
    assert solo[0].startswith(f"/d-solo/{STATES}?orgId=1&panelId=2&from=now-15m&to=now")


async def test_variables_reach_the_queries(driver: GrafanaBrowser) -> None:
    view = View(time_from="now-15m", variables={"gpu": ["0", "2"]})
    capture = await driver.screenshot_panel(STATES, "GPU memory used", view)
    assert "var-gpu=0&var-gpu=2" in capture.check.url
    assert by_title(capture.check.panels)["GPU memory used"].state == "ok"
    wide = await driver.screenshot_panel(STATES, "GPU memory used", VIEW)
    # Two GPUs instead of four: another picture of the same size.
    assert (capture.width, capture.height) == (wide.width, wide.height)
    assert capture.png != wide.png


async def test_older_grafana_without_scenes(grafana_standin: GrafanaStandIn, chromium: str) -> None:
    """Grafana before 11.3: panels carry data-panelid; the driver picks that table."""
    browser = GrafanaBrowser(standin_settings(grafana_standin))
    try:
        with grafana_standin.knobs(version="11.2.0"):
            [capture] = await browser.screenshot_panels(STATES, ["GPUs"], VIEW)
    finally:
        await browser.aclose()
    assert [p.id for p in capture.check.panels] == [1, 2, 3, 4, 5, 6, 7]
    assert by_title(capture.check.panels)["Broken query"].state == "error"
    assert png_size(capture.png) == (780, 220)


async def test_one_browser_reused_then_closed(
    grafana_standin: GrafanaStandIn, chromium: str
) -> None:
    browser = GrafanaBrowser(standin_settings(grafana_standin))
    assert not browser.running  # nothing starts before the first call
    try:
        await browser.check_dashboard(LAZY, VIEW)
        await browser.screenshot_panel(STATES, "Sources up", VIEW)
        assert browser.running
        assert browser.launches == 1
    finally:
        await browser.aclose()
    assert not browser.running
