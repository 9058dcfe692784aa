"""Checks of compose.yaml and .env.example, as functions that return the problems they find.

Each takes the parsed file (a dict, as PyYAML reads it, merge keys resolved), so the tests can
run them on the real file and on broken copies to prove every check can fail.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import yaml

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "compose.yaml"
ENV_EXAMPLE = REPO / ".env.example"

Compose = dict[str, Any]

# Host paths outside the repository a service may mount, and how.
HOST_MOUNTS = {"/var/run/docker.sock": "ro"}
# Environment variable names whose values are secrets (ACCESS_KEY_ID is a user name).
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|(^|_)KEY($|_)|(^|_)AUTH$")
NOT_SECRET_NAME = re.compile(r"_ID$")
# Literal credentials that must never sit in the file, whatever the key.
LITERAL_SECRET = re.compile(r"\b(sk-[A-Za-z0-9_-]{12,}|hf_[A-Za-z0-9]{12,}|pk-lf-[A-Za-z0-9-]{8,})")
INTERPOLATION = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)
LOOPBACK_BIND = re.compile(r"^(127\.0\.0\.1|\$\{[A-Z0-9_]+:-127\.0\.0\.1\}):")
CORE_SERVICES = ("agent", "prometheus", "grafana", "loki", "alloy", "litellm", "mcp")
LANGFUSE_SERVICES = (
    "langfuse-web",
    "langfuse-worker",
    "langfuse-postgres",
    "langfuse-clickhouse",
    "langfuse-redis",
    "langfuse-minio",
)


def load_compose(path: Path = COMPOSE_FILE) -> Compose:
    data = yaml.safe_load(path.read_text())
    assert isinstance(data, dict), f"{path} is not a mapping"
    return data


def compose_schema() -> dict[str, Any]:
    """The Compose specification's JSON Schema, as vendored by check-jsonschema (no network)."""
    text = (files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


def schema_problems(compose: Compose) -> list[str]:
    schema = compose_schema()
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    ]


def services(compose: Compose) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose.get("services") or {}
    return found


def walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, Mapping):
        for key, value in node.items():
            yield str(key)
            yield from walk_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_strings(item)


@dataclass(frozen=True)
class Reference:
    name: str
    required: bool  # compose stops when it is missing (`${X:?...}`, `${X?...}`, `${X}`)
    has_default: bool


def references(compose: Compose) -> list[Reference]:
    """Every ``${VAR}`` the file interpolates (``$$`` is a literal dollar)."""
    found: list[Reference] = []
    for text in walk_strings(compose):
        for match in INTERPOLATION.finditer(text.replace("$$", "")):
            name = match.group("name") or match.group("bare")
            op = match.group("op") or ""
            found.append(Reference(name, "?" in op or op == "", "-" in op))
    return found


def passthrough_names(compose: Compose) -> set[str]:
    """Environment entries without a value: compose passes .env's (or the shell's) through."""
    names: set[str] = set()
    for service in services(compose).values():
        environment = service.get("environment") or {}
        if isinstance(environment, Mapping):
            names |= {str(k) for k, v in environment.items() if v is None}
        else:
            names |= {str(item) for item in environment if "=" not in str(item)}
    return names


def environment_of(service: Mapping[str, Any]) -> dict[str, str | None]:
    environment = service.get("environment") or {}
    if isinstance(environment, Mapping):
        return {str(k): None if v is None else str(v) for k, v in environment.items()}
    pairs = (str(item).partition("=") for item in environment)
    return {name: value if sep else None for name, sep, value in pairs}


def _tag(image: str) -> str | None:
    if "@sha256:" in image:
        return "digest"
    _, _, last = image.rpartition("/")
    return last.partition(":")[2] or None


def image_problems(compose: Compose) -> list[str]:
    problems = []
    for name, service in services(compose).items():
        image = service.get("image")
        if image is None:
            problems.append(f"{name}: no image")
            continue
        tag = _tag(str(image))
        if "$" in str(image):
            problems.append(f"{name}: image {image} depends on the environment")
        elif tag is None or tag == "latest":
            problems.append(f"{name}: image {image} is not pinned (no tag, or latest)")
        elif tag != "digest" and not re.search(r"\d", tag):
            problems.append(f"{name}: image {image} has a moving tag ({tag})")
    return problems


def _volume_entries(service: Mapping[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(source, target, mode) of each volume entry; mode is "ro" or "rw"."""
    for entry in service.get("volumes") or []:
        if isinstance(entry, Mapping):
            mode = "ro" if entry.get("read_only") else "rw"
            yield str(entry.get("source", "")), str(entry.get("target", "")), mode
            continue
        parts = str(entry).split(":")
        if len(parts) == 1:
            yield "", parts[0], "rw"
        else:
            mode = "ro" if len(parts) > 2 and "ro" in parts[2].split(",") else "rw"
            yield parts[0], parts[1], mode


def mount_problems(compose: Compose, repo: Path = REPO) -> list[str]:
    problems = []
    declared = set((compose.get("volumes") or {}).keys())
    used: set[str] = set()
    for name, service in services(compose).items():
        for source, target, mode in _volume_entries(service):
            where = f"{name}: {source}:{target}"
            if source.startswith((".", "/")):
                if source.startswith("/"):
                    wanted = HOST_MOUNTS.get(source)
                    if wanted is None:
                        problems.append(f"{where} mounts a host path outside the repository")
                    elif mode != wanted:
                        problems.append(f"{where} must be mounted {wanted}")
                    continue
                if not (repo / source).exists():
                    problems.append(f"{where}: {source} does not exist in the repository")
                if mode != "ro":
                    problems.append(f"{where}: repository files are mounted read-only")
            elif source:
                used.add(source)
                if source not in declared:
                    problems.append(f"{where}: volume {source} is not declared")
    problems += [f"volume {v} is declared but no service uses it" for v in sorted(declared - used)]
    return problems


def health_and_restart_problems(compose: Compose) -> list[str]:
    problems = []
    for name, service in services(compose).items():
        check = service.get("healthcheck") or {}
        if check.get("disable") or not check.get("test"):
            problems.append(f"{name}: no healthcheck")
        if service.get("restart") != "unless-stopped":
            problems.append(f"{name}: restart is {service.get('restart')!r}, not unless-stopped")
    return problems


def is_reference(value: str) -> bool:
    """The whole value is ``${...}`` references and nothing else."""
    stripped = INTERPOLATION.sub("", value.replace("$$", ""))
    return stripped != value and not stripped.strip()


def secret_problems(compose: Compose) -> list[str]:
    problems = []
    for name, service in services(compose).items():
        for key, value in environment_of(service).items():
            if not SECRET_NAME.search(key) or NOT_SECRET_NAME.search(key):
                continue
            if value is not None and not is_reference(value):
                problems.append(f"{name}: {key} has a literal value; use ${{...}} from .env")
    problems += [
        f"a literal credential in compose.yaml: {m.group(0)[:6]}..."
        for text in walk_strings(compose)
        for m in LITERAL_SECRET.finditer(text)
    ]
    return problems


def port_problems(compose: Compose) -> list[str]:
    problems = []
    for name, service in services(compose).items():
        for port in service.get("ports") or []:
            text = str(port["published"] if isinstance(port, Mapping) else port)
            if name == "mcp" and not text.startswith("127.0.0.1:"):
                problems.append(f"mcp: port {text} must be published on 127.0.0.1 only")
            elif not LOOPBACK_BIND.match(text):
                problems.append(f"{name}: port {text} is not bound to loopback by default")
    return problems


@dataclass(frozen=True)
class EnvExample:
    defined: dict[str, str]  # NAME=value lines
    optional: set[str]  # "# NAME=" lines: documented, left unset
    undocumented: list[str]  # names with no comment above them


def parse_env_example(text: str) -> EnvExample:
    defined: dict[str, str] = {}
    optional: set[str] = set()
    undocumented: list[str] = []
    commented = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            commented = False
            continue
        match = re.fullmatch(r"(#\s*)?([A-Z][A-Z0-9_]*)=(.*)", line)
        if match is None:
            commented = line.startswith("#")
            continue
        name = match.group(2)
        if match.group(1):
            optional.add(name)
        else:
            defined[name] = match.group(3)
        if not commented:
            undocumented.append(name)
    return EnvExample(defined, optional, undocumented)


def env_example_problems(compose: Compose, env: EnvExample) -> list[str]:
    problems = [f".env.example: {name} has no comment" for name in env.undocumented]
    listed = set(env.defined) | env.optional
    refs = references(compose)
    for ref in refs:
        if ref.required and not ref.has_default and ref.name not in env.defined:
            problems.append(f".env.example does not define {ref.name}, which compose requires")
    used = {ref.name for ref in refs} | passthrough_names(compose)
    problems += [f".env.example does not list {n}" for n in sorted(used - listed)]
    problems += [
        f".env.example lists {n}, which compose.yaml does not use"
        for n in sorted(listed - used)
        if not n.startswith("COMPOSE_")
    ]
    problems += [
        f".env.example gives secret {n} a value; leave it empty"
        for n, v in env.defined.items()
        if SECRET_NAME.search(n) and not NOT_SECRET_NAME.search(n) and v.strip()
    ]
    problems += [
        f".env.example publishes on {v} by default ({n}); keep 127.0.0.1"
        for n, v in env.defined.items()
        if n.endswith("_BIND") and v != "127.0.0.1"
    ]
    profiles = {p for s in services(compose).values() for p in s.get("profiles") or []}
    wanted = {p for p in env.defined.get("COMPOSE_PROFILES", "").split(",") if p}
    problems += [f"COMPOSE_PROFILES names unknown profile {p}" for p in sorted(wanted - profiles)]
    return problems


def gpu_reservation(service: Mapping[str, Any]) -> list[dict[str, Any]]:
    devices: list[dict[str, Any]] = (
        ((service.get("deploy") or {}).get("resources") or {}).get("reservations") or {}
    ).get("devices") or []
    return [
        d
        for d in devices
        if d.get("driver") == "nvidia" and d.get("count") == "all" and "gpu" in d["capabilities"]
    ]
