"""A precomputed exposition: static text plus sample lines whose values are cheap to compute.

Building a plan does the slow work once (label escaping, sorting, HELP/TYPE lines); rendering
it only evaluates numbers. Cumulative values are linear combinations of a few workload totals
with non-negative coefficients, which keeps them monotonic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from agent.simulator.textformat import family_header, format_value, label_block

StateT = TypeVar("StateT")
Labels = tuple[tuple[str, str], ...]
Terms = tuple[tuple[int, float], ...]

# Every plan's totals start with these two; workload totals follow.
UPTIME, ONE = 0, 1
CREATED_AFTER_START_SECONDS = 30.0


@dataclass(frozen=True)
class LinearSample:
    """`prefix` followed by sum(totals[i] * coefficient); `whole` floors it (counts)."""

    prefix: str
    terms: Terms
    whole: bool


@dataclass(frozen=True)
class GaugeSample(Generic[StateT]):
    """`prefix` followed by a value computed from the current state."""

    prefix: str
    value: Callable[[StateT], float]


PlanPart = str | LinearSample | GaugeSample[StateT]


@dataclass(frozen=True)
class Plan(Generic[StateT]):
    parts: tuple[PlanPart[StateT], ...]

    def render(self, totals: Sequence[float], state: StateT) -> str:
        out: list[str] = []
        append = out.append
        for part in self.parts:
            if isinstance(part, str):
                append(part)
            elif isinstance(part, LinearSample):
                value = 0.0
                for index, coefficient in part.terms:
                    value += totals[index] * coefficient
                if part.whole:
                    value = float(math.floor(value))
                append(f"{part.prefix}{format_value(value)}\n")
            else:
                append(f"{part.prefix}{format_value(part.value(state))}\n")
        return "".join(out)


def created_block(name: str, help_text: str, label_sets: list[Labels], first: float) -> str:
    """The `<name>_created` gauge prometheus_client appends after a counter or histogram."""
    lines = [family_header(name, "gauge", help_text)]
    for index, labels in enumerate(label_sets):
        created = first + index * 1.3e-5
        lines.append(f"{name}{label_block(labels)} {format_value(created)}\n")
    return "".join(lines)
