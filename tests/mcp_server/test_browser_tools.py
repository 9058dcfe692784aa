"""screenshot_dashboard, screenshot_panel and check_dashboard over MCP (in-process client),
against the Grafana stand-in with real Chromium."""

from __future__ import annotations

import base64
import io

import pytest
from mcp import Client
from mcp_types import CallToolResult, ImageContent
from PIL import Image

from mcp_server.browser_tools import MAX_EDGE, MAX_PIXELS, fit_for_claude
from mcp_server.server import build_server
from tests.fakes.grafana import GrafanaStandIn
from tests.mcp_server.support import error_text, make_settings, structured, text

BROWSER_TOOLS = {"screenshot_dashboard", "screenshot_panel", "check_dashboard"}
STATES = "standin-states"


def image_of(result: CallToolResult) -> Image.Image:
    assert not result.is_error, text(result)
    images = [block for block in result.content if isinstance(block, ImageContent)]
    assert len(images) == 1
    assert images[0].mime_type == "image/png"
    image = Image.open(io.BytesIO(base64.b64decode(images[0].data)))
    image.load()
    return image


@pytest.mark.integration
async def test_browser_tools(grafana_standin: GrafanaStandIn, chromium: str) -> None:
    settings = make_settings(grafana_url=grafana_standin.url, grafana={"chromium_path": chromium})
    async with Client(build_server(settings)) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        full = await client.call_tool(
            "screenshot_dashboard", {"uid": "standin-lazy", "time_from": "now-15m"}
        )
        panel = await client.call_tool(
            "screenshot_panel", {"uid": STATES, "panel": "GPUs", "time_from": "now-15m"}
        )
        solo = await client.call_tool(
            "screenshot_panel",
            {"uid": STATES, "panel": "2", "solo": True, "width": 800, "height": 400},
        )
        check = structured(
            await client.call_tool("check_dashboard", {"uid": STATES, "time_from": "now-15m"})
        )
    assert set(tools) >= BROWSER_TOOLS
    for name in BROWSER_TOOLS:
        annotations = tools[name].annotations
        assert annotations is not None
        assert (annotations.read_only_hint, annotations.open_world_hint) == (True, False)
        description = tools[name].description or ""
        assert 0 < len(description) <= 100, name
    # 1600 x 3352 is scaled to what Claude reads without resizing (1.15 megapixels).
    assert image_of(full).size == (741, 1552)
    assert "scaled from 1600x3352" in text(full)
    assert "4 panels, 3 ok, 1 no data ('Deep empty stat')" in text(full)
    assert image_of(panel).size == (780, 220)
    assert image_of(solo).size == (800, 400)
    assert "Panel 'Sources up'" in text(solo)
    states = {p["title"]: (p["state"], p["message"]) for p in check["panels"]}
    assert states["Missing stat"] == ("no_data", "No data")
    assert states["Broken query"][0] == "error"
    assert "parse error" in states["Broken query"][1]
    assert check["ready"] is True


@pytest.mark.integration
async def test_browser_tool_errors_are_actionable(
    grafana_standin: GrafanaStandIn, chromium: str
) -> None:
    settings = make_settings(grafana_url=grafana_standin.url, grafana={"chromium_path": chromium})
    async with Client(build_server(settings)) as client:
        no_uid = error_text(await client.call_tool("check_dashboard", {"uid": "nope"}))
        no_panel = error_text(
            await client.call_tool("screenshot_panel", {"uid": STATES, "panel": "Nope"})
        )
        bad_width = await client.call_tool("screenshot_dashboard", {"uid": STATES, "width": 5})
    assert "no dashboard with uid 'nope'; dashboards: " in no_uid
    assert "standin-states" in no_uid
    assert no_panel.endswith(
        "dashboard 'standin-states' has no panel 'Nope'; panels: 'GPU utilization', "
        "'Sources up', 'Missing stat', 'Missing series', 'Broken query', 'GPUs', "
        "'GPU memory used'"
    )
    assert bad_width.is_error
    assert "width" in text(bad_width)


def test_fit_for_claude_keeps_small_images_and_shrinks_big_ones() -> None:
    def png(width: int, height: int) -> bytes:
        out = io.BytesIO()
        Image.new("RGB", (width, height), "white").save(out, format="PNG")
        return out.getvalue()

    small = png(800, 600)
    assert fit_for_claude(small) == (small, 800, 600)
    _, width, height = fit_for_claude(png(1600, 1000))
    assert width <= MAX_EDGE
    assert width * height <= MAX_PIXELS
    assert abs(width / height - 1.6) < 0.01
    _, width, height = fit_for_claude(png(1600, 6000))
    assert (height, width * height <= MAX_PIXELS) == (
        min(MAX_EDGE, round(6000 * (MAX_PIXELS / (1600 * 6000)) ** 0.5)),
        True,
    )
