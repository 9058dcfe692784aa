"""``inferwatch-scenarios``: validate, list, draft and (with the runner) run scenario files.

Exit status: 0 clean, 1 problems found (or the dashboard could not be read), 2 usage errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from mcp_server.grafana.api import GrafanaAPI, parse_dashboard
from mcp_server.grafana.errors import GrafanaError
from mcp_server.grafana.models import DashboardSpec
from mcp_server.scenario_drafts import draft_scenario
from mcp_server.scenario_loader import ScenarioFile, discover, load_paths
from mcp_server.scenario_model import SLUG_PATTERN
from mcp_server.scenarios import Validation, schema_text, validate_files
from mcp_server.settings import Settings

OK, PROBLEMS, USAGE = 0, 1, 2

Handler = Callable[[argparse.Namespace], int]
Subparsers = Any  # argparse._SubParsersAction[argparse.ArgumentParser] (private in typeshed)


class UsageError(Exception):
    """A command line that cannot be acted on: exit 2 with the message."""


def _settings(args: argparse.Namespace) -> Settings:
    config: Path | None = args.config
    if config is not None and not config.is_file():
        raise UsageError(f"--config {config}: no such file")
    return Settings(env_file=config)


def _paths(args: argparse.Namespace) -> list[Path]:
    paths: list[Path] = args.paths or [_settings(args).harness.scenarios_dir]
    try:
        discover(paths)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    return paths


# --- validate -----------------------------------------------------------------------------------


def _add_validate(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "validate",
        help="check scenario files; print file:line:col: message per problem",
        description="Check scenario files (default: the scenarios folder). PromQL is checked "
        "by Prometheus and dashboards/panels by Grafana when they answer (PROMETHEUS_URL, "
        "GRAFANA_URL); otherwise a note says what was skipped.",
    )
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="files or folders")
    parser.add_argument("--offline", action="store_true", help="do not ask Prometheus or Grafana")
    parser.add_argument(
        "--require-grafana",
        action="store_true",
        help="an unreachable Grafana is an error, not a note",
    )
    parser.set_defaults(handler=_validate)


def _validate(args: argparse.Namespace) -> int:
    if args.offline and args.require_grafana:
        raise UsageError("--offline and --require-grafana contradict each other")
    paths = _paths(args)
    settings = None if args.offline else _settings(args)
    files = load_paths(paths)
    validation = asyncio.run(validate_files(files, settings, require_grafana=args.require_grafana))
    return _report(validation, sys.stdout, sys.stderr)


def _report(validation: Validation, out: TextIO, err: TextIO) -> int:
    for problem in validation.problems:
        print(problem, file=out)
    for note in validation.notes:
        print(f"note: {note}", file=err)
    errors = len(validation.errors)
    files = len(validation.files)
    if not files:
        print("no scenario files found", file=err)
    elif errors:
        print(f"{errors} problem(s) in {files} file(s)", file=err)
    else:
        print(f"{files} scenario file(s) OK", file=err)
    return PROBLEMS if errors else OK


# --- list ---------------------------------------------------------------------------------------


def _add_list(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "list", help="list scenarios: name, dashboard, severity, tags, file"
    )
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="files or folders")
    parser.add_argument("--tag", action="append", default=[], help="only scenarios with tag T")
    parser.add_argument("--json", action="store_true", help="one JSON object per scenario")
    parser.set_defaults(handler=_list)


def _list(args: argparse.Namespace) -> int:
    files = load_paths(_paths(args))
    broken = [problem for loaded in files for problem in loaded.errors]
    for problem in broken:
        print(problem, file=sys.stderr)
    rows = [_row(loaded) for loaded in files if loaded.scenario is not None]
    wanted = set(args.tag)
    rows = [row for row in rows if not wanted or wanted & set(row["tags"])]
    if args.json:
        for row in rows:
            print(json.dumps(row))
    else:
        _print_table(rows)
    return PROBLEMS if broken else OK


def _row(loaded: ScenarioFile) -> dict[str, Any]:
    scenario = loaded.scenario
    assert scenario is not None
    return {
        "name": scenario.name,
        "dashboard": scenario.dashboard,
        "severity": scenario.severity,
        "tags": list(scenario.tags),
        "file": loaded.display,
    }


def _print_table(rows: list[dict[str, Any]]) -> None:
    header = {"name": "NAME", "dashboard": "DASHBOARD", "severity": "SEVERITY", "tags": "TAGS"}
    cells = [header] + [{**row, "tags": ",".join(row["tags"]) or "-"} for row in rows]
    widths = {key: max(len(str(cell[key])) for cell in cells) for key in header}
    for index, cell in enumerate(cells):
        file = "FILE" if index == 0 else cell["file"]
        line = "  ".join(str(cell[key]).ljust(widths[key]) for key in header)
        print(f"{line}  {file}")


# --- schema -------------------------------------------------------------------------------------


def _add_schema(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "schema", help="print the JSON Schema of scenario files (scenarios/schema.json)"
    )
    parser.set_defaults(handler=_schema)


def _schema(args: argparse.Namespace) -> int:
    sys.stdout.write(schema_text())
    return OK


# --- new ----------------------------------------------------------------------------------------


def _add_new(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "new",
        help="draft a scenario from a dashboard's panels and queries",
        description="Draft a scenario (YAML with suggestions in comments) from a live "
        "dashboard in Grafana, or offline from its JSON file with --from-file.",
    )
    parser.add_argument("--dashboard", metavar="UID", help="the Grafana dashboard uid")
    parser.add_argument(
        "--from-file",
        type=Path,
        metavar="JSON",
        help="read the dashboard from its JSON file (e.g. grafana/dashboards/gpus.json)",
    )
    parser.add_argument(
        "--panels", nargs="+", metavar="TITLE", help="only these panels (judged one by one)"
    )
    parser.add_argument("--name", help="the scenario name (default: <uid>-draft)")
    parser.add_argument("--output", "-o", type=Path, metavar="FILE", help="default: stdout")
    parser.add_argument("--force", action="store_true", help="overwrite --output")
    parser.set_defaults(handler=_new)


def _new(args: argparse.Namespace) -> int:
    if args.dashboard is None and args.from_file is None:
        raise UsageError("give --dashboard UID (live Grafana) or --from-file JSON")
    if args.output is not None and args.output.exists() and not args.force:
        raise UsageError(f"{args.output} exists; use --force to overwrite it")
    if args.name is not None and not _valid_name(args.name):
        raise UsageError(f"--name {args.name!r}: use lowercase letters, digits, '-' or '_'")
    try:
        spec = _spec_from_file(args) if args.from_file else asyncio.run(_spec_live(args))
        text = draft_scenario(spec, args.panels, name=args.name)
    except GrafanaError as error:
        print(f"error: {error}", file=sys.stderr)
        return PROBLEMS
    if args.output is None:
        sys.stdout.write(text)
        return OK
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(
        f"wrote {args.output}; edit it, then: inferwatch-scenarios validate {args.output}",
        file=sys.stderr,
    )
    return OK


def _valid_name(name: str) -> bool:
    return re.match(SLUG_PATTERN, name) is not None


def _spec_from_file(args: argparse.Namespace) -> DashboardSpec:
    path: Path = args.from_file
    try:
        model = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise UsageError(f"--from-file {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise UsageError(f"--from-file {path}: not JSON ({error})") from None
    if not isinstance(model, dict):
        raise UsageError(f"--from-file {path}: not a dashboard (a JSON object)")
    model = model.get("dashboard", model)  # the API's {"dashboard": ...} wrapper, or the model
    spec = parse_dashboard(model)
    if not spec.uid:
        raise UsageError(f"--from-file {path}: the dashboard has no uid")
    if args.dashboard is not None and args.dashboard != spec.uid:
        raise UsageError(f"--dashboard {args.dashboard} but {path} holds {spec.uid}")
    return spec


async def _spec_live(args: argparse.Namespace) -> DashboardSpec:
    api = GrafanaAPI(_settings(args).grafana)
    try:
        return await api.dashboard(args.dashboard)
    finally:
        await api.aclose()


# --- run ----------------------------------------------------------------------------------------


def _add_run(subparsers: Subparsers) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run scenarios: checks, then Claude's verdicts; write the reports",
        description="Run scenarios (default: the scenarios folder): open each dashboard, run "
        "the deterministic checks, ask Claude to judge the screenshots when they pass, and "
        "write report.html, junit.xml and results.json to the report folder. Exit 1 when a "
        "blocking scenario fails or errors; advisory ones are reported only.",
    )
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="files or folders")
    parser.add_argument(
        "--report-dir",
        type=Path,
        metavar="DIR",
        help="where the reports go (default: INFERWATCH_REPORT_DIR, else ./reports)",
    )
    parser.add_argument(
        "--tag", action="append", default=[], metavar="T", help="only scenarios tagged T"
    )
    parser.add_argument(
        "--name",
        action="append",
        default=[],
        metavar="N",
        help="only scenarios named N (shell patterns: 'gpus-*'); repeatable",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        metavar="K",
        help="scenarios at once (default: INFERWATCH_CONCURRENCY)",
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from mcp_server.run_cli import run_command  # the browser and the judge: only when running
    from mcp_server.run_many import Selection

    if args.concurrency is not None and args.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    paths = _paths(args)
    return run_command(
        _settings(args),
        paths,
        report_dir=args.report_dir,
        selection=Selection(tags=args.tag, names=args.name),
        concurrency=args.concurrency,
    )


# --- the command line ---------------------------------------------------------------------------

# Each function adds one subcommand.
SUBCOMMANDS: list[Callable[[Subparsers], None]] = [
    _add_validate,
    _add_list,
    _add_schema,
    _add_new,
    _add_run,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inferwatch-scenarios",
        description="Dashboard regression scenarios (scenarios/*.yaml): validate, list, draft, "
        "run.",
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="a .env-style file of settings")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for register in SUBCOMMANDS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else USAGE
    handler: Handler = args.handler
    try:
        return handler(args)
    except UsageError as error:
        print(f"{parser.prog} {args.command}: error: {error}", file=sys.stderr)
        return USAGE


if __name__ == "__main__":
    sys.exit(main())
