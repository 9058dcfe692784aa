"""The run budget: reservations before calls, actual charges after, shared across threads."""

from __future__ import annotations

import threading

import pytest

from mcp_server.judge import BudgetExhausted, RunBudget


def test_reservations_hold_money_until_settled_with_actuals() -> None:
    budget = RunBudget(1.0)
    first = budget.reserve(0.6)
    with pytest.raises(BudgetExhausted, match=r"\$0\.6000 \(reserved included\) of \$1\.00"):
        budget.reserve(0.5)

    first.settle(0.2, input_tokens=1000, output_tokens=50)
    budget.reserve(0.5).release()

    summary = budget.summary()
    assert summary.spent_usd == pytest.approx(0.2)
    assert (summary.calls, summary.refused, summary.input_tokens) == (1, 1, 1000)
    assert budget.reserved_usd == 0


def test_zero_refuses_everything() -> None:
    budget = RunBudget(0.0)
    with pytest.raises(BudgetExhausted, match="budget is 0 USD"):
        budget.reserve(0.000001)


def test_a_reservation_settles_once() -> None:
    reservation = RunBudget(1.0).reserve(0.1)
    reservation.settle(0.05)
    with pytest.raises(RuntimeError):
        reservation.settle(0.05)
    reservation.release()  # harmless after settling


def test_concurrent_reservations_never_pass_the_limit() -> None:
    budget = RunBudget(1.0)
    granted: list[bool] = []
    start = threading.Barrier(40)

    def reserve() -> None:
        start.wait(timeout=10)
        try:
            budget.reserve(0.1)
        except BudgetExhausted:
            granted.append(False)
        else:
            granted.append(True)

    threads = [threading.Thread(target=reserve) for _ in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert granted.count(True) == 10
    assert budget.reserved_usd == pytest.approx(1.0)
