"""The CI-sized soak: a minute of random upstream faults, a real Prometheus scraping every 5 s.

The same code as ``make soak`` (bench/soak.py), for 60 s (about 65 s with the start-up): not
one scrape may fail, and the agent logs no traceback. Recovery times are in the report it
prints (``pytest -s``); bench/SOAK.md has the 10-minute figures.
"""

from __future__ import annotations

import pytest

from bench.soak import run_soak
from tests.stack import binary_or_skip

pytestmark = [pytest.mark.integration, pytest.mark.timeout(150)]


def test_a_minute_of_random_faults_fails_no_scrape() -> None:
    binary_or_skip("prometheus")
    result = run_soak(60, seed=1)
    print(result.markdown())
    assert result.scrapes.scrapes >= 8, result.markdown()
    assert result.scrapes.failed == 0, result.markdown()
    assert result.recorder.tracebacks == 0, result.markdown()
