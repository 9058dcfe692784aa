"""Every simulated upstream in this process, with one switch per upstream to make it misbehave.

The fault matrix, the secrets test and the soak (bench/soak.py) share it: the agent under test runs
in the same process (``agent.app.Agent``), its sources pointed at these servers as ``--demo`` does
(agent/demo.py), so a fault can be switched on and off between two polls.

Fault kinds, as each upstream can have them:

- network upstreams (LiteLLM, vLLM, Langfuse, the Hub, the Docker Engine API): ``down`` stops
  listening (connections refused; dockerd's socket disappears), ``refusing`` answers 500,
  ``slow`` answers after ``SLOW_SECONDS`` (beyond every timeout the tests set), ``garbage``
  answers 200 with a truncated body, ``huge`` answers 200 with a body that never ends,
  ``flapping`` drops two requests' connections, answers two, and so on, ``restarting`` starts
  every answer and drops the connection mid-body;
- NVML (an in-process library, not a server): ``down`` the kernel driver is unloaded,
  ``refusing`` NVML is shut down under the agent and refuses to initialise again (no
  permission), ``slow`` every call hangs, ``garbage`` every GPU answers NVML's "Unknown Error",
  ``huge`` every GPU lists ``HUGE_PROCESSES`` compute processes, ``flapping`` half the GPUs fall
  off the bus, ``restarting`` the driver is reloaded in the middle of a poll.
"""

from __future__ import annotations

import contextlib
import importlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.app import Agent
from agent.settings import Settings
from agent.simulator import (
    FakeDockerAPI,
    FakeDockerAPIThread,
    FakeHub,
    FakeHubThread,
    FakeLangfuse,
    FakeLangfuseThread,
    FakeNVML,
    Fault,
    Simulator,
    SimulatorConfig,
    SimulatorThread,
    demo_containers,
)

pynvml: Any = importlib.import_module("pynvml")  # untyped: the real error classes, by name
UPSTREAMS = ("litellm", "vllm", "docker", "nvml", "langfuse", "huggingface")
KINDS = ("down", "refusing", "slow", "garbage", "huge", "flapping", "restarting")
SLOW_SECONDS = 5.0
HUGE_PROCESSES = 20_000
FAKE_PID_BASE = 4100  # FakeNVML runs one process per GPU, pid 4100 + index
NETWORK_FAULTS = {
    "none": Fault.NONE,
    "down": Fault.REFUSE,
    "refusing": Fault.ERROR_500,
    "slow": Fault.SLOW,
    "garbage": Fault.GARBAGE,
    "huge": Fault.HUGE,
    "flapping": Fault.FLAPPING,
    "restarting": Fault.RESTART,
}


@dataclass(frozen=True)
class Secrets:
    """The credentials the upstreams accept (recognizable fakes in the secrets test)."""

    litellm_key: str = "sk-simulated-master-key"
    langfuse_public: str = "pk-lf-simulated"
    langfuse_secret: str = "sk-lf-simulated"
    hf_token: str = "hf_simulatedHubToken0123456789"


@dataclass
class Upstreams:
    """The running simulated upstreams; ``fault(upstream, kind)`` switches one of them."""

    simulator_thread: SimulatorThread
    docker_thread: FakeDockerAPIThread
    langfuse_thread: FakeLangfuseThread
    hub_thread: FakeHubThread
    nvml: FakeNVML
    owners: dict[int, str]
    secrets: Secrets
    cache_dir: Path
    faults: dict[str, str] = field(default_factory=dict)

    @property
    def simulator(self) -> Simulator:
        return self.simulator_thread.call(lambda server: server)

    def settings(self, **agent: Any) -> Settings:
        """Settings pointing every source at these upstreams; ``agent`` overrides
        ``INFERWATCH_*`` fields (``http_timeout_seconds=0.5``...)."""
        simulator = self.simulator
        docker: FakeDockerAPI = self.docker_thread.call(lambda server: server)
        langfuse: FakeLangfuse = self.langfuse_thread.call(lambda server: server)
        hub: FakeHub = self.hub_thread.call(lambda server: server)
        return Settings(
            agent={"cache_dir": self.cache_dir, "jitter_seconds": 0, **agent},
            litellm={
                "LITELLM_URL": simulator.litellm_url,
                "LITELLM_API_KEY": self.secrets.litellm_key,
            },
            vllm={"VLLM_URLS": ""},
            docker={"DOCKER_HOST": docker.base_url},
            langfuse={
                "LANGFUSE_HOST": langfuse.url,
                "LANGFUSE_PUBLIC_KEY": self.secrets.langfuse_public,
                "LANGFUSE_SECRET_KEY": self.secrets.langfuse_secret,
            },
            huggingface={"HF_ENDPOINT": hub.url, "HF_TOKEN": self.secrets.hf_token},
        )

    def agent(self, **agent: Any) -> Agent:
        return Agent(
            self.settings(**agent),
            nvml_binding=lambda: self.nvml,
            container_for_pid=self.owners.get,
        )

    # -- faults ----------------------------------------------------------------------------

    def fault(self, upstream: str, kind: str) -> None:
        """Make ``upstream`` misbehave as ``kind`` (see the module docstring); "none" heals it."""
        if upstream not in UPSTREAMS or (kind not in KINDS and kind != "none"):
            raise ValueError(f"unknown upstream or fault: {upstream} {kind}")
        if upstream == "nvml":
            self._nvml_fault(kind)
        else:
            self._network_fault(upstream, NETWORK_FAULTS[kind])
        if kind == "none":
            self.faults.pop(upstream, None)
        else:
            self.faults[upstream] = kind

    def heal_all(self) -> None:
        for upstream in list(self.faults):
            self.fault(upstream, "none")

    def _network_fault(self, upstream: str, fault: Fault) -> None:
        delay = SLOW_SECONDS
        if upstream == "litellm":
            self.simulator.set_fault("litellm", fault, delay=delay)
        elif upstream == "vllm":
            self.simulator.set_fault("vllm:*", fault, delay=delay)
        elif upstream == "docker":
            docker: FakeDockerAPI = self.docker_thread.call(lambda server: server)
            docker.set_fault(fault, delay=delay)
        elif upstream == "langfuse":
            self.langfuse_thread.call(lambda server: server.set_fault(fault, delay=delay))
        else:
            self.hub_thread.call(lambda server: server.set_fault(fault, delay=delay))

    def _nvml_fault(self, kind: str) -> None:
        nvml = self.nvml
        for index in range(nvml.count):
            nvml.heal(index)
        nvml.unstall()
        nvml.init_error = None
        nvml.processes = default_processes(nvml.count)
        everything = range(nvml.count)
        if kind == "down":
            _fail(nvml, everything, pynvml.NVMLError_DriverNotLoaded)
        elif kind == "refusing":
            _fail(nvml, everything, pynvml.NVMLError_Uninitialized)
            nvml.init_error = pynvml.NVMLError_NoPermission
        elif kind == "slow":
            nvml.stall(SLOW_SECONDS)
        elif kind == "garbage":
            _fail(nvml, everything, pynvml.NVMLError_Unknown)
        elif kind == "huge":
            nvml.processes = [
                (gpu, 100_000 + gpu * HUGE_PROCESSES + n, 1024**2)
                for gpu in everything
                for n in range(HUGE_PROCESSES)
            ]
        elif kind == "flapping":
            _fail(nvml, range(nvml.count // 2), pynvml.NVMLError_GpuIsLost)
        elif kind == "restarting":
            _fail(nvml, range(1, nvml.count), pynvml.NVMLError_Uninitialized)


def default_processes(gpus: int) -> list[tuple[int, int, int | None]]:
    return [(i, FAKE_PID_BASE + i, 72 * 1024**3) for i in range(gpus)]


def _fail(nvml: FakeNVML, gpus: range, error: type[Exception]) -> None:
    for index in gpus:
        nvml.fail(index, error)


@contextlib.contextmanager
def upstreams(secrets: Secrets | None = None) -> Iterator[Upstreams]:
    """Start every simulated upstream (about half a second); stop them all on exit."""
    secrets = secrets or Secrets()
    with contextlib.ExitStack() as stack:
        simulator_thread = SimulatorThread(SimulatorConfig(litellm_master_key=secrets.litellm_key))
        simulator = stack.enter_context(simulator_thread)
        containers = demo_containers(simulator.vllm_urls, simulator.config.vllm)
        docker_thread = FakeDockerAPIThread(containers)
        stack.enter_context(docker_thread)
        langfuse_thread = FakeLangfuseThread(
            public_key=secrets.langfuse_public, secret_key=secrets.langfuse_secret
        )
        stack.enter_context(langfuse_thread)
        hub_thread = FakeHubThread(token=secrets.hf_token)
        stack.enter_context(hub_thread)
        owners = {
            FAKE_PID_BASE + int(gpu): container.name
            for container in containers
            for gpu in container.gpus
            if gpu.isdigit()
        }
        cache = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="inferwatch-faults-")))
        stack.callback(_release_nvml, nvml := FakeNVML())
        yield Upstreams(
            simulator_thread,
            docker_thread,
            langfuse_thread,
            hub_thread,
            nvml,
            owners,
            secrets,
            cache,
        )


def _release_nvml(nvml: FakeNVML) -> None:
    nvml.unstall()  # a poll thread blocked in a stalled call returns
