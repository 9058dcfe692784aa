from __future__ import annotations

from typing import Any

from agent.scheduler import Poller
from agent.simulator import Simulator
from agent.sources.inventory import InventorySource, join
from agent.store import Store
from tests.agent.sources.conftest import litellm_source, vllm_source

LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
QWEN = "Qwen/Qwen2.5-7B-Instruct-AWQ"


async def test_joins_what_the_real_sources_read_from_the_simulator(simulator: Simulator) -> None:
    store = Store(["litellm", "vllm", "inventory"])
    poller = Poller(store, lambda source: 10.0)
    litellm = litellm_source(simulator.litellm_url, simulator.litellm_master_key)
    vllm = vllm_source(simulator.vllm_urls)
    try:
        await poller.poll_in_order([litellm, vllm, InventorySource(store, interval_seconds=30)])
    finally:
        await litellm.aclose()
        await vllm.aclose()
    records = {r["model"]: r for r in store.records()["inventory"].latest.data["models"]}  # type: ignore[union-attr]
    assert set(records) == {LLAMA, QWEN, "gpt-4o-mini"}
    llama = records[LLAMA]
    assert llama["backend"] == "vllm" and llama["hf_repo"] == LLAMA
    assert [i["vllm_version"] for i in llama["instances"]] == ["0.33.0"]
    assert [r["litellm_model"] for r in llama["routes"]] == ["hosted_vllm/" + LLAMA]
    external = records["gpt-4o-mini"]
    assert (external["backend"], external["instances"]) == ("external", [])
    assert external["hub"] is None and external["usage"] is None


def _instance(name: str, url: str, model: str, root: str, gpus: str = "") -> dict[str, Any]:
    return {
        "instance": name,
        "url": url,
        "container": name,
        "image": "vllm/vllm-openai:v0.11.0",
        "vllm_version": "0.11.0",
        "gpus": gpus,
        "up": True,
        "healthy": True,
        "models": [{"id": model, "root": root, "parent": None, "max_model_len": 8192}],
    }


def test_the_join_tolerates_every_missing_piece() -> None:
    records = join(
        routes=[
            # by api_base (the proxy may name the host differently from the agent: id decides)
            {
                "model_name": "chat",
                "litellm_model": "hosted_vllm/llama",
                "api_base": "http://gpu-0:8000/v1",
                "provider": "hosted_vllm",
            },
            {
                "model_name": "claude",
                "litellm_model": "anthropic/claude-sonnet-4-6",
                "api_base": "",
                "provider": "anthropic",
            },
        ],
        instances=[
            _instance("vllm-a", "http://gpu-0:8000", "llama", "/models/llama-3.1-8b", gpus="0,1"),
            _instance("vllm-b", "http://gpu-1:8000", "qwen", "Qwen/Qwen2.5-7B-Instruct-AWQ"),
        ],
        containers=[{"name": "vllm-a", "gpus": "0,1"}, {"name": "vllm-b", "gpus": ""}],
        gpus=[
            {
                "index": 0,
                "uuid": "GPU-a",
                "name": "H100",
                "memory_used_bytes": 1,
                "memory_total_bytes": 2,
            },
            {
                "index": 1,
                "uuid": "GPU-b",
                "name": "H100",
                "memory_used_bytes": 1,
                "memory_total_bytes": 2,
            },
        ],
        hub={
            "Qwen/Qwen2.5-7B-Instruct-AWQ": {
                "quantization": "awq",
                "architecture": "Qwen2ForCausalLM",
            }
        },
        usage={"chat": {"cost_usd": {"today": 1.5}}},
    )
    by_model = {r["model"]: r for r in records}
    llama = by_model["llama"]
    assert llama["hf_repo"] == ""  # a local path: no Hub entry to look up
    assert [g["uuid"] for g in llama["instances"][0]["gpus"]] == ["GPU-a", "GPU-b"]
    assert llama["usage"] == {"cost_usd": {"today": 1.5}}  # Langfuse knows it by its route name
    qwen = by_model["qwen"]
    assert qwen["instances"][0]["gpus"] == []  # a container without GPUs
    assert qwen["hub"]["quantization"] == "awq"
    assert qwen["routes"] == []
    assert by_model["claude"]["backend"] == "external"
