"""Every setting of the agent: one pydantic-settings model per concern.

Upstream connections use the variable names that upstream's own tools use (``LITELLM_URL``,
``VLLM_URLS``...); the agent's own settings start with ``INFERWATCH_``. Each model reads the
environment, then an optional env file (``.env`` or ``--config FILE``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, get_args

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ALL_SOURCES = ("litellm", "vllm", "docker", "nvml", "langfuse", "huggingface")


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _default_litellm_url() -> str:
    return f"http://localhost:{os.environ.get('LITELLM_PORT', '4000')}"


class _Base(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _empty_secret_is_unset(cls, value: Any, info: ValidationInfo) -> Any:
        """``HF_TOKEN=`` (an empty line in .env, a compose pass-through) means no secret: sending
        an empty one would turn "anonymous" into "refused"."""
        field = cls.model_fields.get(info.field_name or "")
        if value == "" and field is not None and SecretStr in get_args(field.annotation):
            return None
        return value


class AgentSettings(_Base):
    """The agent's own settings (``INFERWATCH_*``)."""

    model_config = SettingsConfigDict(env_prefix="INFERWATCH_")

    listen: str = "0.0.0.0:9470"
    poll_interval_seconds: float = Field(30.0, gt=0)
    model_list_ttl_seconds: float = Field(300.0, ge=0)
    hf_cache_ttl_seconds: float = Field(86400.0, ge=0)
    cache_dir: Path = Path.home() / ".cache" / "inferwatch"
    sources: Annotated[list[str], NoDecode] = Field(default_factory=lambda: list(ALL_SOURCES))
    gpu_metrics: str = "dcgm"
    # Hard limits that keep one bad upstream from hurting the rest.
    http_timeout_seconds: float = Field(5.0, gt=0)
    job_timeout_seconds: float | None = Field(
        None, gt=0, description="hard cap per collection; default 0.8 x the interval"
    )
    max_response_bytes: int = Field(64 * 1024 * 1024, gt=0)
    # Samples one poll of one source may add to the exposition; the rest is dropped and counted.
    max_series_per_source: int = Field(200_000, gt=0)
    jitter_seconds: float = Field(1.0, ge=0)

    _split_sources = field_validator("sources", mode="before")(_split_csv)

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, value: list[str]) -> list[str]:
        unknown = sorted(set(value) - set(ALL_SOURCES))
        if unknown:
            raise ValueError(
                f"unknown source(s) {', '.join(unknown)}; known: {', '.join(ALL_SOURCES)}"
            )
        return value

    @field_validator("gpu_metrics")
    @classmethod
    def _gpu_dialect(cls, value: str) -> str:
        if value not in ("dcgm", "off"):
            raise ValueError("must be 'dcgm' or 'off'")
        return value

    @property
    def listen_host(self) -> str:
        host, _, _ = self.listen.rpartition(":")
        return host.strip("[]") or "0.0.0.0"

    @property
    def listen_port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    def job_timeout_for(self, interval: float) -> float:
        return self.job_timeout_seconds or max(1.0, 0.8 * interval)


class LiteLLMSettings(_Base):
    """Connection to the LiteLLM proxy."""

    url: str = Field(
        default_factory=_default_litellm_url, validation_alias=AliasChoices("LITELLM_URL")
    )
    api_key: SecretStr | None = Field(None, validation_alias=AliasChoices("LITELLM_API_KEY"))
    health_checks: bool = Field(
        False,
        validation_alias=AliasChoices("INFERWATCH_LITELLM_HEALTH_CHECKS"),
        description="poll LiteLLM's /health, which sends a real completion to every deployment",
    )
    poll_interval_seconds: float | None = Field(
        None, gt=0, validation_alias=AliasChoices("INFERWATCH_LITELLM_POLL_INTERVAL_SECONDS")
    )


class VLLMSettings(_Base):
    """Static vLLM endpoints (Docker discovery adds more at run time)."""

    urls: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias=AliasChoices("VLLM_URLS")
    )
    image_patterns: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["vllm/vllm-openai"],
        validation_alias=AliasChoices("VLLM_IMAGE_PATTERNS"),
    )
    poll_interval_seconds: float | None = Field(
        None, gt=0, validation_alias=AliasChoices("INFERWATCH_VLLM_POLL_INTERVAL_SECONDS")
    )

    _split = field_validator("urls", "image_patterns", mode="before")(_split_csv)

    @field_validator("urls")
    @classmethod
    def _normalise_urls(cls, value: list[str]) -> list[str]:
        seen: dict[str, None] = {}
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http(s) URL")
            seen[url.rstrip("/")] = None
        return list(seen)


class DockerSettings(_Base):
    """The Docker Engine the agent reads containers from."""

    docker_host: str | None = Field(None, validation_alias=AliasChoices("DOCKER_HOST"))
    containers: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["*"],
        validation_alias=AliasChoices("INFERWATCH_DOCKER_CONTAINERS"),
        description="glob patterns of container names whose resources are exported",
    )
    log_bytes_per_cycle: int = Field(
        1024 * 1024, gt=0, validation_alias=AliasChoices("INFERWATCH_DOCKER_LOG_BYTES_PER_CYCLE")
    )
    poll_interval_seconds: float | None = Field(
        None, gt=0, validation_alias=AliasChoices("INFERWATCH_DOCKER_POLL_INTERVAL_SECONDS")
    )

    _split = field_validator("containers", mode="before")(_split_csv)


def _default_langfuse_host() -> str:
    return f"http://localhost:{os.environ.get('LANGFUSE_PORT', '3000')}"


class LangfuseSettings(_Base):
    """Connection to Langfuse's public API."""

    host: str = Field(
        default_factory=_default_langfuse_host, validation_alias=AliasChoices("LANGFUSE_HOST")
    )
    public_key: SecretStr | None = Field(None, validation_alias=AliasChoices("LANGFUSE_PUBLIC_KEY"))
    secret_key: SecretStr | None = Field(None, validation_alias=AliasChoices("LANGFUSE_SECRET_KEY"))
    max_pages: int = Field(50, ge=1, validation_alias=AliasChoices("INFERWATCH_LANGFUSE_MAX_PAGES"))
    poll_interval_seconds: float = Field(
        300.0, gt=0, validation_alias=AliasChoices("INFERWATCH_LANGFUSE_POLL_INTERVAL_SECONDS")
    )


class HuggingFaceSettings(_Base):
    """The Hugging Face Hub (or a mirror) the model facts come from."""

    endpoint: str = Field("https://huggingface.co", validation_alias=AliasChoices("HF_ENDPOINT"))
    token: SecretStr | None = Field(None, validation_alias=AliasChoices("HF_TOKEN"))
    poll_interval_seconds: float | None = Field(
        None, gt=0, validation_alias=AliasChoices("INFERWATCH_HF_POLL_INTERVAL_SECONDS")
    )
    max_fetches_per_poll: int = Field(
        10, ge=2, validation_alias=AliasChoices("INFERWATCH_HF_MAX_FETCHES_PER_POLL")
    )


class Settings:
    """All settings models, loaded from the environment and an optional env file."""

    def __init__(self, env_file: Path | None = None, **overrides: Any) -> None:
        files: tuple[Path, ...] = (Path(".env"),) if env_file is None else (Path(".env"), env_file)
        self.agent = AgentSettings(_env_file=files, **overrides.get("agent", {}))
        self.litellm = LiteLLMSettings(_env_file=files, **overrides.get("litellm", {}))
        self.vllm = VLLMSettings(_env_file=files, **overrides.get("vllm", {}))
        self.docker = DockerSettings(_env_file=files, **overrides.get("docker", {}))
        self.langfuse = LangfuseSettings(_env_file=files, **overrides.get("langfuse", {}))
        self.huggingface = HuggingFaceSettings(_env_file=files, **overrides.get("huggingface", {}))
