"""compose.yaml and .env.example: valid Compose, pinned, no secrets, consistent with the repo.

No container runs here (no registry): these checks stand in for `docker compose config` and
for the parts of `docker compose up` that read files from the repository.
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from agent.settings import AgentSettings, VLLMSettings
from tests.deploy import compose_checks as cc

REPO = cc.REPO


@pytest.fixture(scope="module")
def compose() -> cc.Compose:
    return cc.load_compose()


@pytest.fixture(scope="module")
def env_example() -> cc.EnvExample:
    return cc.parse_env_example(cc.ENV_EXAMPLE.read_text())


def _service(compose: cc.Compose, name: str) -> dict[str, Any]:
    service = cc.services(compose).get(name)
    assert service is not None, f"compose.yaml has no service {name}"
    return service


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container target -> source of each volume entry."""
    return {target: source for source, target, _ in cc._volume_entries(service)}


def test_validates_against_the_compose_specification(compose: cc.Compose) -> None:
    assert cc.schema_problems(compose) == []
    assert "version" not in compose, "the Compose specification dropped `version:`"


def test_every_image_is_pinned(compose: cc.Compose) -> None:
    assert cc.image_problems(compose) == []


def test_every_mount_exists_and_repository_files_are_read_only(compose: cc.Compose) -> None:
    assert cc.mount_problems(compose) == []


def test_every_service_has_a_healthcheck_and_a_restart_policy(compose: cc.Compose) -> None:
    assert cc.health_and_restart_problems(compose) == []


def test_no_secret_is_written_in_the_file(compose: cc.Compose) -> None:
    assert cc.secret_problems(compose) == []


def test_ports_are_published_on_loopback(compose: cc.Compose) -> None:
    assert cc.port_problems(compose) == []
    assert _service(compose, "mcp")["ports"] == ["127.0.0.1:8765:8765"]


def test_env_example_lists_every_variable(compose: cc.Compose, env_example: cc.EnvExample) -> None:
    assert cc.env_example_problems(compose, env_example) == []


def test_depends_on_names_services_that_start_with_the_dependent(compose: cc.Compose) -> None:
    services = cc.services(compose)
    problems = []
    for name, service in services.items():
        for dependency in service.get("depends_on") or {}:
            if dependency not in services:
                problems.append(f"{name} depends on unknown service {dependency}")
                continue
            needed = set(services[dependency].get("profiles") or [])
            if needed and not needed & set(service.get("profiles") or []):
                problems.append(f"{name} depends on {dependency}, which only a profile starts")
    assert problems == []


def test_profiles_hold_the_optional_parts(compose: cc.Compose) -> None:
    services = cc.services(compose)
    for name in cc.CORE_SERVICES:
        assert not _service(compose, name).get("profiles"), f"{name} must start by default"
    assert _service(compose, "vllm")["profiles"] == ["gpu"]
    for name in cc.LANGFUSE_SERVICES:
        assert _service(compose, name)["profiles"] == ["langfuse"]
    assert set(services) == set(cc.CORE_SERVICES) | {"vllm"} | set(cc.LANGFUSE_SERVICES)


def _scripts() -> dict[str, str]:
    scripts: dict[str, str] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "scripts"
    ]
    return scripts


def test_agent_sees_the_host(compose: cc.Compose) -> None:
    agent = _service(compose, "agent")
    assert agent["build"] == {"context": ".", "dockerfile": "Dockerfile"}
    assert agent["command"][0] in _scripts()
    assert agent["command"] == ["inferwatch-agent"]
    assert agent["pid"] == "host"
    assert agent["cgroup"] == "host"
    assert "/var/run/docker.sock:/var/run/docker.sock:ro" in agent["volumes"]
    assert cc.gpu_reservation(agent), "the agent needs the GPUs for NVML"
    environment = cc.environment_of(agent)
    assert environment["INFERWATCH_LISTEN"] == "0.0.0.0:9470"
    assert environment["LITELLM_URL"] == "http://litellm:4000"
    assert "${DOCKER_GID:?" in agent["group_add"][0]


def test_mcp_server_is_the_same_image_over_streamable_http(compose: cc.Compose) -> None:
    mcp, agent = _service(compose, "mcp"), _service(compose, "agent")
    assert (mcp["image"], mcp["build"]) == (agent["image"], agent["build"])
    command = mcp["command"]
    assert command[0] in _scripts()
    assert command[command.index("--transport") + 1] == "streamable-http"
    assert command[command.index("--host") + 1] == "0.0.0.0"
    port = command[command.index("--port") + 1]
    assert mcp["ports"] == [f"127.0.0.1:{port}:{port}"]
    # Bound to 0.0.0.0 inside the container, so the token is required, from .env.
    token = cc.environment_of(mcp)["INFERWATCH_MCP_TOKEN"] or ""
    assert token.startswith("${INFERWATCH_MCP_TOKEN:?"), token
    urls = cc.environment_of(mcp)
    assert urls["INFERWATCH_AGENT_URL"] == "http://agent:9470"
    assert urls["PROMETHEUS_URL"] == "http://prometheus:9090"
    assert urls["GRAFANA_URL"] == "http://grafana:3000"
    assert urls["CHROMIUM_PATH"] == "/usr/bin/chromium"


def test_vllm_is_discovered_by_the_agent(compose: cc.Compose) -> None:
    vllm = _service(compose, "vllm")
    repository = vllm["image"].rpartition(":")[0]
    assert any(p in repository for p in VLLMSettings().image_patterns), (
        "the agent's Docker discovery (VLLM_IMAGE_PATTERNS default) would not find this image"
    )
    command = vllm["command"]
    port = command[command.index("--port") + 1]
    assert vllm["labels"]["inferwatch.url"] == f"http://vllm:{port}"
    assert f":{port}/health'" in vllm["healthcheck"]["test"][-1]
    assert _mounts(vllm)["/root/.cache/huggingface"] == "hf-cache"
    assert cc.gpu_reservation(vllm)


def test_prometheus_mounts_what_its_config_loads(compose: cc.Compose) -> None:
    prometheus = _service(compose, "prometheus")
    mounts = _mounts(prometheus)
    flags = dict(arg.removeprefix("--").split("=", 1) for arg in prometheus["command"])
    config_target = PurePosixPath(flags["config.file"])
    assert mounts[str(config_target)] == "./prometheus/prometheus.yml"
    config = yaml.safe_load((REPO / "prometheus/prometheus.yml").read_text())
    for pattern in config["rule_files"]:
        rules_dir = (config_target.parent / pattern).parent
        assert mounts[str(rules_dir)] == "./prometheus/rules", pattern
    assert "storage.tsdb.retention.time" in flags
    assert mounts[flags["storage.tsdb.path"]] == "prometheus-data"


def test_prometheus_scrapes_the_agent_as_often_as_it_polls(compose: cc.Compose) -> None:
    config = yaml.safe_load((REPO / "prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    agent_job = jobs["inferwatch-agent"]
    interval = agent_job.get("scrape_interval", config["global"]["scrape_interval"])
    poll = AgentSettings.model_fields["poll_interval_seconds"].default
    assert interval == f"{poll:g}s"
    env = cc.parse_env_example(cc.ENV_EXAMPLE.read_text())
    assert float(env.defined["INFERWATCH_POLL_INTERVAL_SECONDS"]) == poll
    listen = cc.environment_of(_service(compose, "agent"))["INFERWATCH_LISTEN"] or ""
    assert agent_job["static_configs"][0]["targets"] == [f"agent:{listen.rpartition(':')[2]}"]
    assert "prometheus" in jobs


def test_grafana_is_pinned_locked_down_and_provisioned(compose: cc.Compose) -> None:
    grafana = _service(compose, "grafana")
    assert grafana["image"].startswith("grafana/grafana:13.2.")
    environment = cc.environment_of(grafana)
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "${GRAFANA_ANONYMOUS_ENABLED:-false}"
    assert (environment["GF_SECURITY_ADMIN_PASSWORD"] or "").startswith(
        "${GRAFANA_ADMIN_PASSWORD:?"
    )
    mounts = _mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    assert "./grafana/dashboards" in mounts.values()


def test_grafana_is_the_version_the_mcp_selectors_were_checked_against(
    compose: cc.Compose,
) -> None:
    """The MCP server's Grafana driver uses selectors copied from @grafana/e2e-selectors of
    one Grafana version (tests/fixtures/e2e-selectors/<version>.json): deploy that one."""
    folder = REPO / "tests" / "fixtures" / "e2e-selectors"
    versions = {p.stem for p in folder.glob("*.json")} if folder.is_dir() else set()
    if not versions:
        pytest.skip("no e2e-selectors fixture yet")
    version = _service(compose, "grafana")["image"].rpartition(":")[2]
    assert version in versions


def _grafana_provisioning(kind: str) -> list[dict[str, Any]]:
    folder = REPO / "grafana" / "provisioning" / kind
    paths = sorted(folder.glob("*.y*ml")) if folder.is_dir() else []
    return [yaml.safe_load(p.read_text()) for p in paths]


def test_grafana_provisioning_matches_the_mounts_and_services(compose: cc.Compose) -> None:
    """The dashboard provider reads the folder compose mounts; datasources name services."""
    providers = [p for doc in _grafana_provisioning("dashboards") for p in doc["providers"]]
    datasources = [d for doc in _grafana_provisioning("datasources") for d in doc["datasources"]]
    if not providers and not datasources:
        pytest.skip("grafana/provisioning has no files yet")
    mounts = _mounts(_service(compose, "grafana"))
    dashboards = next(t for t, s in mounts.items() if s == "./grafana/dashboards")
    for provider in providers:
        path = PurePosixPath(provider["options"]["path"])
        assert path.is_relative_to(dashboards), f"{path} is not under the mount {dashboards}"
    services = cc.services(compose)
    scrape = yaml.safe_load((REPO / "prometheus/prometheus.yml").read_text())["global"]
    for datasource in datasources:
        interval = (datasource.get("jsonData") or {}).get("timeInterval")
        if datasource.get("type") == "prometheus" and interval is not None:
            assert interval == scrape["scrape_interval"], "timeInterval != scrape_interval"
        url = str(datasource.get("url", ""))
        if not url or "$" in url:
            continue
        host = urlsplit(url).hostname
        assert host in services, f"datasource {datasource['name']}: {url} names no service"


def test_litellm_config_points_at_the_vllm_service(compose: cc.Compose) -> None:
    litellm = _service(compose, "litellm")
    config_path = REPO / _mounts(litellm)["/app/config.yaml"]
    config = yaml.safe_load(config_path.read_text())
    vllm_command = _service(compose, "vllm")["command"]
    vllm_port = vllm_command[vllm_command.index("--port") + 1]
    bases = [m["litellm_params"].get("api_base") for m in config["model_list"]]
    assert f"http://vllm:{vllm_port}/v1" in bases
    assert "prometheus" in config["litellm_settings"]["callbacks"]
    environment = cc.environment_of(litellm)
    for text in cc.walk_strings(config):
        if text.startswith("os.environ/"):
            assert text.removeprefix("os.environ/") in environment, text
    agent_port = urlsplit(cc.environment_of(_service(compose, "agent"))["LITELLM_URL"]).port
    assert litellm["command"][litellm["command"].index("--port") + 1] == str(agent_port)


# --- each check can fail ------------------------------------------------------------------

Mutation = Callable[[cc.Compose], None]


def _set(path: str, value: Any) -> Mutation:
    def apply(compose: cc.Compose) -> None:
        *parents, last = path.split("/")
        node: Any = compose
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return apply


BROKEN: dict[str, tuple[Mutation, Callable[[cc.Compose], list[str]], str]] = {
    "unknown key": (
        _set("services/agent/restart_policy", "always"),
        cc.schema_problems,
        "restart_policy",
    ),
    "latest image": (_set("services/loki/image", "grafana/loki:latest"), cc.image_problems, "loki"),
    "untagged image": (_set("services/loki/image", "grafana/loki"), cc.image_problems, "loki"),
    "moving tag": (
        _set("services/litellm/image", "ghcr.io/berriai/litellm:main-stable"),
        cc.image_problems,
        "moving",
    ),
    "missing file": (
        _set("services/loki/volumes/0", "./deploy/loki/nope.yaml:/etc/loki/config.yaml:ro"),
        cc.mount_problems,
        "does not exist",
    ),
    "writable config": (
        _set("services/loki/volumes/0", "./deploy/loki/config.yaml:/etc/loki/config.yaml"),
        cc.mount_problems,
        "read-only",
    ),
    "writable socket": (
        _set("services/alloy/volumes/1", "/var/run/docker.sock:/var/run/docker.sock"),
        cc.mount_problems,
        "must be mounted ro",
    ),
    "host path": (
        _set("services/alloy/volumes/1", "/etc:/host/etc:ro"),
        cc.mount_problems,
        "outside the repository",
    ),
    "undeclared volume": (
        _set("services/loki/volumes/1", "nowhere:/loki"),
        cc.mount_problems,
        "not declared",
    ),
    "no healthcheck": (
        _set("services/litellm/healthcheck", {"disable": True}),
        cc.health_and_restart_problems,
        "litellm: no healthcheck",
    ),
    "no restart": (
        _set("services/litellm/restart", "no"),
        cc.health_and_restart_problems,
        "restart",
    ),
    "literal password": (
        _set("services/grafana/environment/GF_SECURITY_ADMIN_PASSWORD", "hunter2"),
        cc.secret_problems,
        "GF_SECURITY_ADMIN_PASSWORD",
    ),
    "literal key": (
        _set("services/litellm/command/1", "sk-abcdefghijklmnopqrstuvwx"),
        cc.secret_problems,
        "literal credential",
    ),
    "public mcp": (_set("services/mcp/ports/0", "8765:8765"), cc.port_problems, "127.0.0.1"),
    "public grafana": (
        _set("services/grafana/ports/0", "0.0.0.0:3000:3000"),
        cc.port_problems,
        "grafana",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_each_check_reports_a_broken_file(compose: cc.Compose, case: str) -> None:
    mutate, check, expected = BROKEN[case]
    broken = copy.deepcopy(compose)
    mutate(broken)
    problems = check(broken)
    assert any(expected in p for p in problems), problems


def test_env_example_check_reports_gaps(compose: cc.Compose) -> None:
    text = cc.ENV_EXAMPLE.read_text()
    missing = text.replace("\nDOCKER_GID=\n", "\n")
    assert any(
        "DOCKER_GID" in p for p in cc.env_example_problems(compose, cc.parse_env_example(missing))
    )
    leaked = text.replace("\nGRAFANA_ADMIN_PASSWORD=\n", "\nGRAFANA_ADMIN_PASSWORD=hunter2\n")
    assert any(
        "leave it empty" in p
        for p in cc.env_example_problems(compose, cc.parse_env_example(leaked))
    )
    public = text.replace("\nGRAFANA_BIND=127.0.0.1\n", "\nGRAFANA_BIND=0.0.0.0\n")
    problems = cc.env_example_problems(compose, cc.parse_env_example(public))
    assert any("GRAFANA_BIND" in p for p in problems)
    bare = text + "\nNEW_SETTING=1\n"
    problems = cc.env_example_problems(compose, cc.parse_env_example(bare))
    assert any("NEW_SETTING has no comment" in p for p in problems)
    assert any("does not use" in p for p in problems)


def test_repository_path_helper_sees_missing_files(tmp_path: Path) -> None:
    compose: cc.Compose = {"services": {"x": {"volumes": ["./here.yaml:/here:ro"]}}}
    assert cc.mount_problems(compose, repo=tmp_path) != []
    (tmp_path / "here.yaml").write_text("")
    assert cc.mount_problems(compose, repo=tmp_path) == []
