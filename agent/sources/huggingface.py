"""Hugging Face Hub: what the served models are (size, quantization, context, license).

For every model id the stack serves (``models()``: vLLM roots and LiteLLM routes), the source reads
``GET {HF_ENDPOINT}/api/models/{id}?blobs=true`` and ``GET {HF_ENDPOINT}/{id}/resolve/{sha}/
config.json`` once, derives the facts (:mod:`agent.sources.hf_facts`) and keeps them on disk for
``INFERWATCH_HF_CACHE_TTL_SECONDS`` (:mod:`agent.sources.hf_cache`): a restart makes no Hub call.

It uses our own :func:`agent.upstream.fetch` on the REST API rather than the ``huggingface_hub``
package: that package pulls in ``httpx2``, reads ``HF_ENDPOINT`` at import, and does no 429
handling, while ``fetch`` bounds time and bytes and scrubs ``HF_TOKEN`` from errors.

Rules (FACTS.md: anonymous limit ~500 API calls / 5 min / IP):

- local paths and ids that are not ``org/name`` are never sent to the Hub;
- 401/403/404 are answers (private, missing, no access): kept like facts, for the TTL;
- 429 stops every Hub call until ``Retry-After`` / the ``RateLimit`` header's ``t`` (else an
  exponential backoff), capped at 15 minutes; a ``RateLimit`` with ``r=0`` does the same;
- at most ``max_fetches_per_poll`` Hub calls per poll (two per model), so a long model list is
  read over a few polls;
- 5xx, invalid JSON, oversized bodies, timeouts fail that model's lookup: not kept, retried next
  poll; an expired entry keeps being served (marked ``stale``) meanwhile.

The source is down only when it has models to describe and every one of them failed with nothing
to show, not even a stale entry; otherwise it is up and ``error`` lists the failures.
``inferwatch_hf_lookup_ok{model}`` is 1 where facts (fresh or stale) are known; where they are,
``inferwatch_hf_lookup_stale{model}`` says whether they are past the TTL because refreshing them
failed, and ``inferwatch_hf_facts_fetched_timestamp_seconds{model}`` when the Hub gave them (a
timestamp, not an age: the exposition is rendered once per poll, an age would be an interval old).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from pydantic import SecretStr

from agent.snapshot import Collection, SourceState
from agent.sources.hf_cache import HubCache, Lookup, token_fingerprint
from agent.sources.hf_facts import ModelFacts, check_model_info, derive, not_a_repo_id
from agent.upstream import (
    BadStatus,
    Malformed,
    Reply,
    UpstreamError,
    fetch,
    new_client,
    split_userinfo,
)

log = logging.getLogger(__name__)

CALLS_PER_LOOKUP = 2  # model info + config.json
CONCURRENT_LOOKUPS = 4
BACKOFF_BASE_SECONDS = 60.0
BACKOFF_CAP_SECONDS = 15 * 60.0
CONFIG_MAX_BYTES = 1024 * 1024
INFO_LABELS = ("model", "quantization", "architecture", "license", "gated", "private")
_RATELIMIT_PART = re.compile(r"\b([rt])=(\d+)")


class RateLimited(UpstreamError):
    """The Hub asked us to wait (429), or we are still waiting."""


class RateGate:
    """When the next Hub call may be made, from 429s and ``RateLimit`` headers."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.until = float("-inf")
        self._strikes = 0

    def blocked(self) -> str | None:
        wait = self.until - self._clock()
        if wait <= 0:
            return None
        return f"rate limited by the Hub: no calls for another {wait:.0f} s"

    def observe(self, status: int, headers: httpx.Headers) -> None:
        now = self._clock()
        remaining, reset = _ratelimit(headers.get("ratelimit", ""))
        if status == 429:
            wait = _retry_after(headers.get("retry-after", ""), now) or reset
            if wait is None:
                wait = BACKOFF_BASE_SECONDS * 2**self._strikes
            self._strikes += 1
            self._block(now, wait)
        elif remaining == 0 and reset:
            self._block(now, reset)
        elif 200 <= status < 300:
            self._strikes = 0

    def _block(self, now: float, wait: float) -> None:
        wait = min(max(wait, 1.0), BACKOFF_CAP_SECONDS)
        self.until = max(self.until, now + wait)
        log.warning("Hub rate limit: no Hub calls for %.0f s", wait)


def _ratelimit(value: str) -> tuple[int | None, float | None]:
    """``"api";r=<remaining>;t=<seconds>`` -> (remaining, seconds to reset)."""
    parts = dict(_RATELIMIT_PART.findall(value))
    remaining = int(parts["r"]) if "r" in parts else None
    reset = float(parts["t"]) if "t" in parts else None
    return remaining, reset


def _retry_after(value: str, now: float) -> float | None:
    """``Retry-After`` in seconds, or as an HTTP date."""
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        return email.utils.parsedate_to_datetime(value).timestamp() - now
    except (TypeError, ValueError):
        return None


class _Budget:
    """Hub calls left in this poll."""

    def __init__(self, calls: int) -> None:
        self.left = calls

    def take(self, calls: int) -> bool:
        if self.left < calls:
            return False
        self.left -= calls
        return True


@dataclass(frozen=True, slots=True)
class Outcome:
    """One model in one poll: a current lookup, or a failure (with the expired one, if any)."""

    model: str
    lookup: Lookup | None = None
    failure: str | None = None
    stale: bool = False

    @property
    def facts(self) -> ModelFacts | None:
        return self.lookup.facts if self.lookup else None

    def as_json(self) -> dict[str, Any]:
        facts = self.facts
        return {
            "ok": facts is not None,
            "stale": self.stale,
            "error": self.failure or (self.lookup.error if self.lookup else None),
            "fetched_at": self.lookup.fetched_at if self.lookup else None,
            **(facts.as_json() if facts else {}),
        }


class HuggingFaceSource:
    name = "huggingface"
    depends_on: tuple[str, ...] = ("vllm", "litellm")

    def __init__(
        self,
        models: Callable[[], Iterable[str]],
        *,
        endpoint: str,
        token: SecretStr | None,
        cache_dir: Path,
        cache_ttl_seconds: float,
        interval_seconds: float,
        timeout_seconds: float,
        max_response_bytes: int,
        clock: Callable[[], float] = time.time,
        max_fetches_per_poll: int = 10,
    ) -> None:
        if max_fetches_per_poll < CALLS_PER_LOOKUP:
            raise ValueError(f"max_fetches_per_poll must be at least {CALLS_PER_LOOKUP}")
        self._models = models
        self._base, auth = split_userinfo(endpoint.rstrip("/"))
        self._token = token
        self._auth_id = token_fingerprint(token.get_secret_value() if token else None)
        self._cache = HubCache(cache_dir)
        self._ttl = cache_ttl_seconds
        self.interval_seconds = interval_seconds
        self._max_bytes = max_response_bytes
        self._clock = clock  # wall time: cache entries outlive the process
        self._max_fetches = max_fetches_per_poll
        self._gate = RateGate(clock)
        self._client = new_client(timeout_seconds, max_connections=CONCURRENT_LOOKUPS, auth=auth)
        self._client.event_hooks = {"request": [], "response": [self._on_response]}
        self._memory: dict[str, Lookup] = {}
        self.requests_total = 0

    async def aclose(self) -> None:
        await self._client.aclose()

    async def collect(self) -> Collection:
        wanted = list(dict.fromkeys(self._models()))
        self._memory = {m: self._memory[m] for m in wanted if m in self._memory}  # size bound
        budget = _Budget(self._max_fetches)
        limit = asyncio.Semaphore(CONCURRENT_LOOKUPS)

        async def one(model: str) -> Outcome:
            async with limit:
                return await self._outcome(model, budget)

        outcomes = await asyncio.gather(*(one(m) for m in wanted))
        failures = [f"{o.model}: {o.failure}" for o in outcomes if o.failure]
        answered = [o for o in outcomes if o.lookup is not None]
        state = SourceState.DOWN if outcomes and not answered else SourceState.UP
        return Collection(
            families=tuple(self._families(outcomes)),
            data={
                "models": {o.model: o.as_json() for o in outcomes},
                "rate_limited_until": self._gate.until if self._gate.blocked() else None,
                "requests_total": self.requests_total,
            },
            state=state,
            error="; ".join(failures) or None,
        )

    # -- one model ----------------------------------------------------------------------------

    async def _outcome(self, model: str, budget: _Budget) -> Outcome:
        now = self._clock()
        reason = not_a_repo_id(model)
        if reason is not None:
            return Outcome(model, Lookup(model, now, error=reason))
        known = self._known(model)
        if known is not None and known.fresh(now, self._ttl, auth=self._auth_id):
            return Outcome(model, known)
        failure = self._gate.blocked()
        if failure is None and not budget.take(CALLS_PER_LOOKUP):
            failure = f"deferred: at most {self._max_fetches} Hub calls per poll"
        if failure is None:
            try:
                lookup = await self._fetch(model)
            except UpstreamError as exc:
                failure = str(exc)
            else:
                self._memory[model] = lookup
                self._cache.store(lookup)
                return Outcome(model, lookup)
        # An expired refusal is no answer; expired facts are still the best we have.
        stale = known if known is not None and known.facts is not None else None
        return Outcome(model, stale, failure=failure, stale=stale is not None)

    def _known(self, model: str) -> Lookup | None:
        lookup = self._memory.get(model)
        if lookup is None:
            lookup = self._cache.load(model)
            if lookup is not None:
                self._memory[model] = lookup
        return lookup

    async def _fetch(self, model: str) -> Lookup:
        url = f"{self._base}/api/models/{quote(model, safe='/')}?blobs=true"
        try:
            reply = await self._call(url, self._max_bytes)
        except BadStatus as exc:
            refusal = _refusal(exc, has_token=self._token is not None)
            if refusal is None:
                raise
            return self._lookup(model, error=refusal)
        info = check_model_info(reply.json(url), url)
        config, config_error = await self._config(model, info)
        return self._lookup(model, facts=derive(info, config, config_error))

    def _lookup(self, model: str, **answer: Any) -> Lookup:
        return Lookup(model, self._clock(), auth=self._auth_id, **answer)

    async def _config(
        self, model: str, info: Mapping[str, Any]
    ) -> tuple[dict[str, Any] | None, str | None]:
        """``config.json`` at the info's revision, or None and why (gated, missing)."""
        gguf = info.get("gguf")
        if isinstance(gguf, dict) and gguf.get("context_length"):
            return None, None  # a GGUF repo: its metadata says what config.json would
        url = f"{self._base}/{quote(model, safe='/')}/resolve/{info['sha']}/config.json"
        try:
            reply = await self._call(url, min(self._max_bytes, CONFIG_MAX_BYTES))
        except BadStatus as exc:
            if exc.status in (401, 403):
                return None, f"config.json refused (HTTP {exc.status}): gated repo, {_ACCEPT}"
            if exc.status == 404:
                return None, "config.json not in the repo (HTTP 404)"
            raise
        payload = reply.json(url)
        if not isinstance(payload, dict):
            raise Malformed(f"{url}: expected an object")
        return payload, None

    async def _call(self, url: str, max_bytes: int) -> Reply:
        blocked = self._gate.blocked()
        if blocked:
            raise RateLimited(blocked)
        self.requests_total += 1
        try:
            return await fetch(self._client, url, max_bytes=max_bytes, headers=self._auth())
        except BadStatus as exc:
            if exc.status == 429:
                raise RateLimited(self._gate.blocked() or f"{exc}") from None
            raise

    def _auth(self) -> dict[str, str]:
        if self._token is None:
            return {}
        return {"Authorization": f"Bearer {self._token.get_secret_value()}"}

    async def _on_response(self, response: httpx.Response) -> None:
        self._gate.observe(response.status_code, response.headers)

    # -- metrics ------------------------------------------------------------------------------

    def _families(self, outcomes: list[Outcome]) -> list[Metric]:
        info = GaugeMetricFamily(
            "inferwatch_hf_model_info",
            "Hugging Face Hub facts about a served model (value 1).",
            labels=[*INFO_LABELS, "pipeline_tag"],
        )
        numbers = {
            "parameters": GaugeMetricFamily(
                "inferwatch_hf_model_parameters",
                "Parameters of the model (packed quantized weights unpacked).",
                labels=["model"],
            ),
            "weights_bytes": GaugeMetricFamily(
                "inferwatch_hf_model_weights_bytes",
                "Bytes of the model's weight files (*.safetensors, *.gguf) on the Hub.",
                labels=["model"],
            ),
            "context_length": GaugeMetricFamily(
                "inferwatch_hf_model_context_length",
                "Context length the model was trained for (max_position_embeddings), in tokens.",
                labels=["model"],
            ),
        }
        ok = GaugeMetricFamily(
            "inferwatch_hf_lookup_ok",
            "1 if the Hub's facts about the model are known (fresh or stale), else 0.",
            labels=["model"],
        )
        stale = GaugeMetricFamily(
            "inferwatch_hf_lookup_stale",
            "1 if the model's Hub facts are past their TTL and being served because refreshing "
            "them failed, 0 if fresh. Absent where no facts are known.",
            labels=["model"],
        )
        fetched = GaugeMetricFamily(
            "inferwatch_hf_facts_fetched_timestamp_seconds",
            "Unix time the model's Hub facts were fetched (their age: time() minus this).",
            labels=["model"],
        )
        for outcome in outcomes:
            facts = outcome.facts
            ok.add_metric([outcome.model], 0.0 if facts is None else 1.0)
            if facts is None or outcome.lookup is None:
                continue
            stale.add_metric([outcome.model], 1.0 if outcome.stale else 0.0)
            fetched.add_metric([outcome.model], outcome.lookup.fetched_at)
            info.add_metric(_info_labels(outcome.model, facts), 1.0)
            for field_name, family in numbers.items():
                value = getattr(facts, field_name)
                if value is not None:
                    family.add_metric([outcome.model], float(value))
        requests = CounterMetricFamily(
            "inferwatch_hf_requests",
            "HTTP requests this process made to the Hugging Face Hub.",
            value=float(self.requests_total),
        )
        return [info, *numbers.values(), ok, stale, fetched, requests]


_ACCEPT = "HF_TOKEN's account must accept the model's license on the Hub"


def _refusal(error: BadStatus, *, has_token: bool) -> str | None:
    """The Hub's "no" for a model, with what to do, or None for a failure worth retrying."""
    if error.status == 401:
        if has_token:
            return "the Hub refused HF_TOKEN (HTTP 401): check the token"
        return "private or missing on the Hub (HTTP 401); set HF_TOKEN if it is private"
    if error.status == 403:
        return f"HF_TOKEN has no access (HTTP 403): {_ACCEPT}"
    if error.status == 404:
        if has_token:
            return "missing, or private and HF_TOKEN has no access (HTTP 404)"
        return "not on the Hub (HTTP 404)"
    return None


def _info_labels(model: str, facts: ModelFacts) -> list[str]:
    return [
        model,
        facts.quantization,
        facts.architecture,
        facts.license,
        facts.gated,
        "true" if facts.private else "false",
        facts.pipeline_tag,
    ]
