"""The end-to-end stack: demo agent -> real Prometheus -> Grafana stand-in (serving
grafana/dashboards) -> real Chromium, with the fake Anthropic server as the judge; the
environment a nightly run reads, seeded with a fake API key and a Grafana token to look for."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mcp_server.settings import GrafanaSettings
from tests.fakes.anthropic import FAKE_API_KEY, FakeAnthropic, fake_anthropic
from tests.fakes.grafana import GrafanaStandIn
from tests.fakes.grafana.fixtures import STANDIN_TOKEN, grafana_standin
from tests.stack import binary_or_skip

# A pinned window needs this much of the session Prometheus' history behind it.
HISTORY_SECONDS = 8
HISTORY_TIMEOUT_SECONDS = 30

__all__ = ["fake_anthropic", "grafana_standin"]

SECRETS = (FAKE_API_KEY, STANDIN_TOKEN)
# Variables of the caller's environment a run must not pick up.
FOREIGN = (
    "GRAFANA_USER",
    "GRAFANA_PASSWORD",
    "GRAFANA_ORG_ID",
    "INFERWATCH_JUDGE_BUDGET_USD",
    "INFERWATCH_JUDGE_MODEL",
    "INFERWATCH_CONCURRENCY",
    "INFERWATCH_REPORT_DIR",
    "INFERWATCH_SCENARIOS_DIR",
    "INFERWATCH_JUDGE_CACHE_TTL_SECONDS",
)


@pytest.fixture(scope="session")
def chromium() -> str:
    path = GrafanaSettings().chromium_path
    return path if path == "" else binary_or_skip(path)


@dataclass
class Stack:
    env: dict[str, str]
    standin: GrafanaStandIn
    fake: FakeAnthropic
    work: Path


@pytest.fixture
def stack(
    grafana_standin: GrafanaStandIn,
    demo_agent_url: str,
    demo_prometheus_url: str,
    fake_anthropic: FakeAnthropic,
    chromium: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Stack]:
    """The environment of a nightly run, set in this process (for the CLI's main) and given
    to subprocesses; the working directory is the test's own (no .env is read)."""
    env = {
        "GRAFANA_URL": grafana_standin.url,
        "GRAFANA_SERVICE_ACCOUNT_TOKEN": STANDIN_TOKEN,
        "PROMETHEUS_URL": demo_prometheus_url,
        "INFERWATCH_AGENT_URL": demo_agent_url,
        "ANTHROPIC_BASE_URL": fake_anthropic.url,
        "ANTHROPIC_API_KEY": FAKE_API_KEY,
        "INFERWATCH_JUDGE_CACHE_DIR": str(tmp_path / "verdicts"),
        "INFERWATCH_READY_TIMEOUT_SECONDS": "15",
    }
    if chromium:
        env["CHROMIUM_PATH"] = chromium
    wait_for_history(demo_prometheus_url)
    for name in FOREIGN:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    yield Stack(env, grafana_standin, fake_anthropic, tmp_path)


def wait_for_history(prometheus: str) -> None:
    """Until Prometheus holds GPU samples from before a pinned window's end (a young session's
    Prometheus has only seconds of data)."""
    deadline = time.monotonic() + HISTORY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        at = time.time() - HISTORY_SECONDS
        reply = httpx.get(
            prometheus + "/api/v1/query",
            params={"query": "DCGM_FI_DEV_GPU_UTIL", "time": f"{at:.3f}"},
            timeout=5,
        ).json()
        if reply["data"]["result"]:
            return
        time.sleep(0.25)
    raise TimeoutError(f"Prometheus has no GPU samples {HISTORY_SECONDS}s old")


def pinned_window() -> dict[str, str]:
    """A time range that ended a few seconds ago: what Grafana draws of it never changes."""
    now_ms = int(time.time() * 1000)
    return {"from": str(now_ms - 60_000), "to": str(now_ms - 5_000)}


def write_scenario(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    window = pinned_window()
    path = folder / f"{name}.yaml"
    path.write_text(
        f"name: {name}\ntime: {{from: '{window['from']}', to: '{window['to']}'}}\n{body}"
    )
    return path


PINNED_GPUS = """\
description: GPU panels over a fixed window
dashboard: inferwatch-gpus
variables: {instance: [all], gpu: [all]}
tags: [nightly]
panels: [GPU utilization, GPU temperature]
checks:
  - no_panel_errors: {}
  - no_empty_panels: {}
  - promql: count(DCGM_FI_DEV_GPU_UTIL)
    expect: ">= 1"
expect:
  - The "GPU utilization" panel draws one line per GPU
  - The "GPU temperature" panel draws one line per GPU
"""

BROKEN_STATES = """\
description: a dashboard with an erroring and an empty panel
dashboard: standin-states
tags: [nightly]
checks:
  - no_panel_errors: {}
  - no_empty_panels: {except: [Missing stat]}
expect:
  - BROKEN-SCENARIO-EXPECTATION nothing on this dashboard is broken
"""


def leaked(folder: Path) -> list[str]:
    """Files under ``folder`` holding one of the seeded secrets."""
    return [
        f"{path.name} holds {secret[:6]}..."
        for path in sorted(folder.rglob("*"))
        if path.is_file()
        for secret in SECRETS
        if secret.encode() in path.read_bytes()
    ]
