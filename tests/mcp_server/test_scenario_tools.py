"""validate_scenario and the draft_scenario prompt over MCP (in-process client)."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_types import TextContent

from mcp_server.server import build_server
from mcp_server.settings import Settings
from tests.fakes.grafana_api import FakeGrafanaAPI, load_dashboards
from tests.fakes.http import serve
from tests.mcp_server.support import error_text, make_settings, structured
from tests.stack import REPO

FIXTURE_DASHBOARD = REPO / "tests" / "fixtures" / "scenarios" / "dashboards" / "gpus.json"
GOOD = "name: gpus\ndashboard: inferwatch-gpus\npanels: [GPUs]\nexpect: [a]\n"


def settings_for(scenarios: Path, grafana_url: str | None = None) -> Settings:
    base = make_settings(grafana_url=grafana_url)
    base.harness = base.harness.model_copy(update={"scenarios_dir": scenarios})
    return base


async def test_validate_scenario_reports_problems_with_positions(tmp_path: Path) -> None:
    server = build_server(settings_for(tmp_path))
    async with Client(server) as client:
        result = structured(
            await client.call_tool(
                "validate_scenario",
                {"content": "name: x\ndashboard: d\nexpect: []\ncolour: red\n", "online": False},
            )
        )
    assert result["valid"] is False and result["file"] == "<content>"
    assert [(p["line"], p["col"], p["severity"]) for p in result["problems"]] == [
        (3, 9, "error"),
        (4, 1, "error"),
    ]
    assert result["problems"][1]["message"].startswith("unknown key 'colour' in the scenario")


async def test_validate_scenario_checks_the_dashboard_online(tmp_path: Path) -> None:
    (tmp_path / "gpus.yaml").write_text(GOOD.replace("[GPUs]", "[GPUs, Nope]"))
    fake = FakeGrafanaAPI(dashboards=load_dashboards([FIXTURE_DASHBOARD]))
    async with serve(fake.app()) as url:
        server = build_server(settings_for(tmp_path, url))
        async with Client(server) as client:
            result = structured(await client.call_tool("validate_scenario", {"path": "gpus.yaml"}))
    assert result["valid"] is False
    assert result["name"] == "gpus" and result["dashboard"] == "inferwatch-gpus"
    [problem] = result["problems"]
    assert (problem["line"], problem["col"]) == (3, 16)
    assert problem["message"].startswith("dashboard 'inferwatch-gpus' has no panel titled 'Nope'")


async def test_validate_scenario_notes_an_unreachable_grafana(tmp_path: Path) -> None:
    server = build_server(settings_for(tmp_path))
    async with Client(server) as client:
        result = structured(await client.call_tool("validate_scenario", {"content": GOOD}))
    assert result["valid"] is True and result["problems"] == []
    assert result["notes"][0].startswith("dashboard uids and panel titles not checked")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"path": "../outside.yaml"}, "is outside the scenarios folder"),
        ({"path": "missing.yaml"}, "no scenario file 'missing.yaml'"),
        ({}, "give either content"),
        ({"content": GOOD, "path": "gpus.yaml"}, "give either content"),
    ],
)
async def test_validate_scenario_reads_only_the_scenarios_folder(
    tmp_path: Path, arguments: dict[str, str], message: str
) -> None:
    scenarios = tmp_path / "scenarios"
    scenarios.mkdir()
    (tmp_path / "outside.yaml").write_text(GOOD)
    server = build_server(settings_for(scenarios))
    async with Client(server) as client:
        assert message in error_text(await client.call_tool("validate_scenario", arguments))


async def test_the_draft_prompt_carries_a_valid_draft(tmp_path: Path) -> None:
    fake = FakeGrafanaAPI(dashboards=load_dashboards([FIXTURE_DASHBOARD]))
    async with serve(fake.app()) as url:
        server = build_server(settings_for(tmp_path, url))
        async with Client(server) as client:
            prompts = await client.list_prompts()
            result = await client.get_prompt(
                "draft_scenario", {"dashboard": "inferwatch-gpus", "panels": "GPUs, Xid errors"}
            )
            with pytest.raises(MCPError, match="no dashboard with uid 'nope'"):
                await client.get_prompt("draft_scenario", {"dashboard": "nope"})
            [message] = result.messages
            assert isinstance(message.content, TextContent)
            draft = message.content.text.split("```yaml\n")[1].split("```")[0]
            checked = structured(await client.call_tool("validate_scenario", {"content": draft}))
    assert "draft_scenario" in [prompt.name for prompt in prompts.prompts]
    assert "panels: [GPUs, Xid errors]" in draft
    assert checked["valid"] is True and checked["problems"] == [], checked
