"""``secreview setup`` end to end: a real ``secreview setup`` process, the test as the browser, the
fake GitHub as github.com, an organisation, or GitHub Enterprise Server (``/api/v3``)."""

from __future__ import annotations

import html
import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from bot.cli.app import PERMISSIONS, permissions
from bot.cli.setup import update_env_file
from bot.config import Settings, load_env_file
from bot.github.client import web_url
from tests.emulators.server import LiveServer
from tests.fakes.github import FakeGitHub
from tests.procs import ROOT, free_port, wait_for

APP_ID = "4242"
PUBLIC = "https://secreview.example.com"


def start_setup(tmp: Path, api_url: str, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "GITHUB_API_URL": api_url, "SECREVIEW_ENV_FILE": ""}
    argv = [sys.executable, "-m", "bot.cli", "setup", "--url", PUBLIC, "--port", str(port)]
    proc = subprocess.Popen(
        [*argv, "--no-browser", "--timeout", "60", *extra],
        cwd=tmp,
        env={**env, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    local = f"http://127.0.0.1:{port}/"

    def up() -> bool:
        try:
            return httpx.get(local, timeout=1).status_code == 200
        except httpx.HTTPError:
            return proc.poll() is not None

    wait_for(up, 30, "the setup page")
    return proc, local


def browse(local: str) -> httpx.Response:
    """What the browser does: load the page, submit its form to GitHub, follow the redirect."""
    page = httpx.get(local).text
    action = html.unescape(re.search(r'action="([^"]+)"', page).group(1))  # type: ignore[union-attr]
    manifest = html.unescape(re.search(r'name="manifest" value="([^"]+)"', page).group(1))  # type: ignore[union-attr]
    return httpx.post(action, data={"manifest": manifest}, follow_redirects=True, timeout=30)


@pytest.mark.parametrize(
    ("base_path", "org"), [("", None), ("", "octo-org"), ("/api/v3", None)],
    ids=["github.com", "organisation", "enterprise"],
)  # fmt: skip
def test_manifest_flow_writes_env_and_key(
    tmp_path: Path, app_key: tuple[str, str], base_path: str, org: str | None
) -> None:
    private, public = app_key
    fake = FakeGitHub(APP_ID, public, base_path=base_path)
    fake.manifest_private_key = private
    (tmp_path / ".env").write_text("# mine\nLOG_LEVEL=DEBUG\nGITHUB_APP_ID=\n")
    with LiveServer(fake.app) as gh:
        proc, local = start_setup(tmp_path, gh.url + base_path, *(["--org", org] if org else []))
        done = browse(local)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert done.status_code == 200 and "created GitHub App" in done.text
    posted = [r for r in fake.requests if r.path.endswith("/settings/apps/new")]
    assert posted and (org is None or f"/organizations/{org}/" in posted[0].path)
    sent = fake.app_permissions
    assert sent == PERMISSIONS and sent["contents"] == "write"  # triage pushes a branch
    values = load_env_file(tmp_path / ".env")
    assert values["GITHUB_APP_ID"] == APP_ID and values["LOG_LEVEL"] == "DEBUG"
    assert values["GITHUB_WEBHOOK_SECRET"].startswith("whsec-")
    key = Path(values["GITHUB_PRIVATE_KEY_PATH"])
    assert key.read_text() == private
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o600
    assert values["GITHUB_API_URL"] == gh.url + base_path  # not the default: kept in .env
    # The written .env is a working configuration: the App authenticates as itself.
    settings = Settings.from_env({**values, "GITHUB_API_URL": gh.url + base_path})
    assert settings.github_private_key == private
    assert b"Install it on your repositories" in out


def test_a_foreign_state_is_refused_and_setup_keeps_waiting(
    tmp_path: Path, app_key: tuple[str, str]
) -> None:
    fake = FakeGitHub(APP_ID, app_key[1])
    fake.manifest_private_key = app_key[0]
    with LiveServer(fake.app) as gh:
        proc, local = start_setup(tmp_path, gh.url)
        forged = httpx.get(local + "callback?code=abc&state=not-yours")
        assert forged.status_code == 400
        assert browse(local).status_code == 200  # the real round trip still completes
        proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert fake.calls("POST", "/app-manifests/") and not any("abc" in r.path for r in fake.requests)


def test_refuses_to_replace_an_app_without_force(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("GITHUB_APP_ID=99\n")
    run = subprocess.run(
        [sys.executable, "-m", "bot.cli", "setup", "--url", PUBLIC, "--no-browser"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=60,
    )
    assert run.returncode == 2
    assert run.stderr.decode().strip() == (
        "secreview: error: .env already names GitHub App 99; pass --force to replace it"
    )


def test_setup_needs_a_url_with_a_scheme(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-m", "bot.cli", "setup", "--url", "secreview.example.com"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=60,
    )
    assert run.returncode == 2 and b"give the scheme and host" in run.stderr


def test_env_file_update_keeps_other_lines(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    (tmp_path / ".env.example").write_text(
        "# header\nGITHUB_APP_ID=\nREDIS_URL=redis://localhost:6379/0\n"
    )
    update_env_file(env, {"GITHUB_APP_ID": "7", "GITHUB_WEBHOOK_SECRET": "a b'c"})
    text = env.read_text()
    assert text.startswith("# header\nGITHUB_APP_ID=7\nREDIS_URL=")
    assert load_env_file(env)["GITHUB_WEBHOOK_SECRET"] == "a bc"


def test_web_url_of_each_kind_of_github() -> None:
    assert web_url("https://api.github.com") == "https://github.com"
    assert web_url("https://api.octocorp.ghe.com") == "https://octocorp.ghe.com"
    assert web_url("https://github.example.com/api/v3/") == "https://github.example.com"
    assert web_url("http://127.0.0.1:8123") == "http://127.0.0.1:8123"


def test_manifest_permissions_per_feature() -> None:
    review_only = permissions(())
    assert review_only == {
        "checks": "write",
        "contents": "read",
        "issues": "write",
        "metadata": "read",
        "pull_requests": "write",
    }
    assert permissions(("triage",))["contents"] == "write"
    assert "security_events" not in permissions(("triage",))
    assert permissions(("sarif",))["security_events"] == "write"
    assert permissions(("sarif",))["contents"] == "read"
    printed = subprocess.run(
        [sys.executable, "-m", "bot.cli", "manifest", "--url", PUBLIC, "--features", "sarif"],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert json.loads(printed.stdout)["default_permissions"] == permissions(("sarif",))
