"""``grafana_standin``: one stand-in per test session, serving the project's dashboards
(grafana/dashboards) and the stand-in's own test dashboards, filled from the demo Prometheus.

Re-export them from a conftest.py: ``from tests.fakes.grafana.fixtures import chromium,
grafana_standin``.
Tests that turn knobs use the stand-in's context managers, which put everything back.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mcp_server.settings import GrafanaSettings
from tests.fakes.grafana.server import REPO, TEST_DASHBOARDS, GrafanaStandIn
from tests.stack import binary_or_skip, query_until

STANDIN_TOKEN = "glsa-FAKE-standin-viewer"  # test-only credentials of the stand-in
STANDIN_USER = "viewer"
STANDIN_PASSWORD = "standin-password"


@pytest.fixture(scope="session")
def grafana_standin(demo_prometheus_url: str) -> Iterator[GrafanaStandIn]:
    # Panels should show data from the first test on: wait for the first scrapes.
    query_until(demo_prometheus_url, "DCGM_FI_DEV_GPU_UTIL")
    standin = GrafanaStandIn(
        REPO / "grafana" / "dashboards",
        demo_prometheus_url,
        token=STANDIN_TOKEN,
        user=STANDIN_USER,
        password=STANDIN_PASSWORD,
        anonymous=True,
        extra_dirs=(TEST_DASHBOARDS,),
    )
    with standin:
        yield standin


@pytest.fixture(scope="session")
def chromium() -> str:
    """The Chromium the driver will use (CHROMIUM_PATH, else its default); skips the test when
    it is not installed (scripts/install-system-deps.sh installs Debian's)."""
    path = GrafanaSettings().chromium_path
    return path if path == "" else binary_or_skip(path)
