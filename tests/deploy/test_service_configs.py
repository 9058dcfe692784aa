"""The config files compose.yaml mounts into LiteLLM, Loki and Alloy.

LiteLLM runs here (the pinned version, 1.108.7, in .venv-litellm): its config is loaded by the
real proxy. Loki and Alloy do not (no package for either on this machine): their configs are
checked for the facts compose.yaml and the agent rely on.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml

from tests.deploy import compose_checks as cc
from tests.stack import REPO, free_port, stop, wait_until_http_ok

LITELLM_CONFIG = REPO / "deploy" / "litellm" / "config.yaml"
LOKI_CONFIG = REPO / "deploy" / "loki" / "config.yaml"
ALLOY_CONFIG = REPO / "deploy" / "alloy" / "config.alloy"
# The venv `make litellm-venv` builds (as tests/integration/conftest.py finds it).
LITELLM_VENV = Path(os.environ.get("INFERWATCH_LITELLM_VENV", REPO / ".venv-litellm"))
MASTER_KEY = "sk-deploy-test-master"
MODEL = "Qwen/Qwen2.5-7B-Instruct"


def _compose_environment(service: str) -> dict[str, str]:
    """The service's environment as compose would set it, with a test .env."""
    dotenv = {"LITELLM_MASTER_KEY": MASTER_KEY, "VLLM_MODEL": MODEL}
    resolved = {}
    for name, value in cc.environment_of(cc.services(cc.load_compose())[service]).items():
        if value is None:
            continue

        def substitute(match: re.Match[str]) -> str:
            name = match.group("name") or match.group("bare")
            default = match.group("arg") if "-" in (match.group("op") or "") else ""
            return dotenv.get(name, default)

        resolved[name] = cc.INTERPOLATION.sub(substitute, value)
    return resolved


@pytest.fixture(scope="module")
def litellm_with_deploy_config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = LITELLM_VENV / "bin" / "litellm"
    if not binary.exists():
        pytest.skip(f"LiteLLM proxy venv missing at {LITELLM_VENV}: run `make litellm-venv`")
    workdir = tmp_path_factory.mktemp("litellm-deploy")
    port = free_port()
    env = {
        **os.environ,
        **_compose_environment("litellm"),
        "LITELLM_LOG": "ERROR",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    with (workdir / "proxy.log").open("wb") as out:
        process = subprocess.Popen(
            [
                str(binary),
                "--config",
                str(LITELLM_CONFIG),
                "--host",
                "127.0.0.1",
                "--port",
                f"{port}",
            ],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_http_ok(url + "/health/liveliness", timeout=90, process=process)
        yield url
    finally:
        stop(process)


@pytest.mark.integration
def test_litellm_loads_the_deploy_config(litellm_with_deploy_config: str) -> None:
    """The model route the agent and the dashboards see: VLLM_MODEL on the vllm service."""
    headers = {"Authorization": f"Bearer {MASTER_KEY}"}
    with httpx.Client(base_url=litellm_with_deploy_config, timeout=10) as client:
        models = client.get("/v1/model/info", headers=headers).json()["data"]
        metrics = client.get("/metrics", headers=headers, follow_redirects=True)
        refused = client.get("/metrics/")
    routes = {
        m["model_name"]: (m["litellm_params"]["api_base"], m["model_info"]["litellm_provider"])
        for m in models
    }
    assert routes == {MODEL: ("http://vllm:8000/v1", "hosted_vllm")}
    assert metrics.status_code == 200, "the prometheus callback is not on"
    assert refused.status_code in (401, 403), "/metrics must ask for the master key"


def _loki() -> dict[str, Any]:
    config: dict[str, Any] = yaml.safe_load(LOKI_CONFIG.read_text())
    return config


def test_loki_keeps_logs_for_a_bounded_time() -> None:
    config = _loki()
    assert config["auth_enabled"] is False
    assert config["limits_config"]["retention_period"]
    compactor = config["compactor"]
    # Retention only deletes with the compactor on and a delete-request store (Loki 3).
    assert compactor["retention_enabled"] is True
    assert compactor["delete_request_store"] == "filesystem"
    assert all(
        s["schema"] == "v13" and s["store"] == "tsdb" for s in config["schema_config"]["configs"]
    )
    assert config["common"]["path_prefix"] == "/loki"


def test_loki_port_matches_its_healthcheck_and_the_volume() -> None:
    loki = cc.services(cc.load_compose())["loki"]
    port = _loki()["server"]["http_listen_port"]
    assert f"127.0.0.1:{port}/ready" in " ".join(loki["healthcheck"]["test"])
    targets = {target: source for source, target, _ in cc._volume_entries(loki)}
    assert targets[_loki()["common"]["path_prefix"]] == "loki-data"


def _alloy_blocks(text: str) -> dict[str, str]:
    """Top-level `component "label" { ... }` blocks by "component.label"."""
    blocks: dict[str, str] = {}
    code = re.sub(r"(?m)(^|\s)//[^\n]*", r"\1", text)  # comments, not the // in URLs
    depth, start, name = 0, 0, ""
    for match in re.finditer(r'([a-z_.]+)\s+"([A-Za-z0-9_]+)"\s*\{|\{|\}', code):
        token = match.group(0)
        if depth == 0 and match.group(1):
            name, start = f"{match.group(1)}.{match.group(2)}", match.end()
            depth = 1
        elif token.endswith("{"):
            depth += 1
        elif token == "}":
            depth -= 1
            assert depth >= 0, "unbalanced braces in config.alloy"
            if depth == 0:
                blocks[name] = code[start : match.start()]
    assert depth == 0, "unbalanced braces in config.alloy"
    return blocks


def test_alloy_pipeline_is_wired_to_loki() -> None:
    blocks = _alloy_blocks(ALLOY_CONFIG.read_text())
    assert set(blocks) == {
        "discovery.docker.containers",
        "discovery.relabel.containers",
        "loki.source.docker.containers",
        "loki.write.local",
    }
    # Every reference to another component names one that exists.
    for body in blocks.values():
        for ref in re.findall(
            r"\b((?:discovery|loki)\.[a-z_.]+)\.(?:targets|rules|receiver)", body
        ):
            assert ref in blocks, f"config.alloy refers to undefined {ref}"
    compose = cc.load_compose()
    write_url = re.search(r'url\s*=\s*"([^"]+)"', blocks["loki.write.local"])
    assert write_url is not None
    url = urlsplit(write_url.group(1))
    assert url.hostname == "loki" and "loki" in cc.services(compose)
    assert url.port == _loki()["server"]["http_listen_port"]
    socket = "/var/run/docker.sock"
    assert f'"unix://{socket}"' in blocks["loki.source.docker.containers"]
    assert f"{socket}:{socket}:ro" in cc.services(compose)["alloy"]["volumes"]


def test_alloy_labels_logs_like_the_agent_labels_containers() -> None:
    """`container` without the leading slash, as in inferwatch_container_info."""
    rules = _alloy_blocks(ALLOY_CONFIG.read_text())["discovery.relabel.containers"]
    assert re.search(
        r'source_labels\s*=\s*\["__meta_docker_container_name"\]\s*'
        r'regex\s*=\s*"/\(\.\*\)"\s*target_label\s*=\s*"container"',
        rules,
    )


def test_alloy_block_reader_rejects_unbalanced_braces() -> None:
    with pytest.raises(AssertionError, match="unbalanced"):
        _alloy_blocks('loki.write "x" {\n endpoint {\n}\n')
