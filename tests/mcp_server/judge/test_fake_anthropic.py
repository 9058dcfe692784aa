"""The fake speaks the API as the real SDK understands it (streams, JSON, tools, errors)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import anthropic
import pytest

from tests.fakes.anthropic import (
    FAKE_API_KEY,
    Answer,
    FailMidStream,
    FakeAnthropic,
    overloaded,
    rate_limited,
)

QUESTION = (
    '<expectation index="1">GPUs shown</expectation><expectation index="2">No errors</expectation>'
)


@pytest.fixture
async def client(fake_anthropic: FakeAnthropic) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(
        api_key=FAKE_API_KEY, base_url=fake_anthropic.url, max_retries=0
    ) as sdk:
        yield sdk


async def test_a_stream_yields_text_usage_and_stop_reason(
    fake_anthropic: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake_anthropic.script(Answer(verdicts=["fail", "pass"], input_tokens=321, output_tokens=45))
    async with client.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=100,
        messages=[{"role": "user", "content": QUESTION}],
    ) as stream:
        texts = [text async for text in stream.text_stream]
        message = await stream.get_final_message()

    assert len(texts) > 1
    assert [v["verdict"] for v in json.loads("".join(texts))["verdicts"]] == ["fail", "pass"]
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (321, 45)
    assert fake_anthropic.requests[0].expectations == ["GPUs shown", "No errors"]


async def test_a_plain_request_gets_a_json_message(
    fake_anthropic: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    message = await client.messages.create(
        model="claude-haiku-4-5", max_tokens=100, messages=[{"role": "user", "content": QUESTION}]
    )
    assert message.model == "claude-haiku-4-5"
    (block,) = message.content
    assert block.type == "text"
    assert len(json.loads(block.text)["verdicts"]) == 2


async def test_a_forced_tool_streams_its_input_as_json_deltas(
    fake_anthropic: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    async with client.messages.stream(
        model="claude-sonnet-4-6",
        max_tokens=100,
        messages=[{"role": "user", "content": QUESTION}],
        tools=[{"name": "verdicts", "input_schema": {"type": "object"}, "strict": True}],
        tool_choice={"type": "tool", "name": "verdicts"},
    ) as stream:
        message = await stream.get_final_message()

    (block,) = message.content
    assert block.type == "tool_use" and block.name == "verdicts"
    assert isinstance(block.input, dict)
    verdicts = block.input["verdicts"]
    assert isinstance(verdicts, list)
    assert [v["index"] for v in verdicts] == [1, 2]
    assert message.stop_reason == "tool_use"


async def test_errors_arrive_as_the_sdks_own_exceptions(
    fake_anthropic: FakeAnthropic, client: anthropic.AsyncAnthropic
) -> None:
    fake_anthropic.script(rate_limited(retry_after="7"), overloaded(), FailMidStream())
    messages: list[anthropic.types.MessageParam] = [{"role": "user", "content": QUESTION}]

    with pytest.raises(anthropic.RateLimitError) as limited:
        await client.messages.create(model="m", max_tokens=10, messages=messages)
    assert limited.value.response.headers["retry-after"] == "7"
    assert limited.value.type == "rate_limit_error"

    with pytest.raises(anthropic.OverloadedError):
        await client.messages.create(model="m", max_tokens=10, messages=messages)

    with pytest.raises(anthropic.APIStatusError) as mid_stream:
        async with client.messages.stream(model="m", max_tokens=10, messages=messages) as s:
            await s.get_final_message()
    assert mid_stream.value.status_code == 200
    assert mid_stream.value.type == "overloaded_error"


async def test_a_wrong_key_is_refused_and_nothing_leaks(fake_anthropic: FakeAnthropic) -> None:
    async with anthropic.AsyncAnthropic(
        api_key="sk-ant-other", base_url=fake_anthropic.url, max_retries=0
    ) as sdk:
        with pytest.raises(anthropic.AuthenticationError):
            await sdk.messages.create(
                model="m", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
            )
    assert fake_anthropic.leaks("sk-ant-other") == []
    assert fake_anthropic.leaks("hi") != []  # leaks() does look at bodies
