"""What the Hub's answers say about a model: pure derivations, no I/O (FACTS.md, "Hub").

- weights bytes: the sum of the ``*.safetensors`` / ``*.gguf`` sizes in ``siblings`` (from
  ``?blobs=true``), not ``usedStorage`` (which counts every revision and every file);
- parameters: ``safetensors.total``, unpacked for int-packed quantized weights (see
  :func:`parameter_count`);
- quantization: ``quant_method`` of ``quantization_config`` (API ``config`` first, then
  ``config.json``), ``"gguf"`` for GGUF repos, ``"none"`` when neither says anything;
- context length: ``gguf.context_length``, else ``max_position_embeddings`` of ``config.json``
  (top level, then ``text_config`` for multimodal configs);
- architecture: ``architectures[0]``, else ``model_type``; license: ``cardData.license``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, TypeGuard

from agent.upstream import Malformed

WEIGHT_SUFFIXES = (".safetensors", ".gguf")
# Sub-byte integer weights (AWQ, GPTQ, compressed-tensors "pack-quantized") are stored as int32
# tensors holding 32 / bits values each; safetensors counts the int32 elements.
PACKED_DTYPES = ("I32",)
PACKING_METHODS = frozenset({"awq", "gptq", "compressed-tensors"})
DEFAULT_PACKED_BITS = 4
# Hub repo ids: "org/name", ASCII letters, digits, "-", "_", "." (no "--"/".." nor a leading
# or trailing "-"/"."), at most 96 characters per part.
_PART = r"(?![.-])(?!.*(?:--|\.\.))[A-Za-z0-9_.-]{1,96}(?<![.-])"
_REPO_ID = re.compile(rf"{_PART}/{_PART}")
LOCAL_PATH = "a local path, not a Hub repo"
NOT_A_REPO = "not an org/name Hub repo id"


def not_a_repo_id(model: str) -> str | None:
    """Why ``model`` cannot be looked up on the Hub, or None when it is a repo id."""
    if model.startswith(("/", "./", "../", "~")) or "\\" in model or model in (".", ".."):
        return LOCAL_PATH
    if _REPO_ID.fullmatch(model) is None:
        return NOT_A_REPO
    return None


@dataclass(frozen=True, slots=True)
class ModelFacts:
    """The derived description of one repo; None where the Hub does not say."""

    sha: str
    quantization: str
    architecture: str
    license: str
    gated: str
    private: bool
    pipeline_tag: str
    parameters: int | None
    weights_bytes: int | None
    context_length: int | None
    config_error: str | None = None
    """Why ``config.json`` could not be read (gated, missing), when it could not."""

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> ModelFacts:
        """The inverse of :meth:`as_json`; raises ``ValueError`` on anything else."""
        try:
            facts = cls(**payload)
        except TypeError as exc:
            raise ValueError(str(exc)) from None
        for name in ("sha", "quantization", "architecture", "license", "gated", "pipeline_tag"):
            if not isinstance(getattr(facts, name), str):
                raise ValueError(f"{name} is not a string")
        for name in ("parameters", "weights_bytes", "context_length"):
            if not _is_count(getattr(facts, name)) and getattr(facts, name) is not None:
                raise ValueError(f"{name} is not a count")
        if facts.config_error is not None and not isinstance(facts.config_error, str):
            raise ValueError("config_error is not a string")
        if not isinstance(facts.private, bool):
            raise ValueError("private is not a boolean")
        return facts


def check_model_info(payload: Any, where: str) -> dict[str, Any]:
    """The ``/api/models/{id}`` body as an object with a ``sha``; raises :class:`Malformed`."""
    if not isinstance(payload, dict):
        raise Malformed(f"{where}: expected an object, got {type(payload).__name__}")
    if not isinstance(payload.get("sha"), str) or not payload["sha"]:
        raise Malformed(f"{where}: no sha (a revision is needed to read config.json)")
    return payload


def derive(
    info: Mapping[str, Any], config: Mapping[str, Any] | None, config_error: str | None = None
) -> ModelFacts:
    """Model facts from the model info and its ``config.json`` (None: not readable, because of
    ``config_error``)."""
    api_config = _object(info.get("config"))
    full_config = config or {}
    quant = _object(api_config.get("quantization_config")) or _object(
        full_config.get("quantization_config")
    )
    gguf = _object(info.get("gguf"))
    weights = weights_bytes(info.get("siblings"))
    return ModelFacts(
        sha=str(info.get("sha", "")),
        quantization=quantization(quant, gguf, config_known=config is not None),
        architecture=architecture(api_config, full_config, gguf),
        license=_license(_object(info.get("cardData")).get("license")),
        gated=_gated(info.get("gated")),
        private=info.get("private") is True,
        pipeline_tag=str(info.get("pipeline_tag") or ""),
        parameters=parameter_count(_object(info.get("safetensors")), weights, quant, gguf),
        weights_bytes=weights,
        context_length=context_length(full_config, gguf),
        config_error=config_error,
    )


def weights_bytes(siblings: Any) -> int | None:
    """Sum of the weight files' sizes; None when the listing has no sizes (no ``blobs=true``)."""
    if not isinstance(siblings, list):
        return None
    total, found = 0, False
    for sibling in siblings:
        if not isinstance(sibling, dict):
            continue
        if str(sibling.get("rfilename", "")).endswith(WEIGHT_SUFFIXES):
            size = sibling.get("size")
            if not _is_count(size):
                return None  # listed without sizes: unknown, not smaller
            total, found = total + size, True
    return total if found else None


def parameter_count(
    safetensors: Mapping[str, Any],
    weights: int | None,
    quant: Mapping[str, Any],
    gguf: Mapping[str, Any],
) -> int | None:
    """Logical parameters. ``safetensors.total`` counts stored elements, so int-packed weights
    (AWQ/GPTQ int4: 8 values per I32) under-count ~8x; the I32 elements are unpacked
    (x ``32 / bits``) when

    - the quantization packs small ints (its ``bits``/``w_bit``, else 4 for AWQ, GPTQ,
      compressed-tensors), and
    - the weight bytes agree: after unpacking, the model needs less than twice the packed width
      per parameter (int4: < 1 byte; the rest is scales and unquantized embeddings). More bytes
      than that mean most weights are not packed ints, and the stored count is kept.
    """
    total = safetensors.get("total")
    if not _is_count(total):
        gguf_total = gguf.get("total")
        return gguf_total if _is_count(gguf_total) else None
    parameters = _object(safetensors.get("parameters"))
    packed = 0
    for dtype, count in parameters.items():
        if dtype in PACKED_DTYPES and _is_count(count):
            packed += count
    bits = _packed_bits(quant)
    if not packed or bits is None or weights is None:
        return total
    unpacked = total + packed * (32 // bits - 1)
    return unpacked if weights / unpacked < 2 * bits / 8 else total


def _packed_bits(quant: Mapping[str, Any]) -> int | None:
    bits = quant.get("bits", quant.get("w_bit"))
    if _is_count(bits) and 0 < bits <= 8 and 32 % bits == 0:
        return bits
    method = str(quant.get("quant_method", "")).lower()
    return DEFAULT_PACKED_BITS if method in PACKING_METHODS else None


def quantization(quant: Mapping[str, Any], gguf: Mapping[str, Any], *, config_known: bool) -> str:
    method = quant.get("quant_method")
    if isinstance(method, str) and method:
        return method.lower()
    if gguf:
        return "gguf"
    # Without config.json (gated, missing) the API config alone cannot rule quantization out.
    return "none" if config_known else "unknown"


def architecture(
    api_config: Mapping[str, Any], config: Mapping[str, Any], gguf: Mapping[str, Any]
) -> str:
    for source in (api_config, config):
        names = source.get("architectures")
        if isinstance(names, list) and names and isinstance(names[0], str):
            return names[0]
    for value in (api_config.get("model_type"), config.get("model_type"), gguf.get("architecture")):
        if isinstance(value, str) and value:
            return value
    return ""


def context_length(config: Mapping[str, Any], gguf: Mapping[str, Any]) -> int | None:
    for value in (
        gguf.get("context_length"),
        config.get("max_position_embeddings"),
        _object(config.get("text_config")).get("max_position_embeddings"),
    ):
        if _is_count(value) and value > 0:
            return value
    return None


def _license(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value) if value else ""


def _gated(value: Any) -> str:
    return value if value in ("auto", "manual") else "false"


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _is_count(value: Any) -> TypeGuard[int]:
    # Below 2**63: the Hub's own integers, and what a sample value (a float) can hold.
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**63
