"""Langfuse: cost, tokens, traces, observations, sessions and scores over three time windows.

Facts this module relies on (FACTS.md, "Langfuse"): HTTP Basic auth (public key as user, secret
key as password) under ``/api/public``; ``GET /api/public/health`` needs none and names the
version. v3 serves the v1 metrics query API (``/metrics?query=``), ``/traces`` and ``/sessions``
(``meta.totalItems``) and ``/v2/scores`` (``page`` + ``limit`` <= 100); v4 answers 404 there and
serves ``/v2/metrics`` (same query body, no ``traces`` view) and ``/v3/scores`` (cursor, absent
on the last page). Aggregates such as ``count_count`` may arrive as JSON strings. Score ``value``
may be null or absent (categorical, text, older servers).

Windows: ``today`` (since 00:00 UTC), ``24h`` (the rolling last 24 hours) and ``7d`` (since
00:00 UTC six days ago: the last seven UTC calendar days). Usage is asked once per day bucket over
the 7d range (``today`` and ``7d`` from it) plus once for ``24h``; counts come from
``totalItems`` with ``limit=1``; scores are paged once over the 7d range and bucketed here.
"""

from __future__ import annotations

import base64
import email.utils
import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from pydantic import SecretStr

from agent.snapshot import Collection, SourceState
from agent.upstream import BadStatus, Malformed, UpstreamError, fetch, new_client, split_userinfo

WINDOWS = ("today", "24h", "7d")
NO_MODEL = "(none)"
V3, V4 = "v3", "v4"
OTHER = {V3: V4, V4: V3}
PUBLIC = "/api/public"
METRICS_PATHS = {V3: "/metrics", V4: "/v2/metrics"}
SCORES_PATHS = {V3: "/v2/scores", V4: "/v3/scores"}
# Lists whose meta.totalItems is the count we export; v3 only (v4 answers 404).
COUNTED_LISTS = {"traces": "/traces", "sessions": "/sessions"}
MAX_PAGE_SIZE = 100
DEFAULT_RETRY_AFTER_SECONDS = 60.0
HEALTH_MAX_BYTES = 64 * 1024
USAGE_FIELDS = {
    "count_count": "observations",
    "sum_inputTokens": "input",
    "sum_outputTokens": "output",
    "sum_totalTokens": "total",
    "sum_totalCost": "cost_usd",
}
AVERAGED_TYPES = frozenset({"NUMERIC", "BOOLEAN"})
MISSING_KEYS = "LANGFUSE_PUBLIC_KEY and LANGFUSE_SECRET_KEY are not set"
REJECTED_KEYS = "Langfuse rejected LANGFUSE_PUBLIC_KEY/LANGFUSE_SECRET_KEY"
WINDOWS_HELP = "Windows: today (since 00:00 UTC), 24h (rolling), 7d (since 00:00 UTC six days ago)."


def iso(moment: datetime) -> str:
    """A timestamp as Langfuse writes them: UTC, milliseconds, ``Z``."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def generation_of(version: str) -> str | None:
    """``"3.130.0"`` -> v3, ``"4.0.1"`` -> v4; None when the version says nothing."""
    head = version.strip().lstrip("vV").split(".", 1)[0]
    if not head.isdigit():
        return None
    return V4 if int(head) >= 4 else V3


def number(value: Any, where: str) -> float | None:
    """A JSON number or numeric string -> float; None for null; Malformed naming ``where``."""
    if value is None:
        return None
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            parsed = float(value)
        except (ValueError, OverflowError):  # "abc"; an integer beyond a float's range
            pass
        else:
            if math.isfinite(parsed):  # JSON's NaN and Infinity are no counts nor costs
                return parsed
    raise Malformed(f"{where} is not a number: {str(value)[:40]!r}")


@dataclass(frozen=True, slots=True)
class Windows:
    """The three windows' starts at one moment."""

    now: datetime
    starts: Mapping[str, datetime]

    @classmethod
    def at(cls, now: datetime) -> Windows:
        now = now.astimezone(UTC)
        midnight = datetime.combine(now.date(), datetime.min.time(), UTC)
        return cls(
            now,
            {
                "today": midnight,
                "24h": now - timedelta(hours=24),
                "7d": midnight - timedelta(days=6),
            },
        )

    @property
    def today(self) -> date:
        return self.now.date()

    @property
    def earliest(self) -> datetime:
        return min(self.starts.values())

    def containing(self, moment: datetime) -> list[str]:
        return [w for w, start in self.starts.items() if start <= moment <= self.now]


@dataclass
class Usage:
    """Observations, tokens and cost of one model in one window; None: the API sent null."""

    observations: float | None = 0.0
    input: float | None = 0.0
    output: float | None = 0.0
    total: float | None = 0.0
    cost_usd: float | None = 0.0

    def add(self, values: Mapping[str, float | None]) -> None:
        for name, value in values.items():
            current = getattr(self, name)
            setattr(self, name, None if current is None or value is None else current + value)


@dataclass
class ScoreStats:
    """One score name in one window."""

    count: int = 0
    missing: int = 0
    values: int = 0
    total: float = 0.0

    def add(self, value: float | None, averaged: bool) -> None:
        self.count += 1
        if not averaged:
            return
        if value is None:
            self.missing += 1
        else:
            self.values += 1
            self.total += value


@dataclass
class Scores:
    """Scores by name and window, and which windows the page cap cut short."""

    stats: dict[tuple[str, str], ScoreStats] = field(default_factory=dict)
    pages: int = 0
    truncated: bool = False
    oldest: datetime | None = None

    def partial_windows(self, windows: Windows) -> list[str]:
        """Lists come newest first: a cut list is complete for windows starting after its end."""
        if not self.truncated or self.oldest is None:
            return []
        oldest = self.oldest
        return [w for w, start in windows.starts.items() if start <= oldest]

    def add_page(self, items: Any, windows: Windows, where: str) -> int:
        if not isinstance(items, list):
            raise Malformed(f"{where}: data is not a list")
        for index, item in enumerate(items):
            self._add(item, windows, f"{where}: data[{index}]")
        self.pages += 1
        return len(items)

    def _add(self, item: Any, windows: Windows, where: str) -> None:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise Malformed(f"{where} has no name")
        moment = _timestamp(item.get("timestamp"), f"{where}.timestamp")
        self.oldest = moment if self.oldest is None else min(self.oldest, moment)
        data_type = item.get("dataType")
        averaged = data_type in AVERAGED_TYPES
        value = _score_value(item.get("value"), data_type, f"{where}.value") if averaged else None
        for window in windows.containing(moment):
            self.stats.setdefault((item["name"], window), ScoreStats()).add(value, averaged)


def _timestamp(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise Malformed(f"{where} is not a timestamp: {value!r}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise Malformed(f"{where} is not a timestamp: {value!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _score_value(value: Any, data_type: Any, where: str) -> float | None:
    """NUMERIC as is, BOOLEAN as 0/1 (v3 sends 1/0, v4 true/false); null stays None."""
    if data_type == "BOOLEAN" and isinstance(value, bool):
        return 1.0 if value else 0.0
    parsed = number(value, where)
    if data_type == "BOOLEAN" and parsed not in (None, 0.0, 1.0):
        raise Malformed(f"{where} is not a boolean: {value!r}")
    return parsed


@dataclass
class Aggregates:
    """Everything one poll learnt, before it becomes families and data."""

    version: str
    generation: str
    windows: Windows
    usage: dict[tuple[str, str], Usage] = field(default_factory=dict)
    counts: dict[tuple[str, str], float] = field(default_factory=dict)
    scores: Scores = field(default_factory=Scores)

    def add_usage(self, model: str, window: str, values: Mapping[str, float | None]) -> None:
        self.usage.setdefault((model, window), Usage()).add(values)


def _auth_header(public_key: SecretStr, secret_key: SecretStr) -> dict[str, str]:
    pair = f"{public_key.get_secret_value()}:{secret_key.get_secret_value()}"
    return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}


def retry_after_seconds(header: str | None, now: datetime) -> float:
    """``Retry-After`` as seconds or an HTTP date; a default when absent or unreadable."""
    if header is None:
        return DEFAULT_RETRY_AFTER_SECONDS
    header = header.strip()
    if header.isdigit():
        return float(header)
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return DEFAULT_RETRY_AFTER_SECONDS
    return max(0.0, (when - now).total_seconds())


class LangfuseSource:
    name = "langfuse"
    depends_on: tuple[str, ...] = ()

    def __init__(
        self,
        *,
        host: str,
        public_key: SecretStr | None,
        secret_key: SecretStr | None,
        interval_seconds: float,
        timeout_seconds: float,
        max_response_bytes: int,
        page_size: int = 100,
        max_pages: int = 50,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1..{MAX_PAGE_SIZE}")
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        host, auth = split_userinfo(host.rstrip("/"))
        self._base = host + PUBLIC
        self._headers = _auth_header(public_key, secret_key) if public_key and secret_key else None
        self.interval_seconds = interval_seconds
        self._max_bytes = max_response_bytes
        self._page_size = page_size
        self._max_pages = max_pages
        self._clock = clock
        self._client = new_client(timeout_seconds, auth=auth)
        self._client.event_hooks = {"response": [self._note_retry_after]}
        self._retry_after: str | None = None
        self._retry_at: datetime | None = None
        # What this server's version turned out to serve: generation per endpoint, lists it lacks.
        self._version: str | None = None
        self._works: dict[str, str] = {}
        self._missing: set[str] = set()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _note_retry_after(self, response: httpx.Response) -> None:
        # fetch() reports a status without headers: keep the one header a 429 needs.
        if response.status_code == 429:
            self._retry_after = response.headers.get("retry-after")

    async def collect(self) -> Collection:
        if self._headers is None:
            return Collection(state=SourceState.CONFIG_ERROR, error=MISSING_KEYS)
        now = self._clock().astimezone(UTC)
        if self._retry_at is not None and now < self._retry_at:
            left = math.ceil((self._retry_at - now).total_seconds())
            raise UpstreamError(f"rate limited, retry after {left} s (polls skipped until then)")
        self._retry_at = None
        try:
            found = await self._poll(Windows.at(now))
        except BadStatus as exc:
            if exc.status in (401, 403):
                return Collection(
                    families=tuple(_info(self._version)),
                    state=SourceState.CONFIG_ERROR,
                    error=f"{REJECTED_KEYS} (HTTP {exc.status})",
                )
            if exc.status == 429:
                wait = retry_after_seconds(self._retry_after, now)
                self._retry_at = now + timedelta(seconds=wait)
                raise UpstreamError(f"rate limited, retry after {math.ceil(wait)} s") from None
            raise
        return self._collection(found)

    # -- reading -------------------------------------------------------------------------------

    async def _poll(self, windows: Windows) -> Aggregates:
        version = await self._server_version()
        if version != self._version:  # new server or upgrade: learn its endpoints again
            self._version, self._works, self._missing = version, {}, set()
        found = Aggregates(version, generation_of(version) or V3, windows)
        await self._usage(found)
        if found.generation == V3:
            for kind in COUNTED_LISTS:
                await self._counts(found, kind)
        await self._scores(found)
        return found

    async def _server_version(self) -> str:
        url = f"{self._base}/health"
        reply = await fetch(self._client, url, max_bytes=HEALTH_MAX_BYTES)
        payload = reply.json(url)
        version = payload.get("version") if isinstance(payload, dict) else None
        if not isinstance(version, str):
            raise Malformed(f"{url}: no version in the health answer")
        return version

    async def _get(self, path: str, params: Mapping[str, str | int]) -> Any:
        url = f"{self._base}{path}?{urlencode(params)}"
        reply = await fetch(self._client, url, max_bytes=self._max_bytes, headers=self._headers)
        payload = reply.json(self._base + path)
        if not isinstance(payload, dict):
            raise Malformed(f"{self._base}{path}: expected an object")
        return payload

    async def _either(self, kind: str, preferred: str, read: Callable[[str], Any]) -> Any:
        """Call ``read(generation)``; a 404 is a version signal: try the other generation once
        and remember which one this server serves."""
        first = self._works.get(kind, preferred)
        try:
            result = await read(first)
        except BadStatus as exc:
            if exc.status != 404 or kind in self._works:
                raise
            result = await read(OTHER[first])
            first = OTHER[first]
        self._works[kind] = first
        return result

    async def _usage(self, found: Aggregates) -> None:
        windows = found.windows

        async def read(generation: str) -> None:
            path = METRICS_PATHS[generation]
            days = await self._query(path, windows.starts["7d"], windows.now, daily=True)
            last_day = await self._query(path, windows.starts["24h"], windows.now, daily=False)
            for row_day, model, values in days:
                if row_day is None or row_day < windows.starts["7d"].date():
                    continue
                found.add_usage(model, "7d", values)
                if row_day == windows.today:
                    found.add_usage(model, "today", values)
            for _, model, values in last_day:
                found.add_usage(model, "24h", values)

        await self._either("metrics", found.generation, read)

    async def _query(
        self, path: str, start: datetime, end: datetime, *, daily: bool
    ) -> list[tuple[date | None, str, dict[str, float | None]]]:
        query: dict[str, Any] = {
            "view": "observations",
            "dimensions": [{"field": "providedModelName"}],
            "metrics": [
                {"measure": key.partition("_")[2], "aggregation": key.partition("_")[0]}
                for key in USAGE_FIELDS
            ],
            "filters": [],
            "fromTimestamp": iso(start),
            "toTimestamp": iso(end),
        }
        if daily:
            query["timeDimension"] = {"granularity": "day"}
        payload = await self._get(path, {"query": json.dumps(query, separators=(",", ":"))})
        return usage_rows(payload.get("data"), f"{self._base}{path}")

    async def _counts(self, found: Aggregates, kind: str) -> None:
        if kind in self._missing:
            return
        path = COUNTED_LISTS[kind]
        for window, start in found.windows.starts.items():
            params: dict[str, str | int] = {
                "page": 1,
                "limit": 1,
                "fromTimestamp": iso(start),
                "toTimestamp": iso(found.windows.now),
            }
            try:
                payload = await self._get(path, params)
            except BadStatus as exc:
                if exc.status != 404:
                    raise
                self._missing.add(kind)  # a v4 behind an unhelpful health answer
                return
            meta = payload.get("meta")
            total = number(
                meta.get("totalItems") if isinstance(meta, dict) else None,
                f"{self._base}{path}: meta.totalItems",
            )
            if total is None:
                raise Malformed(f"{self._base}{path}: meta.totalItems is missing")
            found.counts[kind, window] = total

    async def _scores(self, found: Aggregates) -> None:
        async def read(generation: str) -> Scores:
            scores = Scores()
            if generation == V3:
                await self._scores_by_page(scores, found.windows)
            else:
                await self._scores_by_cursor(scores, found.windows)
            return scores

        found.scores = await self._either("scores", found.generation, read)

    def _score_params(self, windows: Windows) -> dict[str, str | int]:
        return {
            "limit": self._page_size,
            "fromTimestamp": iso(windows.earliest),
            "toTimestamp": iso(windows.now),
        }

    async def _scores_by_page(self, scores: Scores, windows: Windows) -> None:
        path = SCORES_PATHS[V3]
        page = 1
        while True:
            if scores.pages >= self._max_pages:
                scores.truncated = True
                return
            params = {**self._score_params(windows), "page": page, "fields": "score"}
            payload = await self._get(path, params)
            where = f"{self._base}{path}?page={page}"
            if scores.add_page(payload.get("data"), windows, where) == 0:
                return
            meta = payload.get("meta")
            pages = number(meta.get("totalPages") if isinstance(meta, dict) else None, where)
            if pages is None or page >= pages:
                return
            page += 1

    async def _scores_by_cursor(self, scores: Scores, windows: Windows) -> None:
        path = SCORES_PATHS[V4]
        cursor: str | None = None
        while True:
            if scores.pages >= self._max_pages:
                scores.truncated = True
                return
            params = self._score_params(windows)
            if cursor is not None:
                params["cursor"] = cursor
            payload = await self._get(path, params)
            where = f"{self._base}{path}"
            scores.add_page(payload.get("data"), windows, where)
            meta = payload.get("meta")
            following = meta.get("cursor") if isinstance(meta, dict) else None
            if not following:
                return
            if not isinstance(following, str) or following == cursor:
                raise Malformed(f"{where}: meta.cursor does not advance: {following!r}")
            cursor = following

    # -- what the poll becomes -----------------------------------------------------------------

    def _unavailable(self, found: Aggregates) -> set[str]:
        """Counts this server's version does not serve (their series are left out)."""
        return set(COUNTED_LISTS) if found.generation == V4 else set(self._missing)

    def _collection(self, found: Aggregates) -> Collection:
        partial = found.scores.partial_windows(found.windows)
        error = None
        if partial:
            error = (
                f"page cap reached: read {found.scores.pages} pages of scores "
                f"(max_pages={self._max_pages}); score series of window(s) "
                f"{', '.join(partial)} are partial and left out"
            )
        return Collection(
            families=tuple(_families(found, partial)),
            data=_data(found, partial, sorted(self._unavailable(found))),
            state=SourceState.UP,
            error=error,
        )


def usage_rows(rows: Any, where: str) -> list[tuple[date | None, str, dict[str, float | None]]]:
    """Query-API rows -> (day or None, model label, values by Usage field)."""
    if not isinstance(rows, list):
        raise Malformed(f"{where}: data is not a list")
    out = []
    for index, row in enumerate(rows):
        at = f"{where}: data[{index}]"
        if not isinstance(row, dict):
            raise Malformed(f"{at} is not an object")
        model = row.get("providedModelName")
        if model is not None and not isinstance(model, str):
            raise Malformed(f"{at}.providedModelName is not a string")
        values = {name: number(row.get(key), f"{at}.{key}") for key, name in USAGE_FIELDS.items()}
        out.append((_bucket_day(row.get("time_dimension"), at), model or NO_MODEL, values))
    return out


def _bucket_day(value: Any, where: str) -> date | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise Malformed(f"{where}.time_dimension is not a date: {value!r}")
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        raise Malformed(f"{where}.time_dimension is not a date: {value!r}") from None


def _gauge(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, f"{documentation} {WINDOWS_HELP}", labels=labels)


def _info(version: str | None) -> Iterable[Metric]:
    if version is None:
        return []
    family = GaugeMetricFamily(
        "inferwatch_langfuse_info", "Langfuse server version (1).", labels=["version"]
    )
    family.add_metric([version], 1.0)
    return [family]


def _families(found: Aggregates, partial: list[str]) -> list[Metric]:
    families = list(_info(found.version))
    families.extend(_usage_families(found))
    for kind, what in (
        ("traces", "Traces started in the window (Langfuse v3 only: v4 has no trace list)."),
        ("sessions", "Sessions created in the window (Langfuse v3 only)."),
    ):
        family = _gauge(f"inferwatch_langfuse_{kind}", what, ["window"])
        for window in WINDOWS:
            if (kind, window) in found.counts:
                family.add_metric([window], found.counts[kind, window])
        families.append(family)
    families.extend(_score_families(found, partial))
    return families


def _usage_families(found: Aggregates) -> list[Metric]:
    cost = _gauge(
        "inferwatch_langfuse_cost_usd", "Cost Langfuse computed, by model.", ["model", "window"]
    )
    tokens = _gauge(
        "inferwatch_langfuse_tokens", "Tokens by model and kind.", ["model", "kind", "window"]
    )
    observations = _gauge(
        "inferwatch_langfuse_observations", "Observations (all models and spans).", ["window"]
    )
    per_window: dict[str, float | None] = dict.fromkeys(WINDOWS, 0.0)  # no rows: none seen
    for (model, window), usage in sorted(found.usage.items()):
        if usage.cost_usd is not None:
            cost.add_metric([model, window], usage.cost_usd)
        for kind in ("input", "output", "total"):
            value = getattr(usage, kind)
            if value is not None:
                tokens.add_metric([model, kind, window], value)
        seen = per_window.get(window, 0.0)
        per_window[window] = (
            None if seen is None or usage.observations is None else seen + usage.observations
        )
    for window in WINDOWS:
        value = per_window.get(window)
        if value is not None:
            observations.add_metric([window], value)
    return [cost, tokens, observations]


def _score_families(found: Aggregates, partial: list[str]) -> list[Metric]:
    mean = _gauge(
        "inferwatch_langfuse_score_mean",
        "Mean of NUMERIC and BOOLEAN (0/1) scores with a value, by name.",
        ["name", "window"],
    )
    count = _gauge(
        "inferwatch_langfuse_scores", "Scores of every data type, by name.", ["name", "window"]
    )
    missing = _gauge(
        "inferwatch_langfuse_scores_missing_value",
        "NUMERIC and BOOLEAN scores without a value (not averaged), by name.",
        ["name", "window"],
    )
    for (name, window), stats in sorted(found.scores.stats.items()):
        if window in partial:
            continue
        count.add_metric([name, window], stats.count)
        if stats.values:
            mean.add_metric([name, window], stats.total / stats.values)
        if stats.values or stats.missing:
            missing.add_metric([name, window], stats.missing)
    return [mean, count, missing]


def _data(found: Aggregates, partial: list[str], missing: list[str]) -> dict[str, Any]:
    """The JSON view: per window its range and counts, per model (as Langfuse names it) usage."""
    windows: dict[str, Any] = {}
    for window, start in found.windows.starts.items():
        windows[window] = {
            "from": iso(start),
            "to": iso(found.windows.now),
            "traces": found.counts.get(("traces", window)),
            "sessions": found.counts.get(("sessions", window)),
            "scores_partial": window in partial,
        }
    models: dict[str, dict[str, dict[str, float | None]]] = {}
    for (model, window), usage in sorted(found.usage.items()):
        entry = models.setdefault(model, {})
        for name in ("cost_usd", "input", "output", "total", "observations"):
            key = name if name in ("cost_usd", "observations") else f"{name}_tokens"
            entry.setdefault(key, {})[window] = getattr(usage, name)
    return {
        "version": found.version,
        "generation": found.generation,
        "windows": windows,
        "models": models,
        "partial": bool(partial),
        "unavailable": missing,
    }
