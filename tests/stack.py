"""The demo stack the end-to-end tests share: a demo agent and a real Prometheus scraping it.

Session fixtures (registered in tests/conftest.py): ``demo_agent_url`` (the agent with
``--demo``, polling every 2 s) and ``demo_prometheus_url`` (Prometheus scraping it every second).
Helpers to start and stop other loopback processes live here too.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_http_ok(url: str, timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{process.args!r} exited with {process.returncode} before {url} answered"
            )
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer 200 within {timeout:g}s")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def binary_or_skip(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed: run scripts/install-system-deps.sh (make test does)")
    return path


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


def start_prometheus(
    binary: str, workdir: Path, config: str, extra_files: dict[str, str] | None = None
) -> tuple[str, subprocess.Popen[bytes]]:
    """Start Prometheus on a free loopback port with ``config``; returns its URL and process."""
    (workdir / "prometheus.yml").write_text(config)
    for name, text in (extra_files or {}).items():
        (workdir / name).write_text(text)
    port = free_port()
    with (workdir / "prometheus.log").open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
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
    except BaseException:
        stop(process)
        raise
    return url, process


@pytest.fixture(scope="session")
def demo_agent_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``inferwatch-agent --demo`` on a free loopback port, polling every 2 s."""
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


@pytest.fixture(scope="session")
def demo_prometheus_url(
    demo_agent_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A real Prometheus scraping the demo agent every second (job ``inferwatch-agent``)."""
    binary = binary_or_skip("prometheus")
    target = demo_agent_url.removeprefix("http://")
    config = (
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: inferwatch-agent\n    static_configs: [{{targets: ['{target}']}}]\n"
    )
    url, process = start_prometheus(binary, tmp_path_factory.mktemp("prometheus"), config)
    try:
        yield url
    finally:
        stop(process)
