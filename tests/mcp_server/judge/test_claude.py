"""The judge end to end through the real anthropic client and the fake Anthropic server."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from mcp_server.judge import (
    BudgetExhausted,
    Judge,
    JudgeAPIError,
    JudgeDeadline,
    JudgeRejected,
    JudgeRequest,
    JudgeUnavailable,
    MissingAPIKey,
    PanelEvidence,
    RunBudget,
    VerdictCache,
)
from mcp_server.judge.images import MAX_ENCODED_BYTES, MAX_LONG_EDGE, MAX_PIXELS
from mcp_server.judge.pricing import price_of
from tests.fakes.anthropic import (
    FAKE_API_KEY,
    Answer,
    Fail,
    FailMidStream,
    FakeAnthropic,
    Hang,
    overloaded,
    rate_limited,
    server_error,
)
from tests.mcp_server.judge.conftest import MakeJudge, MakeSettings, VirtualTime, png
from tests.stack import free_port

EXPECTATIONS = (
    "Each GPU shows a utilization line between 0 and 100 percent",
    'No panel shows an error or "No data"',
    "KV cache usage stays below 90%",
)
PANELS = (
    PanelEvidence("GPU utilization", "ok", "4 series; last 37-82 %; min 12 %; max 97 %"),
    PanelEvidence("KV cache usage", "ok", "2 series; last 0.41, 0.58 (ratio)"),
)


def request(
    *, expectations: tuple[str, ...] = EXPECTATIONS, image: bytes | None = None
) -> JudgeRequest:
    return JudgeRequest(
        scenario="gpu-overview-healthy",
        expectations=expectations,
        images=[("dashboard", image or png(1600, 1000)), ("GPU utilization", png(800, 400))],
        panels=PANELS,
        context="dashboard: Inferwatch / GPUs; time: now-1h to now",
    )


async def test_verdicts_are_parsed_in_order_with_usage_and_cost(
    fake_anthropic: FakeAnthropic, make_judge: MakeJudge
) -> None:
    fake_anthropic.script(
        Answer(verdicts=["pass", "fail", "uncertain"], input_tokens=2400, output_tokens=180)
    )
    judge = make_judge()

    judgement = await judge.judge(request())

    assert [v.verdict for v in judgement.verdicts] == ["pass", "fail", "uncertain"]
    assert [v.expectation for v in judgement.verdicts] == list(EXPECTATIONS)
    assert all(v.reason and 0 <= v.confidence <= 1 for v in judgement.verdicts)
    assert not judgement.passed
    assert (judgement.input_tokens, judgement.output_tokens) == (2400, 180)
    assert judgement.cost_usd == pytest.approx(2400 * 3 / 1e6 + 180 * 15 / 1e6)
    assert judgement.price_known
    assert judgement.attempts == 1
    assert not judgement.cached
    assert 0 < judgement.image_tokens <= 1600 + 427  # dashboard + small panel, by pixels
    assert judge.budget.spent_usd == pytest.approx(judgement.cost_usd)
    assert judge.budget.reserved_usd == 0


async def test_streamed_text_is_forwarded_to_sync_and_async_callbacks(
    fake_anthropic: FakeAnthropic, make_judge: MakeJudge
) -> None:
    fake_anthropic.script(Answer(chunk_chars=16), Answer(chunk_chars=16))
    judge = make_judge()
    seen: list[str] = []
    awaited: list[str] = []

    async def progress(text: str) -> None:
        await asyncio.sleep(0)
        awaited.append(text)

    await judge.judge(request(), on_text=seen.append)
    await judge.judge(request(expectations=EXPECTATIONS[:1]), on_text=progress)

    assert len(seen) > 3
    assert [v["verdict"] for v in json.loads("".join(seen))["verdicts"]] == ["pass"] * 3
    assert json.loads("".join(awaited))["verdicts"][0]["index"] == 1


async def test_the_request_carries_prepared_images_expectations_and_panel_data(
    fake_anthropic: FakeAnthropic, make_judge: MakeJudge
) -> None:
    judge = make_judge()
    await judge.judge(request(image=png(3000, 2000)))

    (sent,) = fake_anthropic.requests
    assert sent.path == "/v1/messages"
    assert sent.body["model"] == "claude-sonnet-4-6"
    assert sent.body["stream"] is True
    assert sent.body["output_config"]["format"]["type"] == "json_schema"
    assert "Never invent" in sent.body["system"]
    assert sent.expectations == list(EXPECTATIONS)
    for panel in PANELS:
        assert panel.title in sent.text and panel.summary in sent.text
    assert "now-1h" in sent.text
    assert "Screenshot 1: dashboard" in sent.text
    assert [image.width for image in sent.images] == [1313, 800]
    for image in sent.images:
        assert max(image.width, image.height) <= MAX_LONG_EDGE
        assert image.width * image.height <= MAX_PIXELS
        assert image.base64_chars <= MAX_ENCODED_BYTES
        assert image.media_type in ("image/png", "image/jpeg")


async def test_the_api_key_travels_only_in_the_auth_header(
    fake_anthropic: FakeAnthropic, make_judge: MakeJudge
) -> None:
    judge = make_judge()
    await judge.judge(request())

    (sent,) = fake_anthropic.requests
    assert fake_anthropic.leaks(FAKE_API_KEY) == []
    carried = [v for k, v in sent.headers.items() if k in ("authorization", "x-api-key")]
    assert carried and all(FAKE_API_KEY in value for value in carried)
    assert FAKE_API_KEY not in repr(judge.settings)


async def test_rate_limits_honour_retry_after_up_to_the_cap(
    fake_anthropic: FakeAnthropic, make_judge: MakeJudge, virtual_time: VirtualTime
) -> None:
    # max_retry_after_seconds is 5 in these settings: 120 s is capped, 1.5 s is honoured.
    fake_anthropic.script(rate_limited(retry_after="120"), rate_limited(retry_after_ms="1500"))
    judge = make_judge()

    judgement = await judge.judge(request())

    assert virtual_time.slept == [5.0, 1.5]
    assert judgement.attempts == 3
    assert len(fake_anthropic.requests) == 3


async def test_overloaded_and_mid_stream_overload_are_retried_with_jittered_backoff(
    fake_anthropic: FakeAnthropic, make_judge: MakeJudge, virtual_time: VirtualTime
) -> None:
    fake_anthropic.script(overloaded(), FailMidStream("overloaded_error"), server_error())
    judge = make_judge()

    judgement = await judge.judge(request())

    assert judgement.attempts == 4
    assert [v.verdict for v in judgement.verdicts] == ["pass"] * 3
    # Full jitter: the n-th wait is uniform in [0, 1 s * 2^(n-1)].
    assert len(virtual_time.slept) == 3
    for n, delay in enumerate(virtual_time.slept, start=1):
        assert 0 <= delay <= 2 ** (n - 1)


async def test_attempts_run_out_as_unavailable(
    fake_anthropic: FakeAnthropic, make_judge: MakeJudge, judge_settings: MakeSettings
) -> None:
    fake_anthropic.default = overloaded()
    judge = make_judge(judge_settings(max_attempts=3))

    with pytest.raises(JudgeUnavailable, match="after 3 attempt"):
        await judge.judge(request())

    assert len(fake_anthropic.requests) == 3
    assert judge.budget.spent_usd == 0
    assert judge.budget.reserved_usd == 0


async def test_connection_errors_are_retried(
    make_judge: MakeJudge, judge_settings: MakeSettings, virtual_time: VirtualTime
) -> None:
    nothing_listens = f"http://127.0.0.1:{free_port()}"
    judge = make_judge(judge_settings(base_url=nothing_listens, max_attempts=2))

    with pytest.raises(JudgeUnavailable, match="connection error"):
        await judge.judge(request())
    assert len(virtual_time.slept) == 1


@pytest.mark.parametrize("hang", [Hang(after_start=True), Hang(after_start=False)])
async def test_a_hang_ends_at_the_deadline(
    fake_anthropic: FakeAnthropic, judge_settings: MakeSettings, hang: Hang
) -> None:
    fake_anthropic.script(hang)
    async with Judge(judge_settings(scenario_deadline_seconds=1.0), RunBudget(5.0)) as judge:
        started = time.monotonic()
        with pytest.raises(JudgeDeadline, match="within 1s"):
            await judge.judge(request())
        elapsed = time.monotonic() - started
    assert 0.9 <= elapsed < 3.0
    assert judge.budget.reserved_usd == 0


async def test_a_wait_past_the_deadline_ends_it_early(
    fake_anthropic: FakeAnthropic, make_judge: MakeJudge, judge_settings: MakeSettings
) -> None:
    fake_anthropic.script(rate_limited(retry_after="30"))
    settings = judge_settings(scenario_deadline_seconds=10.0, max_retry_after_seconds=60.0)
    judge = make_judge(settings)

    with pytest.raises(JudgeDeadline, match="429 rate_limit_error"):
        await judge.judge(request())
    assert len(fake_anthropic.requests) == 1


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (Answer(text='{"verdicts": [{"index": 1, "verdict": "pass"'), "not JSON"),
        (Answer(text="The dashboard looks fine."), "not JSON"),
        (Answer(verdicts=["pass", "pass"]), "2 verdict"),
        (Answer(verdicts=["pass", "pass", "pass", "fail"]), "4 verdict"),
        (Answer(verdicts=["pass", "maybe", "fail"]), "verdicts.1.verdict"),
        (Answer(confidence=1.5), "confidence"),
        (Answer(stop_reason="max_tokens"), "cut off"),
        (
            Answer(
                text=json.dumps(
                    {
                        "verdicts": [
                            {"index": i, "verdict": "pass", "confidence": 1, "reason": "x"}
                            for i in (2, 1, 3)
                        ]
                    }
                )
            ),
            "out of order",
        ),
    ],
)
async def test_a_reply_off_the_schema_is_rejected_never_a_pass(
    fake_anthropic: FakeAnthropic, make_judge: MakeJudge, answer: Answer, reason: str
) -> None:
    fake_anthropic.script(answer)
    judge = make_judge()

    with pytest.raises(JudgeRejected, match=reason):
        await judge.judge(request())
    assert len(fake_anthropic.requests) == 1
    assert judge.budget.spent_usd > 0  # the reply was billed even though it is useless


async def test_a_budget_of_zero_refuses_before_any_request(
    fake_anthropic: FakeAnthropic, make_judge: MakeJudge
) -> None:
    judge = make_judge(budget=0.0)

    with pytest.raises(BudgetExhausted, match="budget is 0 USD") as refused:
        await judge.judge(request())

    assert "INFERWATCH_JUDGE_BUDGET_USD" in str(refused.value)
    assert fake_anthropic.requests == []
    assert judge.budget.summary().refused == 1


async def test_the_budget_stops_calls_once_spent(
    fake_anthropic: FakeAnthropic, make_judge: MakeJudge
) -> None:
    # Each call reserves its worst case (2048 output tokens ~ $0.031 on Sonnet); the first
    # costs $0.045 in fact, after which the next reservation no longer fits in $0.06.
    fake_anthropic.default = Answer(input_tokens=5000, output_tokens=2000)
    judge = make_judge(budget=0.06)

    first = await judge.judge(request())
    with pytest.raises(BudgetExhausted, match=r"spent \$0\.04"):
        await judge.judge(request())

    assert first.cost_usd == pytest.approx(0.045)
    assert len(fake_anthropic.requests) == 1
    summary = judge.budget.summary()
    assert (summary.calls, summary.refused, summary.output_tokens) == (1, 1, 2000)


def test_no_api_key_is_refused_at_construction(judge_settings: MakeSettings) -> None:
    for missing in (None, "   "):
        with pytest.raises(MissingAPIKey, match="ANTHROPIC_API_KEY"):
            Judge(judge_settings(api_key=missing), RunBudget(5.0))


async def test_a_rejected_key_says_what_to_check_without_echoing_it(
    fake_anthropic: FakeAnthropic, make_judge: MakeJudge, judge_settings: MakeSettings
) -> None:
    wrong = "sk-ant-FAKE.wrong.key.never.echoed"
    judge = make_judge(judge_settings(api_key=wrong))

    with pytest.raises(JudgeAPIError, match="check ANTHROPIC_API_KEY") as refused:
        await judge.judge(request())

    assert wrong not in str(refused.value)
    assert len(fake_anthropic.requests) == 1  # a 401 is not retried


async def test_a_bad_request_is_not_retried(
    fake_anthropic: FakeAnthropic, make_judge: MakeJudge
) -> None:
    fake_anthropic.script(Fail(400, "invalid_request_error", "image exceeds 5 MB maximum"))
    judge = make_judge()

    with pytest.raises(JudgeAPIError, match="400 invalid_request_error: image exceeds"):
        await judge.judge(request())
    assert len(fake_anthropic.requests) == 1


async def test_an_unchanged_request_is_answered_from_the_cache(
    fake_anthropic: FakeAnthropic, make_judge: MakeJudge, tmp_path: Path
) -> None:
    cache = VerdictCache(tmp_path / "verdicts", ttl_seconds=3600)
    fake_anthropic.script(Answer(verdicts=["pass", "fail", "pass"]))
    judge = make_judge(cache=cache)

    fresh = await judge.judge(request())
    again = await judge.judge(request())

    assert len(fake_anthropic.requests) == 1
    assert again.cached and not fresh.cached
    assert again.verdicts == fresh.verdicts
    assert (again.input_tokens, again.output_tokens, again.cost_usd, again.attempts) == (0, 0, 0, 0)

    changed = await judge.judge(request(image=png(1600, 1000, colour=(200, 0, 0))))
    assert not changed.cached
    assert len(fake_anthropic.requests) == 2


async def test_a_cache_hit_needs_no_budget(
    fake_anthropic: FakeAnthropic, make_judge: MakeJudge, tmp_path: Path
) -> None:
    cache = VerdictCache(tmp_path / "verdicts", ttl_seconds=3600)
    await make_judge(cache=cache).judge(request())

    hit = await make_judge(budget=0.0, cache=cache).judge(request())
    assert hit.cached
    assert len(fake_anthropic.requests) == 1


async def test_an_unknown_model_is_priced_conservatively_and_flagged(
    fake_anthropic: FakeAnthropic, make_judge: MakeJudge, judge_settings: MakeSettings
) -> None:
    fake_anthropic.script(Answer(input_tokens=1000, output_tokens=100))
    judge = make_judge(judge_settings(model="claude-nova-9"))

    judgement = await judge.judge(request())

    assert not judgement.price_known
    assert judgement.cost_usd == pytest.approx(price_of("claude-nova-9").cost(1000, 100))
    assert judgement.cost_usd >= price_of("claude-opus-5").cost(1000, 100)


async def test_concurrent_calls_share_one_budget(
    fake_anthropic: FakeAnthropic, make_judge: MakeJudge
) -> None:
    fake_anthropic.default = Answer(input_tokens=1000, output_tokens=100, latency_seconds=0.2)
    judge = make_judge()

    judgements = await asyncio.gather(*(judge.judge(request()) for _ in range(6)))

    assert len(fake_anthropic.requests) == 6
    assert judge.budget.spent_usd == pytest.approx(sum(j.cost_usd for j in judgements))
    assert judge.budget.summary().calls == 6
