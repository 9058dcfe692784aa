"""A real Prometheus scrapes a real agent (in demo mode) and finds its series."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.promtool import promtool_findings
from tests.stack import query_until

pytestmark = pytest.mark.integration


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
def test_prometheus_finds_the_series(demo_prometheus_url: str, expr: str) -> None:
    assert query_until(demo_prometheus_url, expr), f"no series for {expr}"


def test_scrapes_have_no_errors(demo_prometheus_url: str) -> None:
    query_until(demo_prometheus_url, 'up{job="inferwatch-agent"} == 1')
    targets = httpx.get(demo_prometheus_url + "/api/v1/targets", timeout=5).json()["data"][
        "activeTargets"
    ]
    assert [(t["health"], t["lastError"]) for t in targets] == [("up", "")]


def test_promtool_accepts_every_inferwatch_family(
    promtool: str, demo_agent_url: str, tmp_path: Path
) -> None:
    page = httpx.get(demo_agent_url + "/metrics", timeout=5).text
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
