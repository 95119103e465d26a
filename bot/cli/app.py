"""The App's commands: ``serve`` (the receiver), ``replay`` (send a saved webhook), ``manifest``."""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from bot.cli import options
from bot.config import Settings
from bot.errors import UsageError

EVENTS = ("pull_request", "issue_comment", "check_run")
PERMISSIONS = {
    "pull_requests": "write",  # review comments and the sticky summary
    "issues": "write",  # replies to commands on PRs and issues
    "checks": "write",  # the secreview check run
    "contents": "read",  # diffs, the base-branch config, tarballs for scans
    "metadata": "read",
    "security_events": "write",  # SARIF upload to code scanning
}


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
    manifest.add_argument(
        "--url",
        type=options.public_url,
        default="https://secreview.example.com",
        help="public base URL of the receiver (https://host)",
    )
    manifest.add_argument("--name", default="secreview")
    manifest.set_defaults(func=cmd_manifest)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run the receiver with uvicorn (refuses to start without a webhook secret)."""
    import uvicorn

    from bot.web import create_app

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


def manifest(url: str, name: str = "secreview") -> dict[str, Any]:
    """The GitHub App manifest: the events secreview needs and the least permissions."""
    base = url.rstrip("/")
    return {
        "name": name,
        "url": base,
        "hook_attributes": {"url": f"{base}/api/github/webhooks", "active": True},
        "redirect_url": base,
        "public": False,
        "default_events": list(EVENTS),
        "default_permissions": dict(PERMISSIONS),
    }


def cmd_manifest(args: argparse.Namespace, settings: Settings) -> int:
    """Print the manifest as JSON."""
    sys.stdout.write(json.dumps(manifest(args.url, args.name), indent=2) + "\n")
    return 0
