"""Process settings read from the environment: the only place that looks at ``os.environ``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bot.errors import ConfigError

Backend = Literal["workers-ai", "openai"]

DEFAULT_MODEL = "@cf/moonshotai/kimi-k2.6"
DEFAULT_GITHUB_API_URL = "https://api.github.com"
DEFAULT_WORKERS_AI_BASE_URL = "https://api.cloudflare.com/client/v4"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be true or false, not {raw!r}")


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, not {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float | None) -> float | None:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None


def _log_level(env: Mapping[str, str]) -> str:
    level = (env.get("LOG_LEVEL") or "INFO").strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ConfigError(
            f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {level!r}"
        )
    return level


def _log_format(env: Mapping[str, str]) -> str:
    fmt = (env.get("LOG_FORMAT") or "text").strip().lower()
    if fmt not in ("text", "json"):
        raise ConfigError(f"LOG_FORMAT must be text or json, not {fmt!r}")
    return fmt


def _private_key(env: Mapping[str, str]) -> str | None:
    key = env.get("GITHUB_PRIVATE_KEY")
    if key:
        # .env files and CI secrets often carry the PEM with literal "\n".
        return key.replace("\\n", "\n")
    path = env.get("GITHUB_PRIVATE_KEY_PATH")
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"GITHUB_PRIVATE_KEY_PATH {path!r} cannot be read: {exc.strerror}"
        ) from None


def _backend(env: Mapping[str, str]) -> Backend | None:
    raw = (env.get("SECREVIEW_LLM_BACKEND") or "").strip().lower()
    if raw in ("workers-ai", "workers_ai", "cloudflare"):
        return "workers-ai"
    if raw == "openai":
        return "openai"
    if raw:
        raise ConfigError(f"SECREVIEW_LLM_BACKEND must be 'workers-ai' or 'openai', not {raw!r}")
    if env.get("CLOUDFLARE_ACCOUNT_ID") or env.get("CLOUDFLARE_API_TOKEN"):
        return "workers-ai"
    if env.get("OPENAI_BASE_URL"):
        return "openai"
    return None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the process needs from its environment, validated once at start-up."""

    github_app_id: str | None = None
    github_private_key: str | None = field(default=None, repr=False)
    github_webhook_secret: str | None = field(default=None, repr=False)
    github_api_url: str = DEFAULT_GITHUB_API_URL
    cloudflare_account_id: str | None = None
    cloudflare_api_token: str | None = field(default=None, repr=False)
    workers_ai_base_url: str = DEFAULT_WORKERS_AI_BASE_URL
    model: str = DEFAULT_MODEL
    verify_model: str | None = None
    llm_backend: Backend | None = None
    openai_base_url: str | None = None
    openai_api_key: str | None = field(default=None, repr=False)
    redis_url: str = DEFAULT_REDIS_URL
    dry_run: bool = False
    log_level: str = "INFO"
    log_format: str = "text"
    unit_token_budget: int = 12_000
    max_units: int = 200
    max_cost_usd: float | None = None
    daily_token_budget_installation: int = 0
    daily_token_budget_repo: int = 0
    visibility_timeout_s: int = 7200
    model_deadline_s: int = 1800
    first_poll_s: float = 5.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate settings; raises ConfigError with a one-line reason."""
        env = os.environ if environ is None else environ
        return cls(
            github_app_id=env.get("GITHUB_APP_ID") or None,
            github_private_key=_private_key(env),
            github_webhook_secret=env.get("GITHUB_WEBHOOK_SECRET") or None,
            github_api_url=(env.get("GITHUB_API_URL") or DEFAULT_GITHUB_API_URL).rstrip("/"),
            cloudflare_account_id=env.get("CLOUDFLARE_ACCOUNT_ID") or None,
            cloudflare_api_token=env.get("CLOUDFLARE_API_TOKEN") or None,
            workers_ai_base_url=(
                env.get("WORKERS_AI_BASE_URL") or DEFAULT_WORKERS_AI_BASE_URL
            ).rstrip("/"),
            model=env.get("SECREVIEW_MODEL") or DEFAULT_MODEL,
            verify_model=env.get("SECREVIEW_VERIFY_MODEL") or None,
            llm_backend=_backend(env),
            openai_base_url=(env.get("OPENAI_BASE_URL") or "").rstrip("/") or None,
            openai_api_key=env.get("OPENAI_API_KEY") or None,
            redis_url=env.get("REDIS_URL") or DEFAULT_REDIS_URL,
            dry_run=_flag(env, "SECREVIEW_DRY_RUN"),
            log_level=_log_level(env),
            log_format=_log_format(env),
            unit_token_budget=_int(env, "SECREVIEW_UNIT_TOKENS", 12_000, minimum=500),
            max_units=_int(env, "SECREVIEW_MAX_UNITS", 200, minimum=1),
            max_cost_usd=_float(env, "SECREVIEW_MAX_COST_USD", None),
            daily_token_budget_installation=_int(env, "SECREVIEW_DAILY_TOKENS_INSTALLATION", 0),
            daily_token_budget_repo=_int(env, "SECREVIEW_DAILY_TOKENS_REPO", 0),
            visibility_timeout_s=_int(env, "SECREVIEW_VISIBILITY_TIMEOUT", 7200, minimum=1),
            model_deadline_s=_int(env, "SECREVIEW_MODEL_DEADLINE", 1800, minimum=10),
            first_poll_s=_float(env, "SECREVIEW_FIRST_POLL", 5.0) or 5.0,
        )

    @property
    def model_configured(self) -> bool:
        """Whether a model backend has what it needs to make requests."""
        if self.llm_backend == "workers-ai":
            return bool(self.cloudflare_account_id and self.cloudflare_api_token)
        if self.llm_backend == "openai":
            return bool(self.openai_base_url)
        return False

    def require_model(self) -> None:
        """Raise ConfigError naming exactly what to set when no model backend is usable."""
        if self.llm_backend == "workers-ai":
            missing = [
                name
                for name, value in (
                    ("CLOUDFLARE_ACCOUNT_ID", self.cloudflare_account_id),
                    ("CLOUDFLARE_API_TOKEN", self.cloudflare_api_token),
                )
                if not value
            ]
            if missing:
                raise ConfigError(f"Workers AI backend needs {' and '.join(missing)} to be set")
            return
        if self.llm_backend == "openai":
            if not self.openai_base_url:
                raise ConfigError("SECREVIEW_LLM_BACKEND=openai needs OPENAI_BASE_URL to be set")
            return
        raise ConfigError(
            "no model configured: set CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN "
            "(Workers AI), or SECREVIEW_LLM_BACKEND=openai and OPENAI_BASE_URL"
        )

    def require_webhook_secret(self) -> str:
        """The webhook secret; the receiver refuses to start without one."""
        if not self.github_webhook_secret:
            raise ConfigError("GITHUB_WEBHOOK_SECRET must be set: unsigned webhooks are refused")
        return self.github_webhook_secret

    def require_github_app(self) -> tuple[str, str]:
        """The App id and private key, or ConfigError naming what is missing."""
        if not self.github_app_id:
            raise ConfigError("GITHUB_APP_ID must be set to act as the GitHub App")
        if not self.github_private_key:
            raise ConfigError("GITHUB_PRIVATE_KEY or GITHUB_PRIVATE_KEY_PATH must be set")
        return self.github_app_id, self.github_private_key
