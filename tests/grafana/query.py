"""Instant queries against the tests' real Prometheus, many at once, polled to a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx

from tests.grafana.dashboards import Query

POLL_SECONDS = 0.25
WORKERS = 8


@dataclass(frozen=True)
class Answer:
    query: Query
    status: str
    error_type: str
    error: str
    series: list[dict[str, Any]]


def ask(client: httpx.Client, query: Query) -> Answer:
    reply = client.get("/api/v1/query", params={"query": query.expr})
    body = reply.json()
    return Answer(
        query=query,
        status=str(body.get("status")),
        error_type=str(body.get("errorType") or ""),
        error=str(body.get("error") or ""),
        series=list((body.get("data") or {}).get("result") or []),
    )


def ask_all(prometheus: str, queries: Sequence[Query]) -> list[Answer]:
    with (
        httpx.Client(base_url=prometheus, timeout=10) as client,
        ThreadPoolExecutor(WORKERS) as pool,
    ):
        return list(pool.map(lambda q: ask(client, q), queries))


def poll_until(
    prometheus: str,
    queries: Sequence[Query],
    done: Callable[[Answer], bool],
    timeout: float,
) -> list[Answer]:
    """Ask every query until each answer is ``done`` or ``timeout`` passes; the last answer to
    each query, in the order given."""
    deadline = time.monotonic() + timeout
    last: dict[Query, Answer] = {}
    pending = list(queries)
    while pending:
        for answer in ask_all(prometheus, pending):
            last[answer.query] = answer
        pending = [q for q in pending if not done(last[q])]
        if pending and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        elif pending:
            break
    return [last[q] for q in queries]
