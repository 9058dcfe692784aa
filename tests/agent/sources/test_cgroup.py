from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from agent.sources.cgroup import container_id_for_pid

ID = "3f4e8c2a9b1d" + "0123456789abcdef" * 3 + "0a1b"  # 64 hex digits
OTHER = "a" * 64
POD = "pod8d3a4b2e-1f0c-4d5e-9a7b-6c5d4e3f2a1b"

CGROUP_FILES = {
    "docker v1 (cgroupfs)": (
        f"12:memory:/docker/{ID}\n11:devices:/docker/{ID}\n1:name=systemd:/docker/{ID}\n"
    ),
    "docker v2 (cgroupfs)": f"0::/docker/{ID}\n",
    "docker v2 (systemd)": f"0::/system.slice/docker-{ID}.scope\n",
    "docker v2 with systemd inside": f"0::/system.slice/docker-{ID}.scope/init.scope\n",
    "containerd (kubernetes, systemd)": (
        "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-"
        f"{POD.replace('-', '_')}.slice/cri-containerd-{ID}.scope\n"
    ),
    "cri-o": f"0::/kubepods.slice/kubepods-besteffort.slice/crio-{ID}.scope\n",
    "kubernetes v1 (cgroupfs)": f"4:memory:/kubepods/besteffort/{POD}/{ID}\n",
    "podman": f"0::/user.slice/user-1000.slice/libpod-{ID}.scope/container\n",
    "hybrid v1+v2": f"12:pids:/docker/{ID}\n0::/system.slice/docker-{ID}.scope\n",
    "docker-in-docker: the outer id": f"0::/docker/{ID}/docker/{OTHER}\n",
}

NO_CONTAINER = {
    "host process v2": "0::/user.slice/user-1000.slice/session-3.scope\n",
    "host process v1": "12:memory:/\n1:name=systemd:/init.scope\n",
    "cri-o monitor, not the container": f"0::/kubepods.slice/crio-conmon-{ID}.scope\n",
    "short id": "0::/docker/3f4e8c2a9b1d\n",
    "uppercase is not a docker id": f"0::/docker/{ID.upper()}\n",
    "empty": "",
}


def _proc_with(tmp_path: Path, pid: int, text: str) -> Path:
    (tmp_path / str(pid)).mkdir()
    (tmp_path / str(pid) / "cgroup").write_text(text)
    return tmp_path


@pytest.mark.parametrize("text", CGROUP_FILES.values(), ids=CGROUP_FILES.keys())
def test_container_id_is_found_in_every_runtime_layout(tmp_path: Path, text: str) -> None:
    assert container_id_for_pid(4242, _proc_with(tmp_path, 4242, text)) == ID


@pytest.mark.parametrize("text", NO_CONTAINER.values(), ids=NO_CONTAINER.keys())
def test_processes_outside_containers_have_no_id(tmp_path: Path, text: str) -> None:
    assert container_id_for_pid(4242, _proc_with(tmp_path, 4242, text)) is None


def test_a_vanished_or_invalid_pid_is_none(tmp_path: Path) -> None:
    assert container_id_for_pid(4242, tmp_path) is None
    assert container_id_for_pid(0, tmp_path) is None
    assert container_id_for_pid(-1) is None


@pytest.mark.parametrize("error", [PermissionError, ProcessLookupError, FileNotFoundError])
def test_a_process_that_cannot_be_read_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: type[OSError]
) -> None:
    # Root reads any file and a real exit races the read, so the errors are raised on purpose.
    proc = _proc_with(tmp_path, 4242, f"0::/docker/{ID}\n")

    def refuse(*args: object, **kwargs: object) -> None:
        raise error("refused")

    monkeypatch.setattr(Path, "open", refuse)
    assert container_id_for_pid(4242, proc) is None


def test_binary_garbage_does_not_raise(tmp_path: Path) -> None:
    (tmp_path / "7").mkdir()
    (tmp_path / "7" / "cgroup").write_bytes(b"\xff\xfe\x00::/docker/\x80\n")
    assert container_id_for_pid(7, tmp_path) is None


def test_this_process_real_cgroup_file_never_raises() -> None:
    found = container_id_for_pid(os.getpid())
    assert found is None or re.fullmatch(r"[0-9a-f]{64}", found)
    assert container_id_for_pid(os.getpid(), Path("/proc")) == found
