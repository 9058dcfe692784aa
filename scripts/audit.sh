#!/usr/bin/env bash
# Known vulnerabilities in the project venv's dependencies: pip-audit against PyPI's advisories.
# PyPI's per-release JSON API is what pip-audit reads; where it is out of reach (an offline or
# mirror-only machine) this says so and skips, unless AUDIT_REQUIRED=1 (`make audit`).
set -euo pipefail
venv=${1:-.venv}
pip_version=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("pip"))')
probe="https://pypi.org/pypi/pip/$pip_version/json"
if ! "$venv/bin/python" - "$probe" <<'PY'
import sys
import urllib.request

try:
    with urllib.request.urlopen(sys.argv[1], timeout=5) as reply:
        sys.exit(0 if reply.status == 200 else 1)
except Exception:
    sys.exit(1)
PY
then
    echo "audit: SKIPPED: PyPI's advisory API ($probe) does not answer here (offline, or a mirror without it)"
    [ "${AUDIT_REQUIRED:-0}" = 1 ] && exit 1
    exit 0
fi
"$venv/bin/python" -m pip install -q 'pip-audit>=2.10,<3'
# --strict: a dependency that could not be audited fails the check too.
exec "$venv/bin/pip-audit" --skip-editable --strict --progress-spinner off
