"""Grafana's DOM contract, one table per range of Grafana versions.

Values are copied from the npm package ``@grafana/e2e-selectors`` (the versioned selector table
Grafana's own end-to-end tests use); ``tests/mcp_server/grafana/test_selectors.py`` checks them
against ``tests/fixtures/e2e-selectors/<version>.json`` (``scripts/refresh-e2e-selectors.sh``).
Templates keep the package's parameter names in braces (``{title}``, ``{status}``).

A value starting with ``data-testid`` is matched as a ``data-testid`` attribute, anything else as
an ``aria-label`` (what Grafana's plugin-e2e does); matching is exact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NO_DATA_TEXT = "No data"


@dataclass(frozen=True)
class Selectors:
    since: str  # the first Grafana version this table is for
    scenes: bool  # dashboards rendered by Scenes (window.__grafanaSceneContext)
    panel_title: str  # the panel's <section>: "... {title}"
    panel_header_container: str
    panel_content: str
    panel_status: str  # "... {status}": error, warning or info
    panel_loading_bar: str
    panel_data_error_message: str
    loading_indicator: str
    login_url: str
    login_username: str
    login_password: str
    login_submit: str
    login_skip: str
    dashboard_url: str  # "/d/{uid}"
    solo_url: str  # "/d-solo/{page}"
    # Not in @grafana/e2e-selectors: the attribute that carries a panel's id.
    panel_id_attribute: str
    panel_id_prefix: str

    def css(self, name: str, **params: str) -> str:
        """A CSS selector for the named field, with its template parameters filled in."""
        value: str = getattr(self, name)
        for key, text in params.items():
            value = value.replace("{" + key + "}", text)
        return attribute_css(value)

    @property
    def panel_title_prefix(self) -> str:
        return self.panel_title.replace("{title}", "")

    def panel_by_id(self, panel_id: int) -> str:
        return f'[{self.panel_id_attribute}="{self.panel_id_prefix}{panel_id}"]'


def attribute_css(value: str) -> str:
    """``[data-testid="..."]`` for a test id, else ``[aria-label="..."]``."""
    attribute = "data-testid" if value.startswith("data-testid") else "aria-label"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'[{attribute}="{escaped}"]'


# Field -> the key in @grafana/e2e-selectors it was copied from.
E2E_KEYS: dict[str, str] = {
    "panel_title": "components.Panels.Panel.title",
    "panel_header_container": "components.Panels.Panel.headerContainer",
    "panel_content": "components.Panels.Panel.content",
    "panel_status": "components.Panels.Panel.status",
    "panel_loading_bar": "components.Panels.Panel.loadingBar",
    "panel_data_error_message": "components.Panels.Panel.PanelDataErrorMessage",
    "loading_indicator": "components.LoadingIndicator.icon",
    "login_url": "pages.Login.url",
    "login_username": "pages.Login.username",
    "login_password": "pages.Login.password",
    "login_submit": "pages.Login.submit",
    "login_skip": "pages.Login.skip",
    "dashboard_url": "pages.Dashboard.url",
    "solo_url": "pages.SoloPanel.url",
}

_COMMON = {
    "panel_title": "data-testid Panel header {title}",
    "panel_header_container": "data-testid header-container",
    "panel_content": "data-testid panel content",
    "panel_status": "data-testid Panel status {status}",
    "panel_loading_bar": "Panel loading bar",
    "panel_data_error_message": "data-testid Panel data error message",
    "loading_indicator": "data-testid Loading indicator",
    "login_url": "/login",
    "login_username": "data-testid Username input field",
    "login_password": "data-testid Password input field",
    "login_submit": "data-testid Login button",
    "login_skip": "data-testid Skip change password button",
    "dashboard_url": "/d/{uid}",
    "solo_url": "/d-solo/{page}",
}

# Grafana 11.3+: dashboards are Scenes; a panel's grid item carries data-viz-panel-key="panel-N".
SCENES = Selectors(
    since="11.3.0",
    scenes=True,
    panel_id_attribute="data-viz-panel-key",
    panel_id_prefix="panel-",
    **_COMMON,
)

# Grafana 10.4 - 11.2 (the older dashboard grid): data-panelid="N". Checked against the package
# resolved at 11.2.0.
LEGACY = Selectors(
    since="10.4.0",
    scenes=False,
    panel_id_attribute="data-panelid",
    panel_id_prefix="",
    **_COMMON,
)

TABLES = (SCENES, LEGACY)  # newest first

_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?")


def parse_version(version: str) -> tuple[int, int, int] | None:
    match = _VERSION.match(version.strip())
    if match is None:
        return None
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def for_version(version: str) -> Selectors:
    """The table for a Grafana version as /api/health reports it (newest when unparsable)."""
    parsed = parse_version(version)
    if parsed is None:
        return TABLES[0]
    for table in TABLES:
        since = parse_version(table.since)
        if since is not None and parsed >= since:
            return table
    return TABLES[-1]
