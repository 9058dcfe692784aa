"""A fake Hugging Face Hub: the model API, file trees and `config.json` downloads on loopback.

It serves what the Hub's REST API serves (FACTS.md, "Hugging Face Hub"), built from the reference
samples in `data/` (see `data/HUB.md`):

- `GET /api/models/{org}/{name}`: model info; `?blobs=true` adds `size`/`blobId`/`lfs` to
  `siblings`. Private or missing repos: 401 without a token, 404 with one (a valid token opens
  private repos); gated repos answer 200.
- `GET /api/models/{org}/{name}/tree/{revision}?recursive=true`: the file list (one page).
- `GET /{org}/{name}/resolve/{revision}/config.json`: the repo's `config.json`; files of gated
  repos need the valid token (401 without, 403 with another).
- A rate limit: `RateLimit: "api";r=<remaining>;t=<seconds>` on every answer, 429 with
  `Retry-After` once the window's quota is spent or while `rate_limit` forces it.

Faults (`Fault.ERROR_500`, `GARBAGE`, `HUGE`, `HANG`, `SLOW`, `REFUSE`) come from the shared
simulator plumbing. `FakeHubThread` serves it from a daemon thread for the demo. Independent of
the agent's sources by design.
"""

from __future__ import annotations

import copy
import json
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from aiohttp import web

from agent.simulator.background import BackgroundServer
from agent.simulator.config import Fault
from agent.simulator.faults import DEFAULT_FAULT_DELAY, Behaviour
from agent.simulator.http_common import (
    Handler,
    LoopbackServer,
    fault_middleware,
    json_response,
)

TARGET = "hub"
DEFAULT_TOKEN = "hf_simulatedHubToken0123456789"
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
QWEN_AWQ = "Qwen/Qwen2.5-7B-Instruct-AWQ"
PRIVATE = "acme-ai/private-chat-8b"
# The anonymous API quota: ~500 calls per 5-minute window.
QUOTA = 500
WINDOW_SECONDS = 300.0
BLOB_FIELDS = ("blobId", "size", "lfs")


@dataclass(frozen=True)
class HubModel:
    """One repo: its `/api/models` body (with `siblings` carrying blob fields), its
    `config.json` (None: the repo has none), and its file tree (None: derived from siblings)."""

    info: Mapping[str, Any]
    config: Mapping[str, Any] | None = None
    tree: Sequence[Mapping[str, Any]] | None = None

    @property
    def private(self) -> bool:
        return bool(self.info.get("private"))

    @property
    def gated(self) -> bool:
        return bool(self.info.get("gated"))

    @property
    def sha(self) -> str:
        return str(self.info.get("sha", ""))


def _template(file_name: str) -> Any:
    text = (resources.files("agent.simulator") / "data" / file_name).read_text(encoding="utf-8")
    return json.loads(text)


def hub_model(
    template: str,
    repo_id: str,
    *,
    config: str | None = None,
    tree: str | None = None,
    private: bool | None = None,
) -> HubModel:
    """A model from the sample files in `data/`, renamed to `repo_id`."""
    info = copy.deepcopy(_template(template))
    info.update(id=repo_id, modelId=repo_id, author=repo_id.split("/", 1)[0])
    if private is not None:
        info["private"] = private
    return HubModel(
        info=info,
        config=_template(config) if config else None,
        tree=_template(tree) if tree else None,
    )


def default_models() -> dict[str, HubModel]:
    """The simulator's served models (a gated BF16 Llama, a packed AWQ Qwen) and a private one."""
    return {
        LLAMA: hub_model(
            "hf-model_info-bf16.json", LLAMA, config="hf-config-llama-3.1-8b-instruct.json"
        ),
        QWEN_AWQ: hub_model(
            "hf-model_info-awq-4bit.json",
            QWEN_AWQ,
            config="hf-config-qwen2.5-7b-instruct-awq.json",
            tree="hf-tree-main-awq.json",
        ),
        PRIVATE: hub_model(
            "hf-model_info-bf16.json",
            PRIVATE,
            config="hf-config-llama-3.1-8b-instruct.json",
            private=True,
        ),
    }


@dataclass
class _RateWindow:
    """The fixed quota window, plus a forced 429 period (`FakeHub.rate_limit`)."""

    started: float
    used: int = 0
    forced_until: float = float("-inf")
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, now: float) -> tuple[int, float, float | None]:
        """Count one call: (remaining, seconds to reset, retry-after or None if allowed)."""
        with self.lock:
            if now - self.started >= WINDOW_SECONDS or now < self.started:
                self.started, self.used = now, 0
            self.used += 1
            reset = WINDOW_SECONDS - (now - self.started)
            remaining = max(0, QUOTA - self.used)
            if now < self.forced_until:
                return 0, self.forced_until - now, self.forced_until - now
            if self.used > QUOTA:
                return 0, reset, reset
            return remaining, reset, None


class FakeHub(LoopbackServer):
    """A running fake Hub; `url` is what `HF_ENDPOINT` is set to. Faults, the forced rate limit
    and counts may be set and read from any thread; `start`/`stop` run on the serving loop."""

    def __init__(
        self,
        models: Mapping[str, HubModel] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        token: str = DEFAULT_TOKEN,
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__(TARGET, "the fake Hub", host)
        self.models: dict[str, HubModel] = dict(default_models() if models is None else models)
        self.token = token
        self._clock = clock
        self._window = _RateWindow(started=clock())

    # -- what tests and the demo drive ---------------------------------------------------------

    def set_fault(self, fault: Fault, *, delay: float = DEFAULT_FAULT_DELAY) -> None:
        """Misbehave from the next request on. REFUSE must be set on the serving loop's thread."""
        if fault is Fault.UNAUTHORIZED:
            raise ValueError("UNAUTHORIZED does not apply to the Hub: call without a token")
        super().set_fault(fault, delay=delay)

    def rate_limit(self, seconds: float) -> None:
        """Answer 429 to every request for the next `seconds` (of the fake's clock)."""
        with self._window.lock:
            self._window.forced_until = self._clock() + seconds

    # -- the app -------------------------------------------------------------------------------

    def _app(self, behaviour: Behaviour) -> web.Application:
        app = web.Application(middlewares=[fault_middleware(TARGET, behaviour), self._limiter])
        app.router.add_get("/api/models/{org}/{name}", self._model_info)
        app.router.add_get("/api/models/{org}/{name}/tree/{revision}", self._tree)
        app.router.add_get("/{org}/{name}/resolve/{revision}/{path:.+}", self._resolve)
        return app

    @web.middleware
    async def _limiter(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        remaining, reset, retry_after = self._window.take(self._clock())
        seconds = max(1, math.ceil(reset))
        headers = {
            "RateLimit": f'"api";r={remaining};t={seconds}',
            "RateLimit-Policy": f'"fixed window";"api";q={QUOTA};w={int(WINDOW_SECONDS)}',
        }
        if retry_after is not None:
            headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
            return web.Response(
                status=429,
                text="You have exceeded our hourly quotas for action: api. Retry later.",
                headers=headers,
            )
        response = await handler(request)
        if not response.prepared:  # endless and streamed answers have sent their headers
            response.headers.update(headers)
        return response

    def _visible(self, request: web.Request) -> tuple[HubModel | None, web.Response | None]:
        """The repo, or the Hub's answer for a private or missing one."""
        repo_id = f"{request.match_info['org']}/{request.match_info['name']}"
        model = self.models.get(repo_id)
        token = _bearer(request)
        if model is not None and (not model.private or token == self.token):
            return model, None
        if token is None:
            return None, _error(401, "Invalid username or password.", "RepoNotFound")
        return None, _error(404, "Repository not found", "RepoNotFound")

    async def _model_info(self, request: web.Request) -> web.Response:
        model, refusal = self._visible(request)
        if model is None:
            assert refusal is not None
            return refusal
        info = copy.deepcopy(dict(model.info))
        if request.query.get("blobs", "").lower() not in ("1", "true"):
            info["siblings"] = [{"rfilename": s["rfilename"]} for s in info.get("siblings", [])]
        return json_response(info)

    async def _tree(self, request: web.Request) -> web.Response:
        model, refusal = self._visible(request)
        if model is None:
            assert refusal is not None
            return refusal
        if request.match_info["revision"] not in ("main", model.sha):
            return _error(404, "Invalid rev id", "RevisionNotFound")
        tree = model.tree if model.tree is not None else _tree_from_siblings(model.info)
        return json_response(list(tree))

    async def _resolve(self, request: web.Request) -> web.Response:
        model, refusal = self._visible(request)
        if model is None:
            assert refusal is not None
            return refusal
        token = _bearer(request)
        if model.gated and token != self.token:
            message = f"Access to model {model.info.get('id')} is restricted."
            return _error(401 if token is None else 403, message, "GatedRepo")
        if request.match_info["revision"] not in ("main", model.sha):
            return _error(404, "Invalid rev id", "RevisionNotFound")
        if request.match_info["path"] != "config.json" or model.config is None:
            return _error(404, "Entry not found", "EntryNotFound")
        return json_response(model.config)


class FakeHubThread(BackgroundServer[FakeHub]):
    """Runs a `FakeHub` on its own event loop in a daemon thread (the demo, sync tests)."""

    def __init__(
        self,
        models: Mapping[str, HubModel] | None = None,
        *,
        clock: Callable[[], float] = time.time,
        token: str = DEFAULT_TOKEN,
    ) -> None:
        super().__init__(
            FakeHub(models, clock=clock, token=token), "inferwatch-fake-hub", FakeHub.start
        )


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


def _error(status: int, message: str, code: str) -> web.Response:
    response = json_response({"error": message}, status=status)
    response.headers["X-Error-Code"] = code
    response.headers["X-Error-Message"] = message
    return response


def _tree_from_siblings(info: Mapping[str, Any]) -> list[dict[str, Any]]:
    """`tree/main` entries for a repo whose sample has no tree: files only, LFS as the Hub
    shows it (`lfs.oid` is the sha256)."""
    entries: list[dict[str, Any]] = []
    for sibling in info.get("siblings", []):
        entry: dict[str, Any] = {
            "type": "file",
            "oid": sibling.get("blobId", ""),
            "size": sibling.get("size", 0),
            "path": sibling["rfilename"],
        }
        lfs = sibling.get("lfs")
        if isinstance(lfs, Mapping):
            entry["lfs"] = {
                "oid": lfs.get("sha256"),
                "size": lfs.get("size"),
                "pointerSize": lfs.get("pointerSize"),
            }
        entries.append(entry)
    return entries
