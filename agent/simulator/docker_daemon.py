"""The fake daemon's state: its host, its containers, their lifecycle and the events it emits.

Not thread-safe: `FakeDockerAPI` runs every call on the server's event loop.
"""

from __future__ import annotations

import random
import socket
from collections.abc import Callable, Iterable

from agent.simulator.docker_events import EventHub, container_event
from agent.simulator.docker_state import ContainerState, FakeContainer, ancestor_matches
from agent.simulator.docker_stats import HostSpec
from agent.simulator.docker_wire import NANOS, to_nanos

HOST_NCPU = 32
HOST_MEM_TOTAL = 270_050_480_128  # 251.5 GiB, what a 256 GB machine reports
HOST_UPTIME_SECONDS = 12 * 86400
SIGTERM = "15"
SIGKILL = "9"


class NoSuchObject(LookupError):
    """An unknown container or image; its message is dockerd's."""

    def __init__(self, kind: str, reference: str) -> None:
        super().__init__(f"No such {kind}: {reference}")
        self.message = f"No such {kind}: {reference}"


class Daemon:
    """Containers by name, lifecycle operations that emit dockerd's events, and the clock."""

    def __init__(self, containers: Iterable[FakeContainer], clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last_ns = 0
        now_ns = self.now_ns()
        self.host = HostSpec(
            ncpu=HOST_NCPU,
            mem_total=HOST_MEM_TOTAL,
            boot_ns=now_ns - HOST_UPTIME_SECONDS * NANOS,
            name=socket.gethostname(),
        )
        self.hub = EventHub()
        self._containers: dict[str, ContainerState] = {}
        for spec in containers:
            self._install_existing(spec, now_ns)

    def now_ns(self) -> int:
        """The clock in nanoseconds; never goes back, even if the clock does."""
        self._last_ns = max(self._last_ns, to_nanos(self._clock()))
        return self._last_ns

    def _install_existing(self, spec: FakeContainer, now_ns: int) -> None:
        """A container that has been up (or exited) for a while when the daemon starts."""
        uptime = random.Random(f"uptime:{spec.name}").uniform(3600.0, 8 * 3600.0)
        state = self._new_state(spec, now_ns - to_nanos(uptime + 2.5))
        state.start(now_ns - to_nanos(uptime))
        if not spec.running:
            state.stop(now_ns - to_nanos(uptime / 3), exit_code=0)

    def _new_state(self, spec: FakeContainer, created_ns: int) -> ContainerState:
        if spec.name in self._containers:
            raise ValueError(f"a container named {spec.name!r} already exists")
        state = ContainerState.create(spec, created_ns)
        self._containers[spec.name] = state
        return state

    # -- lookups -------------------------------------------------------------------------------

    @property
    def containers(self) -> list[ContainerState]:
        """Newest first, as `docker ps` lists them."""
        return sorted(self._containers.values(), key=lambda state: -state.created_ns)

    def lookup(self, reference: str) -> ContainerState:
        """dockerd's order: a full id, a name (with or without "/"), then a unique id prefix."""
        states = self._containers.values()
        for state in states:
            if state.id == reference:
                return state
        named = self._containers.get(reference.removeprefix("/"))
        if named is not None:
            return named
        prefixed = [state for state in states if reference and state.id.startswith(reference)]
        if len(prefixed) != 1:
            raise NoSuchObject("container", reference)
        return prefixed[0]

    def image(self, reference: str) -> tuple[str, int]:
        """The image reference `reference` names (a reference or an id) and when it was made."""
        for state in self.containers:
            if ancestor_matches(state.spec.image, reference):
                return state.spec.image, state.created_ns - 86400 * NANOS
        raise NoSuchObject("image", reference)

    def _named(self, name: str) -> ContainerState:
        state = self._containers.get(name)
        if state is None:
            raise KeyError(f"no container named {name!r}")
        return state

    # -- lifecycle -----------------------------------------------------------------------------

    def _emit(self, state: ContainerState, action: str, **extra: str) -> None:
        self.hub.publish(container_event(state, action, self.now_ns(), extra))

    def add(self, spec: FakeContainer) -> None:
        """Create (and, if `spec.running`, start) a container now."""
        state = self._new_state(spec, self.now_ns())
        self._emit(state, "create")
        if spec.running:
            state.start(self.now_ns())
            self._emit(state, "start")

    def start(self, name: str) -> None:
        state = self._named(name)
        if not state.running:
            state.start(self.now_ns())
            self._emit(state, "start")

    def stop(self, name: str, exit_code: int = 0) -> None:
        """`docker stop`: SIGTERM, the process exits with `exit_code`."""
        state = self._named(name)
        if state.running:
            self._emit(state, "kill", signal=SIGTERM)
            state.stop(self.now_ns(), exit_code)
            self._emit(state, "die", exitCode=str(exit_code))
            self._emit(state, "stop")

    def restart(self, name: str, exit_code: int = 137) -> None:
        """A restart by the restart policy: the process dies, the container starts again."""
        state = self._named(name)
        if state.running:
            state.stop(self.now_ns(), exit_code)
            self._emit(state, "die", exitCode=str(exit_code))
        state.restart_count += 1
        state.start(self.now_ns())
        self._emit(state, "start")

    def remove(self, name: str) -> None:
        """`docker rm -f`: SIGKILL if it runs, then destroy."""
        state = self._named(name)
        if state.running:
            self._emit(state, "kill", signal=SIGKILL)
            state.stop(self.now_ns(), 137)
            self._emit(state, "die", exitCode="137")
        del self._containers[name]
        self._emit(state, "destroy")

    def append_log(self, name: str, text: str, stream: str) -> None:
        self._named(name).logs.add(self.now_ns(), stream, text)
