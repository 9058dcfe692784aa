"""Who uses the simulated LiteLLM proxy and what it routes to, and the JSON it answers with.

One model group per vLLM server (`hosted_vllm/<model>` at `<vllm url>/v1`) plus an
`openai/gpt-4o-mini` group; a handful of virtual keys, each used by one to three user agents.
JSON shapes follow the LiteLLM 1.108.7 captures (`data/litellm-1.108.7-model_info.json`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from dataclasses import dataclass
from functools import cache, cached_property
from typing import Any

from agent.simulator.template import read_data_file
from agent.simulator.workload import LogNormal, RegimeDistribution, Workload

HEALTH_CHECK = "litellm-internal-health-check"
UPSTREAM_SECRET = "sk-simulated-upstream-secret"
OPENAI_MODEL_CREATED = 1677610602
MODEL_INFO_FILE = "litellm-1.108.7-model_info.json"

USER_AGENTS = ("OpenAI/Python 1.99.9", "python-requests/2.32.3", "curl/8.5.0")


@dataclass(frozen=True)
class LatencyProfile:
    """Latencies of one deployment as the proxy sees them."""

    time_to_first_token: RegimeDistribution
    request: RegimeDistribution
    time_per_output_token: RegimeDistribution


@dataclass(frozen=True)
class Deployment:
    """One model group with its single deployment."""

    model_name: str
    litellm_model: str
    provider: str
    api_base: str | None
    max_input_tokens: int
    max_output_tokens: int
    input_cost_per_token: float
    output_cost_per_token: float
    failure_share: float
    failure_status: str
    failure_class: str
    workload: Workload
    latency: LatencyProfile
    vllm_index: int | None
    api_key: str | None = None

    @cached_property
    def model_id(self) -> str:
        return sha256_hex(f"{self.model_name}|{self.litellm_model}|{self.vllm_index}")

    @property
    def litellm_model_name(self) -> str:
        return self.litellm_model.split("/", 1)[1]


@dataclass(frozen=True)
class ApiKey:
    """A virtual key and the identity LiteLLM attaches to its requests."""

    alias: str
    team: str
    team_alias: str
    user: str
    user_email: str
    max_budget: float
    team_max_budget: float

    @cached_property
    def hashed(self) -> str:
        return sha256_hex(f"sk-sim-{self.alias}")


API_KEYS = (
    ApiKey("search-backend", "team-search-0001", "search", "svc-search", "None", 500.0, 2000.0),
    ApiKey(
        "notebook-alice", "team-research-02", "research", "alice", "alice@example.com", 50.0, 300.0
    ),
    ApiKey("notebook-bob", "team-research-02", "research", "bob", "bob@example.com", 50.0, 300.0),
    ApiKey("support-bot", "team-support-0003", "support", "svc-support", "None", 200.0, 800.0),
    ApiKey("eval-harness", "team-mlplatform-4", "ml-platform", "svc-eval", "None", 100.0, 400.0),
)


@dataclass(frozen=True)
class Client:
    """A key used from one user agent and address."""

    key: ApiKey
    user_agent: str
    client_ip: str


@dataclass(frozen=True)
class Stream:
    """The share of a deployment's requests (`deployments[index]`) that one client sends."""

    index: int
    deployment: Deployment
    client: Client
    share: float


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def clients_of(key_index: int) -> tuple[Client, ...]:
    key = API_KEYS[key_index]
    agents = USER_AGENTS[: 1 + key_index % len(USER_AGENTS)]
    return tuple(Client(key, agent, f"10.20.0.{10 + key_index}") for agent in agents)


def build_streams(deployments: list[Deployment], rng: random.Random) -> list[Stream]:
    """Spread each deployment's traffic over a few keys (each key over its user agents)."""
    keys_per_group = 2 if len(deployments) <= 16 else 1
    streams: list[Stream] = []
    for index, deployment in enumerate(deployments):
        keys = [(index + step * 2) % len(API_KEYS) for step in range(keys_per_group)]
        weighted = [
            (client, rng.lognormvariate(0, 0.8))
            for key_index in keys
            for client in clients_of(key_index)
        ]
        total = sum(weight for _, weight in weighted)
        streams += [
            Stream(index, deployment, client, weight / total) for client, weight in weighted
        ]
    return streams


def vllm_deployment(
    model: str,
    api_base: str,
    max_model_len: int,
    workload: Workload,
    latency: LatencyProfile,
    vllm_index: int,
) -> Deployment:
    return Deployment(
        model_name=model,
        litellm_model=f"hosted_vllm/{model}",
        provider="hosted_vllm",
        api_base=api_base,
        max_input_tokens=max_model_len,
        max_output_tokens=max_model_len,
        input_cost_per_token=2e-08,
        output_cost_per_token=6e-08,
        failure_share=0.01,
        failure_status="500",
        failure_class="InternalServerError",
        workload=workload,
        latency=latency,
        vllm_index=vllm_index,
        api_key=UPSTREAM_SECRET if vllm_index == 0 else None,
    )


def openai_deployment(rng: random.Random) -> Deployment:
    return Deployment(
        model_name="gpt-4o-mini",
        litellm_model="openai/gpt-4o-mini",
        provider="openai",
        api_base=None,
        max_input_tokens=128000,
        max_output_tokens=16384,
        input_cost_per_token=1.5e-07,
        output_cost_per_token=6e-07,
        failure_share=0.02,
        failure_status="429",
        failure_class="RateLimitError",
        workload=Workload.sinusoidal(0.8, rng),
        latency=LatencyProfile(
            time_to_first_token=RegimeDistribution(LogNormal(0.35, 0.4), LogNormal(0.7, 0.5)),
            request=RegimeDistribution(LogNormal(1.6, 0.5), LogNormal(3.0, 0.6)),
            time_per_output_token=RegimeDistribution(LogNormal(0.012, 0.3), LogNormal(0.02, 0.4)),
        ),
        vllm_index=None,
    )


@cache
def _model_info_template() -> dict[str, Any]:
    entry: dict[str, Any] = json.loads(read_data_file(MODEL_INFO_FILE))["data"][0]
    return entry


def litellm_params(deployment: Deployment) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if deployment.api_base is not None:
        params["api_base"] = deployment.api_base
    if deployment.api_key is not None:
        params["api_key"] = deployment.api_key
    params.update(
        {
            "allow_client_keepalive_override": False,
            "use_in_pass_through": False,
            "use_litellm_proxy": False,
            "use_xai_oauth": False,
            "merge_reasoning_content_in_choices": False,
            "model": deployment.litellm_model,
        }
    )
    return params


def model_info_entry(deployment: Deployment) -> dict[str, Any]:
    """One `data[]` entry of `/model/info`, shaped like the captured one."""
    entry = copy.deepcopy(_model_info_template())
    entry["model_name"] = deployment.model_name
    entry["litellm_params"] = litellm_params(deployment)
    info = entry["model_info"]
    info.update(
        id=deployment.model_id,
        key=deployment.litellm_model,
        litellm_provider=deployment.provider,
        mode="chat",
        max_tokens=deployment.max_output_tokens,
        max_input_tokens=deployment.max_input_tokens,
        max_output_tokens=deployment.max_output_tokens,
        input_cost_per_token=deployment.input_cost_per_token,
        output_cost_per_token=deployment.output_cost_per_token,
    )
    return entry


def models_list(deployments: list[Deployment]) -> dict[str, Any]:
    """`/v1/models` of the proxy: one card per model group."""
    groups = dict.fromkeys(d.model_name for d in deployments)
    cards = [
        {"id": name, "object": "model", "created": OPENAI_MODEL_CREATED, "owned_by": "openai"}
        for name in groups
    ]
    return {"data": cards, "object": "list"}


def health_endpoint(deployment: Deployment, error: str | None) -> dict[str, Any]:
    endpoint: dict[str, Any] = {}
    if deployment.api_base is not None:
        endpoint["api_base"] = deployment.api_base
    endpoint["model"] = deployment.litellm_model
    endpoint["model_id"] = deployment.model_id
    if error is not None:
        endpoint["error"] = error
    return endpoint
