"""`promtool check metrics`, the real Prometheus linter, as the tests call it."""

from __future__ import annotations

import shutil
import subprocess

import pytest

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed: run scripts/install-system-deps.sh"
)


def promtool_findings(exposition: str) -> str:
    """Everything promtool says about ``exposition``; empty when it accepts every family."""
    assert PROMTOOL is not None
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"],
        input=exposition,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    findings = (result.stdout + result.stderr).strip()
    return findings or ("" if result.returncode == 0 else f"exit status {result.returncode}")
