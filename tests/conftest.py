"""Fixtures shared by every test package."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from tests.fakes.grafana.fixtures import chromium, grafana_standin
from tests.stack import demo_agent_url, demo_prometheus_url

__all__ = ["chromium", "demo_agent_url", "demo_prometheus_url", "grafana_standin"]

# Every property test: reproducible in CI (derandomized, no example database), no per-example
# deadline on a shared 2-core machine; tests that run a process per example ask for fewer.
settings.register_profile(
    "inferwatch",
    max_examples=100,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile("inferwatch")

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES
