"""A simulated LLM serving stack on loopback that speaks the real wire formats.

vLLM servers (`/metrics` in Prometheus text 0.0.4 with the 0.33 families, or the pre-0.11
generation; `/v1/models`, `/version`, `/health`) and a LiteLLM 1.108.7 proxy in front of them
(`/metrics` -> 307 -> `/metrics/`, `/model/info`, `/health*`, master-key authentication), with a
smooth, time-varying workload and injectable faults. Used by the agent's `--demo` mode, by tests
as fake upstreams, and by benchmarks. Independent of the rest of the agent by design.
"""

from agent.simulator.config import Fault, SimulatorConfig, VLLMInstanceSpec
from agent.simulator.docker_api import (
    FakeContainer,
    FakeDockerAPI,
    FakeDockerAPIThread,
    demo_containers,
)
from agent.simulator.fake_nvml import FakeNVML
from agent.simulator.hub_api import FakeHub, FakeHubThread, HubModel
from agent.simulator.langfuse_api import FakeLangfuse, FakeLangfuseThread
from agent.simulator.simulator import Simulator, SimulatorThread
from agent.simulator.vllm_metrics import LABEL_HAZARD

__all__ = [
    "LABEL_HAZARD",
    "FakeContainer",
    "FakeDockerAPI",
    "FakeDockerAPIThread",
    "FakeHub",
    "FakeHubThread",
    "FakeLangfuse",
    "FakeLangfuseThread",
    "FakeNVML",
    "Fault",
    "HubModel",
    "Simulator",
    "SimulatorConfig",
    "SimulatorThread",
    "VLLMInstanceSpec",
    "demo_containers",
]
