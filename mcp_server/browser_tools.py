"""The tools that look at Grafana through the browser: screenshots and panel states.

One ``GrafanaBrowser`` per server process (``ctx.lazy``), started on the first call and closed
with the server. Images are scaled down to what Claude reads without resizing (long edge
1568 px, about 1.15 megapixels); the text beside each says what the panels showed.
"""

from __future__ import annotations

import io
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Image, MCPServer
from mcp_types import TextContent, ToolAnnotations
from PIL import Image as PILImage
from pydantic import Field

from mcp_server.context import ServerContext, tool_errors
from mcp_server.grafana.browser import Capture, GrafanaBrowser, View
from mcp_server.grafana.models import DashboardCheck

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
MAX_EDGE = 1568
MAX_PIXELS = 1_150_000

Uid = Annotated[str, Field(description="dashboard uid")]
From = Annotated[str, Field(description="time range start, e.g. now-6h or epoch ms")]
To = Annotated[str, Field(description="time range end")]
Variables = Annotated[
    dict[str, list[str]] | None,
    Field(description='template variables, e.g. {"gpu": ["0", "1"]}'),
]
Theme = Literal["light", "dark"]
Width = Annotated[int, Field(ge=320, le=3840)]
Height = Annotated[int, Field(ge=240, le=2160)]


def _view(
    time_from: str,
    time_to: str,
    variables: dict[str, list[str]] | None,
    theme: Theme,
    width: int = 1600,
    height: int = 1000,
) -> View:
    return View(
        time_from=time_from,
        time_to=time_to,
        variables=dict(variables or {}),
        theme=theme,
        width=width,
        height=height,
    )


def fit_for_claude(png: bytes) -> tuple[bytes, int, int]:
    """The PNG scaled down (never up) to at most MAX_EDGE on its long edge and MAX_PIXELS."""
    with PILImage.open(io.BytesIO(png)) as image:
        width, height = image.size
        scale = min(1.0, MAX_EDGE / max(width, height), (MAX_PIXELS / (width * height)) ** 0.5)
        if scale >= 1.0:
            return png, width, height
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        resized = image.convert("RGB").resize(size, PILImage.Resampling.LANCZOS)
    out = io.BytesIO()
    resized.save(out, format="PNG", optimize=True)
    return out.getvalue(), size[0], size[1]


def summary(check: DashboardCheck) -> str:
    """One line per kind of panel state: what a person would say looking at the dashboard."""
    counts: dict[str, list[str]] = {}
    for panel in check.panels:
        counts.setdefault(panel.state, []).append(panel.title)
    parts = [f"{len(counts.pop('ok', []))} ok"]
    for state, label in (("error", "error"), ("no_data", "no data"), ("loading", "loading")):
        titles = counts.get(state, [])
        if titles:
            parts.append(f"{len(titles)} {label} ({', '.join(map(repr, titles))})")
    lines = [
        f"{check.title} ({check.uid}), ready after {check.waited_seconds:.1f}s: "
        f"{len(check.panels)} panels, " + ", ".join(parts)
    ]
    lines += [f"- {p.title!r}: {p.message}" for p in check.panels if p.state == "error"]
    return "\n".join(lines)


def _content(capture: Capture, what: str) -> list[Image | TextContent]:
    png, width, height = fit_for_claude(capture.png)
    size = f"{width}x{height} px"
    if (width, height) != (capture.width, capture.height):
        size += f" (scaled from {capture.width}x{capture.height})"
    text = f"{what}, {size}. {summary(capture.check)}"
    return [Image(data=png, format="png"), TextContent(type="text", text=text)]


def register(server: MCPServer[Any], ctx: ServerContext) -> None:
    async def browser() -> GrafanaBrowser:
        return await ctx.lazy("browser", lambda: GrafanaBrowser(ctx.settings.grafana))

    @server.tool(annotations=READ_ONLY)
    async def screenshot_dashboard(
        uid: Uid,
        time_from: From = "now-1h",
        time_to: To = "now",
        variables: Variables = None,
        theme: Theme = "light",
        width: Width = 1600,
    ) -> list[Image | TextContent]:
        """Screenshot a Grafana dashboard (full height, once loaded) with each panel's state."""
        with tool_errors():
            view = _view(time_from, time_to, variables, theme, width)
            capture = await (await browser()).screenshot_dashboard(uid, view)
        return _content(capture, f"Dashboard {uid}")

    @server.tool(annotations=READ_ONLY)
    async def screenshot_panel(
        uid: Uid,
        panel: Annotated[str, Field(description="panel title or id")],
        solo: Annotated[bool, Field(description="render the panel alone (/d-solo)")] = False,
        time_from: From = "now-1h",
        time_to: To = "now",
        variables: Variables = None,
        theme: Theme = "light",
        width: Width = 1600,
        height: Height = 1000,
    ) -> list[Image | TextContent]:
        """Screenshot one Grafana panel (cropped, or alone with solo) with its state."""
        with tool_errors():
            view = _view(time_from, time_to, variables, theme, width, height)
            capture = await (await browser()).screenshot_panel(uid, panel, view, solo=solo)
        return _content(capture, f"Panel {capture.panel!r} of {uid}")

    @server.tool(annotations=READ_ONLY)
    async def check_dashboard(
        uid: Uid,
        time_from: From = "now-1h",
        time_to: To = "now",
        variables: Variables = None,
    ) -> DashboardCheck:
        """Open a Grafana dashboard; each panel's state: ok, error (with message), no data."""
        with tool_errors():
            view = _view(time_from, time_to, variables, "light")
            return await (await browser()).check_dashboard(uid, view)
