"""The agent assembled: sources from settings, the store, the exposition, scheduler and HTTP."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Any

from agent import __version__
from agent.exposition import Exposition
from agent.http_api import AgentHTTPServer
from agent.scheduler import AgentScheduler, Poller
from agent.settings import ALL_SOURCES, Settings
from agent.sources.base import Source
from agent.sources.litellm import LiteLLMSource
from agent.sources.vllm import VLLMSource
from agent.store import Store

log = logging.getLogger(__name__)


def _litellm(settings: Settings) -> Source:
    a = settings.agent
    return LiteLLMSource(
        settings.litellm,
        interval_seconds=a.poll_interval_seconds,
        timeout_seconds=a.http_timeout_seconds,
        max_response_bytes=a.max_response_bytes,
        model_list_ttl_seconds=a.model_list_ttl_seconds,
    )


def _vllm(settings: Settings) -> Source:
    a = settings.agent
    return VLLMSource(
        settings.vllm,
        interval_seconds=a.poll_interval_seconds,
        timeout_seconds=a.http_timeout_seconds,
        max_response_bytes=a.max_response_bytes,
        model_list_ttl_seconds=a.model_list_ttl_seconds,
    )


SOURCE_FACTORIES: dict[str, Callable[[Settings], Source]] = {"litellm": _litellm, "vllm": _vllm}


def build_sources(settings: Settings) -> list[Source]:
    wanted = settings.agent.sources
    missing = [name for name in wanted if name not in SOURCE_FACTORIES]
    if missing:
        log.info("sources not in this build yet, skipped: %s", ", ".join(missing))
    return [SOURCE_FACTORIES[name](settings) for name in wanted if name in SOURCE_FACTORIES]


class Agent:
    def __init__(self, settings: Settings, sources: Sequence[Source] | None = None) -> None:
        self.settings = settings
        self.sources = list(sources) if sources is not None else build_sources(settings)
        self.store = Store([s.name for s in self.sources])
        self.exposition = Exposition(self.store, __version__)
        self.poller = Poller(self.store, self._timeout_for)
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
            {"/api/v1/sources": self.sources_view},
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
        try:
            await stop.wait()
        finally:
            self.scheduler.shutdown()
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
        for name in ALL_SOURCES:
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
