"""The fake daemon's containers: what a test declares (`FakeContainer`), what runs
(`ContainerState`), and how dockerd 20.10 renders them in lists, inspects and image inspects."""

from __future__ import annotations

import contextlib
import random
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from agent.simulator.docker_logs import (
    LogBook,
    LogLine,
    VLLMLaunch,
    generic_startup_log,
    vllm_shutdown_log,
    vllm_startup_log,
)
from agent.simulator.docker_wire import (
    NANOS,
    ZERO_TIME,
    BadParameter,
    digest,
    human_duration,
    image_id,
    rfc3339_nano,
    split_reference,
)

STATUSES = frozenset({"created", "restarting", "running", "removing", "paused", "exited", "dead"})
LIST_FILTERS = frozenset({"status", "label", "name", "id", "ancestor", "exited"})
SHORT_ID = 12


@dataclass(frozen=True)
class FakeContainer:
    """A container the fake daemon knows, as the test or the demo declares it."""

    name: str  # without the leading "/"
    image: str  # the reference it was created from, "vllm/vllm-openai:v0.11.0"
    labels: Mapping[str, str] = field(default_factory=dict, hash=False)
    gpus: tuple[str, ...] = ()  # DeviceRequests device ids; ("all",) -> Count -1
    env: tuple[str, ...] = ()
    network_mode: str = "host"  # "host", "none", "bridge" or a user network's name
    pid: int = 0  # State.Pid while running; 0 picks one
    memory_limit_bytes: int = 0  # 0: unlimited (stats report the host's memory)
    command: tuple[str, ...] = ()  # Path + Args; () picks one for the image
    running: bool = True  # initially; False: exited a while ago
    runtime: str = "runc"  # HostConfig.Runtime ("nvidia" for the legacy GPU setup)
    logs: tuple[str, ...] | None = None  # stdout lines of each start; None: typical for the image

    @property
    def repository(self) -> str:
        return split_reference(self.image)[0]

    @property
    def is_vllm(self) -> bool:
        return "vllm" in self.repository


def default_command(container: FakeContainer) -> tuple[str, ...]:
    if container.is_vllm:
        return ("vllm", "serve", VLLMLaunch().model)
    if "litellm" in container.repository:
        return ("docker/prod_entrypoint.sh", "--port", "4000")
    if "prometheus" in container.repository:
        return ("/bin/prometheus", "--config.file=/etc/prometheus/prometheus.yml")
    return ("/bin/sh",)


def vllm_launch(container: FakeContainer, command: tuple[str, ...]) -> VLLMLaunch:
    """What a vLLM container's startup log says, from its image tag, command and url label."""
    default = VLLMLaunch()
    model = _argument(command, "--model") or _after(command, "serve") or default.model
    port = _argument(command, "--port") or _url_port(container.labels.get("inferwatch.url"))
    data_parallel = int(_argument(command, "--data-parallel-size") or 1)
    tp = _argument(command, "--tensor-parallel-size")
    length = _argument(command, "--max-model-len")
    tag = split_reference(container.image)[1]
    return VLLMLaunch(
        model=model,
        version=tag.lstrip("v") if re.match(r"v?\d", tag) else default.version,
        port=int(port) if port else default.port,
        tensor_parallel_size=int(tp) if tp else max(1, len(container.gpus) // data_parallel),
        max_model_len=int(length) if length else default.max_model_len,
    )


def _url_port(url: str | None) -> str | None:
    with contextlib.suppress(ValueError):
        port = urlsplit(url or "").port
        return None if port is None else str(port)
    return None


def _argument(command: tuple[str, ...], flag: str) -> str | None:
    for index, word in enumerate(command):
        if word == flag and index + 1 < len(command):
            return command[index + 1]
        if word.startswith(f"{flag}="):
            return word.split("=", 1)[1]
    return None


def _after(command: tuple[str, ...], word: str) -> str | None:
    if word in command:
        index = command.index(word) + 1
        if index < len(command) and not command[index].startswith("-"):
            return command[index]
    return None


@dataclass
class ContainerState:
    """A container as the daemon tracks it. Mutated on the server's event loop only."""

    spec: FakeContainer
    id: str
    created_ns: int
    started_ns: int = 0  # 0: never started
    finished_ns: int = 0  # 0: never stopped
    running: bool = False
    exit_code: int = 0
    restart_count: int = 0
    pid: int = 0
    logs: LogBook = field(default_factory=LogBook)

    @classmethod
    def create(cls, spec: FakeContainer, created_ns: int) -> ContainerState:
        return cls(spec=spec, id=digest("container", spec.name), created_ns=created_ns)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def command(self) -> tuple[str, ...]:
        return self.spec.command or default_command(self.spec)

    @property
    def status(self) -> str:
        if self.running:
            return "running"
        return "exited" if self.started_ns else "created"

    def start(self, now_ns: int) -> None:
        self.running = True
        self.started_ns = now_ns
        self.exit_code = 0
        self.pid = self.spec.pid or self._fake_pid()
        self.logs.extend(self._startup_log(now_ns))

    def stop(self, now_ns: int, exit_code: int) -> None:
        self.running = False
        self.finished_ns = now_ns
        self.exit_code = exit_code
        self.pid = 0
        if self.spec.is_vllm:
            self.logs.extend(vllm_shutdown_log(now_ns))

    def _fake_pid(self) -> int:
        return random.Random(f"{self.id}:{self.started_ns}").randrange(2000, 400000)

    def _startup_log(self, started_ns: int) -> list[LogLine]:
        if self.spec.logs is not None:
            lines = enumerate(self.spec.logs)
            return [LogLine(started_ns + i, "stdout", text) for i, text in lines]
        if self.spec.is_vllm:
            return vllm_startup_log(vllm_launch(self.spec, self.command), started_ns)
        return generic_startup_log(self.spec.repository, started_ns)


# -- renderings ----------------------------------------------------------------------------


def _time(ns: int) -> str:
    return rfc3339_nano(ns) if ns else ZERO_TIME


def _status_text(state: ContainerState, now_ns: int) -> str:
    if state.running:
        return f"Up {human_duration((now_ns - state.started_ns) / NANOS)}"
    if not state.started_ns:
        return "Created"
    ago = human_duration((now_ns - state.finished_ns) / NANOS)
    return f"Exited ({state.exit_code}) {ago} ago"


def _network_entry(state: ContainerState, network: str) -> dict[str, Any]:
    attached = state.running and network not in ("host", "none")
    index = int(state.id[:4], 16) % 250 + 2
    return {
        "IPAMConfig": None,
        "Links": None,
        "Aliases": [state.name, state.id[:SHORT_ID]] if attached else None,
        "NetworkID": digest("network", network),
        "EndpointID": digest("endpoint", state.id, str(state.started_ns)) if state.running else "",
        "Gateway": "172.18.0.1" if attached else "",
        "IPAddress": f"172.18.0.{index}" if attached else "",
        "IPPrefixLen": 16 if attached else 0,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "MacAddress": f"02:42:ac:12:00:{index:02x}" if attached else "",
        "DriverOpts": None,
    }


def networks(state: ContainerState) -> dict[str, Any]:
    network = state.spec.network_mode
    return {network: _network_entry(state, network)}


def list_entry(state: ContainerState, now_ns: int) -> dict[str, Any]:
    """One element of `GET /containers/json`."""
    spec = state.spec
    return {
        "Id": state.id,
        "Names": [f"/{spec.name}"],
        "Image": spec.image,
        "ImageID": image_id(spec.image),
        "Command": " ".join(state.command),
        "Created": state.created_ns // NANOS,
        "Ports": [],
        "Labels": dict(spec.labels),
        "State": state.status,
        "Status": _status_text(state, now_ns),
        "HostConfig": {"NetworkMode": spec.network_mode},
        "NetworkSettings": {"Networks": networks(state)},
        "Mounts": [],
    }


def device_requests(gpus: tuple[str, ...]) -> list[dict[str, Any]] | None:
    if not gpus:
        return None
    every = gpus == ("all",)
    return [
        {
            "Driver": "nvidia",
            "Count": -1 if every else 0,
            "DeviceIDs": None if every else list(gpus),
            "Capabilities": [["gpu"]],
            "Options": {},
        }
    ]


def _state_json(state: ContainerState) -> dict[str, Any]:
    return {
        "Status": state.status,
        "Running": state.running,
        "Paused": False,
        "Restarting": False,
        "OOMKilled": False,
        "Dead": False,
        "Pid": state.pid,
        "ExitCode": state.exit_code,
        "Error": "",
        "StartedAt": _time(state.started_ns),
        "FinishedAt": _time(state.finished_ns),
    }


def _host_config(spec: FakeContainer) -> dict[str, Any]:
    return {
        "Binds": None,
        "LogConfig": {"Type": "json-file", "Config": {}},
        "NetworkMode": spec.network_mode,
        "PortBindings": {},
        "RestartPolicy": {"Name": "unless-stopped", "MaximumRetryCount": 0},
        "AutoRemove": False,
        "CgroupnsMode": "private",
        "IpcMode": "private",
        "PidMode": "",
        "Privileged": False,
        "ShmSize": 67108864,
        "Runtime": spec.runtime,
        "Memory": spec.memory_limit_bytes,
        "MemorySwap": 2 * spec.memory_limit_bytes if spec.memory_limit_bytes else 0,
        "NanoCpus": 0,
        "CpuShares": 0,
        "DeviceRequests": device_requests(spec.gpus),
        "Devices": [],
        "PidsLimit": None,
        "Ulimits": None,
    }


def _config(state: ContainerState) -> dict[str, Any]:
    spec = state.spec
    return {
        "Hostname": socket.gethostname() if spec.network_mode == "host" else state.id[:SHORT_ID],
        "Domainname": "",
        "User": "",
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "Tty": False,
        "OpenStdin": False,
        "StdinOnce": False,
        "Env": list(spec.env),
        "Cmd": list(state.command),
        "Image": spec.image,
        "Volumes": None,
        "WorkingDir": "",
        "Entrypoint": None,
        "OnBuild": None,
        "Labels": dict(spec.labels),
    }


def inspect(state: ContainerState) -> dict[str, Any]:
    """`GET /containers/{id}/json`."""
    command = state.command
    network_mode = state.spec.network_mode
    return {
        "Id": state.id,
        "Created": rfc3339_nano(state.created_ns),
        "Path": command[0],
        "Args": list(command[1:]),
        "State": _state_json(state),
        "Image": image_id(state.spec.image),
        "LogPath": f"/var/lib/docker/containers/{state.id}/{state.id}-json.log",
        "Name": f"/{state.name}",
        "RestartCount": state.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": None,
        "HostConfig": _host_config(state.spec),
        "Mounts": [],
        "Config": _config(state),
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": digest("sandbox", state.id) if state.running else "",
            "Ports": {},
            "SandboxKey": "/var/run/docker/netns/default" if network_mode == "host" else "",
            "Networks": networks(state),
        },
    }


def image_inspect(reference: str, created_ns: int) -> dict[str, Any]:
    """`GET /images/{name}/json`, enough for the SDK's `Container.image`."""
    return {
        "Id": image_id(reference),
        "RepoTags": [reference],
        "RepoDigests": [f"{split_reference(reference)[0]}@sha256:{digest('digest', reference)}"],
        "Parent": "",
        "Comment": "",
        "Created": rfc3339_nano(created_ns),
        "Config": {"Env": [], "Cmd": None, "Labels": None},
        "Architecture": "amd64",
        "Os": "linux",
        "Size": 0,
        "VirtualSize": 0,
        "RootFS": {"Type": "layers", "Layers": [f"sha256:{digest('layer', reference)}"]},
    }


# -- list filters --------------------------------------------------------------------------


def check_list_filters(filters: Mapping[str, list[str]]) -> None:
    for key, values in filters.items():
        if key not in LIST_FILTERS:
            raise BadParameter(f"invalid filter '{key}'")
        if key == "status":
            for value in values:
                if value not in STATUSES:
                    raise BadParameter(f"invalid filter 'status={value}'")


def listed(state: ContainerState, filters: Mapping[str, list[str]], *, all_: bool) -> bool:
    """Whether `GET /containers/json` shows the container; a status filter implies all."""
    if not (all_ or state.running or "status" in filters):
        return False
    return all(_matches_filter(state, key, values) for key, values in filters.items())


def _matches_filter(state: ContainerState, key: str, values: list[str]) -> bool:
    if key == "label":
        return all(label_matches(state.spec.labels, value) for value in values)
    if key == "status":
        return state.status in values
    if key == "name":
        return any(re.search(value, f"/{state.name}") for value in values)
    if key == "id":
        return any(state.id.startswith(value) for value in values)
    if key == "exited":
        return state.status == "exited" and str(state.exit_code) in values
    return any(ancestor_matches(state.spec.image, value) for value in values)


def label_matches(labels: Mapping[str, str], wanted: str) -> bool:
    """A label filter value: "key" (present) or "key=value"."""
    key, equals, value = wanted.partition("=")
    if key not in labels:
        return False
    return not equals or labels[key] == value


def ancestor_matches(reference: str, wanted: str) -> bool:
    """`ancestor`: the image id (or a prefix), or repo:tag where no tag means ":latest"."""
    identifier = image_id(reference)
    if wanted.startswith("sha256:") or re.fullmatch(r"[0-9a-f]{12,64}", wanted):
        return identifier.removeprefix("sha256:").startswith(wanted.removeprefix("sha256:"))
    return split_reference(wanted) == split_reference(reference)
