"""The Hub lookups on disk: one JSON file per model, so a restart makes no Hub call.

Files live in ``<cache_dir>/huggingface/``, named by a sanitised prefix of the model id plus a hash
of the whole id: no id (``../../etc/passwd``, spaces, unicode) can name a path outside the folder,
and two ids never share a file. Writes are atomic (temporary file + rename); a file that cannot be
read back as an entry for that model is ignored (and overwritten by the next lookup).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.sources.hf_facts import ModelFacts

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
SUBDIR = "huggingface"
MAX_FILE_BYTES = 1024 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass(frozen=True, slots=True)
class Lookup:
    """The Hub's answer about one model: its facts, or why there are none (``error``)."""

    model: str
    fetched_at: float
    facts: ModelFacts | None = None
    error: str | None = None
    auth: str = ""
    """:func:`token_fingerprint` of the HF_TOKEN sent ("" for none): a refusal to one token
    says nothing about another."""

    def __post_init__(self) -> None:
        if (self.facts is None) == (self.error is None):
            raise ValueError("a lookup has either facts or an error")

    def as_json(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "model": self.model,
            "fetched_at": self.fetched_at,
            "facts": self.facts.as_json() if self.facts else None,
            "error": self.error,
            "auth": self.auth,
        }

    @classmethod
    def from_json(cls, payload: Any, model: str) -> Lookup:
        """Raises ``ValueError`` unless ``payload`` is an entry written for ``model``."""
        if not isinstance(payload, dict) or payload.get("version") != FORMAT_VERSION:
            raise ValueError("not a cache entry of this version")
        if payload.get("model") != model:
            raise ValueError("an entry for another model")
        fetched_at, facts, error = payload.get("fetched_at"), payload.get("facts"), payload["error"]
        if not isinstance(fetched_at, int | float) or isinstance(fetched_at, bool):
            raise ValueError("fetched_at is not a time")
        if error is not None and not isinstance(error, str):
            raise ValueError("error is not a string")
        if facts is not None and not isinstance(facts, Mapping):
            raise ValueError("facts is not an object")
        if not isinstance(payload.get("auth"), str):
            raise ValueError("auth is not a string")
        return cls(
            model=model,
            fetched_at=float(fetched_at),
            facts=ModelFacts.from_json(facts) if facts is not None else None,
            error=error,
            auth=payload["auth"],
        )

    def fresh(self, now: float, ttl: float, *, auth: str) -> bool:
        """Young enough to reuse. A fetch time in the future (the clock went back) counts as
        expired, and so does a refusal (or facts missing a refused config.json) made with
        another token than ``auth`` (or none)."""
        refused = self.error is not None or (self.facts is not None and self.facts.config_error)
        if refused and self.auth != auth:
            return False
        return 0.0 <= now - self.fetched_at < ttl


def token_fingerprint(token: str | None) -> str:
    """Tells tokens apart without storing them: a truncated, salted SHA-256 ("" for none)."""
    if not token:
        return ""
    return hashlib.sha256(b"inferwatch-hf-token:" + token.encode()).hexdigest()[:16]


def file_name(model: str) -> str:
    """A file name for ``model`` that is one path component inside the cache folder."""
    readable = _UNSAFE.sub("_", model.replace("/", "--")).strip("._-")[:64] or "model"
    digest = hashlib.sha256(model.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    return f"{readable}.{digest}.json"


class HubCache:
    """Lookups by model id, on disk under ``<cache_dir>/huggingface/``."""

    def __init__(self, cache_dir: Path) -> None:
        self.directory = cache_dir / SUBDIR

    def path_for(self, model: str) -> Path:
        path = self.directory / file_name(model)
        if path.parent != self.directory:  # file_name never allows it; kept as a guard
            raise ValueError(f"cache path of {model!r} leaves {self.directory}")
        return path

    def load(self, model: str) -> Lookup | None:
        """The stored lookup, or None when absent or unreadable (logged, never raised)."""
        path = self.path_for(model)
        try:
            with path.open("rb") as file:
                raw = file.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            log.warning("Hub cache: cannot read %s: %s", path, exc)
            return None
        try:
            if len(raw) > MAX_FILE_BYTES:
                raise ValueError("larger than any entry")
            return Lookup.from_json(json.loads(raw), model)
        except (ValueError, KeyError, UnicodeDecodeError) as exc:
            log.warning("Hub cache: ignoring corrupt %s (%s); it will be rewritten", path, exc)
            return None

    def store(self, lookup: Lookup) -> None:
        """Write atomically; a failure is logged (the lookup stays in memory) and not raised."""
        path = self.path_for(lookup.model)
        body = json.dumps(lookup.as_json(), ensure_ascii=False, sort_keys=True).encode()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-", suffix=".json")
            try:
                with os.fdopen(fd, "wb") as file:
                    file.write(body)
                Path(tmp).replace(path)
            except BaseException:
                with contextlib.suppress(OSError):
                    Path(tmp).unlink()
                raise
        except OSError as exc:
            log.warning("Hub cache: cannot write %s: %s", path, exc)
