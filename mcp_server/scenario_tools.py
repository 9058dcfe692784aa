"""MCP tools and prompts for scenario files: ``validate_scenario`` and the ``draft_scenario``
prompt. (``list_scenarios``, ``run_scenario`` and ``verify_dashboard`` join them with the runner.)

Scenario files are read only from the scenarios folder (``INFERWATCH_SCENARIOS_DIR``): a client
cannot make the server read any other file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, ToolAnnotations
from pydantic import BaseModel, Field

from mcp_server.grafana.errors import GrafanaError
from mcp_server.scenario_drafts import draft_scenario as draft_text
from mcp_server.scenario_loader import ScenarioFile, load_file, load_text
from mcp_server.scenarios import validate_files

if TYPE_CHECKING:
    from mcp_server.context import ServerContext

READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)
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
    base = root.resolve()
    candidate = (base / relative).resolve()
    if not candidate.is_relative_to(base):
        raise ToolError(f"{relative!r} is outside the scenarios folder {root}")
    if not candidate.is_file():
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
