"""Estimated cost of a call, from a price table per model (USD per million tokens).

Prices are list prices for the Claude API as published on Anthropic's model and pricing pages
(platform.claude.com/docs "Models overview" and "Pricing", read November 2026). They are
estimates: batch discounts, regional endpoints and contract prices are not modelled. A model that
is not in the table is priced at the most expensive entry, so a budget errs on the safe side,
and the result says the price was not known.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Price:
    input_per_mtok: float
    output_per_mtok: float
    known: bool = True

    def cost(
        self,
        input_tokens: int,
        output_tokens: int,
        *,
        cache_write_tokens: int = 0,
        cache_read_tokens: int = 0,
    ) -> float:
        # Prompt-cache writes bill at 1.25x input, reads at 0.1x (5-minute cache).
        effective_input = input_tokens + 1.25 * cache_write_tokens + 0.1 * cache_read_tokens
        return (
            effective_input * self.input_per_mtok + output_tokens * self.output_per_mtok
        ) / 1_000_000


# Model id (or alias) -> price; a dated snapshot (alias + "-YYYYMMDD") has its alias' price.
PRICES: dict[str, Price] = {
    "claude-fable-5-1": Price(10.0, 50.0),
    "claude-opus-5-5": Price(4.0, 20.0),
    "claude-opus-5": Price(5.0, 25.0),
    "claude-sonnet-5-5": Price(2.0, 10.0),
    "claude-sonnet-5": Price(2.0, 10.0),
    "claude-opus-4-6": Price(5.0, 25.0),
    "claude-opus-4-5": Price(5.0, 25.0),
    "claude-opus-4-1": Price(15.0, 75.0),
    "claude-opus-4-0": Price(15.0, 75.0),
    "claude-opus-4": Price(15.0, 75.0),
    "claude-sonnet-4-6": Price(3.0, 15.0),
    "claude-sonnet-4-5": Price(3.0, 15.0),
    "claude-sonnet-4-0": Price(3.0, 15.0),
    "claude-sonnet-4": Price(3.0, 15.0),
    "claude-haiku-4-5": Price(1.0, 5.0),
    "claude-3-5-haiku": Price(0.8, 4.0),
    "claude-3-haiku": Price(0.25, 1.25),
}

_SNAPSHOT = re.compile(r"^(?P<alias>.+)-\d{8}$")


def _most_expensive() -> Price:
    worst = max(PRICES.values(), key=lambda p: (p.output_per_mtok, p.input_per_mtok))
    return Price(worst.input_per_mtok, worst.output_per_mtok, known=False)


UNKNOWN_MODEL_PRICE = _most_expensive()


def price_of(model: str) -> Price:
    """The model's list price, or the conservative default (``known=False``) when not listed."""
    if model in PRICES:
        return PRICES[model]
    snapshot = _SNAPSHOT.match(model)
    if snapshot and snapshot["alias"] in PRICES:
        return PRICES[snapshot["alias"]]
    return UNKNOWN_MODEL_PRICE


def estimate_text_tokens(text: str) -> int:
    """A generous token count for text (about 3 characters a token; Claude averages ~3.5-4)."""
    return len(text) // 3 + 1
