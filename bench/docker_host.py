"""The Docker source against a real dockerd: a cycle over 32 containers beside one container's,
the naive stats read for comparison, CPU seconds per cycle, and event-to-first-poll latency."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from contextlib import closing
from pathlib import Path

import docker
import httpx

from agent.app import Agent
from agent.settings import DockerSettings, Settings, VLLMSettings
from agent.simulator import SimulatorThread
from agent.sources.docker import DockerSource
from bench.common import free_port, table
from tests.integration.dockerd import Dockerd, available, run

IMAGE = "vllm/vllm-openai:v0.11.0"


def _source(daemon: Dockerd) -> DockerSource:
    return DockerSource(
        DockerSettings(DOCKER_HOST=daemon.url),
        vllm_image_patterns=["vllm/vllm-openai"],
        interval_seconds=30,
        timeout_seconds=30,
    )


async def _cycles(daemon: Dockerd, repeat: int) -> tuple[list[float], list[float]]:
    """(wall seconds, CPU seconds of this process) per Docker poll."""
    source = _source(daemon)
    walls, cpus = [], []
    try:
        await source.collect()
        for _ in range(repeat):
            wall, cpu = time.perf_counter(), time.process_time()
            collection = await source.collect()
            walls.append(time.perf_counter() - wall)
            cpus.append(time.process_time() - cpu)
            assert collection.error is None, collection.error
    finally:
        await source.aclose()
    return walls, cpus


async def _event_to_poll(
    daemon: Dockerd, client: docker.DockerClient, vllm_url: str, tries: int
) -> list[float]:
    settings = Settings()
    settings.agent = settings.agent.model_copy(
        update={"sources": ["docker", "vllm"], "poll_interval_seconds": 3600, "jitter_seconds": 0}
    )
    settings.docker = DockerSettings(DOCKER_HOST=daemon.url)
    settings.vllm = VLLMSettings()
    agent = Agent(settings)
    stop, port = asyncio.Event(), free_port()
    serving = asyncio.create_task(agent.serve(stop, "127.0.0.1", port))
    latencies = []
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            for attempt in range(tries):
                name = f"late-{attempt}"
                started = time.perf_counter()
                run(client, IMAGE, name, "sleep 600", labels={"inferwatch.url": vllm_url})
                while (
                    f'vllm_instance="{name}"'
                    not in (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                ):
                    if time.perf_counter() - started > 10:
                        raise TimeoutError(f"{name} did not appear within 10 s")
                    await asyncio.sleep(0.01)
                latencies.append(time.perf_counter() - started)
    finally:
        stop.set()
        await serving
    return latencies


def _naive_stats_seconds(client: docker.DockerClient, container_id: str) -> float:
    started = time.perf_counter()
    client.api.stats(container_id, stream=False)  # waits for a second sample
    return time.perf_counter() - started


def run_benchmark(containers: int = 32, repeat: int = 5) -> str:
    reason = available()
    if reason:
        return f"### Docker source\n\nSkipped: {reason}."
    with tempfile.TemporaryDirectory(dir="/tmp") as root, SimulatorThread() as sim:
        daemon = Dockerd(Path(root))
        daemon.start()
        try:
            daemon.build_images()
            with closing(daemon.client()) as client:
                first = run(client, IMAGE, "c-0", "sleep 600")
                one_wall, one_cpu = asyncio.run(_cycles(daemon, repeat))
                naive = _naive_stats_seconds(client, first.id)
                for index in range(1, containers):
                    run(client, IMAGE, f"c-{index}", "sleep 600")
                many_wall, many_cpu = asyncio.run(_cycles(daemon, repeat))
                latencies = asyncio.run(_event_to_poll(daemon, client, sim.vllm_urls[0], 3))
            daemon.remove_all_containers()
        finally:
            daemon.stop()
    base = statistics.median(one_wall)
    many = statistics.median(many_wall)
    rows = [
        ("1 container", f"{base:.3f}", f"{statistics.median(one_cpu):.3f}", "1.00x"),
        (
            f"{containers} containers",
            f"{many:.3f}",
            f"{statistics.median(many_cpu):.3f}",
            f"{many / base:.2f}x",
        ),
        (
            f"{containers} x stats(stream=False), estimated",
            f"{naive * containers:.1f}",
            "",
            f"{naive * containers / base:.0f}x",
        ),
    ]
    return "\n".join(
        [
            f"### Docker source: a poll of {containers} running containers (real dockerd)",
            "",
            table(("poll", "wall seconds (median)", "agent CPU seconds", "vs 1 container"), rows),
            "",
            f"Goal: {containers} containers within 1.5x of one -> {many / base:.2f}x.",
            "Event to first poll of a new vLLM container:"
            f" median {statistics.median(latencies):.2f} s, worst {max(latencies):.2f} s"
            f" of {len(latencies)} (goal < 2 s).",
        ]
    )


if __name__ == "__main__":
    print(run_benchmark())
