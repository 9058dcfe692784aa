"""A real dockerd for the tests, with all its state in one temporary folder (recipe: FACTS.md).

No registry is reachable, so images are built locally from a static busybox. A no-op
``nvidia-container-runtime-hook`` on dockerd's PATH lets it accept NVIDIA device requests, so
containers carry the same ``HostConfig.DeviceRequests`` a GPU host's would.
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import tarfile
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

BUSYBOX = Path("/bin/busybox")
APPLETS = (
    "sh",
    "sleep",
    "echo",
    "cat",
    "touch",
    "test",
    "[",
    "true",
    "seq",
    "printf",
    "yes",
    "head",
)
IMAGES = ("vllm/vllm-openai:v0.11.0", "vllm/vllm-openai:latest", "example/tool:1.0")


@dataclass
class Dockerd:
    root: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self) -> docker.DockerClient:
        return docker.DockerClient(base_url=self.url, version="auto", timeout=30)

    def start(self) -> None:
        hooks = self.root / "bin"
        hooks.mkdir(exist_ok=True)
        hook = hooks / "nvidia-container-runtime-hook"
        hook.write_text("#!/bin/sh\nexit 0\n")
        hook.chmod(0o755)
        env = {**os.environ, "PATH": f"{hooks}:{os.environ.get('PATH', '')}"}
        log = (self.root / "dockerd.log").open("ab")
        self.process = subprocess.Popen(
            [
                "dockerd",
                f"--data-root={self.root / 'data'}",
                f"--exec-root={self.root / 'exec'}",
                f"--pidfile={self.root / 'dockerd.pid'}",
                f"--host={self.url}",
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--storage-driver=overlay2",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"dockerd exited: {(self.root / 'dockerd.log').read_text()[-2000:]}"
                )
            try:
                with closing(self.client()) as client:
                    client.ping()
                return
            except docker.errors.DockerException:
                time.sleep(0.1)
        raise TimeoutError("dockerd did not answer /_ping within 30 s")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def build_images(self) -> None:
        with closing(self.client()) as client:
            rootfs = _busybox_rootfs()
            for reference in IMAGES:
                repository, tag = reference.rsplit(":", 1)
                client.api.import_image(
                    src=rootfs, repository=repository, tag=tag, changes=['CMD ["/bin/sh"]']
                )

    def remove_all_containers(self) -> None:
        with closing(self.client()) as client:
            for container in client.containers.list(all=True):
                container.remove(force=True)


def _busybox_rootfs() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(str(BUSYBOX), arcname="bin/busybox")
        for applet in APPLETS:
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type = tarfile.SYMTYPE
            link.linkname = "busybox"
            tar.addfile(link)
        tmp = tarfile.TarInfo("tmp")
        tmp.type = tarfile.DIRTYPE
        tmp.mode = 0o1777
        tar.addfile(tmp)
    return buffer.getvalue()


def available() -> str | None:
    """Why a dockerd cannot run here, or None when it can."""
    if shutil.which("dockerd") is None:
        return "dockerd is not installed: run scripts/install-system-deps.sh (make test does)"
    if not BUSYBOX.exists():
        return "/bin/busybox is missing: apt-get install busybox-static"
    if os.geteuid() != 0:
        return "dockerd needs root"
    return None


def start_dockerd(root: Path) -> Dockerd:
    reason = available()
    if reason:
        pytest.skip(reason)
    daemon = Dockerd(root)
    daemon.start()
    daemon.build_images()
    return daemon


def run(client: docker.DockerClient, image: str, name: str, command: str, **options: Any) -> Any:
    """A detached container without networking (dockerd runs with --bridge=none)."""
    options.setdefault("network_mode", "none")
    return client.containers.run(
        image, ["/bin/sh", "-c", command], detach=True, name=name, **options
    )
