"""Our retry policy for calls to Claude (the SDK's own retries are off: ``max_retries=0``).

Retried: 408, 409, 429, 5xx (529 overloaded included), connection errors and timeouts, and an
``overloaded_error`` (or ``api_error``) sent as an ``event: error`` in the middle of a stream,
which the SDK raises as an APIStatusError with status 200. Not retried: every other 4xx (a bad
request or key stays bad). ``x-should-retry`` from the server wins when present.

Waits are exponential with full jitter (uniform between 0 and base * 2^(n-1), capped), or what
``retry-after-ms`` / ``retry-after`` asks, capped at ``max_retry_after_seconds`` (the SDK alone
would wait as long as told). Attempts are bounded, and the whole call has a deadline: a hang, or
a wait that would end past the deadline, ends it with JudgeDeadline.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

import anthropic
import httpx2

from mcp_server.judge.errors import JudgeAPIError, JudgeDeadline, JudgeUnavailable

T = TypeVar("T")

Sleep = Callable[[float], Awaitable[None]]
Clock = Callable[[], float]

_RETRIED_STATUSES = frozenset({408, 409, 429})
# Error types the API sends mid-stream that a later attempt can get past.
_RETRIED_STREAM_ERRORS = frozenset({"overloaded_error", "api_error", "rate_limit_error"})


@dataclass(frozen=True)
class Failure:
    """One failed attempt, as the retry loop sees it."""

    description: str
    retryable: bool
    status: int | None = None
    error_type: str | None = None
    api_message: str = ""
    retry_after_seconds: float | None = None

    def as_error(self) -> JudgeAPIError:
        return JudgeAPIError(self.status or 0, self.error_type, self.api_message)


@dataclass
class RetryPolicy:
    max_attempts: int = 5
    deadline_seconds: float = 300.0
    max_retry_after_seconds: float = 60.0
    base_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    rng: random.Random = field(default_factory=random.Random)

    def delay(self, failed_attempt: int, retry_after_seconds: float | None) -> float:
        """Seconds to wait after attempt number ``failed_attempt`` (1-based) failed."""
        if retry_after_seconds is not None:
            return min(max(retry_after_seconds, 0.0), self.max_retry_after_seconds)
        ceiling = min(self.max_backoff_seconds, self.base_seconds * 2 ** (failed_attempt - 1))
        return self.rng.uniform(0.0, ceiling)


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """``retry-after-ms``, else ``retry-after`` (seconds or an HTTP date); None when absent."""
    try:
        return float(headers["retry-after-ms"]) / 1000
    except (KeyError, ValueError):
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        return email.utils.mktime_tz(parsed) - (time.time() if now is None else now)


def classify(error: BaseException, redact: Callable[[str], str] = str) -> Failure | None:
    """How the loop treats ``error``; None for errors that are not about reaching Claude."""
    if isinstance(error, anthropic.APIStatusError):
        status = error.status_code
        error_type = error.type if isinstance(error.type, str) else None
        message = redact(error.api_message or "")
        label = f"{status} {error_type}" if error_type else f"HTTP {status}"
        if 200 <= status < 300:  # an `event: error` inside a successful stream
            return Failure(
                f"mid-stream {error_type or 'error'}",
                retryable=error_type in _RETRIED_STREAM_ERRORS,
                status=status,
                error_type=error_type,
                api_message=message,
            )
        headers = error.response.headers
        should_retry = headers.get("x-should-retry")
        if should_retry in ("true", "false"):
            retryable = should_retry == "true"
        else:
            retryable = status in _RETRIED_STATUSES or status >= 500
        return Failure(
            label,
            retryable=retryable,
            status=status,
            error_type=error_type,
            api_message=message,
            retry_after_seconds=retry_after_seconds(headers),
        )
    if isinstance(error, anthropic.APITimeoutError):
        return Failure("request timed out", retryable=True)
    if isinstance(error, anthropic.APIConnectionError):
        return Failure("connection error", retryable=True)
    if isinstance(error, httpx2.TransportError):
        return Failure(f"connection error ({type(error).__name__})", retryable=True)
    return None


async def call_with_retries(
    operation: Callable[[int], Awaitable[T]],
    *,
    policy: RetryPolicy,
    sleep: Sleep = asyncio.sleep,
    clock: Clock = time.monotonic,
    redact: Callable[[str], str] = str,
) -> tuple[T, int]:
    """``operation(attempt)`` until it succeeds; returns its result and the attempts it took."""
    deadline = clock() + policy.deadline_seconds
    last: Failure | None = None
    for attempt in range(1, policy.max_attempts + 1):
        remaining = deadline - clock()
        if remaining <= 0:
            raise _deadline(policy, attempt - 1, last)
        scope = asyncio.timeout(remaining)
        try:
            async with scope:
                return await operation(attempt), attempt
        except TimeoutError:
            if scope.expired():
                raise _deadline(policy, attempt, last, "no answer in time") from None
            raise
        except Exception as error:
            failure = classify(error, redact)
            if failure is None:
                raise
            if not failure.retryable:
                raise failure.as_error() from None
            last = failure
        if attempt == policy.max_attempts:
            break
        wait = policy.delay(attempt, last.retry_after_seconds)
        if clock() + wait >= deadline:
            raise _deadline(policy, attempt, last, f"the next try was {wait:.1f}s away")
        await sleep(wait)
    assert last is not None
    raise JudgeUnavailable(policy.max_attempts, last.description)


def _deadline(
    policy: RetryPolicy, attempts: int, last: Failure | None, why: str | None = None
) -> JudgeDeadline:
    parts = [part for part in (last.description if last else None, why) if part]
    return JudgeDeadline(policy.deadline_seconds, attempts, "; ".join(parts) or None)
