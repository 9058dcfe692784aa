"""pytest plugin: scenario files as pytest items (``pytest scenarios/ --junitxml=out.xml``).

Registered through the ``pytest11`` entry point, so it is loaded by every pytest run: it imports
nothing heavy until a scenario is collected, and collects only scenario files, never other YAML:

- a ``*.yaml`` / ``*.yml`` file in a folder whose ``schema.json`` is the inferwatch scenario
  schema (``scenarios/`` has it; ``inferwatch-scenarios schema > DIR/schema.json`` adds it), or
- a YAML file named on the command line (``pytest my-scenario.yaml``).

Each scenario is one item, named after the scenario (``-k gpus``), marked with its tags
(``-m smoke``; the markers are registered as they are found, so ``--strict-markers`` passes).
The scenario runs in the item's setup, through the same runner as ``inferwatch-scenarios run``,
and is reported the pytest way:

- passed: every check and every expectation passed;
- FAILED: a check failed or Claude judged an expectation fail or uncertain (the report lists the
  checks and verdicts with their reasons);
- ERROR: the scenario could not be carried out (Grafana or Prometheus unreachable, no verdict
  from the judge, the judge's budget spent, no API key);
- xfailed: an advisory scenario that failed or errored (reported, never fails the session).

A pytest process (each pytest-xdist worker) shares one browser and one judge among its items;
the judge's budget (``INFERWATCH_JUDGE_BUDGET_USD``) is per process, the verdict cache is shared.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from mcp_server.runner import Harness, ScenarioResult
    from mcp_server.scenario_loader import Problem
    from mcp_server.scenario_model import Scenario

SCHEMA_FILE = "schema.json"
SCHEMA_TITLE = "inferwatch scenario"
SUFFIXES = (".yaml", ".yml")
# The runner has its own deadlines; this only bounds a scenario the loop never finishes.
SLACK_SECONDS = 120.0

_folders_key = pytest.StashKey[dict[Path, bool]]()
_markers_key = pytest.StashKey[set[str]]()
_runtime_key = pytest.StashKey["_Runtime"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("inferwatch", "inferwatch dashboard scenarios")
    group.addoption(
        "--inferwatch-config",
        metavar="FILE",
        default=None,
        help="a .env-style file of settings for scenario runs (like inferwatch-scenarios --config)",
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in SUFFIXES:
        return None
    if parent.session.isinitpath(file_path) or _scenario_folder(parent.config, file_path.parent):
        collector: ScenarioYAML = ScenarioYAML.from_parent(parent, path=file_path)
        return collector
    return None


def _scenario_folder(config: pytest.Config, folder: Path) -> bool:
    """Whether ``folder`` holds the inferwatch scenario schema (read once per folder)."""
    known = config.stash.setdefault(_folders_key, {})
    if folder not in known:
        schema = folder / SCHEMA_FILE
        try:
            title = json.loads(schema.read_text(encoding="utf-8")).get("title")
        except (OSError, ValueError, AttributeError):
            title = None
        known[folder] = title == SCHEMA_TITLE
    return known[folder]


class ScenarioFileInvalid(Exception):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(map(str, problems)))
        self.problems = problems


class ScenarioYAML(pytest.File):
    """One scenario file: one item, or a collection error naming every problem."""

    def collect(self) -> Iterator[pytest.Item]:
        from mcp_server.scenario_loader import load_file

        loaded = load_file(self.path, display=_shown(self.config, self.path))
        if loaded.scenario is None or loaded.errors:
            raise ScenarioFileInvalid(loaded.errors)
        scenario = loaded.scenario
        item = ScenarioItem.from_parent(
            self, name=scenario.name, scenario=scenario, display=loaded.display
        )
        registered = self.config.stash.setdefault(_markers_key, set())
        for tag in scenario.tags:
            if tag not in registered:
                self.config.addinivalue_line("markers", f"{tag}: inferwatch scenario tag")
                registered.add(tag)
            item.add_marker(tag)
        yield item

    def repr_failure(  # type: ignore[override]  # as pytest.Collector declares it
        self, excinfo: pytest.ExceptionInfo[BaseException]
    ) -> str | Any:
        if isinstance(excinfo.value, ScenarioFileInvalid):
            return f"not a valid scenario file:\n{excinfo.value}"
        return super().repr_failure(excinfo)


def _shown(config: pytest.Config, path: Path) -> str:
    try:
        return str(path.relative_to(config.invocation_params.dir))
    except ValueError:
        return str(path)


class ScenarioNotPassed(Exception):
    def __init__(self, result: ScenarioResult) -> None:
        super().__init__(result.reasons[0] if result.reasons else result.status)
        self.result = result


class ScenarioFailed(ScenarioNotPassed):
    """A check failed, or an expectation was not judged pass."""


class ScenarioError(ScenarioNotPassed):
    """The scenario could not be carried out."""


class ScenarioItem(pytest.Item):
    def __init__(self, *, scenario: Scenario, display: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scenario = scenario
        self.display = display
        self.result: ScenarioResult | None = None

    def setup(self) -> None:
        self.result = _runtime(self.session).run(self.scenario, self.display)
        if self.result.status == "error":
            self._not_passed(ScenarioError(self.result))

    def runtest(self) -> None:
        result = self.result
        assert result is not None
        if result.status == "fail":
            self._not_passed(ScenarioFailed(result))
        elif result.status == "skipped":
            pytest.skip(result.reasons[0] if result.reasons else "skipped")

    def _not_passed(self, error: ScenarioNotPassed) -> None:
        if not self.scenario.blocking:
            pytest.xfail(f"advisory scenario {error.result.status}: {error}")
        raise error

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None
    ) -> str | Any:
        if isinstance(excinfo.value, ScenarioNotPassed):
            from mcp_server.reports import details

            result = excinfo.value.result
            return f"{result.status}: {excinfo.value}\n{details(result)}"
        return super().repr_failure(excinfo, style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"scenario {self.name} ({self.scenario.dashboard})"


# --- one runner per pytest process --------------------------------------------------------------


class _Runtime:
    """An event loop in a thread holding the harness: pytest's own loops (pytest-asyncio) are
    left alone, and one browser and one judge serve every item of the process."""

    def __init__(self, config_file: str | None, need_judge: bool) -> None:
        from mcp_server.runner import Harness
        from mcp_server.settings import Settings

        self.settings = Settings(env_file=Path(config_file) if config_file else None)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="inferwatch-scenarios", daemon=True
        )
        self._thread.start()

        async def open_harness() -> Harness:
            # strict=False: without an API key only the scenarios with expectations error out,
            # each saying so before any browser work.
            return Harness.open(self.settings, need_judge=need_judge, strict=False)

        self.harness = self._call(open_harness(), 30.0)

    def _call(self, coroutine: Any, timeout: float) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def run(self, scenario: Scenario, file: str) -> ScenarioResult:
        from mcp_server.runner import run_scenario

        settings = self.settings
        timeout = (
            settings.judge.scenario_deadline_seconds
            + 3 * settings.grafana.ready_timeout_seconds
            + SLACK_SECONDS
        )
        result: ScenarioResult = self._call(
            run_scenario(self.harness, scenario, file=file), timeout
        )
        return result

    def close(self) -> None:
        try:
            self._call(self.harness.aclose(), 30.0)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            if not self._thread.is_alive():
                self._loop.close()


def _runtime(session: pytest.Session) -> _Runtime:
    config = session.config
    runtime = config.stash.get(_runtime_key, None)
    if runtime is None:
        need_judge = any(
            isinstance(item, ScenarioItem) and bool(item.scenario.expect) for item in session.items
        )
        runtime = _Runtime(config.getoption("inferwatch_config"), need_judge)
        config.stash[_runtime_key] = runtime
        config.add_cleanup(runtime.close)
    return runtime
