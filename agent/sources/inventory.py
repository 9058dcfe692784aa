"""The model inventory: one record per served model, joined from the other sources' snapshots.

LiteLLM routes -> vLLM instances (by api_base or model id) -> containers -> GPUs -> Hugging Face
metadata -> Langfuse usage. Every piece is optional: a route to a hosted API has no instance, a
container may have no GPU, a local model path has no Hub entry. The join reads the data the other
sources stored with their last snapshot and asks no upstream itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from agent.snapshot import Collection
from agent.store import Store

JOINED = ("litellm", "vllm", "docker", "nvml", "huggingface", "langfuse")


def _data(store: Store, source: str, key: str) -> Any:
    record = store.records().get(source)
    if record is None or record.latest is None:
        return None
    return record.latest.data.get(key)


class InventorySource:
    """A derived source: polled after every other, on the same interval."""

    name = "inventory"
    depends_on = JOINED

    def __init__(self, store: Store, *, interval_seconds: float) -> None:
        self._store = store
        self.interval_seconds = interval_seconds

    async def collect(self) -> Collection:
        models = join(
            routes=_data(self._store, "litellm", "models") or [],
            instances=_data(self._store, "vllm", "instances") or [],
            containers=_data(self._store, "docker", "containers") or [],
            gpus=_data(self._store, "nvml", "gpus") or [],
            hub=_data(self._store, "huggingface", "models") or {},
            usage=_data(self._store, "langfuse", "models") or {},
        )
        return Collection(families=tuple(_families(models)), data={"models": models})

    async def aclose(self) -> None:
        return None


def join(
    *,
    routes: Sequence[Mapping[str, Any]],
    instances: Sequence[Mapping[str, Any]],
    containers: Sequence[Mapping[str, Any]],
    gpus: Sequence[Mapping[str, Any]],
    hub: Mapping[str, Any],
    usage: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """One record per served model, sorted by model name."""
    records: dict[str, dict[str, Any]] = {}
    containers_by_name = {str(c.get("name")): c for c in containers}
    for instance in instances:
        for card in instance.get("models") or []:
            model = str(card.get("id") or "")
            if not model:
                continue
            record = records.setdefault(model, _new_record(model, str(card.get("root") or model)))
            record["instances"].append(
                _instance(
                    instance, card, containers_by_name.get(str(instance.get("container"))), gpus
                )
            )
    for route in routes:
        model = _served_model(route, instances) or str(route.get("model_name") or "")
        if not model:
            continue
        record = records.setdefault(model, _new_record(model, ""))
        record["routes"].append(
            {k: route.get(k) for k in ("model_name", "litellm_model", "api_base", "provider")}
        )
    for record in records.values():
        record["hub"] = _hub(hub, record["hf_repo"])
        record["usage"] = _usage(usage, record)
        record["backend"] = "vllm" if record["instances"] else "external"
    return [records[name] for name in sorted(records)]


def _new_record(model: str, root: str) -> dict[str, Any]:
    return {
        "model": model,
        "hf_repo": root if _looks_like_repo(root) else "",
        "backend": "",
        "routes": [],
        "instances": [],
        "hub": None,
        "usage": None,
    }


def _looks_like_repo(value: str) -> bool:
    """``org/name`` (a Hub repo id), not a local path."""
    parts = value.split("/")
    return len(parts) == 2 and all(parts) and not value.startswith((".", "~"))


def _served_model(route: Mapping[str, Any], instances: Sequence[Mapping[str, Any]]) -> str | None:
    """The vLLM model a LiteLLM route sends to: by its api_base, else by the model id after the
    provider prefix (``hosted_vllm/<id>``); None for a route to anything else."""
    base = str(route.get("api_base") or "").rstrip("/").removesuffix("/v1")
    target = str(route.get("litellm_model") or "").partition("/")[2]
    cards_by_url = {
        str(i.get("url") or "").rstrip("/"): [str(c.get("id")) for c in i.get("models") or []]
        for i in instances
    }
    cards = cards_by_url.get(base) if base else None
    if cards:
        return target if target in cards else cards[0]
    if any(target in ids for ids in cards_by_url.values()):
        return target
    return None


def _instance(
    instance: Mapping[str, Any],
    card: Mapping[str, Any],
    container: Mapping[str, Any] | None,
    gpus: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    gpu_ids = str(instance.get("gpus") or (container or {}).get("gpus") or "")
    return {
        "vllm_instance": instance.get("instance"),
        "url": instance.get("url"),
        "vllm_version": instance.get("vllm_version"),
        "up": instance.get("up"),
        "healthy": instance.get("healthy"),
        "max_model_len": card.get("max_model_len"),
        "lora_of": card.get("parent"),
        "container": container.get("name") if container else None,
        "image": instance.get("image") or (container or {}).get("image"),
        "gpus": [_gpu(g) for g in _gpus_for(gpu_ids, gpus)],
        "gpu_ids": gpu_ids,
    }


def _gpus_for(ids: str, gpus: Sequence[Mapping[str, Any]]) -> Iterable[Mapping[str, Any]]:
    if ids == "all":
        return gpus
    wanted = {item.strip() for item in ids.split(",") if item.strip()}
    return [g for g in gpus if str(g.get("index")) in wanted or str(g.get("uuid")) in wanted]


def _gpu(gpu: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: gpu.get(k) for k in ("index", "uuid", "name", "memory_used_bytes", "memory_total_bytes")
    }


def _hub(hub: Mapping[str, Any], repo: str) -> Any:
    return hub.get(repo) if repo else None


def _usage(usage: Mapping[str, Any], record: Mapping[str, Any]) -> Any:
    """Langfuse reports the model name the request used: the served id or a LiteLLM group."""
    for name in (record["model"], *(r.get("model_name") for r in record["routes"])):
        if name in usage:
            return usage[name]
    return None


def _families(models: Sequence[Mapping[str, Any]]) -> list[Metric]:
    info = GaugeMetricFamily(
        "inferwatch_model_info",
        "A served model: where it runs and what it is; value is always 1.",
        labels=[
            "model",
            "backend",
            "hf_repo",
            "vllm_version",
            "gpus",
            "quantization",
            "architecture",
        ],
    )
    instances = GaugeMetricFamily(
        "inferwatch_model_instances", "vLLM instances serving the model.", labels=["model"]
    )
    routes = GaugeMetricFamily(
        "inferwatch_model_routes", "LiteLLM deployments routing to the model.", labels=["model"]
    )
    for m in models:
        hub: Mapping[str, Any] = m["hub"] if isinstance(m.get("hub"), Mapping) else {}
        versions = sorted({str(i.get("vllm_version") or "") for i in m["instances"]} - {""})
        gpu_ids = sorted({str(i.get("gpu_ids") or "") for i in m["instances"]} - {""})
        info.add_metric(
            [
                m["model"],
                m["backend"],
                m["hf_repo"],
                ",".join(versions),
                ";".join(gpu_ids),
                str(hub.get("quantization") or ""),
                str(hub.get("architecture") or ""),
            ],
            1.0,
        )
        instances.add_metric([m["model"]], float(len(m["instances"])))
        routes.add_metric([m["model"]], float(len(m["routes"])))
    return [info, instances, routes]
