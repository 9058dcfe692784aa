"""Scrape latency of /metrics at 64 vLLM instances, beside a static file of the same bytes served
through the same HTTP stack, and again while every upstream is stalled."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import httpx

from agent.simulator import Fault, SimulatorConfig, SimulatorThread, VLLMInstanceSpec
from bench.common import free_port, median_ms, p95_ms, process, rss_mib, table, wait_for

PROMETHEUS_HEADERS = {
    "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
    "Accept-Encoding": "gzip",
}


def _measure(
    client: httpx.Client, urls: dict[str, tuple[str, dict[str, str]]], rounds: int
) -> dict[str, list[float]]:
    """Interleave the targets round by round so machine noise hits them alike."""
    samples: dict[str, list[float]] = {name: [] for name in urls}
    for _ in range(rounds):
        for name, (url, headers) in urls.items():
            started = time.perf_counter()
            response = client.get(url, headers=headers)
            response.read()
            samples[name].append(time.perf_counter() - started)
            assert response.status_code == 200
    return samples


def run(instances: int = 64, rounds: int = 200) -> str:
    specs = tuple(
        VLLMInstanceSpec(
            engines=2 if i % 4 == 0 else 1, version="0.10.1" if i % 8 == 0 else "0.33.0"
        )
        for i in range(instances)
    )
    with tempfile.TemporaryDirectory() as tmp, SimulatorThread(SimulatorConfig(vllm=specs)) as sim:
        agent_port, static_port = free_port(), free_port()
        env = {
            "INFERWATCH_LISTEN": f"127.0.0.1:{agent_port}",
            "INFERWATCH_SOURCES": "litellm,vllm",
            "LITELLM_URL": sim.litellm_url,
            "LITELLM_API_KEY": sim.litellm_master_key,
            "VLLM_URLS": ",".join(sim.vllm_urls),
            "INFERWATCH_POLL_INTERVAL_SECONDS": "2",
            "INFERWATCH_JITTER_SECONDS": "0",
            "INFERWATCH_HTTP_TIMEOUT_SECONDS": "60",
            "INFERWATCH_JOB_TIMEOUT_SECONDS": "120",
        }
        agent_url = f"http://127.0.0.1:{agent_port}"
        with process([sys.executable, "-m", "agent"], env, log=Path(tmp) / "agent.log") as agent:
            wait_for(agent_url + "/readyz")
            page = httpx.get(agent_url + "/metrics").content
            samples = sum(1 for line in page.splitlines() if line and not line.startswith(b"#"))
            static = Path(tmp) / "metrics.txt"
            static.write_bytes(page)
            with process(
                [sys.executable, "-m", "bench.static_server", str(static), str(static_port)]
            ):
                static_url = f"http://127.0.0.1:{static_port}/metrics"
                wait_for(static_url)
                targets = {
                    "static file": (static_url, {}),
                    "agent /metrics": (agent_url + "/metrics", {}),
                    "agent, as Prometheus asks (OpenMetrics, gzip)": (
                        agent_url + "/metrics",
                        PROMETHEUS_HEADERS,
                    ),
                }
                with httpx.Client(timeout=10) as client:
                    _measure(client, targets, 10)  # warm up connections
                    healthy = _measure(client, targets, rounds)
                    rss_healthy = rss_mib(agent.pid)
                    sim.set_fault("vllm:*", Fault.SLOW, delay=100)
                    sim.set_fault("litellm", Fault.SLOW, delay=100)
                    time.sleep(2.5)  # let the next polls start and stall on every upstream
                    stalled = _measure(
                        client,
                        {"agent /metrics, upstreams stalled": targets["agent /metrics"]},
                        rounds,
                    )
                    sim.set_fault("vllm:*", Fault.NONE)
                    sim.set_fault("litellm", Fault.NONE)
            rss_now = rss_mib(agent.pid)

    base = median_ms(healthy["static file"])
    rows = [
        (name, f"{median_ms(s):.2f}", f"{p95_ms(s):.2f}", f"{median_ms(s) / base:.2f}x")
        for name, s in [*healthy.items(), *stalled.items()]
    ]
    agent_ms = median_ms(healthy["agent /metrics"])
    stalled_ratio = median_ms(stalled["agent /metrics, upstreams stalled"]) / agent_ms
    peak = max(rss_healthy[1], rss_now[1])
    return "\n".join(
        [
            f"### Scrape: {instances} vLLM instances, {samples} samples,"
            f" {len(page) / 1024:.0f} KiB page",
            "",
            table(("what", "median ms", "p95 ms", "vs static file"), rows),
            "",
            f"Goal: agent within 1.5x of the static file -> {agent_ms / base:.2f}x; unchanged"
            f" (within 1.2x) while every upstream is stalled -> {stalled_ratio:.2f}x.",
            f"Agent RSS at this size: {rss_healthy[0]:.0f} MiB (peak {peak:.0f} MiB;"
            " goal < 150 MB).",
        ]
    )


if __name__ == "__main__":
    print(run())
