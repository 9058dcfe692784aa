"""list_dashboards and get_dashboard over MCP, against the fake Grafana API."""

from __future__ import annotations

from mcp import Client

from mcp_server.server import InferwatchServer, build_server
from tests.fakes.grafana_api import FakeGrafanaAPI
from tests.mcp_server.support import error_text, make_settings, structured, unreachable_url

FIXTURE_UID = "inferwatch-fixture"


async def test_list_dashboards(grafana_server: InferwatchServer, grafana_url: str) -> None:
    async with Client(grafana_server) as client:
        everything = structured(await client.call_tool("list_dashboards", {}))["dashboards"]
        tagged = structured(await client.call_tool("list_dashboards", {"tag": "fixture"}))
        searched = structured(await client.call_tool("list_dashboards", {"query": "fixture"}))
    assert FIXTURE_UID in [d["uid"] for d in everything]
    assert tagged == searched
    assert tagged["dashboards"] == [
        {
            "uid": FIXTURE_UID,
            "title": "inferwatch fixture",
            "url": f"{grafana_url}/d/{FIXTURE_UID}/inferwatch-fixture",
            "tags": ["inferwatch", "fixture"],
            "folder": "inferwatch",
        }
    ]


async def test_get_dashboard_gives_panels_variables_and_time(
    grafana_server: InferwatchServer,
) -> None:
    async with Client(grafana_server) as client:
        spec = structured(await client.call_tool("get_dashboard", {"uid": FIXTURE_UID}))
    assert (spec["time_from"], spec["time_to"]) == ("now-1h", "now")
    assert [v["name"] for v in spec["variables"]] == ["datasource", "instance", "window"]
    by_title = {panel["title"]: panel for panel in spec["panels"]}
    assert by_title["GPU utilization"]["row"] == "GPUs"
    assert by_title["Model inventory"]["row"] == "Details"
    assert by_title["GPU utilization"]["targets"][0] == {
        "ref_id": "A",
        "expr": "DCGM_FI_DEV_GPU_UTIL",
        "datasource": "${datasource}",
        "legend": "GPU {{gpu}}",
    }


async def test_unknown_uid_lists_the_valid_ones(grafana_server: InferwatchServer) -> None:
    async with Client(grafana_server) as client:
        message = error_text(await client.call_tool("get_dashboard", {"uid": "gpu-overview"}))
    assert "no dashboard with uid 'gpu-overview'" in message
    assert FIXTURE_UID in message


async def test_grafana_401_says_what_to_set(fake_grafana: FakeGrafanaAPI, grafana_url: str) -> None:
    fake_grafana.token = "glsa_right"
    settings = make_settings(grafana_url=grafana_url, grafana={"service_account_token": "glsa_no"})
    async with Client(build_server(settings)) as client:
        for tool, arguments in (("list_dashboards", {}), ("get_dashboard", {"uid": FIXTURE_UID})):
            message = error_text(await client.call_tool(tool, arguments))
            assert "HTTP 401" in message
            assert "set GRAFANA_SERVICE_ACCOUNT_TOKEN" in message
            assert "GRAFANA_USER and GRAFANA_PASSWORD" in message
            assert "glsa_no" not in message


async def test_grafana_down_names_the_url() -> None:
    url = unreachable_url()
    async with Client(build_server(make_settings(grafana_url=url))) as client:
        message = error_text(await client.call_tool("list_dashboards", {}))
    assert url in message
    assert "check GRAFANA_URL" in message
