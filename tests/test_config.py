"""Settings.from_env: defaults, validation, and the one-line errors the CLI prints."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import DEFAULT_MODEL, Settings, load_env_file
from bot.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_match_the_design_contract() -> None:
    s = Settings.from_env({})
    assert s.github_api_url == "https://api.github.com"
    assert s.workers_ai_base_url == "https://api.cloudflare.com/client/v4"
    assert s.model == DEFAULT_MODEL == "@cf/moonshotai/kimi-k2.6"
    assert s.redis_url == "redis://localhost:6379/0"
    assert s.llm_backend is None
    assert not s.model_configured
    assert s.dry_run is False


def test_backend_is_inferred_from_credentials() -> None:
    s = Settings.from_env({"CLOUDFLARE_ACCOUNT_ID": "a", "CLOUDFLARE_API_TOKEN": "t"})
    assert s.llm_backend == "workers-ai" and s.model_configured
    s = Settings.from_env({"OPENAI_BASE_URL": "http://127.0.0.1:8000/v1/"})
    assert s.llm_backend == "openai" and s.openai_base_url == "http://127.0.0.1:8000/v1"


def test_require_model_names_what_to_set() -> None:
    with pytest.raises(ConfigError, match="CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN"):
        Settings.from_env({}).require_model()
    with pytest.raises(ConfigError, match="CLOUDFLARE_API_TOKEN"):
        Settings.from_env({"CLOUDFLARE_ACCOUNT_ID": "a"}).require_model()
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL"):
        Settings.from_env({"SECREVIEW_LLM_BACKEND": "openai"}).require_model()


def test_invalid_values_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="SECREVIEW_LLM_BACKEND"):
        Settings.from_env({"SECREVIEW_LLM_BACKEND": "gpt"})
    with pytest.raises(ConfigError, match="SECREVIEW_DRY_RUN"):
        Settings.from_env({"SECREVIEW_DRY_RUN": "maybe"})
    with pytest.raises(ConfigError, match="SECREVIEW_UNIT_TOKENS"):
        Settings.from_env({"SECREVIEW_UNIT_TOKENS": "lots"})
    with pytest.raises(ConfigError, match="at least 500"):
        Settings.from_env({"SECREVIEW_UNIT_TOKENS": "10"})


def test_private_key_from_text_or_path(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = Settings.from_env({"GITHUB_PRIVATE_KEY": "-----BEGIN\\nabc\\n-----END"})
    assert s.github_private_key == "-----BEGIN\nabc\n-----END"
    key = tmp_path / "app.pem"
    key.write_text("PEM", encoding="utf-8")
    assert Settings.from_env({"GITHUB_PRIVATE_KEY_PATH": str(key)}).github_private_key == "PEM"
    with pytest.raises(ConfigError, match="cannot be read"):
        Settings.from_env({"GITHUB_PRIVATE_KEY_PATH": str(tmp_path / "missing.pem")})


def test_secrets_never_appear_in_repr() -> None:
    s = Settings.from_env(
        {
            "CLOUDFLARE_API_TOKEN": "cf-secret-value",
            "GITHUB_WEBHOOK_SECRET": "hook-secret-value",
            "OPENAI_API_KEY": "openai-secret-value",
            "GITHUB_PRIVATE_KEY": "pem-secret-value",
        }
    )
    text = repr(s)
    for secret in ("cf-secret-value", "hook-secret-value", "openai-secret-value", "pem-secret"):
        assert secret not in text


def test_webhook_secret_and_app_credentials_required() -> None:
    with pytest.raises(ConfigError, match="GITHUB_WEBHOOK_SECRET"):
        Settings.from_env({}).require_webhook_secret()
    with pytest.raises(ConfigError, match="GITHUB_APP_ID"):
        Settings.from_env({}).require_github_app()
    with pytest.raises(ConfigError, match="GITHUB_PRIVATE_KEY"):
        Settings.from_env({"GITHUB_APP_ID": "1"}).require_github_app()
    assert Settings.from_env({"GITHUB_WEBHOOK_SECRET": "s"}).require_webhook_secret() == "s"


def test_env_file_is_read_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# comment\nGITHUB_APP_ID=77\nREDIS_URL=redis://localhost:6379/3\n"
        "GITHUB_WEBHOOK_SECRET='from file'\nEMPTY=\n"
    )
    monkeypatch.setenv("SECREVIEW_ENV_FILE", str(env_file))
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/5")
    s = Settings.from_env()
    assert s.github_app_id == "77" and s.github_webhook_secret == "from file"
    assert s.redis_url == "redis://127.0.0.1:6379/5"  # the shell's value beats the file's
    monkeypatch.setenv("SECREVIEW_ENV_FILE", "")
    assert Settings.from_env().github_app_id is None  # empty: no file read at all


def test_default_env_file_is_dotenv_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SECREVIEW_ENV_FILE")
    monkeypatch.chdir(tmp_path)
    assert Settings.from_env().github_app_id is None  # no .env here: defaults
    (tmp_path / ".env").write_text("GITHUB_APP_ID=5\n")
    assert Settings.from_env().github_app_id == "5"


def test_example_env_file_works_outside_compose() -> None:
    values = load_env_file(ROOT / ".env.example")
    s = Settings.from_env(values)
    assert s.redis_url == "redis://localhost:6379/0"
    assert s.llm_backend is None and not s.analyzers_only


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("garbage", "must start with redis://"),
        ("http://localhost:6379", "must start with redis://"),
        ("redis://localhost:port/0", "invalid port"),
        ("redis://localhost:6379/db", "database must be a number"),
        ("unix://", "needs a socket path"),
    ],
)
def test_redis_url_is_checked(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env({"REDIS_URL": url})


def test_good_redis_urls_pass() -> None:
    for url in ("redis://redis:6379/0", "rediss://:pw@host:6380", "unix:///run/redis.sock"):
        assert Settings.from_env({"REDIS_URL": url}).redis_url == url


def test_model_timeout_and_none_backend() -> None:
    assert Settings.from_env({}).model_timeout_s == 120.0
    assert Settings.from_env({"SECREVIEW_MODEL_TIMEOUT": "900"}).model_timeout_s == 900.0
    s = Settings.from_env({"SECREVIEW_LLM_BACKEND": "none", "CLOUDFLARE_API_TOKEN": "t"})
    assert s.llm_backend is None and s.analyzers_only and not s.model_configured
    with pytest.raises(ConfigError, match="analyzers only"):
        s.require_model()
