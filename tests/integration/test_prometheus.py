"""A real Prometheus scrapes a real agent (in demo mode) and finds its series."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import REPO, free_port, stop, wait_until_http_ok
from tests.promtool import promtool_findings

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def agent_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("agent") / "agent.log"
    env = {
        **os.environ,
        "INFERWATCH_LISTEN": f"127.0.0.1:{port}",
        "INFERWATCH_POLL_INTERVAL_SECONDS": "2",
        "INFERWATCH_JITTER_SECONDS": "0",
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "agent", "--demo"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_http_ok(url + "/readyz", timeout=30, process=process)
        yield url
    finally:
        stop(process)


@pytest.fixture(scope="module")
def prometheus_url(
    prometheus_binary: str, agent_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    workdir = tmp_path_factory.mktemp("prometheus")
    target = agent_url.removeprefix("http://")
    (workdir / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: inferwatch-agent\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    port = free_port()
    with (workdir / "prometheus.log").open("wb") as out:
        process = subprocess.Popen(
            [
                prometheus_binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_http_ok(url + "/-/ready", timeout=30, process=process)
        yield url
    finally:
        stop(process)


def query_until(prometheus: str, expr: str, timeout: float = 30) -> list[dict[str, object]]:
    """Poll an instant query until it returns series (Prometheus needs a scrape or two)."""
    deadline = time.monotonic() + timeout
    while True:
        reply = httpx.get(prometheus + "/api/v1/query", params={"query": expr}, timeout=5).json()
        assert reply["status"] == "success", reply
        result: list[dict[str, object]] = reply["data"]["result"]
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.2)


@pytest.mark.parametrize(
    "expr",
    [
        'up{job="inferwatch-agent"} == 1',
        'inferwatch_source_up{source="litellm"} == 1',
        'inferwatch_source_up{source="vllm"} == 1',
        "vllm:num_requests_running",
        "vllm:kv_cache_usage_perc",
        "vllm:gpu_cache_usage_perc",
        "rate(vllm:prompt_tokens_total[10s])",
        "histogram_quantile(0.95, sum by (le, vllm_instance)"
        " (rate(vllm:e2e_request_latency_seconds_bucket[10s])))",
        "litellm_proxy_total_requests_metric_total",
        "inferwatch_litellm_model_info",
        "inferwatch_vllm_instance_info",
        "inferwatch_build_info",
        'inferwatch_container_info{container="vllm-0"}',
        "DCGM_FI_DEV_GPU_UTIL",
        "inferwatch_container_gpu_memory_bytes",
        'inferwatch_langfuse_traces{window="today"}',
        'inferwatch_hf_model_info{quantization="awq"}',
        'inferwatch_model_info{backend="vllm"}',
    ],
)
def test_prometheus_finds_the_series(prometheus_url: str, expr: str) -> None:
    assert query_until(prometheus_url, expr), f"no series for {expr}"


def test_scrapes_have_no_errors(prometheus_url: str) -> None:
    query_until(prometheus_url, 'up{job="inferwatch-agent"} == 1')
    targets = httpx.get(prometheus_url + "/api/v1/targets", timeout=5).json()["data"][
        "activeTargets"
    ]
    assert [(t["health"], t["lastError"]) for t in targets] == [("up", "")]


def test_promtool_accepts_every_inferwatch_family(
    promtool: str, agent_url: str, tmp_path: Path
) -> None:
    page = httpx.get(agent_url + "/metrics", timeout=5).text
    ours = _families_named(page, "inferwatch_")
    assert "inferwatch_vllm_instance_info" in ours and "inferwatch_litellm_model_info" in ours
    assert promtool_findings(ours) == ""


def _families_named(page: str, prefix: str) -> str:
    """The lines of every family whose name starts with ``prefix``."""
    kept: list[str] = []
    keep = False
    for line in page.splitlines():
        if line.startswith("# HELP "):
            keep = line.split(" ", 3)[2].startswith(prefix)
        if keep:
            kept.append(line)
    return "\n".join(kept) + "\n"
