"""``secreview health web|worker``: the container health checks of docker compose.

``web`` asks the receiver's ``/readyz`` (the process answers and Redis is reachable); ``worker``
pings this host's Celery worker through the broker, so a worker that lost Redis or hangs is
reported unhealthy, not just a process that exists.
"""

from __future__ import annotations

import argparse
import socket
import sys
from typing import Any

from bot.config import Settings


def register(sub: Any) -> None:
    """Add ``health`` to the ``secreview`` parser."""
    p = sub.add_parser("health", help="exit 0 when this host's receiver or worker is healthy")
    p.add_argument("role", choices=("web", "worker"))
    p.add_argument("--url", default="http://127.0.0.1:8000/readyz", help="the receiver's /readyz")
    p.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for an answer")
    p.set_defaults(func=cmd_health)


def cmd_health(args: argparse.Namespace, settings: Settings) -> int:
    """0 healthy, 1 not (with one line saying why)."""
    ok, detail = (
        web(args.url, args.timeout) if args.role == "web" else worker(settings, args.timeout)
    )
    sys.stdout.write(f"{args.role}: {detail}\n")
    return 0 if ok else 1


def web(url: str, timeout: float) -> tuple[bool, str]:
    """Whether ``url`` (the receiver's /readyz) answers 200."""
    import httpx

    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        return False, f"{url} unreachable ({type(exc).__name__})"
    return response.status_code == 200, f"{url} answered {response.status_code}"


def worker(settings: Settings, timeout: float) -> tuple[bool, str]:
    """Whether the Celery worker on this host answers a ping through the broker."""
    from workers.celery_app import create_celery

    node = f"celery@{socket.gethostname()}"
    app = create_celery(settings)
    try:
        replies = app.control.ping(destination=[node], timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - any broker failure means "not healthy"
        return False, f"broker unreachable ({type(exc).__name__})"
    finally:
        app.close()
    if any(node in reply for reply in replies or []):
        return True, f"{node} answered"
    return False, f"{node} did not answer within {timeout:.0f} s"
