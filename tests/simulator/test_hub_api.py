"""The fake Hub answers as the Hub's REST API does (FACTS.md), from the reference samples."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from agent.simulator.config import Fault
from agent.simulator.hub_api import LLAMA, PRIVATE, QUOTA, QWEN_AWQ, FakeHub, FakeHubThread


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def hub(clock: FakeClock) -> AsyncIterator[FakeHub]:
    async with FakeHub(clock=clock) as fake:
        yield fake


@pytest.fixture
async def client(hub: FakeHub) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=hub.url, timeout=5.0) as http:
        yield http


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_model_info_with_and_without_blobs(client: httpx.AsyncClient, hub: FakeHub) -> None:
    plain = (await client.get(f"/api/models/{QWEN_AWQ}")).json()
    assert plain["id"] == plain["modelId"] == QWEN_AWQ
    assert plain["safetensors"]["total"] == 1_963_340_288
    assert all(set(s) == {"rfilename"} for s in plain["siblings"])
    blobs = (await client.get(f"/api/models/{QWEN_AWQ}", params={"blobs": "true"})).json()
    sizes = {s["rfilename"]: s["size"] for s in blobs["siblings"]}
    assert sizes["model-00001-of-00002.safetensors"] == 3_993_860_416
    assert hub.request_count(f"/api/models/{QWEN_AWQ}") == 2
    assert hub.requests_total == 2


async def test_gated_model_info_is_public_but_its_files_need_the_token(
    client: httpx.AsyncClient, hub: FakeHub
) -> None:
    info = await client.get(f"/api/models/{LLAMA}")
    assert info.status_code == 200 and info.json()["gated"] == "manual"
    sha = info.json()["sha"]
    path = f"/{LLAMA}/resolve/{sha}/config.json"
    assert (await client.get(path)).status_code == 401
    assert (await client.get(path, headers=_bearer("hf_other"))).status_code == 403
    config = await client.get(path, headers=_bearer(hub.token))
    assert config.status_code == 200
    assert config.json()["max_position_embeddings"] == 131072


async def test_private_and_missing_repos(client: httpx.AsyncClient, hub: FakeHub) -> None:
    for repo in (PRIVATE, "acme-ai/no-such-model"):
        anonymous = await client.get(f"/api/models/{repo}")
        assert anonymous.status_code == 401
        assert anonymous.headers["X-Error-Code"] == "RepoNotFound"
        wrong = await client.get(f"/api/models/{repo}", headers=_bearer("hf_wrong"))
        assert wrong.status_code == 404
    private = await client.get(f"/api/models/{PRIVATE}", headers=_bearer(hub.token))
    assert private.status_code == 200 and private.json()["private"] is True


async def test_resolve_needs_a_known_revision_and_file(client: httpx.AsyncClient) -> None:
    sha = (await client.get(f"/api/models/{QWEN_AWQ}")).json()["sha"]
    config = await client.get(f"/{QWEN_AWQ}/resolve/{sha}/config.json")
    assert config.json()["quantization_config"]["quant_method"] == "awq"
    assert (await client.get(f"/{QWEN_AWQ}/resolve/main/config.json")).status_code == 200
    assert (await client.get(f"/{QWEN_AWQ}/resolve/{'0' * 40}/config.json")).status_code == 404
    assert (await client.get(f"/{QWEN_AWQ}/resolve/{sha}/nope.json")).status_code == 404


async def test_tree_lists_files_with_lfs_sizes(client: httpx.AsyncClient) -> None:
    tree = (await client.get(f"/api/models/{QWEN_AWQ}/tree/main?recursive=true")).json()
    assert {"type": "directory", "oid": tree[0]["oid"], "size": 0, "path": "original"} in tree
    derived = (await client.get(f"/api/models/{LLAMA}/tree/main?recursive=true")).json()
    shard = next(e for e in derived if e["path"] == "model-00001-of-00004.safetensors")
    assert shard["size"] == shard["lfs"]["size"] == 4_976_698_704


async def test_rate_limit_headers_and_forced_429(
    client: httpx.AsyncClient, hub: FakeHub, clock: FakeClock
) -> None:
    ok = await client.get(f"/api/models/{QWEN_AWQ}")
    assert ok.headers["RateLimit"] == f'"api";r={QUOTA - 1};t=300'
    hub.rate_limit(90)
    limited = await client.get(f"/api/models/{QWEN_AWQ}")
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "90"
    assert limited.headers["RateLimit"] == '"api";r=0;t=90'
    clock.now += 90
    assert (await client.get(f"/api/models/{QWEN_AWQ}")).status_code == 200


async def test_the_quota_runs_out_within_a_window(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    for _ in range(QUOTA):
        assert (await client.get(f"/api/models/{QWEN_AWQ}")).status_code == 200
    over = await client.get(f"/api/models/{QWEN_AWQ}")
    assert over.status_code == 429 and over.headers["Retry-After"] == "300"
    clock.now += 300
    assert (await client.get(f"/api/models/{QWEN_AWQ}")).status_code == 200


async def test_faults(client: httpx.AsyncClient, hub: FakeHub) -> None:
    hub.set_fault(Fault.ERROR_500)
    assert (await client.get(f"/api/models/{QWEN_AWQ}")).status_code == 500
    hub.set_fault(Fault.GARBAGE)
    garbage = await client.get(f"/api/models/{QWEN_AWQ}")
    with pytest.raises(ValueError):
        garbage.json()
    hub.set_fault(Fault.NONE)
    assert (await client.get(f"/api/models/{QWEN_AWQ}")).status_code == 200
    with pytest.raises(ValueError, match="UNAUTHORIZED"):
        hub.set_fault(Fault.UNAUTHORIZED)


def test_the_thread_serves_sync_callers() -> None:
    with FakeHubThread() as hub:
        response = httpx.get(f"{hub.url}/api/models/{LLAMA}", timeout=5.0)
        assert response.status_code == 200
        assert hub.request_count(f"/api/models/{LLAMA}") == 1
