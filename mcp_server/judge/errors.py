"""Errors of the judge, each saying what happened and what to do; none ever holds the API key."""

from __future__ import annotations


class JudgeError(Exception):
    """The judge could not give a verdict: an error of the judge, never a pass or a fail."""


class MissingAPIKey(JudgeError):
    def __init__(self) -> None:
        super().__init__(
            "ANTHROPIC_API_KEY is not set: the judge needs an Anthropic API key "
            "(or ANTHROPIC_BASE_URL pointing at a compatible server, with any key)"
        )


class BudgetExhausted(JudgeError):
    def __init__(self, *, spent_usd: float, limit_usd: float, needed_usd: float) -> None:
        if limit_usd == 0:
            detail = "the run budget is 0 USD, so no call to Claude is allowed"
        else:
            detail = (
                f"spent ${spent_usd:.4f} (reserved included) of ${limit_usd:.2f}; "
                f"this call may cost up to ${needed_usd:.4f}"
            )
        super().__init__(
            f"judge budget exhausted: {detail} (raise INFERWATCH_JUDGE_BUDGET_USD to allow more)"
        )
        self.spent_usd = spent_usd
        self.limit_usd = limit_usd
        self.needed_usd = needed_usd


class JudgeDeadline(JudgeError):
    def __init__(self, deadline_seconds: float, attempts: int, last_error: str | None) -> None:
        after = f"; last error: {last_error}" if last_error else ""
        super().__init__(
            f"the judge gave no verdict within {deadline_seconds:g}s "
            f"({attempts} attempt(s){after}; INFERWATCH_JUDGE_DEADLINE_SECONDS)"
        )
        self.deadline_seconds = deadline_seconds
        self.attempts = attempts


class JudgeUnavailable(JudgeError):
    """Every attempt failed with an error worth retrying (429, 529, 5xx, connection)."""

    def __init__(self, attempts: int, last_error: str) -> None:
        super().__init__(
            f"Claude was unavailable after {attempts} attempt(s): {last_error} "
            "(INFERWATCH_JUDGE_MAX_ATTEMPTS)"
        )
        self.attempts = attempts


class JudgeRejected(JudgeError):
    """Claude answered, but not with one valid verdict per expectation."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the judge's reply was rejected: {reason}")
        self.reason = reason


class JudgeAPIError(JudgeError):
    """The API refused the request itself (a 4xx other than 408/409/429): retrying cannot help."""

    def __init__(self, status: int, error_type: str | None, message: str) -> None:
        if status == 401:
            hint = "the API key was not accepted: check ANTHROPIC_API_KEY"
        elif status == 403:
            hint = "the API key may not use this model or feature: check ANTHROPIC_API_KEY"
        elif status == 404:
            hint = "unknown model or endpoint: check INFERWATCH_JUDGE_MODEL and ANTHROPIC_BASE_URL"
        else:
            hint = message or "the request was refused"
        kind = f" {error_type}" if error_type else ""
        super().__init__(f"Anthropic API answered {status}{kind}: {hint}")
        self.status = status
        self.error_type = error_type
