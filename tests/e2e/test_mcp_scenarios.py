"""The scenario tools through an in-process MCP client against the stand-in and the fake judge:
list_scenarios, run_scenario with progress notifications, verify_dashboard on one panel."""

from __future__ import annotations

import json

import pytest
from mcp import Client

from mcp_server.server import build_server
from mcp_server.settings import Settings
from tests.e2e.conftest import BROKEN_STATES, PINNED_GPUS, SECRETS, Stack, write_scenario
from tests.fakes.anthropic import FAKE_API_KEY
from tests.fakes.grafana.fixtures import STANDIN_TOKEN
from tests.mcp_server.support import structured, text

pytestmark = pytest.mark.integration


async def test_list_run_and_verify_through_mcp(stack: Stack) -> None:
    folder = stack.work / "scenarios"
    write_scenario(folder, "gpus-pinned", PINNED_GPUS)
    write_scenario(folder, "states-broken", BROKEN_STATES)
    settings = Settings(
        upstream={"prometheus_url": stack.env["PROMETHEUS_URL"]},
        grafana={"url": stack.standin.url, "service_account_token": STANDIN_TOKEN},
        judge={
            "api_key": FAKE_API_KEY,
            "base_url": stack.fake.url,
            "cache_dir": stack.work / "verdicts",
        },
        harness={"scenarios_dir": folder},
    )
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    async with Client(build_server(settings)) as client:
        listed = structured(await client.call_tool("list_scenarios", {"tag": "nightly"}))
        ran = await client.call_tool(
            "run_scenario", {"name": "gpus-pinned"}, progress_callback=on_progress
        )
        broken = await client.call_tool("run_scenario", {"name": "states-broken.yaml"})
        verified = await client.call_tool(
            "verify_dashboard",
            {
                "dashboard": "inferwatch-overview",
                "panel": "Sources up",
                "expectations": ["Every source reads Up"],
            },
        )

    assert [s["name"] for s in listed["scenarios"]] == ["gpus-pinned", "states-broken"]
    result = structured(ran)
    assert result["status"] == "pass"
    assert [v["verdict"] for v in result["verdicts"]] == ["pass", "pass"]
    messages = [message or "" for _, message in seen]
    assert [value for value, _ in seen] == list(range(1, len(seen) + 1))
    assert "gpus-pinned: asking Claude" in messages
    assert any(message.startswith("gpus-pinned: Claude: ") for message in messages)
    assert messages[-1] == "gpus-pinned: pass"

    failed = structured(broken)
    assert failed["status"] == "fail" and failed["judge"] is None

    adhoc = structured(verified)
    assert adhoc["status"] == "pass"
    assert [s["label"] for s in adhoc["screenshots"]] == ["Sources up"]
    assert len(stack.fake.requests) == 2
    assert len(stack.fake.requests[-1].images) == 1

    shown = json.dumps([result, failed, adhoc]) + text(ran) + text(verified)
    assert not any(secret in shown for secret in SECRETS)
    assert stack.fake.leaks(*SECRETS) == []
