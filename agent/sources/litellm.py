"""LiteLLM proxy: liveness, readiness, the routing table, and its own /metrics re-exported.

Facts this module relies on (FACTS.md, LiteLLM 1.108.7): /health/liveliness and
/health/readiness need no key; /v1/model/info and /metrics need ``Bearer <key>``; without a
database only the master key works (another key: 400 ``no_db_connection``; no key: 401 or a plain
500). /metrics answers 307 to /metrics/. ``GET /health`` sends a real completion to every
deployment, so it is only called when configured. ``/model/{name}/stats`` does not exist.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from agent import passthrough
from agent.passthrough import RawFamily
from agent.settings import LiteLLMSettings
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

HEALTH_CHECK_ALIAS = "litellm-internal-health-check"

# Labels that are safe to keep: bounded by the deployments, routes and outcomes the proxy has.
# Everything else (hashed_api_key, api_key_alias, user, end_user, user_email, user_agent,
# client_ip, team, team_alias, org_id, org_alias, and whatever a new release adds) is removed.
ALLOWED_LABELS = frozenset(
    {
        "model",
        "model_group",
        "model_id",
        "requested_model",
        "litellm_model_name",
        "api_base",
        "api_provider",
        "route",
        "status_code",
        "exception_status",
        "exception_class",
        "service_tier",
        "fallback_model",
        "primary_model",
        "guardrail_name",
        "cache_type",
        "le",
        "quantile",
    }
)


def is_internal_traffic(labels: Mapping[str, str]) -> bool:
    """The proxy's own health checks and calls to its health routes are not user traffic."""
    if HEALTH_CHECK_ALIAS in (labels.get("api_key_alias"), labels.get("hashed_api_key")):
        return True
    return labels.get("route", "").startswith("/health")


@dataclass(frozen=True, slots=True)
class RoutedModel:
    """One deployment of the routing table: model group -> underlying model at an api_base."""

    model_name: str
    litellm_model: str
    api_base: str
    provider: str
    model_id: str

    def as_json(self) -> dict[str, str]:
        return {
            "model_name": self.model_name,
            "litellm_model": self.litellm_model,
            "api_base": self.api_base,
            "provider": self.provider,
            "model_id": self.model_id,
        }


def parse_model_info(payload: Any, where: str) -> list[RoutedModel]:
    """``/v1/model/info`` -> routing table. Only known, non-secret fields are read."""
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, list):
        raise Malformed(f'{where}: expected {{"data": [...]}}, got {type(payload).__name__}')
    models: list[RoutedModel] = []
    for index, entry in enumerate(data):
        if not isinstance(entry, dict) or not isinstance(entry.get("model_name"), str):
            raise Malformed(f"{where}: data[{index}] has no model_name")
        params = entry.get("litellm_params")
        info = entry.get("model_info")
        params = {} if params is None else params
        info = {} if info is None else info
        if not isinstance(params, dict) or not isinstance(info, dict):
            raise Malformed(f"{where}: data[{index}] litellm_params/model_info are not objects")
        litellm_model = str(params.get("model") or "")
        provider = info.get("litellm_provider") or (
            litellm_model.split("/", 1)[0] if "/" in litellm_model else ""
        )
        models.append(
            RoutedModel(
                model_name=entry["model_name"],
                litellm_model=litellm_model,
                api_base=redact_url(str(params.get("api_base") or "")),
                provider=str(provider),
                model_id=str(info.get("id") or ""),
            )
        )
    return models


def _auth_problem(error: BadStatus, has_key: bool) -> str | None:
    """Classify a refusal as a configuration problem, with what to change."""
    if error.status in (401, 403):
        return "LiteLLM refused LITELLM_API_KEY" if has_key else "LITELLM_API_KEY is not set"
    if error.status == 400 and b"no_db_connection" in error.body:
        return (
            "LiteLLM has no database, so only its master key works: "
            "set LITELLM_API_KEY to the proxy's master_key"
        )
    if error.status == 500 and not has_key:
        return "LITELLM_API_KEY is not set (LiteLLM answers 500 to unauthenticated admin calls)"
    return None


class LiteLLMSource:
    name = "litellm"
    depends_on: tuple[str, ...] = ()

    def __init__(
        self,
        settings: LiteLLMSettings,
        *,
        interval_seconds: float,
        timeout_seconds: float,
        max_response_bytes: int,
        model_list_ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._base, auth = split_userinfo(settings.url.rstrip("/"))
        self._key = settings.api_key
        self._health_checks = settings.health_checks
        self.interval_seconds = settings.poll_interval_seconds or interval_seconds
        self._max_bytes = max_response_bytes
        self._ttl = model_list_ttl_seconds
        self._clock = clock
        self._client = new_client(timeout_seconds, auth=auth)
        self._models: list[RoutedModel] | None = None
        self._models_fetched_at = float("-inf")

    async def aclose(self) -> None:
        await self._client.aclose()

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key.get_secret_value()}"} if self._key else {}

    async def collect(self) -> Collection:
        problems: list[str] = []
        config_problems: list[str] = []
        families: list[Metric] = []
        raw: list[RawFamily] = []

        # Liveness first: if the proxy is not there, nothing else is worth asking.
        live = await self._probe("/health/liveliness")
        ready = await self._probe("/health/readiness")
        families.append(
            _gauge("inferwatch_litellm_live", "1 if /health/liveliness answers 200.", live)
        )
        families.append(
            _gauge("inferwatch_litellm_ready", "1 if /health/readiness answers 200.", ready)
        )

        async def guarded(step: Callable[[], Any]) -> None:
            if config_problems:  # the next authenticated call would be refused the same way
                return
            try:
                await step()
            except BadStatus as exc:
                problem = _auth_problem(exc, self._key is not None)
                if problem:
                    config_problems.append(f"{problem} ({exc})")
                else:
                    problems.append(str(exc))
            except UpstreamError as exc:
                problems.append(str(exc))

        async def models_step() -> None:
            families.append(_model_info_family(await self._routing_table()))

        async def metrics_step() -> None:
            raw.extend(await self._proxy_metrics())

        async def backlog_step() -> None:
            families.extend(await self._backlog())

        await guarded(models_step)
        await guarded(metrics_step)
        await guarded(backlog_step)
        if self._health_checks:

            async def health_step() -> None:
                families.append(await self._deployment_health())

            await guarded(health_step)

        data = {"models": [m.as_json() for m in self._models or []], "live": live, "ready": ready}
        if config_problems:
            state = SourceState.CONFIG_ERROR
        elif problems:
            state = SourceState.DOWN
        else:
            state = SourceState.UP
        error = "; ".join(config_problems + problems) or None
        return Collection(
            families=tuple(families), raw=tuple(raw), data=data, state=state, error=error
        )

    async def _probe(self, path: str) -> bool:
        """True on 200, False on another status; raises when the proxy cannot be reached."""
        try:
            await fetch(self._client, self._base + path, max_bytes=64 * 1024)
        except BadStatus:
            return False
        return True

    async def _routing_table(self) -> list[RoutedModel]:
        if self._models is not None and self._clock() - self._models_fetched_at < self._ttl:
            return self._models
        self._models = None
        url = self._base + "/v1/model/info"
        reply = await fetch(self._client, url, max_bytes=self._max_bytes, headers=self._auth())
        self._models = parse_model_info(reply.json(url), url)
        self._models_fetched_at = self._clock()
        return self._models

    async def _proxy_metrics(self) -> list[RawFamily]:
        url = self._base + "/metrics"
        headers = {**self._auth(), "Accept": "text/plain"}
        reply = await fetch(self._client, url, max_bytes=self._max_bytes, headers=headers)
        return passthrough.aggregate_page(
            reply.body.decode("utf-8", "replace"),
            url,
            keep=lambda name: name.startswith("litellm_"),
            allowed_labels=ALLOWED_LABELS,
            exclude=is_internal_traffic,
        )

    async def _backlog(self) -> list[Metric]:
        url = self._base + "/health/backlog"
        try:
            reply = await fetch(self._client, url, max_bytes=64 * 1024, headers=self._auth())
        except BadStatus as exc:
            if exc.status == 404:  # older proxies do not have it
                return []
            raise
        return [backlog_family(reply.json(url), url)]

    async def _deployment_health(self) -> Metric:
        url = self._base + "/health"
        reply = await fetch(self._client, url, max_bytes=self._max_bytes, headers=self._auth())
        return deployment_health_family(reply.json(url), self._models or [], url)


def backlog_family(payload: Any, where: str) -> Metric:
    """``/health/backlog`` -> requests in admission control, by state."""
    if not isinstance(payload, dict):
        raise Malformed(f"{where}: expected an object")
    family = GaugeMetricFamily(
        "inferwatch_litellm_backlog_requests",
        "Requests in the proxy's admission control, by state (/health/backlog).",
        labels=["state"],
    )
    for state in ("in_flight", "admitted", "queued", "rejected"):
        value = payload.get(f"{state}_requests")
        if isinstance(value, int | float) and not isinstance(value, bool) and abs(value) < 2**63:
            family.add_metric([state], float(value))
    return family


def deployment_health_family(payload: Any, models: Sequence[RoutedModel], where: str) -> Metric:
    """``/health`` -> 1/0 per deployment, named by its model group where the table knows it."""
    if not isinstance(payload, dict):
        raise Malformed(f"{where}: expected an object")
    names = {m.model_id: m.model_name for m in models}
    family = GaugeMetricFamily(
        "inferwatch_litellm_deployment_healthy",
        "1 if LiteLLM's /health check of the deployment succeeded.",
        labels=["model_name", "litellm_model", "api_base"],
    )
    seen: set[tuple[str, str, str]] = set()
    for key, healthy in (("healthy_endpoints", 1.0), ("unhealthy_endpoints", 0.0)):
        entries = payload.get(key) or []
        if not isinstance(entries, list):
            raise Malformed(f"{where}: {key} is not a list")
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            model = str(entry.get("model") or "")
            labels = (
                names.get(str(entry.get("model_id") or ""), model),
                model,
                redact_url(str(entry.get("api_base") or "")),
            )
            if labels not in seen:
                seen.add(labels)
                family.add_metric(list(labels), healthy)
    return family


def _gauge(name: str, documentation: str, value: bool) -> Metric:
    family = GaugeMetricFamily(name, documentation)
    family.add_metric([], 1.0 if value else 0.0)
    return family


def _model_info_family(models: Sequence[RoutedModel]) -> Metric:
    family = GaugeMetricFamily(
        "inferwatch_litellm_model_info",
        "LiteLLM routing table: model group -> underlying model, api_base and provider.",
        labels=["model_name", "litellm_model", "api_base", "provider"],
    )
    seen: set[tuple[str, str, str, str]] = set()
    for m in models:
        labels = (m.model_name, m.litellm_model, m.api_base, m.provider)
        if labels not in seen:
            seen.add(labels)
            family.add_metric(list(labels), 1.0)
    return family
