"""``--demo``: the simulated stack (LiteLLM, vLLM, the Docker Engine API and NVML) and the
environment that points every source at it."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from agent.simulator import FakeDockerAPIThread, FakeNVML, SimulatorThread, demo_containers

log = logging.getLogger(__name__)

FAKE_PID_BASE = 4100  # FakeNVML runs one process per GPU, pid 4100 + index


@dataclass(frozen=True)
class DemoStack:
    """What the agent needs beyond the environment: NVML and the pid -> container map cannot be
    pointed at through a URL."""

    nvml: Callable[[], FakeNVML]
    container_for_pid: Callable[[int], str | None]


@contextlib.contextmanager
def demo_stack() -> Iterator[DemoStack]:
    with SimulatorThread() as simulator:
        containers = demo_containers(simulator.vllm_urls, simulator.config.vllm)
        with FakeDockerAPIThread(containers) as docker_api:
            owners = {
                FAKE_PID_BASE + int(gpu): container.name
                for container in containers
                for gpu in container.gpus
                if gpu.isdigit()
            }
            nvml = FakeNVML()
            overrides = {
                "LITELLM_URL": simulator.litellm_url,
                "LITELLM_API_KEY": simulator.litellm_master_key,
                "DOCKER_HOST": docker_api.base_url,
            }
            log.info(
                "demo: simulated LiteLLM at %s, Docker Engine API at %s (%d vLLM containers),"
                " %d GPUs",
                simulator.litellm_url,
                docker_api.base_url,
                len(simulator.vllm_urls),
                nvml.count,
            )
            with _environment(overrides):
                yield DemoStack(nvml=lambda: nvml, container_for_pid=owners.get)


@contextlib.contextmanager
def _environment(overrides: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
