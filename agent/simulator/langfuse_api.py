"""A fake self-hosted Langfuse public API on loopback, in the shapes of the reference samples.

What it serves depends on ``version`` (FACTS.md, "Langfuse"), read per request so a test can
upgrade it between polls:

- always: ``GET /api/public/health`` (no auth) -> ``{"version", "status": "OK"}``;
- v3 (``3.x``): ``/api/public/metrics/daily``, ``/api/public/metrics?query=`` (v1 query API,
  views ``observations`` and ``traces``), ``/api/public/traces``, ``/api/public/sessions`` and
  ``/api/public/v2/scores``, paged with ``page`` + ``limit`` (``limit`` > 100: 400) and
  ``meta {page, limit, totalItems, totalPages}``;
- v4 (``4.x``): 404 on all of those; ``/api/public/v2/metrics`` (same query body, no ``traces``
  view) and ``/api/public/v3/scores`` (cursor pagination, ``meta.cursor`` absent on the last page).

Every other path needs HTTP Basic auth (public key as user, secret key as password). The data is
`LangfuseWorkload`: deterministic, consistent across endpoints. Faults (`Fault.*`, with
``UNAUTHORIZED`` refusing the keys) come from the shared simulator plumbing; `rate_limit` answers
429 with ``Retry-After`` as Langfuse Cloud does. Independent of the agent's sources by design.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from agent.simulator.background import BackgroundServer
from agent.simulator.config import Fault
from agent.simulator.faults import Behaviour
from agent.simulator.http_common import (
    Handler,
    LoopbackServer,
    fault_middleware,
    json_response,
)
from agent.simulator.langfuse_workload import (
    LangfuseWorkload,
    UsageRow,
    decode_cursor,
    encode_cursor,
    iso_ms,
    parse_iso,
    to_ms,
)

TARGET = "langfuse"
DEFAULT_MODELS = ("meta-llama/Llama-3.1-8B-Instruct", "Qwen/Qwen2.5-7B-Instruct-AWQ", "gpt-4o-mini")
MAX_LIMIT = 100
DEFAULT_LIMIT = 50
PUBLIC = "/api/public"
V3_ONLY = ("/metrics/daily", "/metrics", "/traces", "/sessions", "/v2/scores")
V4_ONLY = ("/v2/metrics", "/v3/scores")
USAGE_MEASURES = {
    "inputTokens": "input_tokens",
    "outputTokens": "output_tokens",
    "totalTokens": "total_tokens",
    "totalCost": "cost_usd",
}


class _BadRequest(Exception):
    """The request breaks the API's schema: 400 with this message."""


def major_version(version: str) -> int:
    """``"3.130.0"`` -> 3; anything unparsable counts as 3."""
    head = version.lstrip("vV").split(".", 1)[0]
    return int(head) if head.isdigit() else 3


class FakeLangfuse(LoopbackServer):
    """A running fake Langfuse; ``url`` is what ``LANGFUSE_HOST`` is set to. Faults, the rate
    limit and counts may be set from any thread; ``start``/``stop`` run on the serving loop."""

    def __init__(
        self,
        version: str = "3.130.0",
        *,
        public_key: str = "pk-lf-simulated",
        secret_key: str = "sk-lf-simulated",
        models: Sequence[str] = DEFAULT_MODELS,
        traces_per_day: int = 2000,
        health_version: str | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(TARGET, "the fake Langfuse", host)
        self.version = version
        self.health_version = health_version
        self.public_key = public_key
        self.secret_key = secret_key
        self._clock = clock
        self.workload = LangfuseWorkload(models, traces_per_day=traces_per_day, start=clock())
        self._limited_until: datetime | None = None

    # -- what tests and the demo drive ---------------------------------------------------------

    def rate_limit(self, seconds: float) -> None:
        """Answer 429 (``Retry-After``) to every request for ``seconds`` of the fake's clock."""
        self._limited_until = datetime.fromtimestamp(self._clock().timestamp() + seconds, UTC)

    # -- the app -------------------------------------------------------------------------------

    def _app(self, behaviour: Behaviour) -> web.Application:
        app = web.Application(
            middlewares=[fault_middleware(TARGET, behaviour), self._limiter, self._gate]
        )
        routes = {
            "/health": self._health,
            "/metrics/daily": self._daily,
            "/metrics": self._query,
            "/v2/metrics": self._query,
            "/traces": self._traces,
            "/sessions": self._sessions,
            "/v2/scores": self._scores_v2,
            "/v3/scores": self._scores_v3,
        }
        for path, handler in routes.items():
            app.router.add_get(PUBLIC + path, handler)
        return app

    @web.middleware
    async def _limiter(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        until = self._limited_until
        if until is not None:
            left = (until - self._clock()).total_seconds()
            if left > 0:
                response = json_response({"message": "Rate limit exceeded"}, status=429)
                response.headers["Retry-After"] = str(max(1, math.ceil(left)))
                return response
        return await handler(request)

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Routes of the other generation do not exist; everything but health needs the keys."""
        path = request.path.removeprefix(PUBLIC)
        hidden = V4_ONLY if major_version(self.version) < 4 else V3_ONLY
        if path in hidden:
            return json_response({"message": "Not Found"}, status=404)
        if path != "/health" and not self._authorized(request):
            return json_response(
                {
                    "error": "Unauthorized",
                    "message": "Invalid credentials. Confirm that you've configured the "
                    "correct host.",
                },
                status=401,
            )
        try:
            return await handler(request)
        except _BadRequest as error:
            return json_response({"message": "Invalid request data", "error": str(error)}, 400)

    def _authorized(self, request: web.Request) -> bool:
        if self._faults.get(TARGET).fault is Fault.UNAUTHORIZED:
            return False
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return (user, password) == (self.public_key, self.secret_key)

    # -- handlers ------------------------------------------------------------------------------

    async def _health(self, request: web.Request) -> web.Response:
        return json_response({"version": self.health_version or self.version, "status": "OK"})

    def _span(self, request: web.Request) -> range:
        return self.workload.trace_range(
            _timestamp(request, "fromTimestamp"),
            _timestamp(request, "toTimestamp"),
            to_ms(self._clock()),
        )

    async def _traces(self, request: web.Request) -> web.Response:
        span = self._span(request)
        return _page(request, len(span), lambda i: self.workload.trace_item(span[-1 - i]))

    async def _sessions(self, request: web.Request) -> web.Response:
        span, every = self._span(request), self.workload.sessions_every
        starts = range(-(-span.start // every) * every, span.stop, every)
        return _page(request, len(starts), lambda i: self.workload.session_item(starts[-1 - i]))

    async def _scores_v2(self, request: web.Request) -> web.Response:
        scored = self.workload.scored_traces(self._span(request))
        with_trace = request.query.get("fields") != "score"
        return _page(
            request,
            len(scored),
            lambda i: self.workload.score_v2(scored[-1 - i], with_trace=with_trace),
        )

    async def _scores_v3(self, request: web.Request) -> web.Response:
        scored = self.workload.scored_traces(self._span(request))
        limit = _limit(request)
        cursor = request.query.get("cursor")
        try:
            offset = decode_cursor(cursor) if cursor else 0
        except (ValueError, KeyError, TypeError) as error:
            raise _BadRequest(f"invalid cursor {cursor!r}") from error
        end = min(len(scored), offset + limit)
        meta: dict[str, Any] = {"limit": limit}
        if end < len(scored):
            meta["cursor"] = encode_cursor(end)
        items = [self.workload.score_v3(scored[-1 - i]) for i in range(offset, end)]
        return json_response({"data": items, "meta": meta})

    async def _daily(self, request: web.Request) -> web.Response:
        days = self.workload.days(self._span(request))

        def row(i: int) -> dict[str, Any]:
            day, span = days[i]
            usage = self.workload.usage(span)
            return {
                "date": day.isoformat(),
                "countTraces": len(span),
                "countObservations": sum(u.observations for u in usage),
                "totalCost": sum(u.cost_usd for u in usage),
                "usage": [_daily_usage(u) for u in usage],
            }

        return _page(request, len(days), row)

    async def _query(self, request: web.Request) -> web.Response:
        try:
            query = json.loads(request.query["query"])
        except (KeyError, ValueError) as error:
            raise _BadRequest("query must be a JSON object") from error
        if not isinstance(query, dict):
            raise _BadRequest("query must be a JSON object")
        v2 = request.path.endswith("/v2/metrics")
        return json_response({"data": self._query_rows(query, v2=v2)})

    def _query_rows(self, query: dict[str, Any], *, v2: bool) -> list[dict[str, Any]]:
        view = str(query.get("view"))
        if view not in (("observations",) if v2 else ("observations", "traces")):
            raise _BadRequest(f"unsupported view {view!r}")
        try:
            span = self.workload.trace_range(
                parse_iso(query["fromTimestamp"]),
                parse_iso(query["toTimestamp"]),
                to_ms(self._clock()),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise _BadRequest("fromTimestamp and toTimestamp are required") from error
        metrics = [(m.get("aggregation"), m.get("measure")) for m in query.get("metrics") or []]
        by_model = [d.get("field") for d in query.get("dimensions") or []] == ["providedModelName"]
        granularity = (query.get("timeDimension") or {}).get("granularity")
        if granularity not in (None, "day"):
            raise _BadRequest(f"unsupported granularity {granularity!r}")
        buckets = self.workload.days(span)[::-1] if granularity == "day" else [(None, span)]
        rows = []
        for day, bucket in buckets:
            usage = self.workload.usage(bucket)
            groups = usage if by_model else [_total(usage)]
            for group in groups:
                row = _metric_row(view, group, metrics)
                if by_model:
                    row["providedModelName"] = group.model
                if day is not None:
                    row["time_dimension"] = f"{day.isoformat()}T00:00:00.000Z"
                rows.append(row)
        return rows


class FakeLangfuseThread(BackgroundServer[FakeLangfuse]):
    """Runs a `FakeLangfuse` on its own event loop in a daemon thread (the demo, sync tests)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(FakeLangfuse(*args, **kwargs), "inferwatch-langfuse", FakeLangfuse.start)


def _total(rows: list[UsageRow]) -> UsageRow:
    return UsageRow(
        None,
        sum(r.observations for r in rows),
        max((r.traces for r in rows), default=0),
        sum(r.input_tokens for r in rows),
        sum(r.output_tokens for r in rows),
        sum(r.cost_usd for r in rows),
    )


def _metric_row(view: str, group: UsageRow, metrics: list[tuple[Any, Any]]) -> dict[str, Any]:
    """``<aggregation>_<measure>`` keys; UInt64 aggregates as strings, as ClickHouse sends them."""
    row: dict[str, Any] = {}
    for aggregation, measure in metrics:
        if (aggregation, measure) == ("count", "count"):
            row["count_count"] = str(group.traces if view == "traces" else group.observations)
        elif aggregation == "sum" and measure in USAGE_MEASURES and view == "observations":
            value = getattr(group, USAGE_MEASURES[measure])
            row[f"sum_{measure}"] = value if measure == "totalCost" else str(value)
        else:
            raise _BadRequest(f"unsupported metric {aggregation}_{measure} on view {view}")
    return row


def _daily_usage(u: UsageRow) -> dict[str, Any]:
    return {
        "model": u.model,
        "inputUsage": u.input_tokens,
        "outputUsage": u.output_tokens,
        "totalUsage": u.total_tokens,
        "countObservations": u.observations,
        "countTraces": u.traces,
        "totalCost": u.cost_usd,
    }


def _timestamp(request: web.Request, name: str) -> int | None:
    text = request.query.get(name)
    if text is None:
        return None
    try:
        return parse_iso(text)
    except ValueError as error:
        raise _BadRequest(f"{name} is not an ISO 8601 timestamp") from error


def _int_param(request: web.Request, name: str, default: int) -> int:
    text = request.query.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1:
        raise _BadRequest(f"{name} must be a positive integer")
    return int(text)


def _limit(request: web.Request) -> int:
    limit = _int_param(request, "limit", DEFAULT_LIMIT)
    if limit > MAX_LIMIT:
        raise _BadRequest(f"limit must be less than or equal to {MAX_LIMIT}")
    return limit


def _page(request: web.Request, total: int, item: Callable[[int], dict[str, Any]]) -> web.Response:
    """One page of a ``page`` + ``limit`` list, newest first; ``item(i)`` builds the i-th."""
    limit = _limit(request)
    page = _int_param(request, "page", 1)
    first = (page - 1) * limit
    items = [item(i) for i in range(first, min(total, first + limit))]
    meta = {"page": page, "limit": limit, "totalItems": total, "totalPages": -(-total // limit)}
    return json_response({"data": items, "meta": meta})


__all__ = [
    "DEFAULT_MODELS",
    "FakeLangfuse",
    "FakeLangfuseThread",
    "LangfuseWorkload",
    "iso_ms",
    "major_version",
]
