"""``secreview doctor`` and the start-up checks of ``serve`` and ``worker``.

Each check is a value (name, status, what was found, how to fix it). ``doctor`` runs them all
and prints a table; ``serve`` and ``worker`` run the ones their role needs before they start and
refuse to start half-configured, with one line naming the first problem and its fix.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bot.config import Settings
from bot.errors import ConfigError, GitHubError, ModelError

Status = Literal["ok", "warn", "FAIL", "skip"]
Role = Literal["doctor", "serve", "worker"]
SETUP_HINT = "run `secreview setup --url https://YOUR-HOST`, or copy the App's values into .env"


@dataclass(frozen=True, slots=True)
class Check:
    """One line of the doctor's table."""

    name: str
    status: Status
    detail: str
    fix: str = ""


def register(sub: Any) -> None:
    """Add ``doctor`` to the ``secreview`` parser."""
    p = sub.add_parser(
        "doctor",
        help="check the configuration and reach every service it names",
        description="Check the GitHub App (id, key, webhook secret, installations, permissions), "
        "Redis and the model (one one-token request); print what is wrong and how to fix it.",
    )
    p.add_argument("--offline", action="store_true", help="configuration only: contact nothing")
    p.set_defaults(func=cmd_doctor)


# --- configuration (no I/O) ------------------------------------------------------------------


def app_checks(settings: Settings, required: bool) -> list[Check]:
    """The App's id and private key: both or neither, and a key that is an RSA private key."""
    app_id, key = settings.github_app_id, settings.github_private_key
    if not app_id and not key:
        status: Status = "FAIL" if required else "skip"
        return [
            Check("GitHub App", status, "GITHUB_APP_ID and the private key are not set", SETUP_HINT)
        ]
    out = [
        Check("GitHub App id", "ok", app_id)
        if app_id
        else Check("GitHub App id", "FAIL", "GITHUB_APP_ID is not set", SETUP_HINT)
    ]
    if not key:
        out.append(
            Check("private key", "FAIL", "neither GITHUB_PRIVATE_KEY nor _PATH is set", SETUP_HINT)
        )
    else:
        out.append(_key_check(key))
    return out


def _key_check(pem: str) -> Check:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        return Check(
            "private key",
            "FAIL",
            "not a PEM private key",
            "use the .pem GitHub generated for the App (Settings > Developer settings > "
            "GitHub Apps > Private keys)",
        )
    if not isinstance(key, rsa.RSAPrivateKey):
        return Check("private key", "FAIL", "not an RSA key", "GitHub App keys are RSA")
    return Check("private key", "ok", f"RSA {key.key_size} bits")


def secret_check(settings: Settings, required: bool) -> Check:
    """The webhook secret: present (the receiver refuses unsigned deliveries), and not short."""
    secret = settings.github_webhook_secret
    if not secret:
        status: Status = "FAIL" if required else "skip"
        return Check("webhook secret", status, "GITHUB_WEBHOOK_SECRET is not set", SETUP_HINT)
    if len(secret) < 16:
        return Check(
            "webhook secret", "warn", f"only {len(secret)} characters", "use 32 random characters"
        )
    return Check("webhook secret", "ok", f"{len(secret)} characters")


def model_config_check(settings: Settings, role: Role) -> Check:
    """Which model backend is configured; none at all is refused for a worker unless on purpose."""
    if settings.analyzers_only:
        return Check(
            "model",
            "warn",
            "SECREVIEW_LLM_BACKEND=none: reviews are analyzer-only (secrets, bandit, injection)",
            "set CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN for the model review",
        )
    try:
        settings.require_model()
    except ConfigError as exc:
        status: Status = "warn" if role == "serve" else "FAIL"
        fix = "or SECREVIEW_LLM_BACKEND=none for analyzer-only reviews, on purpose"
        return Check("model", status, str(exc), fix)
    where = (
        settings.workers_ai_base_url
        if settings.llm_backend == "workers-ai"
        else settings.openai_base_url or ""
    )
    return Check("model", "ok", f"{settings.llm_backend} {settings.model} at {where}")


# --- reachability ----------------------------------------------------------------------------


def redis_check(settings: Settings) -> Check:
    """PING Redis (the queue between the receiver and the workers)."""
    import redis

    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3, socket_timeout=3)
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return Check(
            "Redis",
            "FAIL",
            f"{_safe_url(settings.redis_url)} does not answer ({type(exc).__name__})",
            "start Redis (docker compose up -d redis) or correct REDIS_URL",
        )
    finally:
        client.close()
    return Check("Redis", "ok", f"{_safe_url(settings.redis_url)} answers PING")


def _safe_url(url: str) -> str:
    """``url`` without a password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = f"{parts.username or ''}:***@{parts.hostname}" + (
            f":{parts.port}" if parts.port else ""
        )
        return urlunsplit(parts._replace(netloc=netloc))
    return url


def model_call_check(settings: Settings) -> Check:
    """One one-token request: the credentials, the model name and the route all work."""
    from bot.model.client import ModelRequest, create_backend

    backend = create_backend(settings, response_format={}, max_retries=0)
    probe = ModelRequest("doctor", ({"role": "user", "content": "Reply with OK."},), max_tokens=1)
    try:
        backend.run(probe, affinity="")
    except ModelError as exc:
        transient = exc.retryable and exc.reason not in ("model_auth",)
        fix = {
            "model_auth": "check CLOUDFLARE_API_TOKEN / OPENAI_API_KEY",
            "model_unavailable": "check SECREVIEW_MODEL against the models the account offers",
            "model_plan_required": "this model needs a Workers Paid plan",
            "model_quota": "the daily quota is used up; it resets at 00:00 UTC",
        }.get(exc.reason, "check the model settings and the engine's log")
        return Check("model request", "warn" if transient else "FAIL", str(exc)[:200], fix)
    finally:
        close: Callable[[], None] | None = getattr(backend, "close", None)
        if close is not None:
            close()
    return Check("model request", "ok", f"{settings.model} answered a one-token request")


def github_checks(settings: Settings) -> list[Check]:
    """As the App: ``GET /app`` (id and key belong together), its installations, permissions."""
    from bot.cli.app import PERMISSIONS, missing_permissions
    from bot.github.client import GitHubApp

    try:
        identity = GitHubApp(settings).identity()
    except GitHubError as exc:
        transient = exc.reason == "github_transport"
        return [
            Check(
                "GitHub as the App",
                "warn" if transient else "FAIL",
                str(exc)[:200],
                "check GITHUB_API_URL and the network"
                if transient
                else "GITHUB_APP_ID and the private key must belong to the same App",
            )
        ]
    out = [
        Check("GitHub as the App", "ok", f"{identity.slug or identity.name} ({identity.html_url})")
    ]
    if identity.installations:
        shown = ", ".join(identity.installations[:5])
        out.append(Check("installations", "ok", f"{len(identity.installations)}: {shown}"))
    else:
        out.append(
            Check(
                "installations",
                "warn",
                "the App is not installed anywhere yet",
                f"install it: {identity.html_url}/installations/new",
            )
        )
    missing = missing_permissions(identity.permissions, PERMISSIONS)
    if missing:
        out.append(
            Check(
                "permissions",
                "warn",
                "missing " + ", ".join(missing),
                "raise them in the App's settings (README: which feature needs which); "
                "each installation then accepts the new permissions",
            )
        )
    else:
        out.append(Check("permissions", "ok", "everything the enabled features need"))
    return out


# --- the table and the start-up gate ---------------------------------------------------------


def run_checks(settings: Settings, role: Role, *, offline: bool = False) -> list[Check]:
    """The checks ``role`` needs, in order; network checks only when the configuration allows."""
    worker = role in ("doctor", "worker")
    checks = [*app_checks(settings, required=worker), secret_check(settings, role != "worker")]
    if worker:  # the receiver never calls the model
        checks.append(model_config_check(settings, role))
    if offline:
        return checks
    checks.append(redis_check(settings))
    if worker and settings.model_configured:
        checks.append(model_call_check(settings))
    app_ok = not any(c.status == "FAIL" for c in checks if c.name.startswith(("GitHub", "private")))
    if worker and app_ok and settings.github_app_id and settings.github_private_key:
        checks += github_checks(settings)
    return checks


def table(checks: Sequence[Check]) -> str:
    """The checks as a plain-text table; fixes on their own indented line."""
    width = max(len(c.name) for c in checks) + 2
    lines = [f"{'check':<{width}}{'status':<8}detail"]
    for c in checks:
        lines.append(f"{c.name:<{width}}{c.status:<8}{c.detail}")
        if c.fix and c.status in ("FAIL", "warn"):
            lines.append(f"{'':<{width + 8}}fix: {c.fix}")
    return "\n".join(lines) + "\n"


def cmd_doctor(args: argparse.Namespace, settings: Settings) -> int:
    """Print the table; exit 2 when anything failed."""
    checks = run_checks(settings, "doctor", offline=args.offline)
    sys.stdout.write(table(checks))
    failed = [c for c in checks if c.status == "FAIL"]
    if failed:
        sys.stdout.write(f"{len(failed)} problem(s): fix them and run `secreview doctor` again\n")
        return 2
    sys.stdout.write("everything needed is in place\n")
    return 0


def require_ready(settings: Settings, role: Role) -> None:
    """Before ``serve``/``worker`` starts: warnings on standard error, ConfigError on a failure."""
    checks = run_checks(settings, role)
    for c in checks:
        if c.status == "warn":
            sys.stderr.write(f"secreview: warning: {c.name}: {c.detail}\n")
    failed = next((c for c in checks if c.status == "FAIL"), None)
    if failed is not None:
        fix = f"; {failed.fix}" if failed.fix else ""
        raise ConfigError(
            f"{role} not started: {failed.name}: {failed.detail}{fix} "
            "(`secreview doctor` shows all)"
        )
