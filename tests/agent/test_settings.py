from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from agent.settings import AgentSettings, LiteLLMSettings, Settings, VLLMSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "LITELLM_URL",
        "LITELLM_PORT",
        "LITELLM_API_KEY",
        "VLLM_URLS",
        "INFERWATCH_SOURCES",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_defaults_follow_the_contract() -> None:
    settings = Settings()
    assert settings.agent.listen == "0.0.0.0:9470"
    assert settings.agent.poll_interval_seconds == 30
    assert settings.agent.model_list_ttl_seconds == 300
    assert settings.agent.sources == [
        "litellm",
        "vllm",
        "docker",
        "nvml",
        "langfuse",
        "huggingface",
    ]
    assert settings.litellm.url == "http://localhost:4000"
    assert settings.vllm.image_patterns == ["vllm/vllm-openai"]


def test_litellm_port_moves_the_default_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITELLM_PORT", "4100")
    assert LiteLLMSettings().url == "http://localhost:4100"
    monkeypatch.setenv("LITELLM_URL", "http://proxy:4000")
    assert LiteLLMSettings().url == "http://proxy:4000"


def test_api_key_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITELLM_API_KEY", "sk-very-secret")
    settings = LiteLLMSettings()
    assert settings.api_key is not None
    assert "sk-very-secret" not in repr(settings) + str(settings)
    assert settings.api_key.get_secret_value() == "sk-very-secret"


def test_lists_come_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_URLS", "http://a:8000/, http://b:8000,http://a:8000")
    monkeypatch.setenv("INFERWATCH_SOURCES", "vllm, litellm")
    assert VLLMSettings().urls == ["http://a:8000", "http://b:8000"]
    assert AgentSettings().sources == ["vllm", "litellm"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("INFERWATCH_SOURCES", "vllm,prometheus", r"unknown source\(s\) prometheus"),
        ("INFERWATCH_POLL_INTERVAL_SECONDS", "0", "greater than 0"),
        ("INFERWATCH_GPU_METRICS", "nvidia-smi", "must be 'dcgm' or 'off'"),
    ],
)
def test_bad_settings_are_named(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, message: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=message):
        AgentSettings()


def test_bad_url_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VLLM_URLS", "vllm-0:8000")
    with pytest.raises(ValidationError, match="'vllm-0:8000' is not an http"):
        VLLMSettings()


def test_config_file_sets_values(tmp_path: Path) -> None:
    config = tmp_path / "agent.env"
    config.write_text("LITELLM_URL=http://from-file:4000\nINFERWATCH_POLL_INTERVAL_SECONDS=10\n")
    settings = Settings(env_file=config)
    assert settings.litellm.url == "http://from-file:4000"
    assert settings.agent.poll_interval_seconds == 10
    assert settings.agent.job_timeout_for(10) == 8


def test_an_empty_secret_is_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "")
    monkeypatch.setenv("LITELLM_API_KEY", "")
    monkeypatch.setenv("INFERWATCH_LISTEN", "127.0.0.1:9999")
    settings = Settings()
    assert settings.huggingface.token is None
    assert settings.litellm.api_key is None
    assert settings.agent.listen == "127.0.0.1:9999"
