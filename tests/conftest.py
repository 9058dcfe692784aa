"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.grafana.fixtures import chromium, grafana_standin
from tests.stack import demo_agent_url, demo_prometheus_url

__all__ = ["chromium", "demo_agent_url", "demo_prometheus_url", "grafana_standin"]

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES
