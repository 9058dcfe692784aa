"""``--demo``: the simulated stack (LiteLLM, vLLM, the Docker Engine API and NVML) and the
environment that points every source at it."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from agent.simulator import (
    FakeDockerAPIThread,
    FakeHubThread,
    FakeLangfuseThread,
    FakeNVML,
    SimulatorThread,
    demo_containers,
)

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
    with contextlib.ExitStack() as stack:
        simulator = stack.enter_context(SimulatorThread())
        containers = demo_containers(simulator.vllm_urls, simulator.config.vllm)
        docker_api = stack.enter_context(FakeDockerAPIThread(containers))
        langfuse = stack.enter_context(FakeLangfuseThread())
        hub = stack.enter_context(FakeHubThread())
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
            "LANGFUSE_HOST": langfuse.url,
            "LANGFUSE_PUBLIC_KEY": langfuse.public_key,
            "LANGFUSE_SECRET_KEY": langfuse.secret_key,
            "HF_ENDPOINT": hub.url,
            "HF_TOKEN": hub.token,
            # The demo's Hub answers differ from the real Hub's: keep them out of the real cache.
            "INFERWATCH_CACHE_DIR": stack.enter_context(tempfile.TemporaryDirectory()),
            "INFERWATCH_LANGFUSE_POLL_INTERVAL_SECONDS": "30",
        }
        log.info(
            "demo: simulated LiteLLM at %s, Docker Engine API at %s (%d vLLM containers),"
            " %d GPUs, Langfuse at %s, Hugging Face Hub at %s",
            simulator.litellm_url,
            docker_api.base_url,
            len(simulator.vllm_urls),
            nvml.count,
            langfuse.url,
            hub.url,
        )
        stack.enter_context(_environment(overrides))
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
