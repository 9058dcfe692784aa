"""The command line of a pytest in a subprocess with the scenario plugin loaded: through its
``pytest11`` entry point once the package is installed with it, else with ``-p`` (both at once
would register the module twice, which pytest refuses)."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

PLUGIN = "mcp_server.pytest_plugin"


def plugin_installed() -> bool:
    return any(point.value == PLUGIN for point in entry_points(group="pytest11"))


def pytest_command(*args: str) -> list[str]:
    load = [] if plugin_installed() else ["-p", PLUGIN]
    return [sys.executable, "-m", "pytest", *load, "-p", "no:cacheprovider", *args]
