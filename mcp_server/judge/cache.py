"""Verdicts already given, on disk, so an unchanged dashboard is not sent to Claude again.

The key covers everything the verdict depends on: the model, the prompt version, the scenario's
expectations (in order), every screenshot's content hash with its label, each panel's title, state
and data summary, and the context. The panel summaries belong in the key because the judge reads
them: the same pixels with different data under them (a value just under vs. over a threshold that
the screenshot rounds) can deserve a different verdict. The scenario name does not: two scenarios
asking the same of the same screenshots share the answer.

One JSON file per entry, written atomically (temp file + rename) so concurrent runs and pytest-xdist
workers never read half a file. Entries expire after the TTL; past ``max_entries`` the oldest go.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ValidationError

from mcp_server.judge.models import JudgeRequest, Verdict
from mcp_server.settings import JudgeSettings

_SUFFIX = ".json"


class CacheEntry(BaseModel):
    key: str
    model: str
    stored_at: float
    verdicts: list[Verdict]


def cache_key(request: JudgeRequest, *, model: str, prompt_version: str) -> str:
    material = {
        "model": model,
        "prompt": prompt_version,
        "expectations": list(request.expectations),
        "images": [[label, hashlib.sha256(data).hexdigest()] for label, data in request.images],
        "panels": [[p.title, p.state, p.summary] for p in request.panels],
        "context": request.context,
    }
    canonical = json.dumps(material, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class VerdictCache:
    def __init__(
        self,
        directory: Path,
        *,
        ttl_seconds: float,
        max_entries: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.directory = directory
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: JudgeSettings) -> VerdictCache:
        return cls(
            settings.cache_dir,
            ttl_seconds=settings.cache_ttl_seconds,
            max_entries=settings.cache_max_entries,
        )

    def get(self, key: str) -> CacheEntry | None:
        """The entry, if present, readable and younger than the TTL; otherwise None."""
        path = self._path(key)
        try:
            entry = CacheEntry.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValidationError):
            _remove(path)  # unreadable: as good as absent
            return None
        if entry.key != key or self._clock() - entry.stored_at >= self.ttl_seconds:
            _remove(path)
            return None
        return entry

    def put(self, key: str, *, model: str, verdicts: list[Verdict]) -> None:
        if self.ttl_seconds <= 0:
            return
        entry = CacheEntry(key=key, model=model, stored_at=self._clock(), verdicts=verdicts)
        self.directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(entry.model_dump_json().encode("utf-8"))
            # The file's age is the entry's age (eviction sorts by it without reading files).
            os.utime(temporary, (entry.stored_at, entry.stored_at))
            Path(temporary).replace(self._path(key))
        except BaseException:
            _remove(Path(temporary))
            raise
        self._evict()

    def __len__(self) -> int:
        return sum(1 for _ in self._entries())

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}{_SUFFIX}"

    def _entries(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return [p for p in self.directory.iterdir() if p.suffix == _SUFFIX and p.name[0] != "."]

    def _evict(self) -> None:
        entries = self._entries()
        excess = len(entries) - self.max_entries
        if excess <= 0:
            return
        by_age: list[tuple[float, Path]] = []
        for path in entries:
            with contextlib.suppress(OSError):
                by_age.append((path.stat().st_mtime, path))
        for _, path in sorted(by_age)[:excess]:
            _remove(path)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()
