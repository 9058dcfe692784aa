#!/usr/bin/env bash
# Regenerate tests/fixtures/e2e-selectors/<version>.json from the published npm package
# @grafana/e2e-selectors: the selector values the Grafana driver relies on, resolved for the
# Grafana versions its two tables cover (Scenes 11.3+ and the older grid), with provenance.
# tests/mcp_server/grafana/test_selectors.py checks mcp_server/grafana/selectors.py against it.
#
#   scripts/refresh-e2e-selectors.sh [VERSION]     (default 13.2.2; needs npm, node, sha256sum)
set -euo pipefail

VERSION="${1:-13.2.2}"
# The versions whose selector values the fixture records (the driver's two tables).
RESOLVE_AT="${RESOLVE_AT:-$VERSION 11.2.0}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$REPO/tests/fixtures/e2e-selectors/$VERSION.json"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

cd "$WORK"
TARBALL="$(npm pack --silent "@grafana/e2e-selectors@$VERSION")"
SHA256="$(sha256sum "$TARBALL" | cut -d' ' -f1)"
tar xzf "$TARBALL"

TARBALL="$TARBALL" SHA256="$SHA256" VERSION="$VERSION" RESOLVE_AT="$RESOLVE_AT" node - >"$OUT.tmp" <<'JS'
const path = require("path");
const dir = path.resolve("package/dist/cjs/selectors");
const tables = {
  components: require(path.join(dir, "components.cjs")).versionedComponents,
  pages: require(path.join(dir, "pages.cjs")).versionedPages,
};
// Every selector the driver (and the Grafana stand-in) uses.
const PATHS = [
  "components.Panels.Panel.title",
  "components.Panels.Panel.headerContainer",
  "components.Panels.Panel.content",
  "components.Panels.Panel.status",
  "components.Panels.Panel.loadingBar",
  "components.Panels.Panel.PanelDataErrorMessage",
  "components.LoadingIndicator.icon",
  "pages.Login.url",
  "pages.Login.username",
  "pages.Login.password",
  "pages.Login.submit",
  "pages.Login.skip",
  "pages.Dashboard.url",
  "pages.SoloPanel.url",
];
const parse = (v) => v.split(".").map(Number);
const cmp = (a, b) => {
  const [x, y] = [parse(a), parse(b)];
  for (let i = 0; i < 3; i++) if (x[i] !== y[i]) return x[i] - y[i];
  return 0;
};
// Same rule as the package's resolver.mjs: the newest entry not newer than the Grafana version,
// else the newest entry.
function resolve(versioned, grafana) {
  const versions = Object.keys(versioned).sort(cmp);
  let chosen;
  for (const v of versions) if (cmp(grafana, v) >= 0) chosen = v;
  return versioned[chosen ?? versions[versions.length - 1]];
}
// Functions are recorded as templates: each parameter becomes "{name}".
function render(value) {
  if (typeof value !== "function") return value;
  const match = value.toString().match(/^\s*\(?([^)=]*)\)?\s*=>/);
  const params = match ? match[1].split(",").map((p) => p.trim()).filter(Boolean) : [];
  return value(...params.map((p) => `{${p}}`));
}
const resolved = {};
for (const grafana of process.env.RESOLVE_AT.split(/\s+/).filter(Boolean)) {
  resolved[grafana] = {};
  for (const key of PATHS) {
    const [root, ...rest] = key.split(".");
    let node = tables[root];
    for (const part of rest) node = node?.[part];
    if (node === undefined) throw new Error(`${key} is not in the package`);
    resolved[grafana][key] = render(resolve(node, grafana));
  }
}
const fixture = {
  package: "@grafana/e2e-selectors",
  version: process.env.VERSION,
  tarball: process.env.TARBALL,
  sha256: process.env.SHA256,
  files: ["package/dist/cjs/selectors/components.cjs", "package/dist/cjs/selectors/pages.cjs"],
  generated_by: "scripts/refresh-e2e-selectors.sh",
  note: "Function selectors are recorded as templates: each parameter became {name}.",
  resolved,
};
process.stdout.write(JSON.stringify(fixture, null, 2) + "\n");
JS
mv "$OUT.tmp" "$OUT"
echo "wrote $OUT (sha256 $SHA256)"
