"""A check of JUnit XML against the rules of the schema pytest validates its own output with
(testing/example_scripts/junit-10.xsd in pytest's repository: the xunit2 family), written out
here because no XML Schema library is installed. Also accepts ``error`` for a testcase: pytest
and every CI reader use it (the XSD's own name for it is ``errors``)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

# The XSD's SUREFIRE_TIME.
_TIME = re.compile(r"^(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]{0,3})?$")
_SUITES_ATTRIBUTES = {"name", "time", "tests", "failures", "errors"}
_SUITE_REQUIRED = {"name", "tests", "failures", "errors"}
_SUITE_ATTRIBUTES = _SUITE_REQUIRED | {
    "group",
    "time",
    "skipped",
    "timestamp",
    "hostname",
    "id",
    "package",
    "file",
    "log",
    "url",
    "version",
}
_SUITE_CHILDREN = {"testsuite", "properties", "testcase", "system-out", "system-err"}
_CASE_ATTRIBUTES = {"name", "time", "classname", "group"}
_CASE_CHILDREN = {
    "skipped",
    "error",
    "errors",
    "failure",
    "rerunFailure",
    "rerunError",
    "flakyFailure",
    "flakyError",
    "system-out",
    "system-err",
}
_OUTCOME_ATTRIBUTES = {"type", "message"}


def problems(document: bytes) -> list[str]:
    """Every way ``document`` breaks the schema (empty: valid)."""
    found: list[str] = []
    root = ET.fromstring(document)
    if root.tag == "testsuites":
        _attributes(root, _SUITES_ATTRIBUTES, set(), found)
        _time(root, found)
        for child in root:
            if child.tag != "testsuite":
                found.append(f"testsuites holds <{child.tag}>")
            else:
                _suite(child, found)
    elif root.tag == "testsuite":
        _suite(root, found)
    else:
        found.append(f"the root is <{root.tag}>")
    return found


def _attributes(
    element: ET.Element, allowed: set[str], required: set[str], found: list[str]
) -> None:
    for name in set(element.attrib) - allowed:
        found.append(f"<{element.tag}> has attribute {name!r}")
    for name in required - set(element.attrib):
        found.append(f"<{element.tag}> lacks attribute {name!r}")


def _time(element: ET.Element, found: list[str]) -> None:
    value = element.get("time")
    if value is not None and not _TIME.match(value):
        found.append(f"<{element.tag}> time {value!r} is not a SUREFIRE_TIME")


def _suite(suite: ET.Element, found: list[str]) -> None:
    _attributes(suite, _SUITE_ATTRIBUTES, _SUITE_REQUIRED, found)
    _time(suite, found)
    for child in suite:
        if child.tag not in _SUITE_CHILDREN:
            found.append(f"testsuite holds <{child.tag}>")
        elif child.tag == "testsuite":
            _suite(child, found)
        elif child.tag == "testcase":
            _case(child, found)
        elif child.tag == "properties":
            for prop in child:
                if prop.tag != "property":
                    found.append(f"properties holds <{prop.tag}>")
                _attributes(prop, {"name", "value"}, {"name", "value"}, found)


def _case(case: ET.Element, found: list[str]) -> None:
    _attributes(case, _CASE_ATTRIBUTES, {"name"}, found)
    for child in case:
        if child.tag not in _CASE_CHILDREN:
            found.append(f"testcase {case.get('name')!r} holds <{child.tag}>")
        elif child.tag in ("skipped", "error", "errors", "failure"):
            _attributes(child, _OUTCOME_ATTRIBUTES, set(), found)
        elif len(child):
            found.append(f"<{child.tag}> of {case.get('name')!r} holds elements")
