"""The python_/process_ families every prometheus_client process exposes (noise to the agent)."""

from __future__ import annotations

from agent.simulator.plan import ONE, UPTIME, Terms

SECONDS_PER_TEMPLATE_VALUE = 600.0


def is_interpreter_family(name: str) -> bool:
    return name.startswith(("python_", "process_"))


def interpreter_terms(value: float) -> tuple[Terms, bool]:
    """A counter that starts at the template's value and grows with uptime."""
    return ((UPTIME, value / SECONDS_PER_TEMPLATE_VALUE), (ONE, value)), value.is_integer()


def interpreter_gauge(name: str, value: float, process_start: float) -> float:
    if name == "process_start_time_seconds":
        return round(process_start, 2)
    return value
