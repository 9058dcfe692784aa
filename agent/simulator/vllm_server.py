"""The HTTP routes of one simulated vLLM OpenAI-compatible server."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from aiohttp import web

from agent.simulator.config import VLLMInstanceSpec
from agent.simulator.faults import Behaviour
from agent.simulator.http_common import exposition_response, fault_middleware, json_response


def model_card(
    model_id: str, root: str, parent: str | None, max_model_len: int | None, created: int
) -> dict[str, Any]:
    permission = {
        "id": f"modelperm-{hashlib.sha256(model_id.encode()).hexdigest()[:32]}",
        "object": "model_permission",
        "created": created,
        "allow_create_engine": False,
        "allow_sampling": True,
        "allow_logprobs": True,
        "allow_search_indices": False,
        "allow_view": True,
        "allow_fine_tuning": False,
        "organization": "*",
        "group": None,
        "is_blocking": False,
    }
    return {
        "id": model_id,
        "object": "model",
        "created": created,
        "owned_by": "vllm",
        "root": root,
        "parent": parent,
        "max_model_len": max_model_len,
        "permission": [permission],
    }


def models_payload(spec: VLLMInstanceSpec, created: int) -> dict[str, Any]:
    """`/v1/models`: the served model, then one card per LoRA adapter."""
    cards = [model_card(spec.model, spec.model, None, spec.max_model_len, created)]
    cards += [
        model_card(name, f"/adapters/{name}", spec.model, None, created)
        for name in spec.lora_adapters
    ]
    return {"object": "list", "data": cards}


def vllm_app(
    spec: VLLMInstanceSpec,
    *,
    target: str,
    behaviour: Behaviour,
    render_metrics: Callable[[], str],
    created: int,
) -> web.Application:
    models = models_payload(spec, created)

    async def metrics(request: web.Request) -> web.Response:
        return exposition_response(render_metrics())

    async def list_models(request: web.Request) -> web.Response:
        return json_response(models)

    async def version(request: web.Request) -> web.Response:
        return json_response({"version": spec.version})

    async def health(request: web.Request) -> web.Response:
        return web.Response(status=200)

    app = web.Application(middlewares=[fault_middleware(target, behaviour)])
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/version", version)
    app.router.add_get("/health", health)
    return app
