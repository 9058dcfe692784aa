"""One scenario -> ``ScenarioResult``: the deterministic checks first, then (only when they all
pass) Claude's judgement of the screenshots.

The dashboard is opened once: the same page load gives every panel's state (for the panel checks)
and the screenshots (the whole dashboard, or one crop per listed panel), while the PromQL checks
ask Prometheus at the same time. A failed check ends the scenario there: it is reported with its
screenshots, and Claude is not asked. Otherwise each panel's query results are summarized as
evidence and the judge gives one verdict per expectation.

Status: ``pass`` (every check and every expectation passed), ``fail`` (a check failed, or an
expectation was judged fail or uncertain), ``error`` (the scenario could not be carried out:
Grafana or Prometheus unreachable, a missing dashboard, no verdict from the judge, the judge's
budget spent) and ``skipped`` (not finished: the run was interrupted).

``Harness`` is what the scenarios of one run share: one browser, one judge (so one budget and
one verdict cache), one Prometheus client, one Grafana API client. The judge is made first, so
a missing API key is reported before any browser work.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from playwright.async_api import Error as PlaywrightError
from pydantic import BaseModel, Field, PrivateAttr

from mcp_server.agent_client import UpstreamError
from mcp_server.evidence import EvidenceCollector
from mcp_server.grafana.api import GrafanaAPI, parse_dashboard
from mcp_server.grafana.browser import Capture, GrafanaBrowser, View
from mcp_server.grafana.errors import DashboardNotReady, GrafanaError
from mcp_server.grafana.models import DashboardCheck, DashboardSpec, PanelState
from mcp_server.judge import (
    Judge,
    JudgeError,
    Judgement,
    JudgeRequest,
    RunBudget,
    Verdict,
    VerdictCache,
)
from mcp_server.prometheus import PrometheusClient, PrometheusQueryError, QueryRefused
from mcp_server.scenario_model import (
    NoEmptyPanelsCheck,
    NoLoadingPanelsCheck,
    NoPanelErrorsCheck,
    PromQLCheck,
    Scenario,
)
from mcp_server.settings import Settings

Status = Literal["pass", "fail", "error", "skipped"]
CheckStatus = Literal["pass", "fail", "not_run"]

# A check's `for_every_series` must see every series, not the tool's display limit.
MAX_CHECK_SERIES = 10_000
WITHIN_POLL_SECONDS = 2.0
PANEL_CHECKS = (NoPanelErrorsCheck, NoEmptyPanelsCheck, NoLoadingPanelsCheck)


class Closable(Protocol):
    async def aclose(self) -> None: ...


# --- results ------------------------------------------------------------------------------------


class CheckOutcome(BaseModel):
    kind: str = Field(description="no_panel_errors, no_empty_panels, no_loading_panels, promql")
    check: str = Field(description="the check as written, in one line")
    status: CheckStatus
    detail: str


class Screenshot(BaseModel):
    label: str = Field(description='"dashboard", or the panel title')
    width: int
    height: int
    file: str | None = Field(None, description="the PNG, relative to the report folder")
    _png: bytes = PrivateAttr(default=b"")

    @classmethod
    def of(cls, capture: Capture) -> Screenshot:
        shot = cls(label=capture.panel or "dashboard", width=capture.width, height=capture.height)
        shot._png = capture.png
        return shot

    @property
    def png(self) -> bytes:
        return self._png


class JudgeUsage(BaseModel):
    model: str
    cached: bool = Field(description="the verdicts came from the verdict cache: no call")
    input_tokens: int
    output_tokens: int
    image_tokens: int
    cost_usd: float = Field(description="estimated from list prices")
    price_known: bool
    attempts: int


class Durations(BaseModel):
    total_seconds: float = 0.0
    browser_seconds: float = 0.0
    promql_seconds: float = 0.0
    evidence_seconds: float = 0.0
    judge_seconds: float = 0.0


class ScenarioResult(BaseModel):
    name: str
    file: str
    dashboard: str
    dashboard_title: str = ""
    description: str = ""
    severity: Literal["blocking", "advisory"] = "blocking"
    tags: list[str] = Field(default_factory=list)
    status: Status = "error"
    reasons: list[str] = Field(default_factory=list, description="why it did not pass")
    checks: list[CheckOutcome] = Field(default_factory=list)
    panels: list[PanelState] = Field(default_factory=list, description="as the browser saw them")
    expectations: list[str] = Field(default_factory=list)
    verdicts: list[Verdict] = Field(default_factory=list)
    judge: JudgeUsage | None = Field(None, description="absent when Claude was not asked")
    judge_note: str | None = Field(None, description="why Claude was not asked")
    screenshots: list[Screenshot] = Field(default_factory=list)
    url: str | None = Field(None, description="the dashboard URL the browser opened")
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    durations: Durations = Field(default_factory=Durations)

    @property
    def blocking(self) -> bool:
        return self.severity == "blocking"

    @property
    def breaks_run(self) -> bool:
        """A blocking scenario that failed or errored: the run exits 1."""
        return self.blocking and self.status in ("fail", "error")

    @property
    def cost_usd(self) -> float:
        return self.judge.cost_usd if self.judge else 0.0

    @classmethod
    def for_scenario(cls, scenario: Scenario, file: str) -> ScenarioResult:
        return cls(
            name=scenario.name,
            file=file,
            dashboard=scenario.dashboard,
            description=scenario.description,
            severity=scenario.severity,
            tags=list(scenario.tags),
            expectations=scenario.expectations,
        )


# --- progress -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProgressEvent:
    scenario: str
    stage: Literal["browser", "checks", "evidence", "judge", "judge_text", "done"]
    message: str


OnProgress = Callable[[ProgressEvent], Awaitable[None] | None]


async def _emit(on_progress: OnProgress | None, event: ProgressEvent) -> None:
    if on_progress is None:
        return
    returned = on_progress(event)
    if inspect.isawaitable(returned):
        await returned


# --- what a run shares --------------------------------------------------------------------------


def make_judge(settings: Settings, budget: RunBudget | None = None) -> Judge:
    """The judge for one run, with its budget and the verdict cache; MissingAPIKey without a key."""
    return Judge(
        settings.judge,
        budget or RunBudget(settings.judge.run_budget_usd),
        cache=VerdictCache.from_settings(settings.judge),
    )


def check_prometheus(settings: Settings) -> PrometheusClient:
    """A Prometheus client for checks: every series comes back (up to MAX_CHECK_SERIES)."""
    upstream = settings.upstream.model_copy(update={"max_series": MAX_CHECK_SERIES})
    return PrometheusClient(upstream)


@dataclass
class Harness:
    settings: Settings
    browser: GrafanaBrowser
    grafana: GrafanaAPI
    prometheus: PrometheusClient
    judge: Judge | None = None
    # Why there is no judge (a missing API key), for the scenarios that need one.
    judge_error: JudgeError | None = None
    owned: list[Closable] = field(default_factory=list)

    @classmethod
    def open(cls, settings: Settings, *, need_judge: bool, strict: bool = True) -> Harness:
        """Everything a run needs; nothing starts until used. The judge is made first: without
        an API key this raises MissingAPIKey (``strict``) before any browser exists, or keeps
        the error for the scenarios that need a judge."""
        judge: Judge | None = None
        judge_error: JudgeError | None = None
        if need_judge:
            try:
                judge = make_judge(settings)
            except JudgeError as error:
                if strict:
                    raise
                judge_error = error
        browser = GrafanaBrowser(settings.grafana)
        grafana = GrafanaAPI(settings.grafana)
        prometheus = check_prometheus(settings)
        owned: list[Closable] = [browser, grafana, prometheus]
        if judge is not None:
            owned.append(judge)
        return cls(settings, browser, grafana, prometheus, judge, judge_error, owned)

    async def aclose(self) -> None:
        for resource in reversed(self.owned):
            await resource.aclose()
        self.owned.clear()


# --- one scenario -------------------------------------------------------------------------------


@dataclass
class _Captured:
    captures: list[Capture] = field(default_factory=list)
    not_ready: DashboardNotReady | None = None
    error: str | None = None


async def run_scenario(
    harness: Harness,
    scenario: Scenario,
    *,
    file: str = "",
    on_progress: OnProgress | None = None,
) -> ScenarioResult:
    """Run one scenario; never raises for what goes wrong in it (that is its status)."""
    result = ScenarioResult.for_scenario(scenario, file)
    started = time.monotonic()
    try:
        await _run(harness, scenario, result, on_progress)
    except (GrafanaError, UpstreamError, PlaywrightError) as error:
        _error(result, _first_line(error))
    finally:
        result.durations.total_seconds = round(time.monotonic() - started, 3)
    await _emit(on_progress, ProgressEvent(scenario.name, "done", result.status))
    return result


async def _run(
    harness: Harness, scenario: Scenario, result: ScenarioResult, on_progress: OnProgress | None
) -> None:
    name = scenario.name
    if scenario.expect and harness.judge is None:
        why = str(harness.judge_error) if harness.judge_error else "no judge in this run"
        _error(result, f"the judge is needed for this scenario's expectations: {why}")
        return
    panel_checks = [check for check in scenario.checks if isinstance(check, PANEL_CHECKS)]
    promql_checks = [check for check in scenario.checks if isinstance(check, PromQLCheck)]
    needs_browser = bool(panel_checks or scenario.expect)

    model: dict[str, Any] = {}
    spec: DashboardSpec | None = None
    view: View | None = None
    if needs_browser:
        await _emit(on_progress, ProgressEvent(name, "browser", f"opening {scenario.dashboard}"))
        model = (await harness.grafana.raw_dashboard(scenario.dashboard))["dashboard"]
        spec = parse_dashboard(model, scenario.dashboard)
        result.dashboard_title = spec.title
        view = view_of(scenario, spec)

    async def capture() -> _Captured:
        if view is None:
            return _Captured()
        began = time.monotonic()
        try:
            return await _capture(harness.browser, scenario, view)
        finally:
            result.durations.browser_seconds = round(time.monotonic() - began, 3)

    async def promql() -> list[CheckOutcome] | str:
        began = time.monotonic()
        try:
            return list(await asyncio.gather(*(_promql(harness, c) for c in promql_checks)))
        except UpstreamError as error:  # Prometheus unreachable: the checks could not run
            return _first_line(error)
        finally:
            result.durations.promql_seconds = round(time.monotonic() - began, 3)

    captured, promql_outcomes = await asyncio.gather(capture(), promql())
    result.screenshots = [Screenshot.of(item) for item in captured.captures]
    check = captured.captures[0].check if captured.captures else None
    if check is not None:
        result.panels = list(check.panels)
        result.url = check.url

    await _emit(on_progress, ProgressEvent(name, "checks", "checking"))
    outcomes = panel_outcomes(scenario, panel_checks, check, captured.not_ready)
    errors: list[str] = []
    if captured.error:
        errors.append(captured.error)
    if captured.not_ready is not None and not any(
        isinstance(c, NoLoadingPanelsCheck) for c in panel_checks
    ):
        errors.append(_first_line(captured.not_ready))
    if isinstance(promql_outcomes, str):
        errors.append(promql_outcomes)
        outcomes += [_outcome(c, "not_run", "Prometheus unreachable") for c in promql_checks]
    else:
        outcomes += promql_outcomes
    result.checks = outcomes

    failed = [outcome for outcome in outcomes if outcome.status == "fail"]
    if failed:
        result.status = "fail"
        result.reasons = [f"{outcome.check}: {outcome.detail}" for outcome in failed] + errors
        if scenario.expect:
            result.judge_note = f"Claude was not asked: {len(failed)} check(s) failed"
        return
    if errors:
        for error in errors:
            _error(result, error)
        if scenario.expect:
            result.judge_note = "Claude was not asked: the checks could not be completed"
        return
    if not scenario.expect:
        result.status = "pass"
        result.judge_note = "no expectations: checks only"
        return

    assert spec is not None and view is not None and harness.judge is not None
    began = time.monotonic()
    await _emit(on_progress, ProgressEvent(name, "evidence", "reading panel data"))
    collector = EvidenceCollector(
        harness.prometheus,
        model,
        spec,
        variables=scenario.grafana_variables(),
        time_from=view.time_from,
        time_to=view.time_to,
    )
    evidence = await collector.collect(scenario.panels, result.panels)
    result.durations.evidence_seconds = round(time.monotonic() - began, 3)

    request = JudgeRequest(
        scenario=name,
        expectations=scenario.expectations,
        images=[(shot.label, shot.png) for shot in result.screenshots],
        panels=evidence,
        context=judge_context(scenario, spec, view),
    )

    async def on_text(text: str) -> None:
        await _emit(on_progress, ProgressEvent(name, "judge_text", text))

    await _emit(on_progress, ProgressEvent(name, "judge", "asking Claude"))
    began = time.monotonic()
    try:
        judgement = await harness.judge.judge(request, on_text=on_text)
    except JudgeError as error:
        _error(result, str(error))
        return
    finally:
        result.durations.judge_seconds = round(time.monotonic() - began, 3)
    _apply_judgement(result, judgement)


def view_of(scenario: Scenario, spec: DashboardSpec) -> View:
    """How the browser opens the scenario's dashboard (its own time range when none is set)."""
    return View(
        time_from=scenario.time.from_ if scenario.time else spec.time_from,
        time_to=scenario.time.to if scenario.time else spec.time_to,
        variables=scenario.grafana_variables(),
        width=scenario.viewport.width,
        height=scenario.viewport.height,
    )


def judge_context(scenario: Scenario, spec: DashboardSpec, view: View) -> str:
    """What the judge is told of the view; stable from run to run (part of the cache key)."""
    parts = [
        f"dashboard: {spec.title} (uid {spec.uid})",
        f"time range: {view.time_from} to {view.time_to}",
    ]
    if scenario.variables:
        shown = "; ".join(
            f"{key}={','.join(values)}" for key, values in sorted(scenario.variables.items())
        )
        parts.append(f"variables: {shown}")
    parts.append(
        f"screenshots: the panels {', '.join(scenario.panels)}"
        if scenario.panels
        else "screenshot: the whole dashboard"
    )
    return "; ".join(parts)


async def _capture(browser: GrafanaBrowser, scenario: Scenario, view: View) -> _Captured:
    try:
        if scenario.panels:
            captures = await browser.screenshot_panels(scenario.dashboard, scenario.panels, view)
        else:
            captures = [await browser.screenshot_dashboard(scenario.dashboard, view)]
    except DashboardNotReady as not_ready:
        return _Captured(not_ready=not_ready)
    except (GrafanaError, PlaywrightError) as error:
        return _Captured(error=_first_line(error))
    return _Captured(captures=captures)


# --- the checks ---------------------------------------------------------------------------------


def panel_outcomes(
    scenario: Scenario,
    checks: Sequence[Any],
    dashboard: DashboardCheck | None,
    not_ready: DashboardNotReady | None,
) -> list[CheckOutcome]:
    """The panel-state checks against what the browser saw (only the listed panels, when the
    scenario lists some)."""
    listed = set(scenario.panels) if scenario.panels else None
    panels = [p for p in (dashboard.panels if dashboard else []) if _listed(p.title, listed)]
    outcomes = []
    for check in checks:
        if not_ready is not None:
            loading = [title for title in not_ready.loading if _listed(title, listed)]
            if isinstance(check, NoLoadingPanelsCheck) and (loading or not not_ready.loading):
                names = ", ".join(repr(t) for t in loading) or "requests still in flight"
                outcomes.append(_outcome(check, "fail", f"still loading: {names}"))
            else:
                outcomes.append(_outcome(check, "not_run", "the dashboard never became ready"))
            continue
        if isinstance(check, NoPanelErrorsCheck):
            bad = [p for p in panels if p.state == "error"]
            detail = "; ".join(f"{p.title!r}: {p.message or 'error'}" for p in bad)
        elif isinstance(check, NoEmptyPanelsCheck):
            allowed = set(check.allowed_empty)
            bad = [p for p in panels if p.state == "no_data" and p.title not in allowed]
            detail = ", ".join(repr(p.title) for p in bad) + " show no data"
        else:
            bad = [p for p in panels if p.state == "loading"]
            detail = ", ".join(repr(p.title) for p in bad) + " still loading"
        if bad:
            outcomes.append(_outcome(check, "fail", detail))
        else:
            outcomes.append(_outcome(check, "pass", f"{len(panels)} panel(s) checked"))
    return outcomes


def _listed(title: str, listed: set[str] | None) -> bool:
    return listed is None or title in listed


async def _promql(harness: Harness, check: PromQLCheck) -> CheckOutcome:
    """The query until it holds (``within``), or once; Prometheus unreachable raises."""
    deadline = time.monotonic() + check.within_seconds
    tries = 0
    while True:
        tries += 1
        try:
            answer = await harness.prometheus.query(check.promql)
        except (PrometheusQueryError, QueryRefused) as error:
            return _outcome(check, "fail", _first_line(error))
        samples = []
        for series in answer.series:
            try:
                samples.append((series.labels, float(series.points[-1][1])))
            except (IndexError, ValueError):
                return _outcome(check, "fail", f"{check.promql} did not return numbers")
        holds, detail = check.assess(samples)
        out_of_time = time.monotonic() + WITHIN_POLL_SECONDS > deadline
        if holds or out_of_time:
            if check.within is not None:
                detail += f" (after {tries} tries, within {check.within})"
            return _outcome(check, "pass" if holds else "fail", detail)
        await asyncio.sleep(WITHIN_POLL_SECONDS)


def _outcome(check: Any, status: CheckStatus, detail: str) -> CheckOutcome:
    return CheckOutcome(kind=check.kind, check=check.describe(), status=status, detail=detail)


# --- verdicts -----------------------------------------------------------------------------------


def _apply_judgement(result: ScenarioResult, judgement: Judgement) -> None:
    result.verdicts = list(judgement.verdicts)
    result.judge = JudgeUsage(
        model=judgement.model,
        cached=judgement.cached,
        input_tokens=judgement.input_tokens,
        output_tokens=judgement.output_tokens,
        image_tokens=judgement.image_tokens,
        cost_usd=judgement.cost_usd,
        price_known=judgement.price_known,
        attempts=judgement.attempts,
    )
    not_passed = [
        (index, verdict)
        for index, verdict in enumerate(judgement.verdicts, start=1)
        if verdict.verdict != "pass"
    ]
    if not not_passed:
        result.status = "pass"
        return
    result.status = "fail"
    result.reasons = [
        f"expectation {index} judged {verdict.verdict} ({verdict.confidence:.2f}): "
        f"{verdict.expectation} -> {verdict.reason}"
        for index, verdict in not_passed
    ]


def _error(result: ScenarioResult, reason: str) -> None:
    if result.status != "fail":
        result.status = "error"
    result.reasons.append(reason)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
