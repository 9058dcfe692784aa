#!/usr/bin/env bash
# Installs the system packages the tests and the demo use, when they are missing: Prometheus and
# promtool, dockerd with a static busybox (the tests start their own daemon and build a tiny
# image from it), and Chromium for the Grafana driver (Playwright cannot download browsers here).
# Needs root or sudo; without either it says what to install and exits 0, and the tests that need
# these parts skip with that reason.
set -euo pipefail

missing=()
command -v prometheus >/dev/null 2>&1 || missing+=(prometheus)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
command -v dockerd >/dev/null 2>&1 || missing+=(docker.io)
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
  echo "install-system-deps: not root and no sudo; install these yourself: ${missing[*]}" >&2
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-system-deps: no apt-get; install these yourself: ${missing[*]}" >&2
  exit 0
fi
echo "install-system-deps: installing ${missing[*]} ..."
$sudo apt-get update -qq
readarray -t packages < <(printf '%s\n' "${missing[@]}" | sort -u)
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
# The Debian packages start a system Prometheus and dockerd; the tests and the demo run their own.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $sudo systemctl disable --now prometheus docker docker.socket >/dev/null 2>&1 || true
fi
