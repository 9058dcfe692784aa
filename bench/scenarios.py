"""A nightly run of 20 scenarios: wall time with the default concurrency against one at a time,
the second run of an unchanged stack (judge calls: goal 0), image tokens per judged screenshot
(goal <= 1,600), tokens and cost per scenario.

The real parts run: the demo agent, Prometheus scraping it, Chromium, the runner; Grafana is the
stand-in and Claude the fake Anthropic server, answering each call after 1 s. Every scenario
looks at a fixed time window that ended before the run, so an unchanged stack draws the same
pixels and the second run can be answered from the verdict cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.common import REPO, table
from mcp_server.grafana import browser as driver
from mcp_server.run_many import Entry, Run, RunResult
from mcp_server.runner import Harness
from mcp_server.scenario_model import Scenario
from mcp_server.settings import HarnessSettings, Settings
from tests.fakes.anthropic import FAKE_API_KEY, Answer, FakeAnthropic
from tests.fakes.grafana.server import GrafanaStandIn
from tests.stack import free_port, start_prometheus, stop, wait_until_http_ok

SCENARIOS = 20
JUDGE_LATENCY_SECONDS = 1.0
GOAL_RATIO = 0.35
GOAL_IMAGE_TOKENS = 1600
WINDOW_SECONDS = 30
# Whole dashboards and panel sets, cycled to make the 20 scenarios.
VIEWS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("inferwatch-overview", ()),
    ("inferwatch-gpus", ("GPU utilization", "GPU temperature")),
    ("inferwatch-vllm", ()),
    ("inferwatch-litellm", ()),
    ("inferwatch-containers", ()),
    ("inferwatch-models", ()),
    ("inferwatch-langfuse", ()),
    ("inferwatch-gpus", ("Power vs limit",)),
    ("inferwatch-overview", ("Sources up", "GPU utilization")),
    ("inferwatch-gpus", ()),
)


@dataclass
class Stack:
    prometheus: str
    grafana: GrafanaStandIn
    fake: FakeAnthropic


@contextlib.contextmanager
def stack(work: Path) -> Iterator[Stack]:
    port = free_port()
    env = {
        **os.environ,
        "INFERWATCH_LISTEN": f"127.0.0.1:{port}",
        "INFERWATCH_POLL_INTERVAL_SECONDS": "2",
        "INFERWATCH_JITTER_SECONDS": "0",
    }
    with (work / "agent.log").open("wb") as log:
        agent = subprocess.Popen(
            [sys.executable, "-m", "agent", "--demo"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_http_ok(f"http://127.0.0.1:{port}/readyz", 30, agent)
        config = (
            "global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n"
            "  - job_name: inferwatch-agent\n"
            f"    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
        )
        prometheus, process = start_prometheus("prometheus", work, config)
        try:
            with (
                GrafanaStandIn(REPO / "grafana" / "dashboards", prometheus) as grafana,
                FakeAnthropic(default=Answer(latency_seconds=JUDGE_LATENCY_SECONDS)) as fake,
            ):
                yield Stack(prometheus, grafana, fake)
        finally:
            stop(process)
    finally:
        stop(agent)


def wait_for_history(prometheus: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds + 60
    while time.monotonic() < deadline:
        reply = httpx.get(
            prometheus + "/api/v1/query",
            params={"query": "DCGM_FI_DEV_GPU_UTIL", "time": f"{time.time() - seconds:.3f}"},
            timeout=5,
        ).json()
        if reply["data"]["result"]:
            return
        time.sleep(0.5)
    raise TimeoutError("Prometheus collected no history")


def scenarios() -> list[Entry]:
    now_ms = int(time.time() * 1000)
    window = {"from": str(now_ms - WINDOW_SECONDS * 1000), "to": str(now_ms - 2000)}
    entries = []
    for number in range(SCENARIOS):
        dashboard, panels = VIEWS[number % len(VIEWS)]
        document = {
            "name": f"bench-{number:02d}",
            "dashboard": dashboard,
            "time": window,
            "variables": {"instance": ["all"]},
            "checks": [
                {"no_panel_errors": {}},
                {"promql": "count(inferwatch_source_up)", "expect": ">= 1"},
            ],
            # Worded per scenario: the same question about the same pixels is one cache entry.
            "expect": [
                f"No panel shows an error (scenario {number})",
                "Every panel with a time axis draws at least one line",
            ],
        }
        if panels:
            document["panels"] = list(panels)
        entries.append(Entry(f"bench/{number:02d}.yaml", Scenario.model_validate(document)))
    return entries


def settings_for(running: Stack, cache: Path) -> Settings:
    return Settings(
        upstream={"prometheus_url": running.prometheus},
        grafana={"url": running.grafana.url, "service_account_token": None, "user": None},
        judge={"api_key": FAKE_API_KEY, "base_url": running.fake.url, "cache_dir": cache},
    )


@dataclass
class Measured:
    label: str
    concurrency: int
    result: RunResult
    judge_calls: int


def measure(
    running: Stack, entries: list[Entry], concurrency: int, cache: Path, label: str
) -> Measured:
    settings = settings_for(running, cache)
    before = len(running.fake.requests)

    async def go() -> RunResult:
        harness = Harness.open(settings, need_judge=True)
        try:
            return await Run(harness, entries, concurrency=concurrency).execute()
        finally:
            await harness.aclose()

    result = asyncio.run(go())
    return Measured(label, concurrency, result, len(running.fake.requests) - before)


def mean(values: Iterable[float]) -> float:
    items = list(values)
    return sum(items) / len(items) if items else 0.0


def run() -> str:
    default = int(HarnessSettings.model_fields["concurrency"].default)
    with tempfile.TemporaryDirectory(prefix="bench-scenarios-") as folder:
        work = Path(folder)
        with stack(work) as running:
            wait_for_history(running.prometheus, WINDOW_SECONDS)
            entries = scenarios()
            runs = [measure(running, entries, 1, work / "cache-1", "one at a time")]
            for concurrency in sorted({default, 3, 4}):
                label = "default" if concurrency == default else "candidate"
                runs.append(
                    measure(running, entries, concurrency, work / f"cache-{concurrency}", label)
                )
            images = [image for request in running.fake.requests for image in request.images]
            again = measure(running, entries, default, work / f"cache-{default}", "unchanged")
    sequential = runs[0].result.duration_seconds
    rows = []
    for measured in [*runs, again]:
        result = measured.result
        judged = [s for s in result.scenarios if s.judge is not None and not s.judge.cached]
        per = len(judged) or 1
        rows.append(
            (
                f"{measured.label}, concurrency {measured.concurrency}",
                f"{result.duration_seconds:.1f}",
                f"{result.duration_seconds / sequential:.2f}x",
                measured.judge_calls,
                result.totals.cached_verdicts,
                f"{sum(s.status == 'pass' for s in result.scenarios)}/{len(result.scenarios)}",
                f"{result.totals.input_tokens // per:,} / {result.totals.output_tokens // per:,}",
                f"${result.totals.cost_usd / per:.4f}",
                f"{mean(s.durations.browser_seconds for s in result.scenarios):.2f}",
                f"{mean(s.durations.judge_seconds for s in result.scenarios):.2f}",
            )
        )
    tokens = [image.width * image.height / 750 for image in images]
    default_ratio = next(m for m in runs if m.concurrency == default).result.duration_seconds
    deterministic = "--disable-partial-raster" in driver.CHROMIUM_ARGS
    return "\n".join(
        [
            f"### Scenarios: a run of {SCENARIOS} (real Chromium, Grafana stand-in, "
            f"fake judge answering in {JUDGE_LATENCY_SECONDS:g} s)",
            "",
            table(
                (
                    "run",
                    "wall s",
                    "vs one at a time",
                    "judge calls",
                    "cached",
                    "passed",
                    "tokens in / out per judged scenario",
                    "cost per judged scenario",
                    "browser s",
                    "judge s",
                ),
                rows,
            ),
            "",
            f"Goal: default concurrency ({default}) within {GOAL_RATIO}x of one at a time -> "
            f"{default_ratio / sequential:.2f}x; the unchanged second run makes 0 judge calls "
            f"-> {again.judge_calls} (Chromium --disable-partial-raster: "
            f"{'yes' if deterministic else 'no'}).",
            f"Image tokens per judged screenshot (width x height / 750): max "
            f"{max(tokens, default=0):,.0f}, mean {sum(tokens) / max(len(tokens), 1):,.0f} over "
            f"{len(tokens)} screenshots (goal <= {GOAL_IMAGE_TOKENS:,}).",
        ]
    )


if __name__ == "__main__":
    print(run())
