"""MCP tools and prompts for scenario files: ``list_scenarios``, ``validate_scenario``,
``run_scenario`` and ``verify_dashboard`` (ad-hoc expectations), and the ``draft_scenario`` prompt.

Scenario files are read only from the scenarios folder (``INFERWATCH_SCENARIOS_DIR``): a client
cannot make the server read any other file. A run (``run_scenario``, ``verify_dashboard``) is
the runner's pipeline: checks first, Claude only when they pass; each call has its own judge
budget (``INFERWATCH_JUDGE_BUDGET_USD``) and shares the server's browser and the verdict cache.
The judge's streamed text arrives as MCP progress notifications when the client asks for them.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

from mcp_server.grafana.browser import GrafanaBrowser
from mcp_server.grafana.errors import GrafanaError
from mcp_server.judge import Judge, JudgeError
from mcp_server.prometheus import PrometheusClient
from mcp_server.runner import (
    Harness,
    ProgressEvent,
    ScenarioResult,
    check_prometheus,
    make_judge,
    run_scenario,
)
from mcp_server.scenario_drafts import draft_scenario as draft_text
from mcp_server.scenario_loader import ScenarioFile, discover, load_file, load_text
from mcp_server.scenario_model import Scenario
from mcp_server.scenarios import validate_files

if TYPE_CHECKING:
    from mcp_server.context import ServerContext

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
# A run reads dashboards and asks Claude (an outside service that bills per call).
RUNS = ToolAnnotations(read_only_hint=True, open_world_hint=True)
MAX_CONTENT_CHARS = 256 * 1024
INLINE_NAME = "<content>"


class ScenarioProblem(BaseModel):
    line: int
    col: int
    severity: str = Field(description="error or warning")
    message: str


class ScenarioValidation(BaseModel):
    valid: bool = Field(description="true when there is no error (warnings allowed)")
    file: str
    name: str | None = Field(None, description="the scenario's name, when it loaded")
    dashboard: str | None = None
    problems: list[ScenarioProblem]
    notes: list[str] = Field(
        default_factory=list, description="what could not be checked (Grafana unreachable...)"
    )


def scenario_file(root: Path, relative: str) -> Path:
    """``relative`` inside ``root`` (the scenarios folder), or ToolError."""
    if "\x00" in relative:
        raise ToolError("a scenario path cannot contain a NUL byte")
    base = root.resolve()
    try:
        candidate = (base / relative).resolve()
        if not candidate.is_relative_to(base):
            raise ToolError(f"{relative!r} is outside the scenarios folder {root}")
        found = candidate.is_file()
    except OSError as error:  # a name too long, say
        raise ToolError(f"cannot open {relative!r} in {root}: {error.strerror}") from None
    if not found:
        raise ToolError(f"no scenario file {relative!r} in {root}")
    return candidate


async def validate(
    ctx: ServerContext, content: str | None, path: str | None, online: bool
) -> ScenarioValidation:
    if (content is None) == (path is None):
        raise ToolError("give either content (the YAML text) or path (a file), not both")
    loaded: ScenarioFile
    if content is not None:
        if len(content) > MAX_CONTENT_CHARS:
            raise ToolError(
                f"content is {len(content)} characters; the limit is {MAX_CONTENT_CHARS}"
            )
        loaded = load_text(content, Path(INLINE_NAME))
    else:
        assert path is not None
        root = ctx.settings.harness.scenarios_dir
        loaded = load_file(scenario_file(root, path), display=path)
    validation = await validate_files([loaded], ctx.settings if online else None)
    scenario = loaded.scenario
    return ScenarioValidation(
        valid=validation.ok,
        file=loaded.display,
        name=scenario.name if scenario else None,
        dashboard=scenario.dashboard if scenario else None,
        problems=[
            ScenarioProblem(
                line=problem.line,
                col=problem.col,
                severity=problem.severity,
                message=problem.message,
            )
            for problem in validation.problems
        ],
        notes=validation.notes,
    )


class ScenarioInfo(BaseModel):
    name: str
    file: str = Field(description="relative to the scenarios folder")
    dashboard: str
    description: str
    severity: str = Field(description="blocking or advisory")
    tags: list[str]
    panels: list[str] | None = Field(None, description="judged one by one; absent: the dashboard")
    checks: list[str]
    expectations: list[str]


class ScenarioList(BaseModel):
    scenarios: list[ScenarioInfo]
    problems: list[str] = Field(
        default_factory=list, description="files that did not load: file:line:col: message"
    )


def list_files(root: Path, tag: str | None) -> ScenarioList:
    try:
        paths = discover([root])
    except FileNotFoundError as error:
        raise ToolError(f"the scenarios folder {root} does not exist ({error})") from None
    infos, problems = [], []
    base = root.resolve()
    inside = []
    for path in paths:
        if path.resolve().is_relative_to(base):
            inside.append(path)
        else:  # a link: read only what is in the folder
            problems.append(
                f"{path.relative_to(root)}: links outside the scenarios folder; not read"
            )
    for loaded in (load_file(path, display=_relative(path, root)) for path in inside):
        problems += [str(problem) for problem in loaded.errors]
        scenario = loaded.scenario
        if scenario is None or loaded.errors or (tag and tag not in scenario.tags):
            continue
        infos.append(
            ScenarioInfo(
                name=scenario.name,
                file=_relative(loaded.path, root),
                dashboard=scenario.dashboard,
                description=scenario.description,
                severity=scenario.severity,
                tags=list(scenario.tags),
                panels=scenario.panels,
                checks=[check.describe() for check in scenario.checks],
                expectations=scenario.expectations,
            )
        )
    return ScenarioList(scenarios=infos, problems=problems)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return path.name


def find_scenario(root: Path, name: str) -> tuple[Scenario, str]:
    """A scenario of the scenarios folder by its name, or by its file (e.g. gpus.yaml)."""
    if name.endswith((".yaml", ".yml")):
        loaded = load_file(scenario_file(root, name), display=name)
        if loaded.scenario is None or loaded.errors:
            problems = "; ".join(str(problem) for problem in loaded.errors)
            raise ToolError(f"{name} is not a valid scenario: {problems}")
        return loaded.scenario, name
    listing = list_files(root, None)
    for info in listing.scenarios:
        if info.name == name:
            loaded = load_file(scenario_file(root, info.file), display=info.file)
            assert loaded.scenario is not None
            return loaded.scenario, info.file
    known = ", ".join(sorted(info.name for info in listing.scenarios)) or "none"
    raise ToolError(f"no scenario named {name!r} in {root}; scenarios: {known}")


def adhoc_scenario(
    dashboard: str,
    expectations: list[str],
    panel: str | None,
    time_from: str,
    time_to: str,
    variables: dict[str, list[str]] | None,
    checks: bool,
) -> Scenario:
    slug = re.sub(r"[^a-z0-9]+", "-", dashboard.lower()).strip("-") or "dashboard"
    document: dict[str, Any] = {
        "name": f"verify-{slug}"[:100],
        "description": "ad-hoc expectations (verify_dashboard)",
        "dashboard": dashboard,
        "time": {"from": time_from, "to": time_to},
        "variables": variables or {},
        "expect": expectations,
    }
    if panel is not None:
        document["panels"] = [panel]
    if checks:
        document["checks"] = [{"no_panel_errors": {}}, {"no_loading_panels": {}}]
    try:
        return Scenario.model_validate(document)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in e['loc']) or 'input'}: {e['msg']}"
            for e in error.errors(include_url=False)[:5]
        )
        raise ToolError(f"invalid request: {problems}") from None


async def execute(
    ctx: ServerContext, scenario: Scenario, file: str, mcp_context: Context[Any, Any]
) -> ScenarioResult:
    """One scenario through the runner, its progress forwarded to the client."""
    judge: Judge | None = None
    if scenario.expect:
        try:  # before any browser work: no API key is the first thing said
            judge = make_judge(ctx.settings)
        except JudgeError as error:
            raise ToolError(str(error)) from error
    settings = ctx.settings
    browser = await ctx.lazy("browser", lambda: GrafanaBrowser(settings.grafana))
    prometheus: PrometheusClient = await ctx.lazy(
        "check_prometheus", lambda: check_prometheus(settings)
    )
    harness = Harness(
        settings, browser, ctx.grafana, prometheus, judge, owned=[judge] if judge else []
    )
    steps = itertools.count(1)

    async def progress(event: ProgressEvent) -> None:
        text = f"Claude: {event.message}" if event.stage == "judge_text" else event.message
        await mcp_context.report_progress(next(steps), None, f"{event.scenario}: {text}")

    try:
        return await run_scenario(harness, scenario, file=file, on_progress=progress)
    finally:
        await harness.aclose()


DRAFT_INSTRUCTIONS = """\
Below is a draft regression scenario for the Grafana dashboard {title!r} (uid {uid}), made from \
its panels and queries. Help me turn it into a scenario worth running every night:
- keep the deterministic checks that matter; a PromQL check should fail when the panel would \
look wrong;
- make every expectation concrete and checkable from a screenshot (what is drawn, how many \
series, which range of values), and drop the ones that say nothing;
- keep the format: unknown keys are errors, comparisons are quoted (expect: ">= 1");
- check the result with the validate_scenario tool before showing it to me.

```yaml
{draft}```
"""


def register(server: MCPServer[Any], ctx: ServerContext) -> None:
    @server.tool(annotations=READ_ONLY)
    async def validate_scenario(
        content: Annotated[str | None, Field(description="a scenario's YAML text")] = None,
        path: Annotated[
            str | None, Field(description="a file in the scenarios folder, e.g. gpus.yaml")
        ] = None,
        online: Annotated[
            bool, Field(description="also ask Prometheus (PromQL) and Grafana (uid, panels)")
        ] = True,
    ) -> ScenarioValidation:
        """Check a scenario file: every problem with its line and column."""
        return await validate(ctx, content, path, online)

    @server.tool(annotations=READ_ONLY)
    async def list_scenarios(
        tag: Annotated[str | None, Field(description="only scenarios with this tag")] = None,
    ) -> ScenarioList:
        """The scenarios of the scenarios folder: name, dashboard, severity, tags, checks and
        expectations; files that do not load are listed as problems."""
        return list_files(ctx.settings.harness.scenarios_dir, tag)

    @server.tool(annotations=RUNS)
    async def run_scenario(
        mcp_context: Context[Any, Any],
        name: Annotated[
            str, Field(description="a scenario's name, or its file in the scenarios folder")
        ],
    ) -> ScenarioResult:
        """Run one scenario: open its dashboard, run its checks, and when they pass ask Claude
        to judge the screenshots against its expectations. Progress notifications carry each
        stage and Claude's streamed answer. Costs Claude tokens unless the verdict is cached."""
        scenario, file = find_scenario(ctx.settings.harness.scenarios_dir, name)
        return await execute(ctx, scenario, file, mcp_context)

    @server.tool(annotations=RUNS)
    async def verify_dashboard(
        mcp_context: Context[Any, Any],
        dashboard: Annotated[str, Field(description="the Grafana dashboard uid")],
        expectations: Annotated[
            list[str],
            Field(
                min_length=1,
                description="statements Claude judges from the screenshot, e.g. "
                "'The GPU utilization panel draws one line per GPU'",
            ),
        ],
        panel: Annotated[str | None, Field(description="judge only this panel (its title)")] = None,
        time_from: Annotated[str, Field(description="e.g. now-1h, or epoch ms")] = "now-1h",
        time_to: Annotated[str, Field(description="e.g. now")] = "now",
        variables: Annotated[
            dict[str, list[str]] | None,
            Field(description='template variables, e.g. {"gpu": ["all"]}'),
        ] = None,
        checks: Annotated[
            bool, Field(description="first check that no panel errors or stays loading")
        ] = True,
    ) -> ScenarioResult:
        """Judge ad-hoc expectations against a dashboard (or one panel) the way a scenario is
        run: panel checks first, then Claude's verdict per expectation, with progress."""
        scenario = adhoc_scenario(
            dashboard, expectations, panel, time_from, time_to, variables, checks
        )
        return await execute(ctx, scenario, "<verify_dashboard>", mcp_context)

    @server.prompt(title="Draft a dashboard scenario")
    async def draft_scenario(
        dashboard: Annotated[str, Field(description="the Grafana dashboard uid")],
        panels: Annotated[
            str, Field(description="panel titles to judge one by one, comma-separated")
        ] = "",
    ) -> str:
        """Draft a regression scenario for a dashboard from its panels and queries."""
        titles = [title.strip() for title in panels.split(",") if title.strip()] or None
        try:
            spec = await ctx.grafana.dashboard(dashboard)
            draft = draft_text(spec, titles)
        except GrafanaError as error:
            raise MCPError(INVALID_PARAMS, str(error)) from error
        return DRAFT_INSTRUCTIONS.format(title=spec.title, uid=spec.uid, draft=draft)
