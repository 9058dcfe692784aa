"""A run's reports, written into one folder: ``report.html``, ``junit.xml``, ``results.json``
and the full-size screenshots under ``screenshots/``.

- ``report.html`` is self-contained (no script, no remote resource; a Content-Security-Policy
  says so): per scenario its status, reasons, checks, panel states, verdicts with reasons,
  tokens, cost, duration, whether the verdict was cached, and its screenshots (embedded as
  captured, each also linked to its PNG file).
- ``junit.xml`` follows the JUnit XML that pytest writes (xunit2): one ``testsuite`` per run,
  one ``testcase`` per scenario, ``failure`` for a failed blocking scenario, ``error`` for one
  that could not be carried out, ``skipped`` for advisory failures (as pytest reports xfail)
  and for scenarios not run.
- ``results.json`` is ``RunResult`` as JSON (``schema_version`` says which shape).

Only files this module names are written, and only inside the report folder: names come from
the scenario's slug and its position, never from a path in a scenario, and files are replaced
atomically without following a link planted where they go.
"""

from __future__ import annotations

import base64
import contextlib
import html
import os
import re
import socket
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mcp_server.run_many import RunResult
from mcp_server.runner import ScenarioResult

REPORT_HTML = "report.html"
JUNIT_XML = "junit.xml"
RESULTS_JSON = "results.json"
SCREENSHOTS = "screenshots"
SUITE_NAME = "inferwatch-scenarios"

_UNSAFE_NAME = re.compile(r"[^a-z0-9_-]+")
# Characters XML 1.0 cannot hold (a judge's reason could carry one).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


class ReportError(Exception):
    """The report folder cannot be written safely."""


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    junit: Path
    results: Path
    screenshots: tuple[Path, ...]

    @property
    def all(self) -> tuple[Path, ...]:
        return (self.html, self.junit, self.results, *self.screenshots)


def write_reports(run: RunResult, report_dir: Path) -> ReportFiles:
    """Write every report of ``run`` into ``report_dir`` (created if missing)."""
    root = _folder(report_dir)
    shots_dir = _folder(root / SCREENSHOTS, inside=root)
    written = _write_screenshots(run, root, shots_dir)
    results = _write(root, RESULTS_JSON, run.model_dump_json(indent=2).encode("utf-8"))
    junit = _write(root, JUNIT_XML, junit_xml(run))
    page = _write(root, REPORT_HTML, html_report(run).encode("utf-8"))
    return ReportFiles(page, junit, results, tuple(written))


# --- files --------------------------------------------------------------------------------------


def _folder(path: Path, *, inside: Path | None = None) -> Path:
    if inside is not None and path.is_symlink():
        raise ReportError(f"{path} is a symbolic link: refusing to write through it")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ReportError(f"cannot create the report folder {path}: {error.strerror}") from None
    if not path.is_dir():
        raise ReportError(f"{path} is not a folder")
    resolved = path.resolve()
    if inside is not None and resolved.parent != inside:
        raise ReportError(f"{path} is not inside the report folder {inside}")
    return resolved


def _write(folder: Path, name: str, data: bytes) -> Path:
    """``folder/name`` replaced atomically; a link at that name is replaced, not followed."""
    if "/" in name or name in ("", ".", ".."):
        raise ReportError(f"not a file name: {name!r}")
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".report-", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        Path(temporary).chmod(0o644)
        target = folder / name
        Path(temporary).replace(target)
    except BaseException:
        with contextlib.suppress(OSError):
            Path(temporary).unlink()
        raise
    return target


def safe_name(name: str) -> str:
    return _UNSAFE_NAME.sub("-", name.lower()).strip("-")[:60] or "scenario"


def _write_screenshots(run: RunResult, root: Path, folder: Path) -> list[Path]:
    written: list[Path] = []
    for position, result in enumerate(run.scenarios, start=1):
        for number, shot in enumerate(result.screenshots, start=1):
            if not shot.png:
                continue
            name = f"{position:03d}-{safe_name(result.name)}-{number}.png"
            written.append(_write(folder, name, shot.png))
            shot.file = f"{SCREENSHOTS}/{name}"
    keep = {path.name for path in written}
    for stale in folder.glob("*.png"):  # from an earlier run into the same folder
        if stale.name not in keep and not stale.is_dir():
            with contextlib.suppress(OSError):
                stale.unlink()
    return written


# --- JUnit XML ----------------------------------------------------------------------------------


def _xml_text(text: str) -> str:
    return _NOT_XML.sub("?", text)


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _classname(file: str) -> str:
    parts = [part for part in Path(file).with_suffix("").parts if part not in ("", ".", "..", "/")]
    return ".".join(parts) or "scenarios"


def details(result: ScenarioResult) -> str:
    """The scenario's outcome as plain text: reasons, checks, verdicts (JUnit, pytest)."""
    lines = [f"scenario {result.name} ({result.severity}) on dashboard {result.dashboard}"]
    if result.reasons:
        lines.append("reasons:")
        lines += [f"  - {reason}" for reason in result.reasons]
    if result.checks:
        lines.append("checks:")
        lines += [f"  [{c.status}] {c.check}: {c.detail}" for c in result.checks]
    if result.verdicts:
        lines.append("verdicts:")
        lines += [
            f"  [{v.verdict} {v.confidence:.2f}] {v.expectation}\n      {v.reason}"
            for v in result.verdicts
        ]
    if result.judge is not None:
        usage = result.judge
        cached = " (cached)" if usage.cached else ""
        lines.append(
            f"judge: {usage.model}{cached}, {usage.input_tokens} in / {usage.output_tokens} out "
            f"tokens, ${usage.cost_usd:.4f}"
        )
    elif result.judge_note:
        lines.append(f"judge: {result.judge_note}")
    return "\n".join(lines)


def junit_xml(run: RunResult) -> bytes:
    failures = sum(r.blocking and r.status == "fail" for r in run.scenarios)
    errors = sum(r.blocking and r.status == "error" for r in run.scenarios)
    skipped = len(run.scenarios) - failures - errors - run.totals.passed
    counts = {
        "tests": str(len(run.scenarios)),
        "failures": str(failures),
        "errors": str(errors),
    }
    suites = ET.Element(
        "testsuites", {"name": SUITE_NAME, **counts, "time": _seconds(run.duration_seconds)}
    )
    suite = ET.SubElement(
        suites,
        "testsuite",
        {
            "name": SUITE_NAME,
            **counts,
            "skipped": str(skipped),
            "time": _seconds(run.duration_seconds),
            "timestamp": run.started_at.isoformat(),
            "hostname": socket.gethostname(),
        },
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in _run_properties(run):
        ET.SubElement(properties, "property", {"name": name, "value": _xml_text(value)})
    for result in run.scenarios:
        suite.append(_testcase(result))
    ET.indent(suites)
    body: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return body + b"\n"


def _run_properties(run: RunResult) -> Iterable[tuple[str, str]]:
    yield "concurrency", str(run.concurrency)
    if run.model:
        yield "judge_model", run.model
    yield "judge_calls", str(run.totals.judge_calls)
    yield "cached_verdicts", str(run.totals.cached_verdicts)
    yield "input_tokens", str(run.totals.input_tokens)
    yield "output_tokens", str(run.totals.output_tokens)
    yield "cost_usd", f"{run.totals.cost_usd:.6f}"
    if run.budget is not None:
        yield "budget_usd", f"{run.budget.limit_usd:g}"
    if run.interrupted:
        yield "interrupted", "true"


def _testcase(result: ScenarioResult) -> ET.Element:
    case = ET.Element(
        "testcase",
        {
            "classname": _xml_text(_classname(result.file)),
            "name": _xml_text(result.name),
            "time": _seconds(result.durations.total_seconds),
        },
    )
    first = _xml_text(result.reasons[0] if result.reasons else result.status)
    text = _xml_text(details(result))
    if result.status in ("fail", "error") and not result.blocking:
        element = ET.SubElement(
            case, "skipped", {"type": "advisory", "message": f"advisory {result.status}: {first}"}
        )
        element.text = text
    elif result.status == "fail":
        element = ET.SubElement(case, "failure", {"type": "ScenarioFailed", "message": first})
        element.text = text
    elif result.status == "error":
        element = ET.SubElement(case, "error", {"type": "ScenarioError", "message": first})
        element.text = text
    elif result.status == "skipped":
        ET.SubElement(case, "skipped", {"type": "skipped", "message": first})
    out = ET.SubElement(case, "system-out")
    out.text = _xml_text(_system_out(result))
    return case


def _system_out(result: ScenarioResult) -> str:
    lines = [f"dashboard: {result.dashboard_title or result.dashboard} ({result.dashboard})"]
    if result.url:
        lines.append(f"url: {result.url}")
    lines += [f"screenshot: {shot.file}" for shot in result.screenshots if shot.file]
    if result.status == "pass":
        lines.append(details(result))
    return "\n".join(lines)


# --- HTML ---------------------------------------------------------------------------------------

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px;
  color: #1f2328; background: #fff; }
h1 { font-size: 22px; } h2 { font-size: 17px; margin: 0; display: inline; }
table { border-collapse: collapse; margin: 8px 0 12px; }
th, td { border: 1px solid #d0d7de; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
details.scenario { border: 1px solid #d0d7de; border-radius: 6px; margin: 12px 0;
  padding: 8px 12px; }
summary { cursor: pointer; }
.badge { display: inline-block; min-width: 56px; text-align: center; border-radius: 4px;
  padding: 1px 6px; margin-right: 8px; color: #fff; font-weight: 600; font-size: 12px; }
.pass { background: #1a7f37; } .fail { background: #cf222e; } .error { background: #9a6700; }
.skipped, .not_run, .uncertain { background: #6e7781; }
.meta { color: #57606a; font-size: 13px; margin-left: 8px; }
.advisory { border: 1px solid #6e7781; color: #57606a; border-radius: 4px; padding: 0 4px;
  font-size: 12px; }
.reasons li { margin: 2px 0; }
figure { margin: 8px 0 16px; } figure img { max-width: 100%; border: 1px solid #d0d7de; }
figcaption { color: #57606a; font-size: 12px; }
"""

_CSP = "default-src 'none'; img-src data: 'self'; style-src 'unsafe-inline'"


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _badge(status: str) -> str:
    return f'<span class="badge {_e(status)}">{_e(status.upper())}</span>'


def html_report(run: RunResult) -> str:
    totals = run.totals
    budget = (
        f"${run.budget.spent_usd:.4f} of ${run.budget.limit_usd:g}"
        f" ({run.budget.refused} call(s) refused)"
        if run.budget
        else "no judge in this run"
    )
    rows = [
        ("Started", run.started_at.strftime("%Y-%m-%d %H:%M:%S UTC")),
        ("Duration", f"{run.duration_seconds:.1f} s (concurrency {run.concurrency})"),
        (
            "Scenarios",
            f"{totals.scenarios}: {totals.passed} passed, {totals.failed} failed, "
            f"{totals.errors} errors, {totals.skipped} skipped",
        ),
        ("Blocking failures", str(totals.blocking_failures)),
        ("Judge", run.model or "-"),
        ("Judge calls", f"{totals.judge_calls} ({totals.cached_verdicts} cached verdicts)"),
        ("Tokens", f"{totals.input_tokens:,} in / {totals.output_tokens:,} out"),
        ("Estimated cost", f"${totals.cost_usd:.4f}"),
        ("Budget", budget),
    ]
    if run.interrupted:
        rows.append(("Interrupted", "yes: scenarios not finished are marked skipped"))
    summary = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    overview = "".join(
        f"<tr><td>{_badge(r.status)}</td><td><a href='#s{i}'>{_e(r.name)}</a></td>"
        f"<td>{_e(r.dashboard)}</td><td>{_e(r.severity)}</td>"
        f"<td>{r.durations.total_seconds:.1f} s</td><td>{_e(_cost_text(r))}</td></tr>"
        for i, r in enumerate(run.scenarios, start=1)
    )
    sections = "\n".join(
        _scenario_html(result, index) for index, result in enumerate(run.scenarios, start=1)
    )
    status = "passed" if run.exit_code == 0 else "failed"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>inferwatch scenarios: {status}</title>
<style>{_CSS}</style></head>
<body>
<h1>inferwatch dashboard scenarios: {status}</h1>
<table>{summary}</table>
<table><tr><th>Status</th><th>Scenario</th><th>Dashboard</th><th>Severity</th><th>Duration</th>
<th>Judge</th></tr>{overview}</table>
{sections}
</body></html>
"""


def _cost_text(result: ScenarioResult) -> str:
    usage = result.judge
    if usage is None:
        return result.judge_note or "not asked"
    if usage.cached:
        return "cached"
    return f"{usage.input_tokens + usage.output_tokens:,} tokens, ${usage.cost_usd:.4f}"


def _scenario_html(result: ScenarioResult, index: int) -> str:
    opened = " open" if result.status != "pass" else ""
    advisory = ' <span class="advisory">advisory</span>' if not result.blocking else ""
    meta = [result.dashboard_title or result.dashboard, result.file]
    meta.append(f"{result.durations.total_seconds:.1f} s")
    meta.append(_cost_text(result))
    parts = [
        f'<details class="scenario" id="s{index}"{opened}><summary>{_badge(result.status)}'
        f"<h2>{_e(result.name)}</h2>{advisory}"
        f'<span class="meta">{_e(" · ".join(m for m in meta if m))}</span></summary>'
    ]
    if result.description:
        parts.append(f"<p>{_e(result.description)}</p>")
    if result.url:
        parts.append(f"<p class='meta'>Opened {_e(result.url)}</p>")
    if result.reasons:
        items = "".join(f"<li>{_e(reason)}</li>" for reason in result.reasons)
        parts.append(f'<h3>Why it did not pass</h3><ul class="reasons">{items}</ul>')
    if result.checks:
        rows = "".join(
            f"<tr><td>{_badge(c.status)}</td><td><code>{_e(c.check)}</code></td>"
            f"<td>{_e(c.detail)}</td></tr>"
            for c in result.checks
        )
        parts.append(
            "<h3>Checks</h3><table><tr><th>Result</th><th>Check</th><th>Detail</th></tr>"
            f"{rows}</table>"
        )
    if result.panels:
        rows = "".join(
            f"<tr><td>{_e(p.title)}</td><td>{_e(p.state)}</td><td>{_e(p.message or '')}</td></tr>"
            for p in result.panels
        )
        parts.append(
            "<h3>Panels</h3><table><tr><th>Panel</th><th>State</th><th>Message</th></tr>"
            f"{rows}</table>"
        )
    parts.append(_verdicts_html(result))
    parts += [
        _figure(shot.label, shot.png, shot.file, shot.width, shot.height)
        for shot in result.screenshots
    ]
    parts.append("</details>")
    return "\n".join(part for part in parts if part)


def _verdicts_html(result: ScenarioResult) -> str:
    usage = result.judge
    if usage is None:
        if not result.expectations:
            return ""
        items = "".join(f"<li>{_e(text)}</li>" for text in result.expectations)
        note = _e(result.judge_note or "Claude was not asked")
        return f"<h3>Expectations (not judged)</h3><p>{note}</p><ul>{items}</ul>"
    rows = "".join(
        f"<tr><td>{_badge(v.verdict)}</td><td>{v.confidence:.2f}</td><td>{_e(v.expectation)}</td>"
        f"<td>{_e(v.reason)}</td></tr>"
        for v in result.verdicts
    )
    source = "cached verdict (no call)" if usage.cached else f"{usage.attempts} attempt(s)"
    line = (
        f"{usage.model}, {source}: {usage.input_tokens:,} input tokens "
        f"({usage.image_tokens:,} image), {usage.output_tokens:,} output, "
        f"${usage.cost_usd:.4f}{'' if usage.price_known else ' (price unknown: upper bound)'}"
    )
    return (
        f"<h3>Verdicts</h3><p class='meta'>{_e(line)}</p><table><tr><th>Verdict</th>"
        f"<th>Confidence</th><th>Expectation</th><th>Reason</th></tr>{rows}</table>"
    )


def _figure(label: str, png: bytes, file: str | None, width: int, height: int) -> str:
    if not png:
        return ""
    link = f" · <a href='{_e(file)}'>full size</a>" if file else ""
    data = base64.b64encode(png).decode("ascii")
    return (
        f"<figure><img alt='{_e(label)}' src='data:image/png;base64,{data}'>"
        f"<figcaption>{_e(label)}: {width}x{height} px{link}</figcaption></figure>"
    )
