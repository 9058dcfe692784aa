"""A run over many scenarios: selection by path, tag and name; bounded concurrency over one
shared ``Harness`` (one browser, one judge and its budget); the run's totals.

A scenario file that does not load is part of the run as an error (named by its file), so a
nightly run never passes over a broken file in silence. Scenarios not finished when the run is
interrupted are reported as skipped.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from mcp_server.runner import Harness, OnProgress, ScenarioResult, run_scenario
from mcp_server.scenario_loader import ScenarioFile, load_paths
from mcp_server.scenario_model import Scenario

RESULTS_SCHEMA_VERSION = 1

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Selection:
    """Which scenarios: any of ``tags`` (none = all), names matching any of ``names`` (shell
    patterns such as ``gpus-*``; none = all)."""

    tags: Sequence[str] = ()
    names: Sequence[str] = ()

    def matches(self, scenario: Scenario) -> bool:
        tagged = not self.tags or bool(set(self.tags) & set(scenario.tags))
        named = not self.names or any(fnmatch.fnmatchcase(scenario.name, p) for p in self.names)
        return tagged and named


@dataclass(frozen=True)
class Entry:
    """One item of a run: a loaded scenario, or a file that did not load (its problems)."""

    file: str
    scenario: Scenario | None
    problems: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.scenario.name if self.scenario else Path(self.file).stem


def entries(files: Iterable[ScenarioFile], selection: Selection) -> list[Entry]:
    chosen = []
    for loaded in files:
        if loaded.scenario is None or loaded.errors:
            chosen.append(Entry(loaded.display, None, tuple(map(str, loaded.errors))))
        elif selection.matches(loaded.scenario):
            chosen.append(Entry(loaded.display, loaded.scenario))
    return chosen


def select(paths: Iterable[Path], selection: Selection) -> list[Entry]:
    return entries(load_paths(paths), selection)


class BudgetReport(BaseModel):
    limit_usd: float
    spent_usd: float
    calls: int
    refused: int


class RunTotals(BaseModel):
    scenarios: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    blocking_failures: int = Field(0, description="blocking scenarios that failed or errored")
    judge_calls: int = Field(0, description="calls that reached Claude")
    cached_verdicts: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    image_tokens: int = 0
    cost_usd: float = 0.0


class RunResult(BaseModel):
    schema_version: int = RESULTS_SCHEMA_VERSION
    started_at: datetime
    finished_at: datetime
    duration_seconds: float
    interrupted: bool = False
    concurrency: int
    model: str | None = Field(None, description="the judge's model; absent without a judge")
    budget: BudgetReport | None = None
    totals: RunTotals
    scenarios: list[ScenarioResult]

    @property
    def exit_code(self) -> int:
        """1 when a blocking scenario failed or errored (advisory ones never fail the run)."""
        return 1 if any(result.breaks_run for result in self.scenarios) else 0


def totals_of(results: Sequence[ScenarioResult]) -> RunTotals:
    totals = RunTotals(scenarios=len(results))
    for result in results:
        match result.status:
            case "pass":
                totals.passed += 1
            case "fail":
                totals.failed += 1
            case "error":
                totals.errors += 1
            case "skipped":
                totals.skipped += 1
        totals.blocking_failures += result.breaks_run
        if result.judge is not None:
            if result.judge.cached:
                totals.cached_verdicts += 1
            else:
                totals.judge_calls += 1
            totals.input_tokens += result.judge.input_tokens
            totals.output_tokens += result.judge.output_tokens
            totals.image_tokens += result.judge.image_tokens
            totals.cost_usd += result.judge.cost_usd
    totals.cost_usd = round(totals.cost_usd, 6)
    return totals


def broken_result(entry: Entry) -> ScenarioResult:
    return ScenarioResult(
        name=entry.name,
        file=entry.file,
        dashboard="",
        status="error",
        reasons=list(entry.problems) or [f"{entry.file}: not a valid scenario"],
    )


def skipped_result(entry: Entry, why: str) -> ScenarioResult:
    if entry.scenario is None:
        return broken_result(entry)
    result = ScenarioResult.for_scenario(entry.scenario, entry.file)
    result.status = "skipped"
    result.reasons = [why]
    return result


OnDone = Callable[[ScenarioResult], Any]


class Run:
    """``await Run(harness, entries, concurrency=2).execute()``; after an interruption,
    ``result(interrupted=True)`` reports what finished and marks the rest skipped."""

    def __init__(
        self,
        harness: Harness,
        items: Sequence[Entry],
        *,
        concurrency: int,
        on_progress: OnProgress | None = None,
        on_done: OnDone | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.harness = harness
        self.items = list(items)
        self.concurrency = concurrency
        self._on_progress = on_progress
        self._on_done = on_done
        self._results: dict[int, ScenarioResult] = {}
        self._started = datetime.now(UTC)

    async def execute(self) -> RunResult:
        self._started = datetime.now(UTC)
        gate = asyncio.Semaphore(self.concurrency)

        async def one(index: int, entry: Entry) -> None:
            if entry.scenario is None:
                result = broken_result(entry)
            else:
                async with gate:
                    try:
                        result = await run_scenario(
                            self.harness,
                            entry.scenario,
                            file=entry.file,
                            on_progress=self._on_progress,
                        )
                    except Exception as error:  # a bug: one scenario's error, not the run's end
                        log.exception("scenario %s", entry.name)
                        result = ScenarioResult.for_scenario(entry.scenario, entry.file)
                        result.reasons = [f"internal error: {type(error).__name__}: {error}"]
            self._results[index] = result
            if self._on_done is not None:
                self._on_done(result)

        await asyncio.gather(*(one(index, entry) for index, entry in enumerate(self.items)))
        return self.result()

    def result(self, *, interrupted: bool = False) -> RunResult:
        results = [
            self._results.get(index)
            or skipped_result(entry, "not finished: the run was interrupted")
            for index, entry in enumerate(self.items)
        ]
        finished = datetime.now(UTC)
        judge = self.harness.judge
        budget = None
        if judge is not None:
            summary = judge.budget.summary()
            budget = BudgetReport(
                limit_usd=summary.limit_usd,
                spent_usd=round(summary.spent_usd, 6),
                calls=summary.calls,
                refused=summary.refused,
            )
        return RunResult(
            started_at=self._started,
            finished_at=finished,
            duration_seconds=round((finished - self._started).total_seconds(), 3),
            interrupted=interrupted,
            concurrency=self.concurrency,
            model=judge.model if judge is not None else None,
            budget=budget,
            totals=totals_of(results),
            scenarios=results,
        )
