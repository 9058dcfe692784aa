"""Estimated cost per call from the price table."""

from __future__ import annotations

import pytest

from mcp_server.judge.pricing import PRICES, UNKNOWN_MODEL_PRICE, estimate_text_tokens, price_of


def test_listed_models_and_their_dated_snapshots_have_list_prices() -> None:
    assert price_of("claude-sonnet-4-6").input_per_mtok == 3.0
    assert price_of("claude-sonnet-4-5-20250929") == PRICES["claude-sonnet-4-5"]
    assert price_of("claude-opus-4-20250514") == PRICES["claude-opus-4"]
    assert price_of("claude-opus-5-5").output_per_mtok == 20.0
    assert all(price.known for price in PRICES.values())


def test_an_unknown_model_gets_the_most_expensive_price_flagged() -> None:
    for model in ("claude-nova-9", "claude-sonnet-5-7", "claude-opus-5-5-preview"):
        price = price_of(model)
        assert not price.known
        assert price == UNKNOWN_MODEL_PRICE
    assert UNKNOWN_MODEL_PRICE.output_per_mtok == max(p.output_per_mtok for p in PRICES.values())


def test_cost_counts_input_output_and_prompt_cache_tokens() -> None:
    price = PRICES["claude-sonnet-4-6"]
    assert price.cost(1_000_000, 0) == pytest.approx(3.0)
    assert price.cost(2000, 500) == pytest.approx(0.006 + 0.0075)
    assert price.cost(0, 0, cache_write_tokens=1_000_000) == pytest.approx(3.75)
    assert price.cost(0, 0, cache_read_tokens=1_000_000) == pytest.approx(0.3)


def test_text_token_estimates_err_high() -> None:
    text = "Each GPU shows a utilization line between 0 and 100 percent. " * 20
    assert estimate_text_tokens(text) >= len(text) / 3.5
