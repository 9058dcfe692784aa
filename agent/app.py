"""The agent assembled: sources from settings, the store, the exposition, scheduler and HTTP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from agent import __version__
from agent.exposition import Exposition
from agent.http_api import AgentHTTPServer
from agent.scheduler import AgentScheduler, Poller
from agent.settings import ALL_SOURCES, Settings
from agent.sources.base import Source, Watching
from agent.sources.cgroup import container_id_for_pid
from agent.sources.huggingface import HuggingFaceSource
from agent.sources.inventory import InventorySource
from agent.sources.langfuse import LangfuseSource
from agent.sources.litellm import LiteLLMSource
from agent.sources.nvml import NVMLSource
from agent.sources.nvml_binding import NVMLBinding, RealNVML
from agent.sources.vllm import VLLMSource
from agent.store import Store

if TYPE_CHECKING:
    from agent.sources.docker import DockerSource

log = logging.getLogger(__name__)


def build_sources(
    settings: Settings,
    store: Store,
    *,
    nvml_binding: Callable[[], NVMLBinding] = RealNVML,
    container_for_pid: Callable[[int], str | None] | None = None,
) -> list[Source]:
    """The enabled sources, wired to each other: Docker discovery feeds the vLLM source,
    Docker's container names label the GPU processes NVML reports, and the Hub source looks up
    the models the vLLM and LiteLLM sources last reported (read from ``store``)."""
    a = settings.agent
    wanted = set(a.sources)
    sources: list[Source] = []
    docker: DockerSource | None = None
    if "docker" in wanted:
        from agent.sources.docker import DockerSource  # the SDK costs ~15 MB: only when used

        docker = DockerSource(
            settings.docker,
            vllm_image_patterns=settings.vllm.image_patterns,
            interval_seconds=a.poll_interval_seconds,
            timeout_seconds=a.http_timeout_seconds,
            max_response_bytes=a.max_response_bytes,
        )
        sources.append(docker)
    if "litellm" in wanted:
        sources.append(
            LiteLLMSource(
                settings.litellm,
                interval_seconds=a.poll_interval_seconds,
                timeout_seconds=a.http_timeout_seconds,
                max_response_bytes=a.max_response_bytes,
                model_list_ttl_seconds=a.model_list_ttl_seconds,
            )
        )
    if "vllm" in wanted:
        sources.append(
            VLLMSource(
                settings.vllm,
                interval_seconds=a.poll_interval_seconds,
                timeout_seconds=a.http_timeout_seconds,
                max_response_bytes=a.max_response_bytes,
                model_list_ttl_seconds=a.model_list_ttl_seconds,
                providers=[docker] if docker is not None else [],
            )
        )
    if "nvml" in wanted:
        sources.append(
            NVMLSource(
                nvml_binding,
                interval_seconds=a.poll_interval_seconds,
                dialect=a.gpu_metrics,
                container_for_pid=container_for_pid or _container_names(docker),
            )
        )
    if "langfuse" in wanted:
        lf = settings.langfuse
        sources.append(
            LangfuseSource(
                host=lf.host,
                public_key=lf.public_key,
                secret_key=lf.secret_key,
                interval_seconds=lf.poll_interval_seconds,
                timeout_seconds=a.http_timeout_seconds,
                max_response_bytes=a.max_response_bytes,
                max_pages=lf.max_pages,
            )
        )
    if "huggingface" in wanted:
        h = settings.huggingface
        sources.append(
            HuggingFaceSource(
                _served_models(store),
                endpoint=h.endpoint,
                token=h.token,
                cache_dir=a.cache_dir,
                cache_ttl_seconds=a.hf_cache_ttl_seconds,
                interval_seconds=h.poll_interval_seconds or a.poll_interval_seconds,
                timeout_seconds=a.http_timeout_seconds,
                max_response_bytes=a.max_response_bytes,
                max_fetches_per_poll=h.max_fetches_per_poll,
            )
        )
    return sources


def _served_models(store: Store) -> Callable[[], list[str]]:
    """Hub repo ids of what the stack serves: vLLM model roots (not LoRA adapters) and LiteLLM
    routes to vLLM or Hugging Face backends."""

    def models() -> list[str]:
        ids: dict[str, None] = {}
        records = store.records()
        vllm = records.get("vllm")
        for instance in vllm.latest.data.get("instances", []) if vllm and vllm.latest else []:
            for card in instance.get("models", []):
                if card.get("parent") is None:
                    ids[str(card.get("root") or card.get("id"))] = None
        litellm = records.get("litellm")
        for route in litellm.latest.data.get("models", []) if litellm and litellm.latest else []:
            provider, _, rest = str(route.get("litellm_model") or "").partition("/")
            if provider in ("hosted_vllm", "huggingface") and rest:
                ids[rest] = None
        return list(ids)

    return models


def _container_names(docker: DockerSource | None) -> Callable[[int], str | None]:
    """pid -> container name through /proc/<pid>/cgroup and Docker (the short id without it)."""

    def container_for_pid(pid: int) -> str | None:
        container_id = container_id_for_pid(pid)
        if container_id is None:
            return None
        name = docker.container_name(container_id) if docker is not None else None
        return name or container_id[:12]

    return container_for_pid


class Agent:
    def __init__(
        self,
        settings: Settings,
        sources: Sequence[Source] | None = None,
        *,
        inventory: bool = True,
        nvml_binding: Callable[[], NVMLBinding] = RealNVML,
        container_for_pid: Callable[[int], str | None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = Store()
        self.sources = (
            list(sources)
            if sources is not None
            else build_sources(
                settings,
                self.store,
                nvml_binding=nvml_binding,
                container_for_pid=container_for_pid,
            )
        )
        names = [s.name for s in self.sources]
        self.store.register([*names, InventorySource.name] if inventory else names)
        if inventory:
            self.sources.append(
                InventorySource(self.store, interval_seconds=settings.agent.poll_interval_seconds)
            )
        self.exposition = Exposition(self.store, __version__)
        self.poller = Poller(self.store, self._timeout_for, settings.agent.max_series_per_source)
        self.scheduler = AgentScheduler(self.sources, self.poller, settings.agent.jitter_seconds)
        self.http: AgentHTTPServer | None = None

    def _timeout_for(self, source: Source) -> float:
        return self.settings.agent.job_timeout_for(source.interval_seconds)

    async def run_once(self) -> None:
        try:
            await self.poller.poll_in_order(self.sources)
        finally:
            await self.aclose()

    def start_http(self, host: str | None = None, port: int | None = None) -> AgentHTTPServer:
        a = self.settings.agent
        self.http = AgentHTTPServer(
            (
                host if host is not None else a.listen_host,
                port if port is not None else a.listen_port,
            ),
            self.exposition,
            self.store,
            {
                "/api/v1/sources": self.sources_view,
                "/api/v1/containers": lambda: self._data("docker", "containers"),
                "/api/v1/gpus": lambda: self._data("nvml", "gpus"),
                "/api/v1/models": lambda: self._data("inventory", "models"),
            },
        )
        self.http.start_in_thread()
        return self.http

    async def serve(
        self, stop: asyncio.Event, host: str | None = None, port: int | None = None
    ) -> None:
        """Serve HTTP and poll on schedule until ``stop`` is set."""
        http = self.start_http(host, port)
        log.info("serving on %s/metrics", http.url)
        self.scheduler.start()
        for source in self.sources:
            if isinstance(source, Watching):
                source.watch(self.scheduler.run_soon)
        try:
            await stop.wait()
        finally:
            await self.scheduler.shutdown()
            http.shutdown()
            http.server_close()
            await self.aclose()

    async def aclose(self) -> None:
        for source in self.sources:
            await source.aclose()

    def sources_view(self) -> list[dict[str, Any]]:
        next_runs = self.scheduler.next_runs()
        records = self.store.records()
        view = []
        for name in [*ALL_SOURCES, *(n for n in records if n not in ALL_SOURCES)]:
            record = records.get(name)
            latest = record.latest if record else None
            view.append(
                {
                    "name": name,
                    "enabled": record is not None,
                    "up": latest.up if latest else None,
                    "state": latest.state.value if latest else None,
                    "last_success": record.last_success if record else None,
                    "last_error": latest.error if latest else None,
                    "last_duration_seconds": latest.duration_seconds if latest else None,
                    "next_run": next_runs.get(name),
                    "errors_total": record.errors_total if record else 0,
                }
            )
        return view

    def _data(self, source: str, key: str) -> Any:
        record = self.store.records().get(source)
        if record is None or record.latest is None:
            return []
        return record.latest.data.get(key, [])
