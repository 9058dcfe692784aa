"""Settings of the MCP server and the scenario harness, one pydantic-settings model per concern.

Upstream connections use the names their own tools use (``PROMETHEUS_URL``, ``GRAFANA_URL``,
``ANTHROPIC_API_KEY``...); our own settings start with ``INFERWATCH_``. Each model reads the
environment, then ``.env`` (and ``--config FILE`` when given).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


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


def _strip_slash(value: Any) -> Any:
    return value.rstrip("/") if isinstance(value, str) else value


class ServerSettings(_Base):
    """How the MCP server listens (``INFERWATCH_MCP_*``)."""

    model_config = SettingsConfigDict(env_prefix="INFERWATCH_MCP_")

    transport: str = "stdio"
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    # Required when the HTTP transport binds to anything but loopback.
    token: SecretStr | None = None
    # Extra Host/Origin values to accept besides loopback and the bound address (comma-separated;
    # ``host:*`` / ``scheme://host:*`` accept any port).
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=list)
    allowed_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_request_bytes: int = Field(1024 * 1024, gt=0)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"

    @field_validator("transport")
    @classmethod
    def _known_transport(cls, value: str) -> str:
        if value not in ("stdio", "streamable-http"):
            raise ValueError("must be 'stdio' or 'streamable-http'")
        return value

    @field_validator("allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _split_csv(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value


class UpstreamSettings(_Base):
    """The agent's JSON API and Prometheus' HTTP API."""

    agent_url: str = Field(
        "http://127.0.0.1:9470",
        validation_alias=AliasChoices("INFERWATCH_AGENT_URL", "agent_url"),
    )
    prometheus_url: str = Field(
        "http://127.0.0.1:9090",
        validation_alias=AliasChoices("PROMETHEUS_URL", "prometheus_url"),
    )
    http_timeout_seconds: float = Field(
        10.0,
        gt=0,
        validation_alias=AliasChoices("INFERWATCH_HTTP_TIMEOUT_SECONDS", "http_timeout_seconds"),
    )
    # Limits on query_prometheus: a range query may span at most this long and return at most
    # this many points per series (step is raised to fit, or the query is refused).
    max_range_seconds: float = Field(
        7 * 86400.0,
        gt=0,
        validation_alias=AliasChoices("INFERWATCH_MAX_RANGE_SECONDS", "max_range_seconds"),
    )
    max_points: int = Field(
        1100,
        gt=0,
        validation_alias=AliasChoices("INFERWATCH_MAX_POINTS", "max_points"),
    )
    # query_prometheus returns at most this many series (the rest are counted, not shown).
    max_series: int = Field(
        50,
        gt=0,
        validation_alias=AliasChoices("INFERWATCH_MAX_SERIES", "max_series"),
    )

    _strip = field_validator("agent_url", "prometheus_url", mode="before")(_strip_slash)


def _default_chromium() -> str:
    """Playwright's own browser when installed (empty = let Playwright choose), else Debian's."""
    cache = Path.home() / ".cache" / "ms-playwright"
    if any(cache.glob("chromium-*")):
        return ""
    return shutil.which("chromium") or "/usr/bin/chromium"


class GrafanaSettings(_Base):
    """Grafana's HTTP API and the browser that looks at it."""

    url: str = Field("http://127.0.0.1:3000", validation_alias=AliasChoices("GRAFANA_URL", "url"))
    service_account_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("GRAFANA_SERVICE_ACCOUNT_TOKEN", "service_account_token"),
    )
    user: str | None = Field(None, validation_alias=AliasChoices("GRAFANA_USER", "user"))
    password: SecretStr | None = Field(
        None, validation_alias=AliasChoices("GRAFANA_PASSWORD", "password")
    )
    org_id: int = Field(1, validation_alias=AliasChoices("GRAFANA_ORG_ID", "org_id"))
    chromium_path: str = Field(
        default_factory=_default_chromium,
        validation_alias=AliasChoices("CHROMIUM_PATH", "chromium_path"),
    )
    # How long a dashboard may take to become ready before the driver names the stuck panels.
    ready_timeout_seconds: float = Field(
        30.0,
        gt=0,
        validation_alias=AliasChoices("INFERWATCH_READY_TIMEOUT_SECONDS", "ready_timeout_seconds"),
    )
    http_timeout_seconds: float = Field(
        10.0,
        gt=0,
        validation_alias=AliasChoices("INFERWATCH_HTTP_TIMEOUT_SECONDS", "http_timeout_seconds"),
    )

    _strip = field_validator("url", mode="before")(_strip_slash)


class JudgeSettings(_Base):
    """Claude as the judge of screenshots."""

    api_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("ANTHROPIC_API_KEY", "api_key")
    )
    base_url: str | None = Field(
        None, validation_alias=AliasChoices("ANTHROPIC_BASE_URL", "base_url")
    )
    model: str = Field(
        "claude-sonnet-4-6", validation_alias=AliasChoices("INFERWATCH_JUDGE_MODEL", "model")
    )
    max_tokens: int = Field(
        2048, gt=0, validation_alias=AliasChoices("INFERWATCH_JUDGE_MAX_TOKENS", "max_tokens")
    )
    max_attempts: int = Field(
        5, ge=1, validation_alias=AliasChoices("INFERWATCH_JUDGE_MAX_ATTEMPTS", "max_attempts")
    )
    # retry-after is honoured up to this many seconds (the SDK alone honours it without bound).
    max_retry_after_seconds: float = Field(
        60.0,
        ge=0,
        validation_alias=AliasChoices(
            "INFERWATCH_JUDGE_MAX_RETRY_AFTER_SECONDS", "max_retry_after_seconds"
        ),
    )
    scenario_deadline_seconds: float = Field(
        300.0,
        gt=0,
        validation_alias=AliasChoices(
            "INFERWATCH_JUDGE_DEADLINE_SECONDS", "scenario_deadline_seconds"
        ),
    )
    # A run stops calling Claude once its estimated spend would pass this (USD). Each call
    # reserves its worst case first (images + text in, max_tokens out); 0 refuses every call.
    run_budget_usd: float = Field(
        5.0, ge=0, validation_alias=AliasChoices("INFERWATCH_JUDGE_BUDGET_USD", "run_budget_usd")
    )
    cache_ttl_seconds: float = Field(
        86400.0,
        ge=0,
        validation_alias=AliasChoices("INFERWATCH_JUDGE_CACHE_TTL_SECONDS", "cache_ttl_seconds"),
    )
    cache_dir: Path = Field(
        Path.home() / ".cache" / "inferwatch" / "verdicts",
        validation_alias=AliasChoices("INFERWATCH_JUDGE_CACHE_DIR", "cache_dir"),
    )
    # Past this many cached verdicts, the oldest are removed.
    cache_max_entries: int = Field(
        1000,
        ge=1,
        validation_alias=AliasChoices("INFERWATCH_JUDGE_CACHE_MAX_ENTRIES", "cache_max_entries"),
    )


class HarnessSettings(_Base):
    """Where scenarios and reports live."""

    scenarios_dir: Path = Field(
        Path("scenarios"),
        validation_alias=AliasChoices("INFERWATCH_SCENARIOS_DIR", "scenarios_dir"),
    )
    report_dir: Path = Field(
        Path("reports"), validation_alias=AliasChoices("INFERWATCH_REPORT_DIR", "report_dir")
    )
    concurrency: int = Field(
        4, ge=1, validation_alias=AliasChoices("INFERWATCH_CONCURRENCY", "concurrency")
    )


class Settings:
    """All of the above, read once."""

    def __init__(self, env_file: Path | None = None, **overrides: Any) -> None:
        files: tuple[Path, ...] = (Path(".env"),) if env_file is None else (Path(".env"), env_file)
        self.server = ServerSettings(_env_file=files, **overrides.get("server", {}))
        self.upstream = UpstreamSettings(_env_file=files, **overrides.get("upstream", {}))
        self.grafana = GrafanaSettings(_env_file=files, **overrides.get("grafana", {}))
        self.judge = JudgeSettings(_env_file=files, **overrides.get("judge", {}))
        self.harness = HarnessSettings(_env_file=files, **overrides.get("harness", {}))
