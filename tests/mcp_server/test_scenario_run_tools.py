"""list_scenarios, run_scenario and verify_dashboard through the MCP client, without a stack:
listing, finding a scenario, bad input, and no API key said before any browser work. (The runs
themselves, with progress, are in tests/e2e/test_mcp_scenarios.py.)"""

from __future__ import annotations

from pathlib import Path

from mcp import Client

from mcp_server.server import build_server
from mcp_server.settings import Settings
from tests.mcp_server.support import error_text, structured, unreachable_url

GOOD = """\
name: {name}
dashboard: inferwatch-gpus
tags: [{tag}]
checks:
  - no_panel_errors: {{}}
expect:
  - Every GPU draws a line
"""


def settings_for(folder: Path, chromium: Path) -> Settings:
    return Settings(
        upstream={"prometheus_url": unreachable_url(), "agent_url": unreachable_url()},
        grafana={
            "url": unreachable_url(),
            "service_account_token": None,
            "user": None,
            "password": None,
            "chromium_path": str(chromium),
        },
        judge={"api_key": None, "cache_dir": folder / "verdicts"},
        harness={"scenarios_dir": folder},
    )


def folder_with_scenarios(tmp_path: Path) -> Path:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "gpus.yaml").write_text(GOOD.format(name="gpus-healthy", tag="smoke"))
    (folder / "vllm.yaml").write_text(GOOD.format(name="vllm-healthy", tag="nightly"))
    (folder / "broken.yaml").write_text("name: broken\ndashboard: x\nexpect: []\n")
    (tmp_path / "outside.yaml").write_text(GOOD.format(name="outside", tag="x"))
    return folder


def chromium_marker(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "chromium-started"
    script = tmp_path / "chromium"
    script.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    script.chmod(0o755)
    return script, marker


async def test_list_scenarios_with_tags_and_problems(tmp_path: Path) -> None:
    script, _ = chromium_marker(tmp_path)
    server = build_server(settings_for(folder_with_scenarios(tmp_path), script))
    async with Client(server) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        everything = structured(await client.call_tool("list_scenarios", {}))
        smoke = structured(await client.call_tool("list_scenarios", {"tag": "smoke"}))
    assert {"list_scenarios", "run_scenario", "verify_dashboard"} <= names
    assert [s["name"] for s in everything["scenarios"]] == ["gpus-healthy", "vllm-healthy"]
    gpus = everything["scenarios"][0]
    assert (gpus["file"], gpus["dashboard"], gpus["severity"]) == (
        "gpus.yaml",
        "inferwatch-gpus",
        "blocking",
    )
    assert gpus["checks"] == ["no_panel_errors"]
    assert gpus["expectations"] == ["Every GPU draws a line"]
    (problem,) = everything["problems"]
    assert problem.startswith("broken.yaml:3:9: expect: the expectation list is empty")
    assert [s["name"] for s in smoke["scenarios"]] == ["gpus-healthy"]


async def test_run_scenario_finds_scenarios_in_its_folder_only(tmp_path: Path) -> None:
    script, _ = chromium_marker(tmp_path)
    server = build_server(settings_for(folder_with_scenarios(tmp_path), script))
    async with Client(server) as client:
        unknown = error_text(await client.call_tool("run_scenario", {"name": "nope"}))
        outside = error_text(await client.call_tool("run_scenario", {"name": "../outside.yaml"}))
        broken = error_text(await client.call_tool("run_scenario", {"name": "broken.yaml"}))
    assert "no scenario named 'nope'" in unknown
    assert "scenarios: gpus-healthy, vllm-healthy" in unknown
    assert "outside the scenarios folder" in outside
    assert "broken.yaml is not a valid scenario" in broken


async def test_no_api_key_is_said_before_any_browser_work(tmp_path: Path) -> None:
    script, marker = chromium_marker(tmp_path)
    server = build_server(settings_for(folder_with_scenarios(tmp_path), script))
    async with Client(server) as client:
        by_name = error_text(await client.call_tool("run_scenario", {"name": "gpus-healthy"}))
        adhoc = error_text(
            await client.call_tool(
                "verify_dashboard",
                {"dashboard": "inferwatch-gpus", "expectations": ["Lines are drawn"]},
            )
        )
    for message in (by_name, adhoc):
        assert "ANTHROPIC_API_KEY is not set" in message
    assert not marker.exists()


async def test_verify_dashboard_refuses_bad_input(tmp_path: Path) -> None:
    script, marker = chromium_marker(tmp_path)
    server = build_server(settings_for(folder_with_scenarios(tmp_path), script))
    async with Client(server) as client:
        bad_time = error_text(
            await client.call_tool(
                "verify_dashboard",
                {"dashboard": "d", "expectations": ["x"], "time_from": "yesterday"},
            )
        )
        bad_uid = error_text(
            await client.call_tool(
                "verify_dashboard", {"dashboard": "no/such uid", "expectations": ["x"]}
            )
        )
        empty = await client.call_tool("verify_dashboard", {"dashboard": "d", "expectations": []})
    assert "invalid request: time.from: " in bad_time and "not a Grafana time" in bad_time
    assert "invalid request: dashboard: " in bad_uid
    assert empty.is_error
    assert not marker.exists()
