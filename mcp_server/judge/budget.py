"""A run's spending limit for the judge: reserve the worst case before a call, charge actuals after.

Shared by every concurrent scenario of a run (asyncio tasks or threads): one lock, no awaits
inside it. A limit of 0 refuses every call.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from mcp_server.judge.errors import BudgetExhausted


@dataclass(frozen=True)
class BudgetSummary:
    limit_usd: float
    spent_usd: float
    calls: int
    refused: int
    input_tokens: int
    output_tokens: int


class Reservation:
    """Money set aside for one call; settle it with what the call cost (or 0 if nothing ran)."""

    def __init__(self, budget: RunBudget, amount_usd: float) -> None:
        self._budget = budget
        self.amount_usd = amount_usd
        self._settled = False

    def settle(self, cost_usd: float, *, input_tokens: int = 0, output_tokens: int = 0) -> None:
        if self._settled:
            raise RuntimeError("a reservation is settled once")
        self._settled = True
        self._budget._settle(self.amount_usd, cost_usd, input_tokens, output_tokens)

    def release(self) -> None:
        """Nothing was billed (the call never got an answer)."""
        if not self._settled:
            self.settle(0.0)


class RunBudget:
    def __init__(self, limit_usd: float) -> None:
        if limit_usd < 0:
            raise ValueError("a budget cannot be negative")
        self.limit_usd = limit_usd
        self._lock = threading.Lock()
        self._spent = 0.0
        self._reserved = 0.0
        self._calls = 0
        self._refused = 0
        self._input_tokens = 0
        self._output_tokens = 0

    @property
    def spent_usd(self) -> float:
        with self._lock:
            return self._spent

    @property
    def reserved_usd(self) -> float:
        with self._lock:
            return self._reserved

    def reserve(self, amount_usd: float) -> Reservation:
        """Set money aside, or raise BudgetExhausted when it would take the run past its limit."""
        with self._lock:
            committed = self._spent + self._reserved
            if self.limit_usd == 0 or committed + amount_usd > self.limit_usd:
                self._refused += 1
                raise BudgetExhausted(
                    spent_usd=committed, limit_usd=self.limit_usd, needed_usd=amount_usd
                )
            self._reserved += amount_usd
        return Reservation(self, amount_usd)

    def summary(self) -> BudgetSummary:
        with self._lock:
            return BudgetSummary(
                limit_usd=self.limit_usd,
                spent_usd=self._spent,
                calls=self._calls,
                refused=self._refused,
                input_tokens=self._input_tokens,
                output_tokens=self._output_tokens,
            )

    def _settle(self, reserved: float, cost: float, input_tokens: int, output_tokens: int) -> None:
        with self._lock:
            self._reserved = max(0.0, self._reserved - reserved)
            # Actuals are charged even above the limit: the money is spent either way, and
            # the next reservation is what gets refused.
            self._spent += cost
            if input_tokens or output_tokens:
                self._calls += 1
            self._input_tokens += input_tokens
            self._output_tokens += output_tokens
