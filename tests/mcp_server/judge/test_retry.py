"""The retry policy on its own: which failures are retried, how long it waits, when it stops."""

from __future__ import annotations

import random

import anthropic
import httpx2
import pytest

from mcp_server.judge import JudgeAPIError, JudgeDeadline, JudgeUnavailable
from mcp_server.judge.retry import (
    RetryPolicy,
    call_with_retries,
    classify,
    retry_after_seconds,
)
from tests.mcp_server.judge.conftest import VirtualTime

URL = "http://127.0.0.1:9/v1/messages"
HTTP_DATE_EPOCH = 1792567710


def status_error(
    status: int, error_type: str, headers: dict[str, str] | None = None
) -> anthropic.APIStatusError:
    body = {"type": "error", "error": {"type": error_type, "message": "scripted"}}
    response = httpx2.Response(
        status, headers=headers or {}, json=body, request=httpx2.Request("POST", URL)
    )
    return anthropic.APIStatusError("scripted", response=response, body=body)


def test_full_jitter_stays_within_the_exponential_ceiling() -> None:
    policy = RetryPolicy(base_seconds=1.0, max_backoff_seconds=8.0, rng=random.Random(1))
    for attempt in range(1, 8):
        ceiling = min(8.0, 2.0 ** (attempt - 1))
        delays = [policy.delay(attempt, None) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.8  # jitter spreads over the whole range
        assert min(delays) < ceiling * 0.2


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    policy = RetryPolicy(max_retry_after_seconds=60.0)
    assert policy.delay(1, 12.5) == 12.5
    assert policy.delay(1, 3600.0) == 60.0
    assert policy.delay(1, -5.0) == 0.0


def test_retry_after_headers_are_read_like_the_sdk_does() -> None:
    assert retry_after_seconds({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert retry_after_seconds({"retry-after": "9"}) == 9.0
    assert (
        retry_after_seconds({"retry-after": "Wed, 21 Oct 2026 07:28:30 GMT"}, now=1792567700.0)
        == 10
    )
    assert retry_after_seconds({"retry-after": "soon"}) is None
    assert retry_after_seconds({}) is None


@pytest.mark.parametrize(
    ("status", "error_type", "retried"),
    [
        (429, "rate_limit_error", True),
        (529, "overloaded_error", True),
        (500, "api_error", True),
        (503, "api_error", True),
        (408, "timeout_error", True),
        (409, "conflict_error", True),
        (400, "invalid_request_error", False),
        (401, "authentication_error", False),
        (403, "permission_error", False),
        (404, "not_found_error", False),
        (413, "request_too_large", False),
        (200, "overloaded_error", True),  # mid-stream `event: error`
        (200, "invalid_request_error", False),
    ],
)
def test_what_is_retried(status: int, error_type: str, retried: bool) -> None:
    failure = classify(status_error(status, error_type))
    assert failure is not None
    assert failure.retryable is retried


def test_the_server_can_say_not_to_retry() -> None:
    failure = classify(status_error(429, "rate_limit_error", {"x-should-retry": "false"}))
    assert failure is not None and not failure.retryable


def test_connection_failures_are_retried_and_other_errors_are_not_ours() -> None:
    request = httpx2.Request("POST", URL)
    for error in (
        anthropic.APIConnectionError(request=request),
        anthropic.APITimeoutError(request),
        httpx2.RemoteProtocolError("peer closed connection", request=request),
    ):
        failure = classify(error)
        assert failure is not None and failure.retryable
    assert classify(ValueError("a bug")) is None


async def test_a_bug_in_the_operation_propagates_unchanged() -> None:
    async def broken(_attempt: int) -> None:
        raise KeyError("content")

    with pytest.raises(KeyError):
        await call_with_retries(broken, policy=RetryPolicy())


async def test_a_refused_request_stops_at_once(virtual_time: VirtualTime) -> None:
    calls: list[int] = []

    async def refused(attempt: int) -> None:
        calls.append(attempt)
        raise status_error(400, "invalid_request_error")

    with pytest.raises(JudgeAPIError, match="400 invalid_request_error"):
        await call_with_retries(
            refused, policy=RetryPolicy(), sleep=virtual_time.sleep, clock=virtual_time.clock
        )
    assert calls == [1]
    assert virtual_time.slept == []


async def test_attempts_are_bounded(virtual_time: VirtualTime) -> None:
    calls: list[int] = []

    async def overloaded(attempt: int) -> None:
        calls.append(attempt)
        raise status_error(529, "overloaded_error")

    with pytest.raises(JudgeUnavailable, match=r"after 4 attempt.*529 overloaded_error"):
        await call_with_retries(
            overloaded,
            policy=RetryPolicy(max_attempts=4, rng=random.Random(3)),
            sleep=virtual_time.sleep,
            clock=virtual_time.clock,
        )
    assert calls == [1, 2, 3, 4]
    assert len(virtual_time.slept) == 3


async def test_waiting_counts_against_the_deadline(virtual_time: VirtualTime) -> None:
    async def limited(_attempt: int) -> None:
        raise status_error(429, "rate_limit_error", {"retry-after": "4"})

    policy = RetryPolicy(max_attempts=10, deadline_seconds=10.0)
    with pytest.raises(JudgeDeadline, match="within 10s"):
        await call_with_retries(
            limited, policy=policy, sleep=virtual_time.sleep, clock=virtual_time.clock
        )
    assert virtual_time.slept == [4.0, 4.0]  # a third wait would end past the deadline


async def test_success_reports_the_attempts_it_took(virtual_time: VirtualTime) -> None:
    async def flaky(attempt: int) -> str:
        if attempt < 3:
            raise status_error(500, "api_error")
        return "verdicts"

    result = await call_with_retries(
        flaky, policy=RetryPolicy(), sleep=virtual_time.sleep, clock=virtual_time.clock
    )
    assert result == ("verdicts", 3)
