"""``inferwatch-scenarios run``: run scenarios, show progress, write the reports, set the exit code.

Exit status: 0 every blocking scenario passed (advisory failures are reported, not fatal); 1 a
blocking scenario failed or errored (or a file did not load); 2 nothing to run or the run cannot
start (no API key when a scenario has expectations, an unusable report folder); 130 interrupted
(the reports are still written, scenarios not finished marked skipped).

Progress goes to stderr (a live bar with each running scenario's stage and the judge's streamed
text, when stderr is a terminal); one line per finished scenario and the summary go to stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from mcp_server.judge import JudgeError
from mcp_server.reports import ReportError, write_reports
from mcp_server.run_many import Entry, Run, RunResult, Selection, select
from mcp_server.runner import Harness, ProgressEvent, ScenarioResult
from mcp_server.settings import Settings

OK, FAILED, CANNOT_RUN, INTERRUPTED = 0, 1, 2, 130
STREAM_CHARS = 70


class ProgressDisplay:
    """The live view: one bar for the run, one line per running scenario."""

    def __init__(self, console: Console, out: TextIO, total: int) -> None:
        self._out = out
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        )
        self._overall = self._progress.add_task("scenarios", total=total)
        self._running: dict[str, TaskID] = {}
        self._streamed: dict[str, str] = {}

    def __enter__(self) -> ProgressDisplay:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def on_progress(self, event: ProgressEvent) -> None:
        name = event.scenario
        if event.stage == "done":
            return
        if name not in self._running:
            self._running[name] = self._progress.add_task(escape(name), total=None)
        if event.stage == "judge_text":
            text = " ".join((self._streamed.get(name, "") + event.message).split())
            self._streamed[name] = text[-STREAM_CHARS:]
            line = f"Claude: {self._streamed[name]}"
        else:
            line = event.message
        self._progress.update(self._running[name], description=escape(f"{name}: {line}"))

    def on_done(self, result: ScenarioResult) -> None:
        task = self._running.pop(result.name, None)
        if task is not None:
            self._progress.remove_task(task)
        self._streamed.pop(result.name, None)
        self._progress.advance(self._overall)
        print(result_line(result), file=self._out, flush=True)


def result_line(result: ScenarioResult) -> str:
    status = result.status.upper()
    if result.status in ("fail", "error") and not result.blocking:
        status += " (advisory)"
    parts = [f"{status:<17}", result.name, f"[{result.dashboard}]" if result.dashboard else ""]
    parts.append(f"{result.durations.total_seconds:.1f}s")
    if result.judge is not None:
        usage = result.judge
        parts.append(
            "cached verdict"
            if usage.cached
            else f"{usage.input_tokens + usage.output_tokens:,} tokens ${usage.cost_usd:.4f}"
        )
    line = " ".join(part for part in parts if part)
    if result.status != "pass":
        line += "".join(f"\n    - {reason}" for reason in result.reasons)
    return line


def summary_line(run: RunResult) -> str:
    t = run.totals
    text = (
        f"{t.scenarios} scenario(s): {t.passed} passed, {t.failed} failed, {t.errors} errors, "
        f"{t.skipped} skipped in {run.duration_seconds:.1f}s; judge: {t.judge_calls} call(s), "
        f"{t.cached_verdicts} cached, {t.input_tokens + t.output_tokens:,} tokens, "
        f"${t.cost_usd:.4f}"
    )
    if run.budget is not None and run.budget.refused:
        text += f"; {run.budget.refused} call(s) refused by the budget"
    return text


@contextlib.contextmanager
def _cancel_on_sigterm(task: asyncio.Task[RunResult]) -> Iterator[None]:
    """A CI job's timeout sends SIGTERM: stop like Ctrl-C, so the reports still get written."""
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or Windows
        yield
        return
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


async def _execute(run: Run) -> RunResult:
    task = asyncio.current_task()
    assert task is not None
    try:
        with _cancel_on_sigterm(task):
            return await run.execute()
    finally:
        await asyncio.shield(run.harness.aclose())


def run_command(
    settings: Settings,
    paths: Sequence[Path],
    *,
    report_dir: Path | None,
    selection: Selection,
    concurrency: int | None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    items: list[Entry] = select(paths, selection)
    if not items:
        print("no scenarios selected (check the paths, --tag and --name)", file=err)
        return CANNOT_RUN
    need_judge = any(item.scenario is not None and item.scenario.expect for item in items)
    try:  # the judge first: no API key is a clear error before any browser work
        harness = Harness.open(settings, need_judge=need_judge)
    except JudgeError as error:
        print(f"error: {error}", file=err)
        return CANNOT_RUN
    folder = report_dir or settings.harness.report_dir
    console = Console(file=err, stderr=True)
    display = ProgressDisplay(console, out, len(items))
    run = Run(
        harness,
        items,
        concurrency=concurrency or settings.harness.concurrency,
        on_progress=display.on_progress,
        on_done=display.on_done,
    )
    code = OK
    with display:
        try:
            result = asyncio.run(_execute(run))
        except (KeyboardInterrupt, asyncio.CancelledError):
            result = run.result(interrupted=True)
            code = INTERRUPTED
    print(summary_line(result), file=out)
    try:
        files = write_reports(result, folder)
    except (ReportError, OSError) as error:
        print(f"error: the reports could not be written: {error}", file=err)
        return CANNOT_RUN
    print(f"reports: {files.html}, {files.junit}, {files.results}", file=out)
    return code or result.exit_code
