#!/usr/bin/env bash
# `make demo`: the agent against the built-in simulated stack, a local Prometheus scraping it (with
# the repo's alert rules) when one is installed, and the MCP server over streamable HTTP.
# Prints the URLs; Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

AGENT_PORT=${INFERWATCH_DEMO_AGENT_PORT:-9470}
PROM_PORT=${INFERWATCH_DEMO_PROMETHEUS_PORT:-9090}
MCP_PORT=${INFERWATCH_DEMO_MCP_PORT:-8765}
state=.demo
mkdir -p "$state"
pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "demo stopped"
}
trap cleanup EXIT
trap 'exit 0' INT TERM  # Ctrl-C is how the demo ends: not an error

INFERWATCH_LISTEN=127.0.0.1:$AGENT_PORT INFERWATCH_POLL_INTERVAL_SECONDS=${INFERWATCH_POLL_INTERVAL_SECONDS:-15} \
  .venv/bin/inferwatch-agent --demo >"$state/agent.log" 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
  .venv/bin/python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$AGENT_PORT/readyz', timeout=1)" \
    >/dev/null 2>&1 && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$state/agent.log"; exit 1; }
  sleep 0.2
done

prom_line="Prometheus: not installed (sudo apt-get install prometheus, then run make demo again)"
if command -v prometheus >/dev/null 2>&1; then
  cat >"$state/prometheus.yml" <<YAML
global: {scrape_interval: 15s, evaluation_interval: 15s}
rule_files: ["$PWD/prometheus/rules/*.yml"]
scrape_configs:
  - job_name: inferwatch-agent
    static_configs: [{targets: ["127.0.0.1:$AGENT_PORT"]}]
YAML
  prometheus --config.file="$state/prometheus.yml" --storage.tsdb.path="$state/tsdb" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$state/prometheus.log" 2>&1 &
  pids+=($!)
  prom_line="Prometheus:       http://127.0.0.1:$PROM_PORT/graph?g0.expr=vllm%3Anum_requests_running"
fi

INFERWATCH_AGENT_URL=http://127.0.0.1:$AGENT_PORT PROMETHEUS_URL=http://127.0.0.1:$PROM_PORT \
  .venv/bin/inferwatch-mcp --transport streamable-http --host 127.0.0.1 --port "$MCP_PORT" \
  >"$state/mcp.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  .venv/bin/python -c "import socket; socket.create_connection(('127.0.0.1', $MCP_PORT), timeout=1).close()" \
    >/dev/null 2>&1 && break
  kill -0 "${pids[-1]}" 2>/dev/null || { cat "$state/mcp.log"; exit 1; }
  sleep 0.2
done

cat <<TXT

inferwatch demo is running (simulated LiteLLM, vLLM, Docker, GPUs, Langfuse, Hub; logs in $state/)
  Agent metrics:    http://127.0.0.1:$AGENT_PORT/metrics
  Agent sources:    http://127.0.0.1:$AGENT_PORT/api/v1/sources
  $prom_line
  MCP server:       http://127.0.0.1:$MCP_PORT/mcp  (streamable HTTP; e.g. claude mcp add --transport http inferwatch http://127.0.0.1:$MCP_PORT/mcp)
Press Ctrl-C to stop.
TXT
wait -n "${pids[@]}"
echo "a demo process stopped unexpectedly; see $state/*.log" >&2
exit 1
