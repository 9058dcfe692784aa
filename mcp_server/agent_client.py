"""The inferwatch agent's JSON API (``/api/v1/*``, ``/readyz``), as typed models.

``UpstreamHTTP`` is the GET-only JSON client shared with the Prometheus client: one lazily
opened connection pool per upstream (reopened after ``aclose``), no redirects followed, and
errors that name the URL and the setting to check.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from mcp_server.bounded import ResponseTooLarge, send_bounded
from mcp_server.settings import UpstreamSettings

T = TypeVar("T")


class UpstreamError(Exception):
    """An upstream (agent, Prometheus) could not answer; the message says what to check."""


class UpstreamHTTP:
    """GET-only JSON over HTTP to one configured origin."""

    def __init__(
        self,
        name: str,
        base_url: str,
        setting: str,
        timeout: float,
        max_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.name = name
        self.base_url = base_url
        self.setting = setting
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.base_url, timeout=self._timeout, follow_redirects=False
            )
        return self._client

    async def get(self, path: str, params: dict[str, str] | None = None) -> httpx.Response:
        url = self.base_url + path
        request = self.client.build_request("GET", path, params=params)
        try:
            return await send_bounded(
                self.client, request, max_bytes=self._max_bytes, deadline=2 * self._timeout
            )
        except ResponseTooLarge as exc:
            raise UpstreamError(f"{self.name}: {exc}; check {self.setting}") from None
        except (httpx.TimeoutException, TimeoutError):
            raise UpstreamError(
                f"{self.name} at {url} did not answer within {self._timeout:g}s; "
                f"check {self.setting} (or raise INFERWATCH_HTTP_TIMEOUT_SECONDS)"
            ) from None
        except httpx.HTTPError as exc:
            reason = type(exc).__name__ + (f": {exc}" if str(exc) else "")
            raise UpstreamError(
                f"{self.name} at {url} cannot be reached ({reason}); check {self.setting}"
            ) from None

    def unexpected(self, response: httpx.Response) -> UpstreamError:
        detail = response.text[:200].strip() or response.reason_phrase
        where = response.headers.get("location")
        if where:
            detail = f"redirect to {where} (not followed)"
        return UpstreamError(
            f"{self.name} answered HTTP {response.status_code} for {response.url}: {detail}; "
            f"check {self.setting}"
        )

    def json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError:
            raise UpstreamError(
                f"{self.name} at {response.url} answered something other than JSON; "
                f"check that {self.setting} points at it"
            ) from None

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()


class _Lenient(BaseModel):
    """Agent records may grow fields; we show the ones we know."""

    model_config = ConfigDict(extra="ignore")


class SourceStatus(_Lenient):
    name: str
    enabled: bool
    up: bool | None = None
    state: str | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    last_duration_seconds: float | None = None
    next_run: datetime | None = None
    errors_total: int = 0


class AgentStatus(BaseModel):
    url: str
    ready: bool = Field(description="the first poll of every source finished")
    sources: list[SourceStatus]


class Route(_Lenient):
    model_name: str | None = None
    litellm_model: str | None = None
    api_base: str | None = None
    provider: str | None = None


class Instance(_Lenient):
    vllm_instance: str | None = None
    url: str | None = None
    vllm_version: str | None = None
    up: bool | None = None
    healthy: bool | None = None
    max_model_len: int | None = None
    lora_of: str | None = None
    container: str | None = None
    image: str | None = None
    gpu_ids: str | None = None


class ModelInfo(_Lenient):
    model: str
    hf_repo: str = ""
    backend: str = ""
    routes: list[Route] = Field(default_factory=list)
    instances: list[Instance] = Field(default_factory=list)
    hub: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None


class ModelList(BaseModel):
    models: list[ModelInfo]


class GpuProcess(_Lenient):
    pid: int
    container: str | None = None
    used_memory_bytes: int | None = None


class GpuInfo(_Lenient):
    index: int
    uuid: str | None = None
    name: str | None = None
    pci_bus_id: str | None = None
    utilization_percent: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    temperature_celsius: float | None = None
    power_watts: float | None = None
    power_limit_watts: float | None = None
    processes: list[GpuProcess] = Field(default_factory=list)


class GpuList(BaseModel):
    gpus: list[GpuInfo]


_SOURCES = TypeAdapter(list[SourceStatus])
_MODELS = TypeAdapter(list[ModelInfo])
_GPUS = TypeAdapter(list[GpuInfo])


class AgentClient:
    """Reads the agent over its HTTP API only (never its internals)."""

    def __init__(self, settings: UpstreamSettings) -> None:
        self._http = UpstreamHTTP(
            "inferwatch agent",
            settings.agent_url,
            "INFERWATCH_AGENT_URL (and that inferwatch-agent is running)",
            settings.http_timeout_seconds,
        )

    @property
    def url(self) -> str:
        return self._http.base_url

    async def status(self) -> AgentStatus:
        ready = await self._http.get("/readyz")
        if ready.status_code not in (200, 503):
            raise self._http.unexpected(ready)
        sources = await self._list("/api/v1/sources", _SOURCES)
        return AgentStatus(url=self.url, ready=ready.status_code == 200, sources=sources)

    async def models(self) -> ModelList:
        return ModelList(models=await self._list("/api/v1/models", _MODELS))

    async def gpus(self) -> GpuList:
        return GpuList(gpus=await self._list("/api/v1/gpus", _GPUS))

    async def _list(self, path: str, adapter: TypeAdapter[list[T]]) -> list[T]:
        response = await self._http.get(path)
        if response.status_code != 200:
            raise self._http.unexpected(response)
        try:
            return adapter.validate_python(self._http.json(response))
        except ValidationError as exc:
            raise UpstreamError(
                f"inferwatch agent at {response.url} sent an unexpected shape "
                f"({exc.error_count()} problems, first: {exc.errors()[0]['msg']}); "
                "is INFERWATCH_AGENT_URL an inferwatch agent of a matching version?"
            ) from None

    async def aclose(self) -> None:
        await self._http.aclose()
