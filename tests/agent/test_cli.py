"""``inferwatch-agent`` as a user runs it: a subprocess with its own environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.stack import free_port

REPO = Path(__file__).resolve().parents[2]


def run_agent(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("LITELLM_", "VLLM_", "INFERWATCH_"))
    }
    return subprocess.run(
        [sys.executable, "-m", "agent", *args],
        cwd=REPO,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_once_with_nothing_running_exits_0_and_reports_sources_down() -> None:
    result = run_agent(
        "--once",
        LITELLM_URL=f"http://127.0.0.1:{free_port()}",
        VLLM_URLS=f"http://127.0.0.1:{free_port()}",
    )
    assert result.returncode == 0, result.stderr
    assert 'inferwatch_source_up{source="litellm"} 0.0' in result.stdout
    assert 'inferwatch_source_up{source="vllm"} 0.0' in result.stdout
    assert "source litellm is down" in result.stderr


def test_demo_once_prints_every_upstream() -> None:
    result = run_agent("--demo", "--once")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert 'inferwatch_source_up{source="litellm"} 1.0' in lines
    assert 'inferwatch_source_up{source="vllm"} 1.0' in lines
    assert any(line.startswith("vllm:num_requests_running{") for line in lines)
    assert any(line.startswith("litellm_proxy_total_requests_metric_total{") for line in lines)


def test_invalid_settings_exit_2_naming_the_setting() -> None:
    result = run_agent("--once", INFERWATCH_POLL_INTERVAL_SECONDS="soon")
    assert result.returncode == 2
    assert "poll_interval_seconds" in result.stderr
