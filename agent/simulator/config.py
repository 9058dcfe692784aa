"""Configuration of the simulated serving stack: the vLLM instances, LiteLLM and the faults."""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class VLLMInstanceSpec:
    """One simulated vLLM server (one OpenAI-compatible API server, one or more engines)."""

    model: str = "meta-llama/Llama-3.1-8B-Instruct"
    version: str = "0.33.0"
    engines: int = 1
    max_model_len: int = 8192
    lora_adapters: tuple[str, ...] = ()
    api_server_count: int = 1


DEFAULT_VLLM_INSTANCES = (
    VLLMInstanceSpec(),
    VLLMInstanceSpec(model="Qwen/Qwen2.5-7B-Instruct-AWQ", version="0.10.1", engines=2),
)


@dataclass(frozen=True)
class SimulatorConfig:
    """The whole simulated stack; every server listens on an ephemeral port of `host`."""

    host: str = "127.0.0.1"
    vllm: tuple[VLLMInstanceSpec, ...] = DEFAULT_VLLM_INSTANCES
    litellm: bool = True
    litellm_master_key: str = "sk-simulated-master-key"
    latency_seconds: float = 0.0
    failure_rate: float = 0.0
    seed: int = 0
    time_scale: float = 1.0
    # None: ephemeral ports; P: LiteLLM on P and vLLM server i on P + 1 + i.
    port_base: int | None = None


DEFAULT_CONFIG = SimulatorConfig()


class Fault(enum.Enum):
    """How one simulated server misbehaves (see `Simulator.set_fault`)."""

    NONE = "none"
    ERROR_500 = "error_500"
    HANG = "hang"
    GARBAGE = "garbage"
    HUGE = "huge"
    SLOW = "slow"
    REFUSE = "refuse"
    UNAUTHORIZED = "unauthorized"
    FLAPPING = "flapping"
    """Requests lose their connection before an answer two at a time, then two are answered."""
    RESTART = "restart"
    """Every answer starts (200, headers, part of the body) and then the connection drops, as
    when the server process restarts mid-request."""


def parse_version(version: str) -> tuple[int, ...]:
    """Numeric release of a version string: "v0.10.1" -> (0, 10, 1); "0.11.0rc2" -> (0, 11, 0)."""
    numbers = re.findall(r"\d+", version.lstrip("vV").split("+")[0])
    release = [int(number) for number in numbers[:3]]
    return tuple(release + [0] * (3 - len(release)))
