"""The judge: asks Claude whether screenshots meet a scenario's expectations.

One call per request: images prepared for vision, a streamed ``messages.stream`` call with
structured output, the streamed text forwarded to ``on_text``, our own retry policy around it,
the run budget reserved before and charged after, and the verdict cache consulted first.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType

import anthropic
import httpx2
from anthropic.types import ImageBlockParam, Message, TextBlockParam

from mcp_server.judge.budget import RunBudget
from mcp_server.judge.cache import VerdictCache, cache_key
from mcp_server.judge.errors import JudgeRejected, MissingAPIKey
from mcp_server.judge.images import PreparedImage, prepare_image
from mcp_server.judge.models import Judgement, JudgeRequest, Verdict
from mcp_server.judge.pricing import estimate_text_tokens, price_of
from mcp_server.judge.prompt import (
    PROMPT_VERSION,
    SYSTEM_PROMPT,
    output_config,
    parse_reply,
    question_text,
    user_content,
)
from mcp_server.judge.retry import Clock, RetryPolicy, Sleep, call_with_retries
from mcp_server.settings import JudgeSettings

OnText = Callable[[str], Awaitable[None] | None]

# The API adds its own instructions for structured output; count them in the estimate.
_STRUCTURED_OUTPUT_OVERHEAD_TOKENS = 500
_CONNECT_TIMEOUT_SECONDS = 10.0


class Judge:
    def __init__(
        self,
        settings: JudgeSettings,
        budget: RunBudget,
        *,
        cache: VerdictCache | None = None,
        sleep: Sleep = asyncio.sleep,
        clock: Clock = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        key = settings.api_key.get_secret_value().strip() if settings.api_key else ""
        if not key:
            raise MissingAPIKey()
        self._secret = key
        self.settings = settings
        self.budget = budget
        self.cache = cache
        self._sleep = sleep
        self._clock = clock
        self._policy = RetryPolicy(
            max_attempts=settings.max_attempts,
            deadline_seconds=settings.scenario_deadline_seconds,
            max_retry_after_seconds=settings.max_retry_after_seconds,
            rng=rng or random.Random(),
        )
        self._client = anthropic.AsyncAnthropic(
            api_key=key,
            base_url=settings.base_url,
            max_retries=0,  # ours, above: capped retry-after, deadline, mid-stream errors
            timeout=httpx2.Timeout(
                settings.scenario_deadline_seconds, connect=_CONNECT_TIMEOUT_SECONDS
            ),
        )

    @property
    def model(self) -> str:
        return self.settings.model

    async def judge(self, request: JudgeRequest, *, on_text: OnText | None = None) -> Judgement:
        """The verdicts for ``request``; raises a JudgeError when there is no valid verdict."""
        started = self._clock()
        key = None
        if self.cache is not None:
            key = cache_key(request, model=self.model, prompt_version=PROMPT_VERSION)
            entry = await asyncio.to_thread(self.cache.get, key)
            if entry is not None:
                return self._cached(entry.verdicts, started)

        images = await asyncio.to_thread(_prepare_all, request.images)
        content = user_content(request, images)
        price = price_of(self.model)
        reservation = self.budget.reserve(
            price.cost(self.estimate_input_tokens(request, images), self.settings.max_tokens)
        )
        try:
            message, attempts = await call_with_retries(
                lambda _attempt: self._stream(content, on_text),
                policy=self._policy,
                sleep=self._sleep,
                clock=self._clock,
                redact=self._redact,
            )
        except BaseException:
            reservation.release()
            raise
        usage = message.usage
        cost = price.cost(
            usage.input_tokens,
            usage.output_tokens,
            cache_write_tokens=usage.cache_creation_input_tokens or 0,
            cache_read_tokens=usage.cache_read_input_tokens or 0,
        )
        reservation.settle(cost, input_tokens=usage.input_tokens, output_tokens=usage.output_tokens)
        verdicts = _verdicts(message, request.expectations, self.settings.max_tokens)
        if self.cache is not None and key is not None:
            await asyncio.to_thread(self.cache.put, key, model=self.model, verdicts=verdicts)
        return Judgement(
            verdicts=verdicts,
            model=message.model or self.model,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=cost,
            price_known=price.known,
            image_tokens=sum(image.tokens for image in images),
            cached=False,
            attempts=attempts,
            duration_seconds=self._clock() - started,
        )

    def estimate_input_tokens(self, request: JudgeRequest, images: Sequence[PreparedImage]) -> int:
        """A generous count of what the request sends: images by pixels, text by length."""
        text = SYSTEM_PROMPT + question_text(request) + json.dumps(output_config())
        text += "".join(f"Screenshot 00: {image.label} (0000x0000 px)" for image in images)
        return (
            sum(image.tokens for image in images)
            + estimate_text_tokens(text)
            + _STRUCTURED_OUTPUT_OVERHEAD_TOKENS
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def __aenter__(self) -> Judge:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _stream(
        self, content: list[TextBlockParam | ImageBlockParam], on_text: OnText | None
    ) -> Message:
        async with self._client.messages.stream(
            model=self.model,
            max_tokens=self.settings.max_tokens,
            system=SYSTEM_PROMPT,
            messages=[{"role": "user", "content": content}],
            output_config=output_config(),
        ) as stream:
            async for event in stream:
                if event.type == "text" and on_text is not None:
                    forwarded = on_text(event.text)
                    if inspect.isawaitable(forwarded):
                        await forwarded
            return await stream.get_final_message()

    def _cached(self, verdicts: list[Verdict], started: float) -> Judgement:
        return Judgement(
            verdicts=verdicts,
            model=self.model,
            input_tokens=0,
            output_tokens=0,
            cost_usd=0.0,
            price_known=price_of(self.model).known,
            image_tokens=0,
            cached=True,
            attempts=0,
            duration_seconds=self._clock() - started,
        )

    def _redact(self, text: str) -> str:
        return text.replace(self._secret, "[redacted]")


def _prepare_all(images: Sequence[tuple[str, bytes]]) -> list[PreparedImage]:
    return [prepare_image(label, data) for label, data in images]


def _verdicts(message: Message, expectations: Sequence[str], max_tokens: int) -> list[Verdict]:
    if message.stop_reason == "max_tokens":
        raise JudgeRejected(
            f"the reply was cut off at {max_tokens} tokens (raise INFERWATCH_JUDGE_MAX_TOKENS)"
        )
    if message.stop_reason == "refusal":
        raise JudgeRejected("Claude declined to judge these screenshots")
    text = "".join(block.text for block in message.content if block.type == "text")
    if not text.strip():
        raise JudgeRejected("the reply had no text")
    return parse_reply(text, expectations)
