"""Which container a host process runs in, read from ``/proc/<pid>/cgroup``.

NVML reports host PIDs; the container is the 64-hex id in the process's cgroup path, whatever
the cgroup version and runtime:

- cgroup v1 (cgroupfs driver): ``12:memory:/docker/<id>``, ``/kubepods/burstable/pod<uid>/<id>``
- cgroup v2 (systemd driver): ``0::/system.slice/docker-<id>.scope``,
  ``.../cri-containerd-<id>.scope`` (containerd), ``.../crio-<id>.scope`` (CRI-O),
  ``.../libpod-<id>.scope`` (Podman)

The agent must see host paths (``pid: host`` and ``cgroup: host`` when it runs in a container).
"""

from __future__ import annotations

import re
from pathlib import Path

_MAX_BYTES = 64 * 1024
# One path component naming a container. ``crio-conmon-<id>.scope`` (CRI-O's monitor process,
# not the container) does not match: the id must follow the runtime prefix directly.
_CONTAINER_COMPONENT = re.compile(
    r"(?:(?:docker|cri-containerd|crio|libpod)-)?(?P<id>[0-9a-f]{64})(?:\.scope)?"
)


def container_id_for_pid(pid: int, proc: Path = Path("/proc")) -> str | None:
    """The 64-hex id of the container ``pid`` runs in; None when the process is gone, cannot be
    read, or runs outside any container. Never raises for a vanished or foreign process."""
    if pid <= 0:
        return None
    try:
        with (proc / str(pid) / "cgroup").open("rb") as file:
            text = file.read(_MAX_BYTES).decode("utf-8", "replace")
    except OSError:  # FileNotFoundError, ProcessLookupError (exited), PermissionError
        return None
    return container_id_in_cgroup(text)


def container_id_in_cgroup(text: str) -> str | None:
    """The first container id in a cgroup file's ``hierarchy:controllers:path`` lines.

    The outermost id wins: with Docker-in-Docker it is the one the host's engine knows.
    """
    for line in text.splitlines():
        path = line.split(":", 2)[-1]
        for component in path.split("/"):
            match = _CONTAINER_COMPONENT.fullmatch(component)
            if match:
                return match["id"]
    return None
