"""No secret the agent holds appears in anything it outputs.

Recognizable fake secrets are seeded into every secret setting (LITELLM_API_KEY,
LANGFUSE_PUBLIC_KEY/SECRET_KEY, HF_TOKEN) and as ``user:password@`` in VLLM_URLS and
LITELLM_URL; the upstreams accept them. The agent polls them healthy, failing in every way, and
answering errors that echo the request back (its Authorization header, cookies and URL). After
each round, /metrics (both formats), every /api/v1/* route, and every log record (DEBUG, every
logger, httpx and httpcore included) are searched for the secrets, raw and as they travel
(``Bearer``, the Basic-auth base64 of ``user:password``).
"""

from __future__ import annotations

import base64
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.app import Agent
from agent.upstream import redact_url
from tests.agent.faults.stack import KINDS, UPSTREAMS, Secrets, Upstreams, upstreams
from tests.fakes.http import serve

SECRETS = Secrets(
    litellm_key="sk-SEEDED-litellm-key-7f3a9c",
    langfuse_public="pk-lf-SEEDED-public-51be",
    langfuse_secret="sk-lf-SEEDED-secret-93d0",
    hf_token="hf_SEEDEDhubToken8842",
)
VLLM_USERINFO = ("vllmuser", "SEEDED-vllm-pass-1c2d")
LITELLM_USERINFO = ("lluser", "SEEDED-litellm-pass-3e4f")
ROUTES = ("/metrics", "/api/v1/sources", "/api/v1/models", "/api/v1/gpus", "/api/v1/containers")


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


NEEDLES = (
    SECRETS.litellm_key,
    SECRETS.langfuse_public,
    SECRETS.langfuse_secret,
    SECRETS.hf_token,
    _basic(SECRETS.langfuse_public, SECRETS.langfuse_secret),
    VLLM_USERINFO[1],
    LITELLM_USERINFO[1],
    _basic(*VLLM_USERINFO),
    _basic(*LITELLM_USERINFO),
    "SEEDED",  # any part of any of them
)


def with_userinfo(url: str, user: str, password: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{user}:{password}@{rest}"


@pytest.fixture(scope="module")
def stack() -> Iterator[Upstreams]:
    with upstreams(SECRETS) as running:
        yield running


def seeded_agent(stack: Upstreams, litellm_url: str, vllm_url: str, **urls: str) -> Agent:
    settings = stack.settings(http_timeout_seconds=0.5, job_timeout_seconds=2)
    settings.litellm = settings.litellm.model_copy(
        update={"url": with_userinfo(litellm_url, *LITELLM_USERINFO)}
    )
    settings.vllm = settings.vllm.model_copy(
        update={"urls": [with_userinfo(vllm_url, *VLLM_USERINFO)]}
    )
    if urls:
        settings.langfuse = settings.langfuse.model_copy(update={"host": urls["langfuse"]})
        settings.huggingface = settings.huggingface.model_copy(
            update={"endpoint": urls["huggingface"]}
        )
    return Agent(settings, nvml_binding=lambda: stack.nvml, container_for_pid=stack.owners.get)


@contextlib.asynccontextmanager
async def serving(agent: Agent) -> AsyncIterator[str]:
    server = agent.start_http("127.0.0.1", 0)
    try:
        yield server.url
    finally:
        server.shutdown()
        server.server_close()
        await agent.aclose()


async def outputs(url: str) -> str:
    """Everything the agent serves, in one text."""
    texts = []
    async with httpx.AsyncClient(timeout=10) as http:
        for route in ROUTES:
            texts.append((await http.get(url + route)).text)
        om = await http.get(url + "/metrics", headers={"Accept": "application/openmetrics-text"})
        texts.append(om.text)
    return "\n".join(texts)


def assert_no_secret(where: str, text: str) -> None:
    found = [needle for needle in NEEDLES if needle in text]
    assert not found, f"{where} shows {found}"


def logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every record as a handler would write it, exceptions and their causes included."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(record) for record in caplog.records)


async def test_no_secret_in_outputs_healthy_or_failing(
    stack: Upstreams, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    simulator = stack.simulator
    agent = seeded_agent(stack, simulator.litellm_url, simulator.vllm_urls[0])
    async with serving(agent) as url:
        await agent.poller.poll_in_order(agent.sources)
        records = agent.store.records()
        # The seeded credentials work: these sources are up, so their secrets were used.
        assert all(records[name].latest.up for name in ("vllm", "langfuse", "huggingface"))  # type: ignore[union-attr]
        assert_no_secret("healthy outputs", await outputs(url))
        for kind in KINDS:
            for upstream in UPSTREAMS:
                stack.fault(upstream, kind)
            await agent.poller.poll_in_order(agent.sources)
            stack.heal_all()
            assert_no_secret(f"outputs with every upstream {kind}", await outputs(url))
    assert_no_secret("the logs", logged(caplog))


async def echo(request: web.Request) -> web.Response:
    """An upstream that refuses the request and tells what it received, credentials first
    (the agent shows the first 200 bytes of an error body)."""
    headers = sorted(request.headers.items(), key=lambda item: item[0].lower() != "authorization")
    body = "refused: " + "; ".join(f"{name}: {value}" for name, value in headers)
    body += f"; {request.method} {request.url}"
    return web.Response(status=401 if "hub" in request.path else 500, text=body)


async def test_no_secret_from_upstreams_that_echo_the_request(
    stack: Upstreams, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = web.Application()
    app.router.add_route("*", "/{path:.*}", echo)
    async with serve(app) as echoing:
        agent = seeded_agent(
            stack, echoing, echoing, langfuse=echoing, huggingface=echoing + "/hub"
        )
        async with serving(agent) as url:
            await agent.poller.poll_in_order(agent.sources)
            errors = [r.latest.error for r in agent.store.records().values() if r.latest]
            assert any("refused" in (e or "") for e in errors)  # the echo reached the errors
            assert_no_secret("outputs", await outputs(url))
    assert_no_secret("the logs", logged(caplog))


USERINFO = st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~", min_size=1)
REST = st.sampled_from(["h", "h:8000", "h:abc", "[::1]:80", "[::1", "h:99999"]).flatmap(
    lambda host: st.sampled_from(["", "/v1", "/v1?key=k", "#f"]).map(lambda tail: host + tail)
)


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(st.sampled_from(["http://", "https://", ""]), USERINFO, USERINFO, REST)
def test_redacted_urls_never_keep_a_password(
    scheme: str, user: str, password: str, rest: str
) -> None:
    """What labels, the JSON API and error messages show of a URL (redact_url; fetch's own
    description of where it failed uses it too) never raises and never keeps the userinfo,
    even when the rest of the URL does not parse."""
    url = f"{scheme}{user}:SEEDED{password}@{rest}"
    shown = redact_url(url)
    assert "SEEDED" not in shown and "@" not in shown


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(st.text(max_size=40))
def test_redact_url_of_any_text(text: str) -> None:
    assert isinstance(redact_url(text), str)
