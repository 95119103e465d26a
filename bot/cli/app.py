"""The App's commands: ``serve`` (the receiver), ``replay`` (send a saved webhook), ``manifest``."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bot.cli import options
from bot.config import Settings
from bot.errors import UsageError

EVENTS = ("pull_request", "issue_comment", "check_run")
# What each feature needs from GitHub; the manifest asks for the union of the enabled ones.
FEATURES: dict[str, dict[str, str]] = {
    # Diffs, files and the base-branch config (contents); review comments and the sticky summary
    # (pull_requests); the secreview check run (checks); replies to commands (issues).
    "review": {
        "metadata": "read",
        "contents": "read",
        "pull_requests": "write",
        "checks": "write",
        "issues": "write",
    },
    # `/secreview ignore|accept-risk` push a branch that edits .github/secreview.yml on the base
    # branch and open a pull request for it: writing contents and pull requests.
    "triage": {"contents": "write", "pull_requests": "write"},
    # `/secreview scan` and `scan --upload-sarif`: the tarball (contents), code scanning upload.
    "sarif": {"contents": "read", "security_events": "write"},
}
_LEVEL = {"read": 1, "write": 2}


def permissions(features: Sequence[str] = tuple(FEATURES)) -> dict[str, str]:
    """The least permissions that let ``features`` work (always including ``review``)."""
    wanted: dict[str, str] = {}
    for name in ("review", *features):
        for scope, level in FEATURES[name].items():
            if _LEVEL[level] > _LEVEL.get(wanted.get(scope, ""), 0):
                wanted[scope] = level
    return dict(sorted(wanted.items()))


PERMISSIONS = permissions()


def missing_permissions(granted: Mapping[str, str], wanted: Mapping[str, str]) -> list[str]:
    """``scope: level`` for every wanted permission the App was not granted at that level."""
    return [
        f"{scope}: {level}"
        for scope, level in sorted(wanted.items())
        if _LEVEL.get(granted.get(scope, ""), 0) < _LEVEL[level]
    ]


def _features(text: str) -> tuple[str, ...]:
    chosen = tuple(f.strip() for f in text.split(",") if f.strip())
    unknown = [f for f in chosen if f not in FEATURES]
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown feature {unknown[0]!r}; known: {', '.join(FEATURES)}"
        )
    return chosen


def add_manifest_options(p: argparse.ArgumentParser, *, url_required: bool) -> None:
    """``--url``, ``--name`` and ``--features``, shared by ``manifest`` and ``setup``."""
    p.add_argument(
        "--url",
        type=options.public_url,
        required=url_required,
        default=None if url_required else "https://secreview.example.com",
        help="public base URL of the webhook receiver (https://host); GitHub posts events to "
        "URL/api/github/webhooks",
    )
    p.add_argument("--name", default="secreview", help="the App's name on GitHub")
    p.add_argument(
        "--features",
        type=_features,
        default=tuple(FEATURES),
        help=f"comma-separated features the App's permissions cover (default: "
        f"{','.join(FEATURES)}; review is always on)",
    )


def register(sub: Any) -> None:
    """Add ``serve``, ``replay`` and ``manifest`` to the ``secreview`` parser."""
    serve = sub.add_parser("serve", help="run the webhook receiver")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=options.port, default=8000)
    serve.set_defaults(func=cmd_serve)

    replay = sub.add_parser("replay", help="sign and send a saved webhook payload")
    replay.add_argument("payload", help="JSON file with the webhook body")
    replay.add_argument("--event", required=True, help="X-GitHub-Event, e.g. pull_request")
    replay.add_argument(
        "--url", type=options.public_url, default="http://127.0.0.1:8000/api/github/webhooks"
    )
    replay.add_argument("--delivery", help="X-GitHub-Delivery (default: a new id)")
    replay.set_defaults(func=cmd_replay)

    manifest = sub.add_parser("manifest", help="print the GitHub App manifest")
    add_manifest_options(manifest, url_required=False)
    manifest.set_defaults(func=cmd_manifest)

    from bot.cli import doctor, health, setup

    setup.register(sub)
    doctor.register(sub)
    health.register(sub)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run the receiver with uvicorn after the start-up checks (secret, App, Redis)."""
    import uvicorn

    from bot.cli.doctor import require_ready
    from bot.web import create_app

    require_ready(settings, "serve")
    app = create_app(settings)
    uvicorn.run(
        app, host=args.host, port=args.port, log_level=settings.log_level.lower(), access_log=False
    )
    return 0


def cmd_replay(args: argparse.Namespace, settings: Settings) -> int:
    """POST ``args.payload`` signed with GITHUB_WEBHOOK_SECRET; print the answer's status."""
    import httpx

    from bot.github.webhooks import signature

    secret = settings.require_webhook_secret()
    try:
        body = Path(args.payload).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {args.payload!r}: {exc.strerror}") from None
    try:
        json.loads(body)
    except ValueError:
        raise UsageError(f"{args.payload!r} is not JSON") from None
    headers = {
        "content-type": "application/json",
        "x-github-event": args.event,
        "x-github-delivery": args.delivery or str(uuid.uuid4()),
        "x-hub-signature-256": signature(secret, body),
        "user-agent": "GitHub-Hookshot/secreview-replay",
    }
    try:
        response = httpx.post(args.url, content=body, headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        raise UsageError(f"cannot reach {args.url}: {exc}") from None
    sys.stdout.write(f"{response.status_code} {response.reason_phrase} {response.text.strip()}\n")
    return 0 if response.status_code < 400 else 1


def manifest(
    url: str,
    name: str = "secreview",
    *,
    features: Sequence[str] = tuple(FEATURES),
    redirect_url: str | None = None,
) -> dict[str, Any]:
    """The GitHub App manifest: the events secreview needs and the least permissions.

    ``redirect_url`` is where GitHub sends the browser back with the one-time code (the local
    page of ``secreview setup``); it defaults to the public URL.
    """
    base = url.rstrip("/")
    return {
        "name": name,
        "url": base,
        "hook_attributes": {"url": f"{base}/api/github/webhooks", "active": True},
        "redirect_url": redirect_url or base,
        "public": False,
        "default_events": list(EVENTS),
        "default_permissions": permissions(features),
    }


def cmd_manifest(args: argparse.Namespace, settings: Settings) -> int:
    """Print the manifest as JSON."""
    text = json.dumps(manifest(args.url, args.name, features=args.features), indent=2)
    sys.stdout.write(text + "\n")
    return 0
