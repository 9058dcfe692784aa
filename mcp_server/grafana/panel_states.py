"""What each panel on the page shows, read as a person would: ok, still loading, an error (with
the message its status tooltip shows), or no data (Grafana's "No data" message, or the plain
"No data" text stat and gauge panels render)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

from playwright.async_api import Error as PlaywrightError
from playwright.async_api import Page

from mcp_server.grafana.models import PanelState
from mcp_server.grafana.readiness import panel_sections_css
from mcp_server.grafana.selectors import NO_DATA_TEXT, Selectors, attribute_css

TOOLTIP_TIMEOUT_MS = 2000
# Lines of Grafana 13's status popover that are chrome, not the message.
_POPOVER_CHROME = frozenset({"Errors and notices", "Inspect"})

_READ_JS = """
(s) => {
  const panels = [];
  for (const section of document.querySelectorAll(s.sections)) {
    const testid = section.getAttribute('data-testid') || section.getAttribute('aria-label') || '';
    const holder = section.closest(s.idCss) || section.querySelector(s.idCss);
    let id = null;
    if (holder) {
      const match = /\\d+/.exec(holder.getAttribute(s.idAttribute).slice(s.idPrefix.length));
      if (match) id = Number(match[0]);
    }
    const status = section.querySelector(s.error);
    const noData = section.querySelector(s.noData);
    const content = section.querySelector(s.content);
    panels.push({
      title: testid.startsWith(s.prefix) ? testid.slice(s.prefix.length) : '',
      id,
      loading: Boolean(section.querySelector(s.loadingBar)),
      error: Boolean(status),
      errorLabel: status ? (status.getAttribute('title') || '') : '',
      noData: noData ? noData.innerText.trim() : null,
      content: content ? content.innerText.trim() : null,
    });
  }
  return panels;
}
"""


@dataclass(frozen=True)
class PanelOnPage:
    """One panel as found on the page; ``index`` is its place among the panel sections."""

    index: int
    state: PanelState


def _read_args(selectors: Selectors) -> dict[str, str]:
    return {
        "sections": panel_sections_css(selectors),
        "prefix": selectors.panel_title_prefix,
        "idCss": f"[{selectors.panel_id_attribute}]",
        "idAttribute": selectors.panel_id_attribute,
        "idPrefix": selectors.panel_id_prefix,
        "error": selectors.css("panel_status", status="error"),
        "noData": attribute_css(selectors.panel_data_error_message),
        "content": attribute_css(selectors.panel_content),
        "loadingBar": attribute_css(selectors.panel_loading_bar),
    }


def _is_no_data(text: str) -> bool:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return bool(lines) and all(line == NO_DATA_TEXT for line in lines)


def _state(raw: dict[str, Any]) -> PanelState:
    title, panel_id = str(raw["title"]), raw["id"]
    if raw["error"]:
        return PanelState(
            id=panel_id, title=title, state="error", message=raw["errorLabel"] or None
        )
    if raw["loading"]:
        return PanelState(id=panel_id, title=title, state="loading")
    if raw["noData"] is not None:
        return PanelState(id=panel_id, title=title, state="no_data", message=raw["noData"] or None)
    if raw["content"] is None:
        return PanelState(id=panel_id, title=title, state="loading", message="not rendered")
    if _is_no_data(raw["content"]):
        return PanelState(id=panel_id, title=title, state="no_data", message=NO_DATA_TEXT)
    return PanelState(id=panel_id, title=title, state="ok")


async def read_panels(page: Page, selectors: Selectors) -> list[PanelOnPage]:
    """Every panel's state, in page order (error messages not read yet: see
    :func:`read_error_messages`, which hovers and so belongs after any screenshot)."""
    raw: list[dict[str, Any]] = await page.evaluate(_READ_JS, _read_args(selectors))
    return [PanelOnPage(index, _state(item)) for index, item in enumerate(raw)]


async def _tooltip_text(page: Page, selectors: Selectors, index: int) -> str | None:
    section = page.locator(panel_sections_css(selectors)).nth(index)
    button = section.locator(selectors.css("panel_status", status="error")).first
    tooltip = page.locator('[role="tooltip"]').last
    try:
        await button.hover(timeout=TOOLTIP_TIMEOUT_MS)
        await tooltip.wait_for(state="visible", timeout=TOOLTIP_TIMEOUT_MS)
        text = await tooltip.inner_text(timeout=TOOLTIP_TIMEOUT_MS)
    except PlaywrightError:
        return None
    finally:
        with contextlib.suppress(PlaywrightError):
            await page.mouse.move(0, 0)
    lines = [line.strip() for line in text.splitlines()]
    message = "\n".join(line for line in lines if line and line not in _POPOVER_CHROME)
    return message or None


async def read_error_messages(
    page: Page, selectors: Selectors, panels: list[PanelOnPage]
) -> list[PanelOnPage]:
    """The panels with each error's message filled in from its status tooltip."""
    updated = []
    for panel in panels:
        if panel.state.state == "error":
            message = await _tooltip_text(page, selectors, panel.index) or panel.state.message
            state = panel.state.model_copy(
                update={"message": message or "error (Grafana showed no message)"}
            )
            panel = PanelOnPage(panel.index, state)
        updated.append(panel)
    return updated
