"""The fake Docker Engine API answers the real `docker` SDK as dockerd 20.10 (API 1.41) does."""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import struct
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from agent.simulator.config import VLLMInstanceSpec
from agent.simulator.docker_api import (
    FakeContainer,
    FakeDockerAPI,
    FakeDockerAPIThread,
    cuda_oom_message,
    demo_containers,
    vllm_engine_core_failure,
)
from agent.simulator.docker_logs import LogLine, multiplexed
from agent.simulator.docker_wire import human_duration, parse_timestamp, rfc3339_nano_fixed

START = 1_800_000_000.0
WAIT_SECONDS = 5.0
VLLM = FakeContainer(
    name="vllm-llama",
    image="vllm/vllm-openai:v0.11.0",
    labels={"inferwatch.url": "http://127.0.0.1:8001", "team": "ml"},
    gpus=("0", "1"),
    command=("vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct", "--port", "8001"),
)
VLLM_ALL_GPUS = FakeContainer(name="vllm-all", image="vllm/vllm-openai:latest", gpus=("all",))
LITELLM = FakeContainer(
    name="litellm",
    image="ghcr.io/berriai/litellm:main-v1.108.7",
    network_mode="inferwatch_default",
    memory_limit_bytes=4 * 1024**3,
)
EXITED = FakeContainer(name="old-job", image="busybox:1.36", running=False, logs=("done",))
CONTAINERS = (VLLM, VLLM_ALL_GPUS, LITELLM, EXITED)
LIST_KEYS = {
    "Id",
    "Names",
    "Image",
    "ImageID",
    "Command",
    "Created",
    "Labels",
    "State",
    "Status",
    "HostConfig",
    "NetworkSettings",
    "Mounts",
}


class FakeClock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(clock: FakeClock) -> Iterator[FakeDockerAPI]:
    with FakeDockerAPIThread(CONTAINERS, clock=clock) as api:
        yield api


@pytest.fixture
def client(fake: FakeDockerAPI) -> Iterator[Any]:
    sdk = docker.DockerClient(base_url=fake.base_url, version="auto")
    yield sdk
    sdk.close()


def next_within(stream: Iterator[Any], timeout: float = WAIT_SECONDS) -> Any:
    """The stream's next item, read in a helper thread so that a hang fails the test."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(next, stream, None).result(timeout=timeout)


def next_action(events: Iterator[Any], name: str) -> str:
    event = next_within(events)
    assert event["Actor"]["Attributes"]["name"] == name
    return str(event["Action"])


# -- system ------------------------------------------------------------------------------------


def test_negotiates_api_1_41_and_describes_the_daemon(client: Any) -> None:
    assert client.api.api_version == "1.41"
    assert client.ping() is True
    version = client.version()
    assert (version["ApiVersion"], version["MinAPIVersion"]) == ("1.41", "1.12")
    assert (version["Version"], version["Os"], version["Arch"]) == ("20.10.24", "linux", "amd64")
    info = client.info()
    assert info["DefaultRuntime"] == "runc"
    assert info["Runtimes"]["nvidia"] == {"path": "nvidia-container-runtime"}
    assert info["NCPU"] > 0 and info["MemTotal"] > 0 and info["Name"]
    assert (info["Containers"], info["ContainersRunning"]) == (4, 3)


def test_refuses_newer_api_versions_and_unknown_paths(fake: FakeDockerAPI) -> None:
    too_new = docker.APIClient(base_url=fake.base_url, version="1.43")
    with pytest.raises(docker.errors.APIError, match=r"Maximum supported API version is 1\.41"):
        too_new.containers()
    response = too_new.get(too_new.base_url + "/v1.41/no/such/path")
    assert response.status_code == 404
    assert response.json() == {"message": "page not found"}
    assert response.headers["Api-Version"] == "1.41"
    too_new.close()


# -- containers ----------------------------------------------------------------------------


def test_lists_containers_as_dockerd(client: Any, fake: FakeDockerAPI) -> None:
    entries = {entry["Names"][0]: entry for entry in client.api.containers(all=True)}
    assert set(entries) == {"/vllm-llama", "/vllm-all", "/litellm", "/old-job"}
    vllm = entries["/vllm-llama"]
    assert set(vllm) >= LIST_KEYS
    assert re.fullmatch(r"[0-9a-f]{64}", vllm["Id"]) and vllm["Id"] == fake.container_id(VLLM.name)
    assert vllm["ImageID"].startswith("sha256:") and vllm["Image"] == VLLM.image
    assert vllm["Labels"] == dict(VLLM.labels)
    assert (vllm["State"], vllm["HostConfig"]) == ("running", {"NetworkMode": "host"})
    assert re.fullmatch(r"Up \d+ hours", vllm["Status"])
    assert list(vllm["NetworkSettings"]["Networks"]) == ["host"] and vllm["Mounts"] == []
    old = entries["/old-job"]
    assert old["State"] == "exited" and re.fullmatch(r"Exited \(0\) .+ ago", old["Status"])


def test_list_filters(client: Any) -> None:
    def names(**kwargs: Any) -> set[str]:
        return {container.name for container in client.containers.list(**kwargs)}

    assert names() == {"vllm-llama", "vllm-all", "litellm"}
    assert names(filters={"status": "exited"}) == {"old-job"}
    assert names(all=True, filters={"label": "inferwatch.url"}) == {"vllm-llama"}
    assert names(filters={"label": ["team=ml", "inferwatch.url"]}) == {"vllm-llama"}
    assert names(filters={"label": "team=ops"}) == set()
    assert names(filters={"ancestor": "vllm/vllm-openai:v0.11.0"}) == {"vllm-llama"}
    assert names(filters={"ancestor": "vllm/vllm-openai"}) == {"vllm-all"}  # means :latest
    with pytest.raises(docker.errors.APIError, match="invalid filter 'colour'"):
        client.containers.list(filters={"colour": "red"})


def test_inspect_has_the_gpus_in_device_requests(client: Any) -> None:
    vllm = client.containers.get("vllm-llama")
    assert vllm.attrs["HostConfig"]["DeviceRequests"] == [
        {
            "Driver": "nvidia",
            "Count": 0,
            "DeviceIDs": ["0", "1"],
            "Capabilities": [["gpu"]],
            "Options": {},
        }
    ]
    assert vllm.name == "vllm-llama" and vllm.status == "running"
    assert vllm.labels["inferwatch.url"] == "http://127.0.0.1:8001"
    assert vllm.attrs["Config"]["Image"] == VLLM.image
    assert vllm.attrs["Image"].startswith("sha256:") and vllm.image.tags == [VLLM.image]
    assert vllm.attrs["State"]["Pid"] > 0 and vllm.attrs["RestartCount"] == 0
    assert vllm.attrs["HostConfig"]["Runtime"] == "runc"
    every = client.containers.get("vllm-all").attrs["HostConfig"]["DeviceRequests"]
    assert (every[0]["Count"], every[0]["DeviceIDs"]) == (-1, None)
    litellm = client.containers.get(client.containers.get("litellm").id[:12])  # an id prefix
    assert litellm.attrs["HostConfig"]["DeviceRequests"] is None
    assert litellm.attrs["HostConfig"]["Memory"] == LITELLM.memory_limit_bytes


def test_unknown_container_is_not_found(client: Any) -> None:
    with pytest.raises(docker.errors.NotFound, match="No such container: nope"):
        client.containers.get("nope")
    with pytest.raises(docker.errors.NotFound):
        client.api.stats("nope", stream=False, one_shot=True)


# -- stats ---------------------------------------------------------------------------------


def test_one_shot_stats_come_at_once_with_zeroed_precpu(client: Any, clock: FakeClock) -> None:
    started = time.monotonic()
    first = client.api.stats(VLLM.name, stream=False, one_shot=True)
    assert time.monotonic() - started < 0.5
    assert first["precpu_stats"]["cpu_usage"]["total_usage"] == 0
    assert "system_cpu_usage" not in first["precpu_stats"]
    assert first["preread"] == "0001-01-01T00:00:00Z"
    assert first["name"] == "/vllm-llama" and "networks" not in first  # host network
    memory = first["memory_stats"]
    assert memory["limit"] == client.info()["MemTotal"]  # unlimited
    assert 0 < memory["stats"]["inactive_file"] < memory["usage"]
    clock.now += 10
    second = client.api.stats(VLLM.name, stream=False, one_shot=True)
    cpu_delta = (
        second["cpu_stats"]["cpu_usage"]["total_usage"]
        - (first["cpu_stats"]["cpu_usage"]["total_usage"])
    )
    system_delta = second["cpu_stats"]["system_cpu_usage"] - first["cpu_stats"]["system_cpu_usage"]
    assert 0 < cpu_delta < system_delta
    assert system_delta == 10 * second["cpu_stats"]["online_cpus"] * 1_000_000_000

    litellm = client.api.stats(LITELLM.name, stream=False, one_shot=True)
    assert litellm["memory_stats"]["limit"] == LITELLM.memory_limit_bytes
    assert litellm["networks"]["eth0"]["rx_bytes"] > 0


def test_vllm_containers_are_the_busy_ones(client: Any, clock: FakeClock) -> None:
    def cpu_seconds(name: str) -> float:
        stats = client.api.stats(name, stream=False, one_shot=True)
        return float(stats["cpu_stats"]["cpu_usage"]["total_usage"]) / 1e9

    before = {name: cpu_seconds(name) for name in (VLLM.name, LITELLM.name)}
    clock.now += 600
    busy = {name: cpu_seconds(name) - seconds for name, seconds in before.items()}
    assert busy[VLLM.name] > 3 * busy[LITELLM.name] > 0


def test_stats_without_one_shot_wait_for_a_second_sample(client: Any) -> None:
    started = time.monotonic()
    stats = client.api.stats(LITELLM.name, stream=False)
    assert time.monotonic() - started >= 0.9
    assert stats["preread"] != "0001-01-01T00:00:00Z"
    assert stats["precpu_stats"]["online_cpus"] == stats["cpu_stats"]["online_cpus"]


def test_a_stopped_container_has_empty_stats(client: Any) -> None:
    stats = client.api.stats(EXITED.name, stream=False, one_shot=True)
    assert stats["read"] == "0001-01-01T00:00:00Z" and stats["memory_stats"] == {}


# -- events --------------------------------------------------------------------------------


def test_events_stream_the_lifecycle(client: Any, fake: FakeDockerAPI, clock: FakeClock) -> None:
    events = client.events(decode=True, filters={"type": "container"})
    try:
        fake.start_container(EXITED.name)
        event = next_within(events)
        assert (event["Type"], event["Action"], event["status"]) == ("container", "start", "start")
        assert event["id"] == event["Actor"]["ID"] == fake.container_id(EXITED.name)
        assert event["from"] == EXITED.image and event["scope"] == "local"
        assert event["time"] == int(START) and event["timeNano"] == int(START) * 1_000_000_000
        assert event["Actor"]["Attributes"] == {"image": EXITED.image, "name": EXITED.name}

        fake.stop_container(VLLM.name, exit_code=143)
        kill = next_within(events)
        assert (kill["Action"], kill["Actor"]["Attributes"]["signal"]) == ("kill", "15")
        die = next_within(events)
        assert (die["Action"], die["Actor"]["Attributes"]["exitCode"]) == ("die", "143")
        assert die["Actor"]["Attributes"]["inferwatch.url"] == "http://127.0.0.1:8001"
        assert next_action(events, VLLM.name) == "stop"

        fake.restart_container(LITELLM.name)
        die = next_within(events)
        assert (die["Action"], die["Actor"]["Attributes"]["exitCode"]) == ("die", "137")
        assert next_action(events, LITELLM.name) == "start"
    finally:
        events.close()
    assert client.containers.get(LITELLM.name).attrs["RestartCount"] == 1
    assert client.containers.get(VLLM.name).attrs["State"]["ExitCode"] == 143


def test_added_and_removed_containers_emit_events(client: Any, fake: FakeDockerAPI) -> None:
    events = client.events(decode=True, filters={"event": ["create", "start", "destroy"]})
    try:
        fake.add_container(FakeContainer(name="new", image="vllm/vllm-openai:v0.11.0"))
        assert [next_action(events, "new"), next_action(events, "new")] == ["create", "start"]
        fake.remove_container("new")
        assert next_action(events, "new") == "destroy"
    finally:
        events.close()
    with pytest.raises(ValueError, match="already exists"):
        fake.add_container(VLLM)


def test_closing_streams_ends_them(client: Any, fake: FakeDockerAPI) -> None:
    events = client.events(decode=True)
    fake.close_event_streams()
    assert next_within(events) is None  # the response ended
    events.close()
    fake.stop_container(LITELLM.name)
    # With `until` reached, the stream is the kept events from `since` on, then its end.
    replayed = client.events(decode=True, since=int(START), until=int(START))
    assert [event["Action"] for event in replayed] == ["kill", "die", "stop"]


def test_stopping_the_server_ends_event_streams(clock: FakeClock) -> None:
    thread = FakeDockerAPIThread(CONTAINERS, clock=clock)
    api = thread.start()
    sdk = docker.DockerClient(base_url=api.base_url, version="auto")
    events = sdk.events(decode=True)
    thread.stop()
    assert next_within(events) is None
    sdk.close()


# -- logs ----------------------------------------------------------------------------------


def test_logs_are_demultiplexed_with_since_and_timestamps(
    client: Any, fake: FakeDockerAPI, clock: FakeClock
) -> None:
    container = client.containers.get(VLLM.name)
    startup = container.logs().decode().splitlines()
    assert any("vLLM API server version 0.11.0" in line for line in startup)
    assert any("Starting vLLM API server 0 on http://0.0.0.0:8001" in line for line in startup)

    clock.now += 5
    fake.append_log(VLLM.name, "before")
    clock.now += 5
    since = clock.now
    fake.append_log(VLLM.name, "at since")
    clock.now += 0.5
    fake.append_log(VLLM.name, cuda_oom_message(tried_gib=3.5), stream="stderr")
    text = container.logs(since=since, timestamps=True).decode()
    lines = text.splitlines()
    assert [line.split(" ", 1)[1] for line in lines[:1]] == ["at since"]  # dockerd: from since on
    assert lines[0].split(" ", 1)[0] == rfc3339_nano_fixed(int(since) * 1_000_000_000)
    assert lines[0].split(" ", 1)[0].endswith(":10.000000000Z")
    assert "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 3.50 GiB" in lines[1]
    assert len(lines) == 2

    only_stderr = client.api.logs(VLLM.name, stdout=False, stderr=True, since=since).decode()
    assert only_stderr.startswith("torch.OutOfMemoryError") and only_stderr.count("\n") == 1
    assert container.logs(tail=1).decode() == only_stderr


def test_engine_core_failure_block(client: Any, fake: FakeDockerAPI) -> None:
    fake.append_log(VLLM.name, vllm_engine_core_failure(START))
    tail = client.containers.get(VLLM.name).logs(tail=14).decode().splitlines()
    assert tail[0].startswith("(EngineCore_DP0 pid=312) ERROR ")
    assert "EngineCore encountered a fatal error." in tail[0]
    assert any("torch.OutOfMemoryError" in line for line in tail)
    assert tail[-1].endswith("See stack trace (above) for the root cause.")
    assert "EngineDeadError" in tail[-1]


def test_log_frames_are_dockerds_multiplexed_format() -> None:
    body = multiplexed([LogLine(0, "stdout", "out"), LogLine(1, "stderr", "err")], timestamps=True)
    kind, length = struct.unpack(">BxxxL", body[:8])
    assert (kind, body[8 : 8 + length]) == (1, b"1970-01-01T00:00:00.000000000Z out\n")
    assert body[8 + length : 8 + length + 4] == b"\x02\x00\x00\x00"


# -- the async API and the demo ------------------------------------------------------------


async def test_serves_on_the_running_loop_over_tcp(clock: FakeClock) -> None:
    async with FakeDockerAPI([VLLM], clock=clock) as unix:
        assert unix.base_url.startswith("unix://")
    fake = FakeDockerAPI([VLLM], clock=clock)
    await fake.start(tcp=True)
    try:
        assert re.fullmatch(r"tcp://127\.0\.0\.1:\d+", fake.base_url)
        sdk = await asyncio.to_thread(docker.DockerClient, base_url=fake.base_url, version="auto")
        fake.stop_container(VLLM.name)  # on the server's own loop: applied at once
        listed = await asyncio.to_thread(sdk.containers.list, all=True)
        assert [(container.name, container.status) for container in listed] == [
            ("vllm-llama", "exited")
        ]
        sdk.close()
    finally:
        await fake.stop()


def test_demo_containers_follow_the_simulated_servers() -> None:
    specs = (VLLMInstanceSpec(), VLLMInstanceSpec(version="0.10.1", engines=2))
    urls = ["http://127.0.0.1:41001", "http://127.0.0.1:41002"]
    containers = demo_containers(urls, specs)
    vllm = [container for container in containers if container.is_vllm]
    assert [container.labels["inferwatch.url"] for container in vllm] == urls
    assert [container.gpus for container in vllm] == [("0",), ("1", "2")]
    assert [container.image for container in vllm] == [
        "vllm/vllm-openai:v0.33.0",
        "vllm/vllm-openai:v0.10.1",
    ]
    others = {container.image for container in containers if not container.is_vllm}
    assert others == {"ghcr.io/berriai/litellm:main-v1.108.7", "prom/prometheus:v2.55.1"}


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0.4, "Less than a second"),
        (1, "1 second"),
        (59, "59 seconds"),
        (90, "About a minute"),
        (3000, "50 minutes"),
        (4000, "About an hour"),
        (5 * 3600, "5 hours"),
        (3 * 86400, "3 days"),
        (21 * 86400, "3 weeks"),
        (90 * 86400, "3 months"),
        (800 * 86400, "2 years"),
    ],
)
def test_durations_read_like_docker_ps(seconds: float, words: str) -> None:
    assert human_duration(seconds) == words


def test_timestamps_parse_like_dockerd() -> None:
    assert parse_timestamp("1700000000") == 1_700_000_000 * 1_000_000_000
    assert parse_timestamp("1700000000.25") == 1_700_000_000_250_000_000
