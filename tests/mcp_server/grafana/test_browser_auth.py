"""The Grafana driver's auth and confinement, against the stand-in with real Chromium: the token
reaches Grafana and nothing else, basic auth, the login form, refusals, and a page that tries to
leave the Grafana origin."""

from __future__ import annotations

import pytest

from mcp_server.grafana.browser import GrafanaBrowser, View
from mcp_server.grafana.errors import GrafanaAuthError, GrafanaUnreachable, NavigationRefused
from mcp_server.grafana.models import DashboardCheck
from tests.fakes.grafana import GrafanaStandIn
from tests.fakes.grafana.fixtures import STANDIN_PASSWORD, STANDIN_TOKEN, STANDIN_USER
from tests.mcp_server.grafana.conftest import OtherOrigin, standin_settings
from tests.mcp_server.support import unreachable_url

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

UID = "standin-lazy"
VIEW = View(time_from="now-15m")


async def check_with(browser: GrafanaBrowser) -> DashboardCheck:
    try:
        return await browser.check_dashboard(UID, VIEW)
    finally:
        await browser.aclose()


async def test_token_is_sent_to_grafana_only(
    grafana_standin: GrafanaStandIn, other_origin: OtherOrigin, chromium: str
) -> None:
    elsewhere = [f"{other_origin.url}/pixel.png", f"{other_origin.url}/api/leak"]
    redirect_out = f"{grafana_standin.url}/d/bounce"  # Grafana's 302 to the other origin
    settings = standin_settings(grafana_standin, service_account_token=STANDIN_TOKEN)
    mark = len(grafana_standin.requests)
    with grafana_standin.knobs(
        anonymous=False,
        redirects={"bounce": f"{other_origin.url}/stolen"},
        foreign_resources=[*elsewhere, redirect_out],
        popup_url=f"{other_origin.url}/popup",
    ):
        check = await check_with(GrafanaBrowser(settings))
    assert [p.state for p in check.panels] == ["ok", "ok", "ok", "no_data"]
    seen = grafana_standin.requests_since(mark)
    assert {r.path.split("?")[0] for r in seen} >= {"/d/standin-lazy", "/api/ds/query"}
    assert {r.headers.get("authorization") for r in seen if r.path != "/api/health"} == {
        f"Bearer {STANDIN_TOKEN}"
    }
    # Images, iframes, fetches, a popup and a redirect towards the other origin: none left.
    assert other_origin.seen == []


async def test_redirect_off_the_grafana_origin_is_refused(
    grafana_standin: GrafanaStandIn, other_origin: OtherOrigin, chromium: str
) -> None:
    browser = GrafanaBrowser(standin_settings(grafana_standin))
    try:
        with (
            grafana_standin.knobs(redirects={UID: f"{other_origin.url}/elsewhere"}),
            pytest.raises(NavigationRefused) as caught,
        ):
            await browser.check_dashboard(UID, VIEW)
        with (
            grafana_standin.knobs(navigate_url=f"{other_origin.url}/by-script"),
            pytest.raises(NavigationRefused) as by_script,
        ):
            await browser.check_dashboard(UID, VIEW)
    finally:
        await browser.aclose()
    assert caught.value.url == f"{other_origin.url}/elsewhere"
    assert f"only the Grafana origin {grafana_standin.url} is allowed" in str(caught.value)
    assert by_script.value.url == f"{other_origin.url}/by-script"
    assert other_origin.seen == []


async def test_basic_auth(grafana_standin: GrafanaStandIn, chromium: str) -> None:
    settings = standin_settings(grafana_standin, user=STANDIN_USER, password=STANDIN_PASSWORD)
    mark = len(grafana_standin.requests)
    with grafana_standin.knobs(anonymous=False):
        check = await check_with(GrafanaBrowser(settings))
    assert check.panels[0].state == "ok"
    queries = [r for r in grafana_standin.requests_since(mark) if r.path.startswith("/api/ds/")]
    assert queries
    assert all(r.headers["authorization"].startswith("Basic ") for r in queries)


async def test_login_form_when_basic_auth_is_off(
    grafana_standin: GrafanaStandIn, chromium: str
) -> None:
    settings = standin_settings(grafana_standin, user=STANDIN_USER, password=STANDIN_PASSWORD)
    mark = len(grafana_standin.requests)
    browser = GrafanaBrowser(settings)
    try:
        with grafana_standin.knobs(anonymous=False, basic_auth=False):
            first = await browser.check_dashboard(UID, VIEW)
            second = await browser.check_dashboard(UID, VIEW)
    finally:
        await browser.aclose()
    assert first.panels == second.panels
    assert first.panels[0].state == "ok"
    seen = grafana_standin.requests_since(mark)
    logins = [r for r in seen if (r.method, r.path) == ("POST", "/login")]
    assert len(logins) == 1  # the session is kept for the next call
    queries = [r for r in seen if r.path.startswith("/api/ds/")]
    assert all("grafana_session=" in r.headers.get("cookie", "") for r in queries)
    assert not any("authorization" in r.headers for r in queries)


@pytest.mark.parametrize(
    "credentials",
    [{"service_account_token": "glsa_wrong"}, {"user": STANDIN_USER, "password": "wrong"}, {}],
    ids=["wrong-token", "wrong-password", "anonymous-off"],
)
async def test_refused_credentials_say_what_to_set(
    grafana_standin: GrafanaStandIn, chromium: str, credentials: dict[str, str]
) -> None:
    browser = GrafanaBrowser(standin_settings(grafana_standin, **credentials))
    try:
        with grafana_standin.knobs(anonymous=False), pytest.raises(GrafanaAuthError) as caught:
            await browser.check_dashboard(UID, VIEW)
    finally:
        await browser.aclose()
    assert caught.value.status == 401
    assert "GRAFANA_SERVICE_ACCOUNT_TOKEN" in str(caught.value)
    assert "glsa_wrong" not in str(caught.value)


async def test_grafana_down(chromium: str, grafana_standin: GrafanaStandIn) -> None:
    url = unreachable_url()
    browser = GrafanaBrowser(standin_settings(grafana_standin, url=url))
    try:
        with pytest.raises(GrafanaUnreachable) as caught:
            await browser.screenshot_dashboard(UID)
    finally:
        await browser.aclose()
    assert url in str(caught.value)
    assert "GRAFANA_URL" in str(caught.value)
    assert browser.launches == 0  # no browser for a Grafana that is not there
