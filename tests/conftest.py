"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.stack import demo_agent_url, demo_prometheus_url

__all__ = ["demo_agent_url", "demo_prometheus_url"]

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES
