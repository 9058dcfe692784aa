"""Every upstream's JSON parser, fed arbitrary JSON: it returns, or raises an UpstreamError.

Anything else (AttributeError, OverflowError...) would turn one odd answer into an "internal
error" with a traceback on every poll. The JSON is what ``json.loads`` can return: huge integers,
NaN and infinities included; objects favour the keys the parsers read, so the deep paths run.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from agent.sources import hf_facts, langfuse, litellm, vllm
from agent.sources.hf_facts import ModelFacts
from agent.upstream import Malformed, Reply, UpstreamError

KEYS = (
    # LiteLLM
    "data",
    "model_name",
    "litellm_params",
    "model_info",
    "model",
    "api_base",
    "id",
    "litellm_provider",
    "in_flight_requests",
    "admitted_requests",
    "queued_requests",
    "rejected_requests",
    "healthy_endpoints",
    "unhealthy_endpoints",
    "model_id",
    # vLLM
    "root",
    "parent",
    "max_model_len",
    "version",
    # Langfuse
    "providedModelName",
    "time_dimension",
    "count_count",
    "sum_inputTokens",
    "sum_outputTokens",
    "sum_totalTokens",
    "sum_totalCost",
    "name",
    "timestamp",
    "dataType",
    "value",
    "meta",
    "totalItems",
    "totalPages",
    "cursor",
    # Hub
    "sha",
    "siblings",
    "rfilename",
    "size",
    "safetensors",
    "total",
    "parameters",
    "config",
    "quantization_config",
    "quant_method",
    "bits",
    "w_bit",
    "gguf",
    "context_length",
    "architectures",
    "model_type",
    "max_position_embeddings",
    "text_config",
    "cardData",
    "license",
    "gated",
    "private",
    "pipeline_tag",
    "architecture",
    "I32",
    "BF16",
)
STRINGS = st.sampled_from(
    [
        "",
        "I32",
        "NUMERIC",
        "BOOLEAN",
        "CATEGORICAL",
        "awq",
        "gptq",
        "model.safetensors",
        "x.gguf",
        "auto",
        "manual",
        "2024-05-01",
        "2024-05-01T12:00:00.000Z",
        "1e400",
        "NaN",
        "http://u:p@h:1/v1",
        "http://h:abc",
        "http://[::1",
        "hosted_vllm/x",
        "-1",
        "3",
    ]
) | st.text(max_size=12)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([0, 1, -1, 4, 8, 32, 2**63, 10**400, -(10**400)])
    | st.floats(allow_nan=True, allow_infinity=True)
    | STRINGS
)
# A value where a parser expects one: mostly scalars, sometimes a small list or object.
FIELD = (
    SCALARS
    | st.lists(SCALARS, max_size=3)
    | st.dictionaries(st.sampled_from(KEYS), SCALARS, max_size=3)
)
OBJECTS = st.dictionaries(st.sampled_from(KEYS), FIELD, max_size=6)
JSON: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=8,
)
WHERE = "http://upstream.test/x"


def returns_or_raises_upstream_error(call: Callable[[], object]) -> object:
    try:
        return call()
    except UpstreamError:
        return None


# -- LiteLLM -----------------------------------------------------------------------------------


@given(st.one_of(JSON, st.fixed_dictionaries({"data": st.lists(OBJECTS, max_size=4)})))
@example({"data": [{"model_name": "m", "litellm_params": {"api_base": "http://vllm:${PORT}/v1"}}]})
@example({"data": [{"model_name": "m", "litellm_params": {"api_base": "http://u:p@[::1"}}]})
@example({"data": [{"model_name": "m", "litellm_params": {"api_base": "u:p@vllm:8000"}}]})
def test_litellm_model_info(payload: Any) -> None:
    models = returns_or_raises_upstream_error(lambda: litellm.parse_model_info(payload, WHERE))
    for model in models if isinstance(models, list) else []:
        assert ":p@" not in model.api_base  # credentials in api_base never survive


@given(st.one_of(JSON, OBJECTS))
@example({"queued_requests": 10**400})
def test_litellm_backlog(payload: Any) -> None:
    family = returns_or_raises_upstream_error(lambda: litellm.backlog_family(payload, WHERE))
    for sample in getattr(family, "samples", []):
        assert math.isfinite(sample.value) or math.isnan(sample.value)


@given(
    st.one_of(
        JSON,
        st.fixed_dictionaries(
            {
                "healthy_endpoints": st.lists(OBJECTS, max_size=3),
                "unhealthy_endpoints": st.lists(OBJECTS, max_size=3) | JSON,
            }
        ),
    )
)
@example({"healthy_endpoints": [{"model": "m", "api_base": "http://h:abc"}]})
def test_litellm_deployment_health(payload: Any) -> None:
    returns_or_raises_upstream_error(lambda: litellm.deployment_health_family(payload, [], WHERE))


# -- vLLM --------------------------------------------------------------------------------------


@given(st.one_of(JSON, st.fixed_dictionaries({"data": st.lists(OBJECTS, max_size=4)})))
@example({"data": [{"id": "m", "max_model_len": 10**400}]})
@example({"data": [{"id": "m", "max_model_len": True}]})
def test_vllm_models(payload: Any) -> None:
    cards = returns_or_raises_upstream_error(lambda: vllm.parse_models(payload, WHERE))
    for card in cards if isinstance(cards, list) else []:
        assert isinstance(card.id, str) and isinstance(card.root, str)
        length = card.max_model_len
        assert length is None or (isinstance(length, int) and 0 < length < 2**63)


@given(st.one_of(JSON, OBJECTS))
def test_vllm_version(payload: Any) -> None:
    version = returns_or_raises_upstream_error(lambda: vllm.parse_version(payload, WHERE))
    assert version is None or (isinstance(version, str) and version)


# -- Langfuse ----------------------------------------------------------------------------------


@given(st.one_of(JSON, st.lists(OBJECTS, max_size=4)))
@example([{"providedModelName": "m", "sum_totalCost": 10**400}])
@example([{"providedModelName": "m", "sum_totalCost": float("inf")}])
def test_langfuse_usage_rows(rows: Any) -> None:
    parsed = returns_or_raises_upstream_error(lambda: langfuse.usage_rows(rows, WHERE))
    for _, model, values in parsed if isinstance(parsed, list) else []:
        assert isinstance(model, str)
        assert all(v is None or math.isfinite(v) for v in values.values())


@given(JSON)
@example(10**400)
@example(float("nan"))
@example(-float("inf"))
@example("1e400")
def test_langfuse_number(value: Any) -> None:
    number = returns_or_raises_upstream_error(lambda: langfuse.number(value, "x"))
    assert number is None or (isinstance(number, float) and math.isfinite(number))


@given(st.one_of(JSON, st.lists(OBJECTS, max_size=5)))
@example(
    [{"name": "s", "timestamp": "2024-05-01T10:00:00Z", "dataType": "NUMERIC", "value": 10**400}]
)
def test_langfuse_scores(items: Any) -> None:
    windows = langfuse.Windows.at(datetime(2024, 5, 1, 12, tzinfo=UTC))
    scores = langfuse.Scores()
    returns_or_raises_upstream_error(lambda: scores.add_page(items, windows, WHERE))
    for stats in scores.stats.values():
        assert stats.values <= stats.count
        assert math.isfinite(stats.total)


# -- Hugging Face Hub --------------------------------------------------------------------------

HUB_INFO = st.fixed_dictionaries(
    {"sha": STRINGS},
    optional={
        "siblings": st.lists(OBJECTS, max_size=4) | JSON,
        "safetensors": OBJECTS | JSON,
        "config": OBJECTS | JSON,
        "gguf": OBJECTS | JSON,
        "cardData": OBJECTS | JSON,
        "gated": JSON,
        "private": JSON,
        "pipeline_tag": JSON,
    },
)


@given(st.one_of(JSON, HUB_INFO))
def test_hub_model_info(payload: Any) -> None:
    info = returns_or_raises_upstream_error(lambda: hf_facts.check_model_info(payload, WHERE))
    assert info is None or (isinstance(info, dict) and isinstance(info["sha"], str))


@given(HUB_INFO | OBJECTS, st.none() | OBJECTS)
def test_hub_facts_derive_and_survive_the_cache(info: dict[str, Any], config: Any) -> None:
    facts = hf_facts.derive(info, config)
    # The disk cache stores facts as JSON and reads them back with from_json.
    stored = json.dumps(facts.as_json(), allow_nan=False)
    assert ModelFacts.from_json(json.loads(stored)) == facts


@given(JSON, OBJECTS, OBJECTS, OBJECTS)
@example([{"rfilename": "a.safetensors", "size": 2**70}], {}, {}, {})
@example(None, {"total": 2**70, "parameters": {"I32": 2**70}}, {"bits": 4}, {})
def test_hub_weights_and_parameters(
    siblings: Any, safetensors: dict[str, Any], quant: dict[str, Any], gguf: dict[str, Any]
) -> None:
    weights = hf_facts.weights_bytes(siblings)
    assert weights is None or (isinstance(weights, int) and weights >= 0)
    parameters = hf_facts.parameter_count(safetensors, weights, quant, gguf)
    assert parameters is None or (isinstance(parameters, int) and parameters >= 0)
    float(parameters or 0)  # exported as a sample value: must fit a float


# -- the bytes before the parsers --------------------------------------------------------------


@given(st.binary(max_size=64) | st.sampled_from([b"[" * 100_000, b'{"a":' * 50_000, b"1" * 5000]))
def test_reply_json_of_arbitrary_bytes(body: bytes) -> None:
    reply = Reply(200, body, "application/json")
    with contextlib.suppress(Malformed):
        reply.json(WHERE)
