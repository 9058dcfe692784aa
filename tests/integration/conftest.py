"""Real parts the integration tests run: Prometheus, promtool and the LiteLLM proxy.

Each is started by the test session on a loopback port and stopped after it. A part that is not
installed skips its tests with the reason and the command that installs it.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import docker
import pytest

from agent.simulator import Simulator, SimulatorThread
from tests.integration.dockerd import Dockerd, start_dockerd
from tests.stack import REPO, binary_or_skip, free_port, stop, wait_until_http_ok

LITELLM_VENV = Path(os.environ.get("INFERWATCH_LITELLM_VENV", REPO / ".venv-litellm"))
LITELLM_MASTER_KEY = "sk-integration-master"
LITELLM_UPSTREAM_SECRET = "sk-upstream-secret-never-to-leak"


def _binary(name: str) -> str:
    return binary_or_skip(name)


@pytest.fixture(scope="session")
def promtool() -> str:
    return _binary("promtool")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return _binary("prometheus")


@dataclass(frozen=True)
class LiteLLMProxy:
    url: str
    master_key: str
    log: Path


LITELLM_CONFIG = f"""
model_list:
  - model_name: mock-gpt
    litellm_params:
      model: openai/mock-gpt
      api_key: {LITELLM_UPSTREAM_SECRET}
      mock_response: "Hello from mock-gpt"
  - model_name: llama-vllm
    litellm_params:
      model: hosted_vllm/meta-llama/Llama-3.1-8B-Instruct
      api_base: http://127.0.0.1:9/v1
      mock_response: "Hello from llama"
litellm_settings:
  callbacks: ["prometheus"]
general_settings:
  master_key: {LITELLM_MASTER_KEY}
"""


@pytest.fixture(scope="session")
def litellm_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiteLLMProxy]:
    """The real LiteLLM proxy (1.108.7, mock models, prometheus callback), once per session."""
    binary = LITELLM_VENV / "bin" / "litellm"
    if not binary.exists():
        pytest.skip(f"LiteLLM proxy venv missing at {LITELLM_VENV}: run `make litellm-venv`")
    workdir = tmp_path_factory.mktemp("litellm")
    (workdir / "config.yaml").write_text(LITELLM_CONFIG)
    port = free_port()
    log = workdir / "proxy.log"
    env = {**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(binary), "--config", "config.yaml", "--host", "127.0.0.1", "--port", str(port)],
            cwd=workdir,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_http_ok(url + "/health/liveliness", timeout=90, process=process)
        yield LiteLLMProxy(url, LITELLM_MASTER_KEY, log)
    finally:
        stop(process)


@pytest.fixture(scope="session")
def dockerd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dockerd]:
    """A real dockerd with vllm/vllm-openai:{v0.11.0,latest} and example/tool:1.0 images."""
    daemon = start_dockerd(tmp_path_factory.mktemp("dockerd"))
    try:
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture
def docker_client(dockerd: Dockerd) -> Iterator[docker.DockerClient]:
    """A client of the test daemon; every container is removed after the test."""
    with closing(dockerd.client()) as client:
        try:
            yield client
        finally:
            dockerd.remove_all_containers()


@pytest.fixture(scope="session")
def simulated_stack() -> Iterator[Simulator]:
    """The simulated LiteLLM and vLLM servers, for containers whose inferwatch.url points here."""
    with SimulatorThread() as simulator:
        yield simulator
