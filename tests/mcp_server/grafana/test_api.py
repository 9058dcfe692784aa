"""GrafanaAPI against the fake Grafana API (real httpx, real aiohttp, Grafana's wire shapes)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mcp_server.grafana.api import GrafanaAPI, parse_dashboard
from mcp_server.grafana.errors import (
    DashboardNotFound,
    GrafanaAuthError,
    GrafanaHTTPError,
    GrafanaUnreachable,
)
from tests.fakes.grafana_api import PROJECT_DASHBOARDS, FakeGrafanaAPI, dashboard_files
from tests.fakes.http import serve
from tests.mcp_server.support import make_settings, unreachable_url

FIXTURE_UID = "inferwatch-fixture"


def api_for(url: str, **grafana: Any) -> GrafanaAPI:
    return GrafanaAPI(make_settings(grafana_url=url, grafana=grafana).grafana)


@pytest.fixture
async def api(grafana_url: str) -> AsyncIterator[GrafanaAPI]:
    client = api_for(grafana_url)
    yield client
    await client.aclose()


async def test_health_gives_the_version(api: GrafanaAPI) -> None:
    health = await api.health()
    assert (health.version, health.database) == ("13.2.0", "ok")


async def test_search_lists_dashboards_with_absolute_urls(api: GrafanaAPI) -> None:
    hits = {hit.uid: hit for hit in await api.search()}
    fixture = hits[FIXTURE_UID]
    assert fixture.title == "inferwatch fixture"
    assert fixture.url == f"{api.url}/d/{FIXTURE_UID}/inferwatch-fixture"
    assert fixture.tags == ["inferwatch", "fixture"]
    assert fixture.folder == "inferwatch"


async def test_search_filters_by_title_and_tag(api: GrafanaAPI) -> None:
    assert [hit.uid for hit in await api.search("FIXTURE")] == [FIXTURE_UID]
    assert [hit.uid for hit in await api.search(tag="fixture")] == [FIXTURE_UID]
    assert await api.search("no such dashboard") == []


async def test_dashboard_flattens_rows_in_layout_order(api: GrafanaAPI) -> None:
    spec = await api.dashboard(FIXTURE_UID)
    assert (spec.uid, spec.title, spec.time_from, spec.time_to) == (
        FIXTURE_UID,
        "inferwatch fixture",
        "now-1h",
        "now",
    )
    layout = [(panel.id, panel.title, panel.type, panel.row) for panel in spec.panels]
    assert layout == [
        (1, "Sources up", "stat", None),
        (10, "Notes", "text", None),  # saved without an id: numbered after the highest
        (5, "GPU utilization", "timeseries", "GPUs"),  # an expanded row owns what follows
        (6, "GPU memory used", "timeseries", "GPUs"),
        (8, "Xid errors", "stat", "Details"),  # a collapsed row nests its panels
        (9, "Model inventory", "table", "Details"),
    ]


async def test_dashboard_panels_keep_queries_units_and_datasources(api: GrafanaAPI) -> None:
    panels = {panel.title: panel for panel in (await api.dashboard(FIXTURE_UID)).panels}
    utilization = panels["GPU utilization"]
    assert utilization.unit == "percent"
    assert [(t.ref_id, t.expr, t.datasource, t.legend) for t in utilization.targets] == [
        ("A", "DCGM_FI_DEV_GPU_UTIL", "${datasource}", "GPU {{gpu}}"),
        ("B", "avg(DCGM_FI_DEV_GPU_UTIL)", "other-prometheus", "mean"),
    ]
    assert panels["Sources up"].description == "Sources whose last poll succeeded"
    assert panels["Xid errors"].targets == []  # a library panel: its queries live elsewhere


async def test_dashboard_variables(api: GrafanaAPI) -> None:
    variables = {v.name: v for v in (await api.dashboard(FIXTURE_UID)).variables}
    instance = variables["instance"]
    assert instance.type == "query"
    assert instance.query == "label_values(inferwatch_source_up, instance)"
    assert (instance.multi, instance.include_all, instance.current) == (True, True, ["$__all"])
    assert variables["window"].query == "today,24h,7d"
    assert variables["window"].current == ["24h"]
    assert variables["datasource"].label == "Data source"


async def test_raw_dashboard_is_the_api_answer(api: GrafanaAPI) -> None:
    raw = await api.raw_dashboard(FIXTURE_UID)
    assert raw["dashboard"]["uid"] == FIXTURE_UID
    assert raw["meta"]["url"] == f"/d/{FIXTURE_UID}/inferwatch-fixture"


async def test_unknown_uid_lists_the_valid_ones(api: GrafanaAPI) -> None:
    with pytest.raises(DashboardNotFound) as missing:
        await api.dashboard("no-such-uid")
    assert FIXTURE_UID in missing.value.known
    assert "no dashboard with uid 'no-such-uid'; dashboards: " in str(missing.value)
    assert FIXTURE_UID in str(missing.value)


async def test_a_uid_cannot_walk_out_of_the_dashboard_route(
    api: GrafanaAPI, fake_grafana: FakeGrafanaAPI
) -> None:
    with pytest.raises(DashboardNotFound):
        await api.dashboard("../../search")
    assert fake_grafana.requests[0][0] == "/api/dashboards/uid/..%2F..%2Fsearch"


async def test_token_is_sent_as_bearer(fake_grafana: FakeGrafanaAPI, grafana_url: str) -> None:
    fake_grafana.token = "glsa_test_token"
    api = api_for(grafana_url, service_account_token="glsa_test_token")
    try:
        assert await api.search("fixture")
    finally:
        await api.aclose()


async def test_basic_auth_when_no_token(fake_grafana: FakeGrafanaAPI, grafana_url: str) -> None:
    fake_grafana.user, fake_grafana.password = "viewer", "s3cret"
    api = api_for(grafana_url, user="viewer", password="s3cret")
    try:
        assert (await api.dashboard(FIXTURE_UID)).uid == FIXTURE_UID
    finally:
        await api.aclose()


@pytest.mark.parametrize(
    "credentials",
    [{}, {"service_account_token": "glsa_wrong"}, {"user": "viewer", "password": "wrong"}],
)
async def test_refusal_says_what_to_set(
    fake_grafana: FakeGrafanaAPI, grafana_url: str, credentials: dict[str, str]
) -> None:
    fake_grafana.token = "glsa_right"
    fake_grafana.user, fake_grafana.password = "viewer", "s3cret"
    api = api_for(grafana_url, **credentials)
    try:
        with pytest.raises(GrafanaAuthError) as refused:
            await api.search()
    finally:
        await api.aclose()
    message = str(refused.value)
    assert "HTTP 401" in message
    assert "GRAFANA_SERVICE_ACCOUNT_TOKEN" in message
    assert "GRAFANA_USER" in message
    assert all(secret not in message for secret in credentials.values() if secret != "viewer")


async def test_grafana_down() -> None:
    url = unreachable_url()
    api = api_for(url)
    with pytest.raises(GrafanaUnreachable, match="check GRAFANA_URL") as down:
        await api.health()
    assert url in str(down.value)


async def test_same_origin_redirect_is_followed(
    fake_grafana: FakeGrafanaAPI, grafana_url: str
) -> None:
    fake_grafana.redirects["/api/search"] = "/api/moved/search?type=dash-db"
    api = api_for(grafana_url)
    try:
        assert FIXTURE_UID in [hit.uid for hit in await api.search()]
    finally:
        await api.aclose()


async def test_redirect_off_origin_is_refused(
    fake_grafana: FakeGrafanaAPI, grafana_url: str
) -> None:
    elsewhere = FakeGrafanaAPI()
    async with serve(elsewhere.app()) as other:
        fake_grafana.redirects["/api/search"] = other + "/api/search"
        api = api_for(grafana_url)
        try:
            with pytest.raises(GrafanaHTTPError, match="not followed") as refused:
                await api.search()
        finally:
            await api.aclose()
    assert other in str(refused.value)
    assert elsewhere.requests == []  # never contacted


async def test_clients_reopen_after_close(api: GrafanaAPI) -> None:
    assert await api.search("fixture")
    await api.aclose()
    assert await api.search("fixture")


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_every_served_dashboard_parses(path: Any) -> None:
    model = json.loads(path.read_text())
    spec = parse_dashboard(model)
    assert spec.uid == model["uid"]
    assert len({panel.id for panel in spec.panels}) == len(spec.panels)
    assert all(panel.title for panel in spec.panels)


def test_old_schema_rows_and_missing_fields() -> None:
    spec = parse_dashboard(
        {
            "title": "old",
            "rows": [{"title": "Row A", "panels": [{"id": 2, "title": "p", "type": "graph"}]}],
            "panels": [{"type": "singlestat"}],
        },
        uid="old-uid",
    )
    assert spec.uid == "old-uid"
    assert [(p.id, p.title, p.row) for p in spec.panels] == [(2, "p", "Row A"), (3, "", None)]
    assert (spec.time_from, spec.time_to, spec.variables) == ("now-6h", "now", [])


def test_project_dashboards_are_served_when_present() -> None:
    names = {path.name for path in dashboard_files()}
    assert "inferwatch-fixture.json" in names
    assert {path.name for path in PROJECT_DASHBOARDS.glob("*.json")} <= names
