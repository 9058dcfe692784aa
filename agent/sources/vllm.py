"""vLLM engines: each endpoint's /metrics re-exported with a ``vllm_instance`` label, plus what
/v1/models, /version and /health say, as ``inferwatch_vllm_instance_info``.

Endpoints come from an :class:`EndpointProvider`: the static ``VLLM_URLS`` here; Docker discovery
plugs in the same way. All endpoints are polled concurrently; parsing runs off the event loop.
Both metric generations pass through unchanged (``gpu_cache_usage_perc`` up to 0.10,
``kv_cache_usage_perc`` after), as do the ``engine`` labels of data-parallel engines.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from agent import passthrough
from agent.passthrough import PageMemo, RawFamily
from agent.settings import VLLMSettings
from agent.snapshot import Collection, SourceState
from agent.upstream import (
    BadStatus,
    Malformed,
    UpstreamError,
    fetch,
    new_client,
    redact_url,
    split_userinfo,
)

log = logging.getLogger(__name__)

INSTANCE_LABEL = "vllm_instance"


@dataclass(frozen=True, slots=True)
class VLLMEndpoint:
    """One vLLM API server. ``version`` is known when the image tag tells it."""

    instance: str
    url: str
    container: str = ""
    image: str = ""
    version: str = ""
    gpus: str = ""


class EndpointProvider(Protocol):
    def endpoints(self) -> Sequence[VLLMEndpoint]: ...


def endpoint_for_url(url: str) -> VLLMEndpoint:
    """A static endpoint: the instance is named ``host:port`` (plus the path, if any)."""
    base = url.rstrip("/").removesuffix("/v1")
    parts = urlsplit(base)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    instance = f"{parts.hostname}:{port}{parts.path}"
    return VLLMEndpoint(instance=instance, url=base)


@dataclass(frozen=True, slots=True)
class StaticEndpoints:
    urls: Sequence[str]
    _endpoints: tuple[VLLMEndpoint, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_endpoints", tuple(endpoint_for_url(u) for u in self.urls))

    def endpoints(self) -> Sequence[VLLMEndpoint]:
        return self._endpoints


@dataclass(frozen=True, slots=True)
class ModelCard:
    id: str
    root: str
    parent: str | None
    max_model_len: int | None


def parse_models(payload: Any, where: str) -> list[ModelCard]:
    """``/v1/models`` -> served models (LoRA adapters appear with ``parent`` set)."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise Malformed(f'{where}: expected {{"data": [...]}}')
    cards = []
    for index, card in enumerate(data):
        if not isinstance(card, dict) or not isinstance(card.get("id"), str):
            raise Malformed(f"{where}: data[{index}] has no id")
        length = card.get("max_model_len")
        cards.append(
            ModelCard(
                id=card["id"],
                root=str(card.get("root") or card["id"]),
                parent=card.get("parent") if isinstance(card.get("parent"), str) else None,
                max_model_len=length if _is_length(length) else None,
            )
        )
    return cards


def _is_length(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**63


def parse_version(payload: Any, where: str) -> str:
    version = payload.get("version") if isinstance(payload, dict) else None
    if not isinstance(version, str) or not version:
        raise Malformed(f'{where}: expected {{"version": "..."}}')
    return version


@dataclass(frozen=True, slots=True)
class InstanceReading:
    endpoint: VLLMEndpoint
    families: list[RawFamily]
    models: list[ModelCard]
    version: str
    healthy: bool | None
    error: str | None

    @property
    def up(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class _Connection:
    """Per endpoint: its own small connection pool (one shared pool of hundreds of connections
    costs httpcore quadratic bookkeeping) and the version it reported."""

    client: httpx.AsyncClient
    base: str
    """The endpoint's URL without credentials (the client sends them)."""
    version: str | None = None
    models: list[ModelCard] | None = None
    models_fetched_at: float = float("-inf")
    page: PageMemo = field(default_factory=PageMemo)

    def forget_identity(self) -> None:
        """The instance went away: it may come back as another version serving another model."""
        self.version, self.models = None, None


class VLLMSource:
    name = "vllm"

    def __init__(
        self,
        settings: VLLMSettings,
        *,
        interval_seconds: float,
        timeout_seconds: float,
        max_response_bytes: int,
        model_list_ttl_seconds: float = 300.0,
        providers: Sequence[EndpointProvider] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_seconds = settings.poll_interval_seconds or interval_seconds
        self._providers: list[EndpointProvider] = [StaticEndpoints(settings.urls), *providers]
        self._max_bytes = max_response_bytes
        self._timeout = timeout_seconds
        self._models_ttl = model_list_ttl_seconds
        self._clock = clock
        self._connections: dict[str, _Connection] = {}  # by endpoint URL

    @property
    def depends_on(self) -> tuple[str, ...]:
        return ("docker",) if len(self._providers) > 1 else ()

    def add_provider(self, provider: EndpointProvider) -> None:
        self._providers.append(provider)

    def endpoints(self) -> list[VLLMEndpoint]:
        """Every endpoint once; the first provider naming a URL wins (static before discovered)."""
        by_url: dict[str, VLLMEndpoint] = {}
        for provider in self._providers:
            for endpoint in provider.endpoints():
                by_url.setdefault(endpoint.url, endpoint)
        return list(by_url.values())

    async def aclose(self) -> None:
        await self._forget(set(self._connections))

    async def _forget(self, urls: set[str]) -> None:
        for url in urls:
            await self._connections.pop(url).client.aclose()

    def _connection(self, endpoint: VLLMEndpoint) -> _Connection:
        connection = self._connections.get(endpoint.url)
        if connection is None:
            base, auth = split_userinfo(endpoint.url)
            connection = _Connection(new_client(self._timeout, auth=auth), base)
            self._connections[endpoint.url] = connection
        return connection

    async def collect(self) -> Collection:
        endpoints = self.endpoints()
        await self._forget(set(self._connections) - {e.url for e in endpoints})
        readings = await asyncio.gather(*(self._read(e) for e in endpoints))
        raw = passthrough.merge([r.families for r in readings if r.up], _log_type_conflict)
        families = _instance_families(readings)
        data = {"instances": [_instance_json(r) for r in readings]}
        failed = [f"{r.endpoint.instance}: {r.error}" for r in readings if not r.up]
        state = SourceState.DOWN if readings and len(failed) == len(readings) else SourceState.UP
        error = "; ".join(failed) or None
        return Collection(
            families=tuple(families), raw=tuple(raw), data=data, state=state, error=error
        )

    async def _read(self, endpoint: VLLMEndpoint) -> InstanceReading:
        connection = self._connection(endpoint)
        metrics, models, version, health = await asyncio.gather(
            self._metrics(endpoint, connection),
            self._models(connection),
            self._version(endpoint, connection),
            self._health(connection),
            return_exceptions=True,
        )
        if isinstance(metrics, BaseException):
            if not isinstance(metrics, UpstreamError):
                raise metrics
            connection.forget_identity()
            return InstanceReading(endpoint, [], [], "", None, str(metrics))
        return InstanceReading(
            endpoint,
            metrics,
            models if isinstance(models, list) else [],
            version if isinstance(version, str) else "",
            health if isinstance(health, bool) else None,
            None,
        )

    async def _metrics(self, endpoint: VLLMEndpoint, connection: _Connection) -> list[RawFamily]:
        url = connection.base + "/metrics"
        reply = await fetch(
            connection.client, url, max_bytes=self._max_bytes, headers={"Accept": "text/plain"}
        )
        text = reply.body.decode("utf-8", "replace")
        # A few milliseconds of CPU per page, inline: handing each page to a thread cost more
        # in GIL switches than it gave back.
        return _reshape(text, url, endpoint.instance, connection.page)

    async def _models(self, connection: _Connection) -> list[ModelCard]:
        """Served models change only when the server restarts: cached for the model-list TTL,
        and asked again as soon as the instance comes back from being unreachable."""
        now = self._clock()
        if connection.models is None or now - connection.models_fetched_at >= self._models_ttl:
            url = connection.base + "/v1/models"
            reply = await fetch(connection.client, url, max_bytes=4 * 1024 * 1024)
            connection.models, connection.models_fetched_at = (
                parse_models(reply.json(url), url),
                now,
            )
        return connection.models

    async def _version(self, endpoint: VLLMEndpoint, connection: _Connection) -> str:
        if endpoint.version:
            return endpoint.version
        if connection.version is None:
            url = connection.base + "/version"
            reply = await fetch(connection.client, url, max_bytes=64 * 1024)
            connection.version = parse_version(reply.json(url), url)
        return connection.version

    async def _health(self, connection: _Connection) -> bool:
        try:
            await fetch(connection.client, connection.base + "/health", max_bytes=64 * 1024)
        except BadStatus:
            return False
        return True


def _reshape(text: str, where: str, instance: str, memo: PageMemo) -> list[RawFamily]:
    return passthrough.relabel_page(
        text, where, label=(INSTANCE_LABEL, instance), keep=_is_vllm_family, memo=memo
    )


def _is_vllm_family(name: str) -> bool:
    return name.startswith("vllm:")


def _log_type_conflict(name: str, kept: str, other: str) -> None:
    log.warning(
        "vLLM family %s is a %s on one instance and a %s on another; kept the first",
        name,
        kept,
        other,
    )


def _instance_families(readings: Sequence[InstanceReading]) -> list[Metric]:
    up = GaugeMetricFamily(
        "inferwatch_vllm_instance_up",
        "1 if the instance's /metrics was read.",
        labels=[INSTANCE_LABEL],
    )
    healthy = GaugeMetricFamily(
        "inferwatch_vllm_instance_healthy",
        "1 if the instance's /health answers 200 (0: engine dead).",
        labels=[INSTANCE_LABEL],
    )
    info = GaugeMetricFamily(
        "inferwatch_vllm_instance_info",
        "A vLLM instance and the model it serves; value is always 1.",
        labels=[INSTANCE_LABEL, "container", "image", "vllm_version", "gpus", "model_name", "url"],
    )
    max_len = GaugeMetricFamily(
        "inferwatch_vllm_model_max_length_tokens",
        "Context length the instance serves the model with (max_model_len).",
        labels=[INSTANCE_LABEL, "model_name"],
    )
    for r in readings:
        e = r.endpoint
        up.add_metric([e.instance], 1.0 if r.up else 0.0)
        if not r.up:
            continue
        if r.healthy is not None:
            healthy.add_metric([e.instance], 1.0 if r.healthy else 0.0)
        for card in r.models or [ModelCard("", "", None, None)]:
            info.add_metric(
                [e.instance, e.container, e.image, r.version, e.gpus, card.id, redact_url(e.url)],
                1.0,
            )
            if card.max_model_len is not None:
                max_len.add_metric([e.instance, card.id], float(card.max_model_len))
    return [up, healthy, info, max_len]


def _instance_json(r: InstanceReading) -> dict[str, Any]:
    e = r.endpoint
    return {
        "instance": e.instance,
        "url": redact_url(e.url),
        "container": e.container,
        "image": e.image,
        "vllm_version": r.version,
        "gpus": e.gpus,
        "up": r.up,
        "healthy": r.healthy,
        "error": r.error,
        "models": [
            {"id": c.id, "root": c.root, "parent": c.parent, "max_model_len": c.max_model_len}
            for c in r.models
        ],
    }
