"""What the judge is asked (JudgeRequest) and what it answers (Judgement)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, Field

VerdictValue = Literal["pass", "fail", "uncertain"]


@dataclass(frozen=True)
class PanelEvidence:
    """One panel as the browser saw it, for grounding: its title, state and query results."""

    title: str
    state: str
    # Compact and stable: series count, last/min/max values, units. No timestamps: the summary
    # is part of the verdict cache key, so anything that changes every run defeats the cache.
    summary: str


@dataclass(frozen=True)
class JudgeRequest:
    """One scenario's question: do these screenshots meet these expectations?"""

    scenario: str
    expectations: Sequence[str]
    # (label, PNG or JPEG bytes): the label is a panel title, or "dashboard" for the whole page.
    images: Sequence[tuple[str, bytes]]
    panels: Sequence[PanelEvidence] = field(default=())
    # Free text for the judge: dashboard title, time range, variables.
    context: str = ""

    def __post_init__(self) -> None:
        if not self.expectations:
            raise ValueError(f"scenario {self.scenario!r}: nothing to judge (no expectations)")
        if any(not text.strip() for text in self.expectations):
            raise ValueError(f"scenario {self.scenario!r}: an expectation is empty")
        if not self.images:
            raise ValueError(f"scenario {self.scenario!r}: no screenshot to judge")


class Verdict(BaseModel):
    expectation: str
    verdict: VerdictValue
    confidence: float = Field(ge=0.0, le=1.0)
    reason: str


class Judgement(BaseModel):
    """The verdicts for one request, in the order of its expectations, and what they cost."""

    verdicts: list[Verdict]
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    # False when the model is not in our price table and was priced at the conservative default.
    price_known: bool
    # Estimated from the prepared images' pixels (w*h/750), summed over the request's images.
    image_tokens: int
    cached: bool
    attempts: int
    duration_seconds: float

    @property
    def passed(self) -> bool:
        return all(v.verdict == "pass" for v in self.verdicts)
