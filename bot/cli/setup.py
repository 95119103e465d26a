"""``secreview setup``: create the GitHub App from its manifest and write its credentials.

GitHub's manifest flow ("Registering a GitHub App from a manifest"): a page on this machine
posts the manifest to ``{web}/settings/apps/new`` (or ``/organizations/ORG/settings/apps/new``);
the user names the App and presses Create; GitHub sends the browser back to this machine with a
one-time ``code``; ``POST /app-manifests/{code}/conversions`` returns the App's id, private key
and webhook secret. The key goes to a 0600 file; the id, the key's path and the secret to .env.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import html
import json
import os
import secrets
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

from bot.cli import app as cli_app
from bot.cli import options
from bot.config import DEFAULT_GITHUB_API_URL, Settings
from bot.errors import SecreviewError, UsageError

if TYPE_CHECKING:  # the page's server is loaded by the command that serves it
    from http.server import BaseHTTPRequestHandler

DEFAULT_KEY_FILE = "secreview.private-key.pem"


def register(sub: Any) -> None:
    """Add ``setup`` to the ``secreview`` parser."""
    p = sub.add_parser(
        "setup",
        help="create the GitHub App from its manifest and write .env",
        description="Open a local page that registers the App on GitHub (your account, an "
        "organisation, or GitHub Enterprise through GITHUB_API_URL) and writes GITHUB_APP_ID, "
        "GITHUB_PRIVATE_KEY_PATH and GITHUB_WEBHOOK_SECRET to .env.",
    )
    cli_app.add_manifest_options(p, url_required=True)
    p.add_argument("--org", help="register the App under this organisation (default: your user)")
    p.add_argument("--env-file", default=".env", help="the .env file to update (default: .env)")
    p.add_argument("--key-file", default=DEFAULT_KEY_FILE, help="where the private key goes")
    p.add_argument("--host", default="127.0.0.1", help="address of the local page")
    p.add_argument("--port", type=options.port, default=3971, help="port of the local page")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for GitHub")
    p.add_argument("--no-browser", action="store_true", help="print the page's address only")
    p.add_argument("--force", action="store_true", help="replace an App already in .env")
    p.set_defaults(func=cmd_setup)


def new_app_url(web: str, org: str | None, state: str) -> str:
    """Where the manifest is posted: the user's or the organisation's "new App" page."""
    owner = f"/organizations/{quote(org, safe='')}" if org else ""
    return f"{web}{owner}/settings/apps/new?state={quote(state, safe='')}"


def start_page(action: str, manifest: Mapping[str, Any]) -> str:
    """The local page: a form that posts the manifest to GitHub (sent on load, or by a click)."""
    value = html.escape(json.dumps(manifest), quote=True)
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>secreview setup</title></head>
<body onload="document.forms[0].submit()">
<h1>Create the secreview GitHub App</h1>
<p>Sending the App manifest to GitHub. Name the App there and press <b>Create</b>.</p>
<form method="post" action="{html.escape(action, quote=True)}">
<input type="hidden" name="manifest" value="{value}">
<button type="submit">Continue to GitHub</button>
</form></body></html>
"""


def update_env_file(path: Path, values: Mapping[str, str]) -> None:
    """Set ``values`` in the .env file at ``path`` (0600), keeping every other line as it was.

    A new file starts from ``.env.example`` beside it when there is one.
    """
    example = path.with_name(".env.example")
    if path.exists():
        lines = path.read_text(encoding="utf-8").splitlines()
    elif example.is_file():
        lines = example.read_text(encoding="utf-8").splitlines()
    else:
        lines = []
    pending = dict(values)
    for i, line in enumerate(lines):
        key = line.split("=", 1)[0].strip().removeprefix("export ").strip()
        if "=" in line and not line.lstrip().startswith("#") and key in pending:
            lines[i] = f"{key}={_quoted(pending.pop(key))}"
    lines += [f"{key}={_quoted(value)}" for key, value in pending.items()]
    _write_private(path, "\n".join(lines) + "\n")


def _quoted(value: str) -> str:
    plain = value and all(c.isalnum() or c in "-_./:@+" for c in value)
    return value if plain else "'" + value.replace("'", "") + "'"


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only, never world-readable in between."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o600)  # a umask cannot widen 0o600, but be explicit about the result
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@dataclass
class Flow:
    """One run of the manifest flow: the state it expects back, and how it ended."""

    api_url: str
    page: str
    state: str
    env_file: Path
    key_file: Path
    done: threading.Event = field(default_factory=threading.Event)
    result: str | None = None  # the line to print on success
    error: str | None = None


def _handler(flow: Flow) -> type[BaseHTTPRequestHandler]:
    from http.server import BaseHTTPRequestHandler

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path == "/":
                self._send(200, flow.page)
            elif parts.path == "/callback":
                self._callback(parse_qs(parts.query))
            else:
                self._send(404, "not found\n", "text/plain")

        def _callback(self, query: Mapping[str, list[str]]) -> None:
            code = (query.get("code") or [""])[0]
            state = (query.get("state") or [""])[0]
            if not code or not hmac.compare_digest(state, flow.state):
                self._send(400, "This link does not belong to this setup run.\n", "text/plain")
                return
            try:
                flow.result = finish(flow, code)
                self._send(200, f"<p>{html.escape(flow.result)}</p><p>You can close this tab.</p>")
            except (SecreviewError, OSError) as exc:
                flow.error = str(exc)
                self._send(502, f"secreview setup failed: {html.escape(str(exc))}\n", "text/plain")
            flow.done.set()

        def _send(self, status: int, body: str, kind: str = "text/html") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("content-type", f"{kind}; charset=utf-8")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return  # the page's requests are not worth a line each

    return Handler


def finish(flow: Flow, code: str) -> str:
    """Exchange ``code`` for the App's credentials and write the key file and .env."""
    from bot.github.client import convert_manifest

    registered = convert_manifest(flow.api_url, code)
    _write_private(
        flow.key_file, registered.pem if registered.pem.endswith("\n") else registered.pem + "\n"
    )
    values = {
        "GITHUB_APP_ID": str(registered.id),
        "GITHUB_PRIVATE_KEY_PATH": str(flow.key_file),
        "GITHUB_PRIVATE_KEY": "",
        "GITHUB_WEBHOOK_SECRET": registered.webhook_secret,
    }
    if flow.api_url != DEFAULT_GITHUB_API_URL:
        values["GITHUB_API_URL"] = flow.api_url
    update_env_file(flow.env_file, values)
    install = f"{registered.html_url}/installations/new" if registered.html_url else "its page"
    return (
        f"created GitHub App {registered.slug or registered.id} (id {registered.id}) for "
        f"{registered.owner or 'you'}; wrote {flow.env_file} and {flow.key_file} (0600). "
        f"Install it on your repositories: {install}"
    )


def _preflight(args: argparse.Namespace, settings: Settings) -> tuple[Path, Path]:
    env_file, key_file = Path(args.env_file), Path(args.key_file)
    options.writable_output(str(env_file), "--env-file")
    options.writable_output(str(key_file), "--key-file")
    if not args.force:
        from bot.config import load_env_file

        existing = load_env_file(env_file).get("GITHUB_APP_ID")
        if existing:
            raise UsageError(
                f"{env_file} already names GitHub App {existing}; pass --force to replace it"
            )
        if key_file.exists():
            raise UsageError(f"--key-file {str(key_file)!r} exists; pass --force to replace it")
    return env_file, key_file.resolve()


def cmd_setup(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the local page, wait for GitHub's redirect, write the credentials."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from bot.github.client import web_url

    env_file, key_file = _preflight(args, settings)
    try:
        server = ThreadingHTTPServer((args.host, args.port), BaseHTTPRequestHandler)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    local = f"http://{args.host}:{server.server_address[1]}"
    state = secrets.token_urlsafe(24)
    body = cli_app.manifest(
        args.url, args.name, features=args.features, redirect_url=f"{local}/callback"
    )
    action = new_app_url(web_url(settings.github_api_url), args.org, state)
    flow = Flow(settings.github_api_url, start_page(action, body), state, env_file, key_file)
    server.RequestHandlerClass = _handler(flow)
    thread = threading.Thread(target=server.serve_forever, name="setup-page", daemon=True)
    thread.start()
    try:
        return _wait(flow, local, args)
    finally:
        server.shutdown()
        server.server_close()


def _wait(flow: Flow, local: str, args: argparse.Namespace) -> int:
    sys.stderr.write(
        f"secreview: open {local}/ in a browser on this machine to create the App on GitHub "
        f"(waiting up to {args.timeout:.0f} s)\n"
    )
    if not args.no_browser:
        import webbrowser

        with contextlib.suppress(webbrowser.Error):
            webbrowser.open(f"{local}/")
    if not flow.done.wait(args.timeout):
        raise UsageError(f"no answer from GitHub within {args.timeout:.0f} s; run setup again")
    if flow.error is not None:
        raise UsageError(f"setup failed: {flow.error}")
    sys.stdout.write(f"secreview: {flow.result}\n")
    sys.stdout.write("secreview: next: `.venv/bin/secreview doctor` checks the whole set-up\n")
    return 0
