"""Process settings read from the environment: the only place that looks at ``os.environ``."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from bot.errors import ConfigError

Backend = Literal["workers-ai", "openai"]

DEFAULT_MODEL = "@cf/moonshotai/kimi-k2.6"
DEFAULT_GITHUB_API_URL = "https://api.github.com"
DEFAULT_WORKERS_AI_BASE_URL = "https://api.cloudflare.com/client/v4"
DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_ENV_FILE = ".env"
# httpx's 5 s default is far too short for a model; a CPU engine needs minutes for a 12k prompt.
DEFAULT_MODEL_TIMEOUT_S = 120.0

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
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be a finite number of at least 0, not {raw!r}")
    return value


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    raw = env.get(name) or ""
    items = tuple(item.strip() for item in raw.split(",") if item.strip())
    bad = [item for item in items if any(c.isspace() for c in item)]
    if bad:
        raise ConfigError(f"{name} must be a comma-separated list of model names, not {raw!r}")
    return items


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


def _app_id(env: Mapping[str, str]) -> str | None:
    raw = (env.get("GITHUB_APP_ID") or "").strip()
    if raw and not raw.isdigit():
        raise ConfigError(f"GITHUB_APP_ID must be the App's numeric id, not {raw!r}")
    return raw or None


def _backend(env: Mapping[str, str]) -> Backend | None:
    raw = (env.get("SECREVIEW_LLM_BACKEND") or "").strip().lower()
    if raw in ("workers-ai", "workers_ai", "cloudflare"):
        return "workers-ai"
    if raw == "openai":
        return "openai"
    if raw == "none":
        return None
    if raw:
        raise ConfigError(
            f"SECREVIEW_LLM_BACKEND must be 'workers-ai', 'openai' or 'none', not {raw!r}"
        )
    if env.get("CLOUDFLARE_ACCOUNT_ID") or env.get("CLOUDFLARE_API_TOKEN"):
        return "workers-ai"
    if env.get("OPENAI_BASE_URL"):
        return "openai"
    return None


def _url(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    """An http(s) URL without its trailing slash; ConfigError naming the variable otherwise."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an http:// or https:// URL, not {raw!r}")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise ConfigError(f"{name} has an invalid port: {raw!r}") from None
    return raw.rstrip("/")


def _redis_url(env: Mapping[str, str]) -> str:
    """REDIS_URL checked for the shapes redis-py accepts, so a typo fails here, not in a worker."""
    raw = (env.get("REDIS_URL") or "").strip() or DEFAULT_REDIS_URL
    parts = urlsplit(raw)
    hint = "e.g. redis://localhost:6379/0"
    if parts.scheme == "unix":
        if not parts.path:
            raise ConfigError(f"REDIS_URL unix:// needs a socket path, not {raw!r}")
        return raw
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigError(f"REDIS_URL must start with redis://, rediss:// or unix:// ({hint})")
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise ConfigError(f"REDIS_URL has an invalid port ({hint})") from None
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ConfigError(f"REDIS_URL database must be a number after the last '/' ({hint})")
    return raw


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    value = _float(env, name, default)
    if value is None or value <= 0:
        raise ConfigError(f"{name} must be a number of seconds above 0, not {env.get(name)!r}")
    return value


def load_env_file(path: str | os.PathLike[str]) -> dict[str, str]:
    """The variables a ``.env`` file sets (python-dotenv syntax); {} when there is no file."""
    from dotenv import dotenv_values

    file = Path(path)
    if not file.is_file():
        return {}
    try:
        values = dotenv_values(file, encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} cannot be read: {exc}") from None
    return {k: v for k, v in values.items() if v is not None}


def process_environment() -> dict[str, str]:
    """``os.environ`` over the ``.env`` file (``SECREVIEW_ENV_FILE``, default ``./.env``).

    The real environment wins, as in docker compose: a value set by the shell or the
    orchestrator is never overridden by the file. ``SECREVIEW_ENV_FILE=`` (empty) reads no file.
    """
    chosen = os.environ.get("SECREVIEW_ENV_FILE", DEFAULT_ENV_FILE)
    from_file = load_env_file(chosen) if chosen else {}
    return {**from_file, **os.environ}


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
    visibility_timeout_s: int = 600
    model_deadline_s: int = 1800
    first_poll_s: float = 5.0
    model_timeout_s: float = DEFAULT_MODEL_TIMEOUT_S
    analyzers_only: bool = False
    # --- the run (DESIGN.md §8): failover chain, task limits, the sweeper ---
    model_fallbacks: tuple[str, ...] = ()
    task_time_limit_s: int = 300
    sweep_interval_s: int = 30

    @property
    def model_chain(self) -> tuple[str, ...]:
        """The models a run may use, in order: SECREVIEW_MODEL, then the fallbacks."""
        return tuple(dict.fromkeys((self.model, *self.model_fallbacks)))

    @property
    def lease_s(self) -> int:
        """How long a run stays held by a worker that stopped renewing (a tenth of the task
        limit, 5 to 30 s): what a killed worker costs a review before the sweeper takes over."""
        return max(5, min(30, self.task_time_limit_s // 10))

    @property
    def task_soft_limit_s(self) -> int:
        """Seconds after which a task is asked to stop (80 % of the hard limit)."""
        return max(1, int(self.task_time_limit_s * 0.8))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate settings; raises ConfigError with a one-line reason.

        Without ``environ``: the process environment over the ``.env`` file
        (``process_environment``).
        """
        env = process_environment() if environ is None else environ
        return cls(
            github_app_id=_app_id(env),
            github_private_key=_private_key(env),
            github_webhook_secret=env.get("GITHUB_WEBHOOK_SECRET") or None,
            github_api_url=_url(env, "GITHUB_API_URL", DEFAULT_GITHUB_API_URL)
            or DEFAULT_GITHUB_API_URL,
            cloudflare_account_id=env.get("CLOUDFLARE_ACCOUNT_ID") or None,
            cloudflare_api_token=env.get("CLOUDFLARE_API_TOKEN") or None,
            workers_ai_base_url=_url(env, "WORKERS_AI_BASE_URL", DEFAULT_WORKERS_AI_BASE_URL)
            or DEFAULT_WORKERS_AI_BASE_URL,
            model=env.get("SECREVIEW_MODEL") or DEFAULT_MODEL,
            verify_model=env.get("SECREVIEW_VERIFY_MODEL") or None,
            llm_backend=_backend(env),
            openai_base_url=_url(env, "OPENAI_BASE_URL", None),
            openai_api_key=env.get("OPENAI_API_KEY") or None,
            redis_url=_redis_url(env),
            dry_run=_flag(env, "SECREVIEW_DRY_RUN"),
            log_level=_log_level(env),
            log_format=_log_format(env),
            unit_token_budget=_int(env, "SECREVIEW_UNIT_TOKENS", 12_000, minimum=500),
            max_units=_int(env, "SECREVIEW_MAX_UNITS", 200, minimum=1),
            max_cost_usd=_float(env, "SECREVIEW_MAX_COST_USD", None),
            daily_token_budget_installation=_int(env, "SECREVIEW_DAILY_TOKENS_INSTALLATION", 0),
            daily_token_budget_repo=_int(env, "SECREVIEW_DAILY_TOKENS_REPO", 0),
            # A message a dead worker held comes back after this long. Tasks are bounded by the
            # hard time limit, so anything past it plus a margin means the worker died.
            visibility_timeout_s=_int(
                env,
                "SECREVIEW_VISIBILITY_TIMEOUT",
                _int(env, "SECREVIEW_TASK_TIME_LIMIT", 300, minimum=10) + 300,
                minimum=1,
            ),
            model_deadline_s=_int(env, "SECREVIEW_MODEL_DEADLINE", 1800, minimum=10),
            first_poll_s=_float(env, "SECREVIEW_FIRST_POLL", 5.0) or 5.0,
            model_timeout_s=_positive_float(
                env, "SECREVIEW_MODEL_TIMEOUT", DEFAULT_MODEL_TIMEOUT_S
            ),
            analyzers_only=(env.get("SECREVIEW_LLM_BACKEND") or "").strip().lower() == "none",
            model_fallbacks=_list(env, "SECREVIEW_MODEL_FALLBACKS"),
            task_time_limit_s=_int(env, "SECREVIEW_TASK_TIME_LIMIT", 300, minimum=10),
            sweep_interval_s=_int(env, "SECREVIEW_SWEEP_INTERVAL", 30, minimum=1),
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
        if self.analyzers_only:
            raise ConfigError("SECREVIEW_LLM_BACKEND=none: no model is used (analyzers only)")
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
