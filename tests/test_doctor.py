"""``secreview doctor``, the start-up checks of ``serve`` and ``worker``, and ``health``: against
the fake GitHub, the Workers AI emulator and the real Redis, as separate processes."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.cli.app import PERMISSIONS
from tests.emulators.server import LiveServer
from tests.emulators.workers_ai import create_emulator
from tests.fakes.github import FakeGitHub
from tests.procs import ROOT, SECREVIEW, Proc, free_port, wait_for

APP_ID = "1234"


@pytest.fixture
def env(redis_url: str, app_key: tuple[str, str]) -> Iterator[dict[str, str]]:
    """A complete, working configuration (and the fake GitHub behind it)."""
    private, public = app_key
    fake = FakeGitHub(APP_ID, public)
    fake.add_repo("octo/shop", 42)
    fake.app_permissions = dict(PERMISSIONS)
    model = create_emulator(account_id="acct", api_token="tok")
    with LiveServer(fake.app) as gh, LiveServer(model.app) as ai:
        yield {
            "GITHUB_APP_ID": APP_ID,
            "GITHUB_PRIVATE_KEY": private,
            "GITHUB_WEBHOOK_SECRET": "a-long-enough-webhook-secret",
            "GITHUB_API_URL": gh.url,
            "CLOUDFLARE_ACCOUNT_ID": "acct",
            "CLOUDFLARE_API_TOKEN": "tok",
            "WORKERS_AI_BASE_URL": ai.url + "/client/v4",
            "REDIS_URL": redis_url,
        }


def run(
    args: list[str], env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SECREVIEW, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def rows(out: str) -> dict[str, str]:
    """check name → status, from the doctor's table."""
    found = {}
    for line in out.splitlines()[1:]:
        parts = line.split()
        for status in ("ok", "warn", "FAIL", "skip"):
            if status in parts:
                found[" ".join(parts[: parts.index(status)])] = status
                break
    return found


def test_everything_in_place(env: dict[str, str]) -> None:
    done = run(["doctor"], env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert rows(done.stdout) == {
        "GitHub App id": "ok",
        "private key": "ok",
        "webhook secret": "ok",
        "model": "ok",
        "Redis": "ok",
        "model request": "ok",
        "GitHub as the App": "ok",
        "installations": "ok",
        "permissions": "ok",
    }
    assert "everything needed is in place" in done.stdout


def test_what_is_wrong_and_how_to_fix_it(env: dict[str, str], app_key: tuple[str, str]) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    broken = {
        **env,
        "GITHUB_PRIVATE_KEY": other.decode(),  # a key of some other App
        "GITHUB_WEBHOOK_SECRET": "",
        "CLOUDFLARE_API_TOKEN": "wrong-token",
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
    }
    done = run(["doctor"], broken)
    assert done.returncode == 2
    table = rows(done.stdout)
    assert table["webhook secret"] == table["model request"] == table["Redis"] == "FAIL"
    assert table["GitHub as the App"] == "FAIL"
    assert "fix: check CLOUDFLARE_API_TOKEN" in done.stdout
    assert "fix: GITHUB_APP_ID and the private key must belong to the same App" in done.stdout
    assert "wrong-token" not in done.stdout and "Traceback" not in done.stderr


def test_offline_checks_the_configuration_only(env: dict[str, str]) -> None:
    done = run(["doctor", "--offline"], {**env, "GITHUB_PRIVATE_KEY": "not a key"})
    assert done.returncode == 2
    assert rows(done.stdout)["private key"] == "FAIL" and "Redis" not in rows(done.stdout)


def test_permissions_warning(redis_url: str, app_key: tuple[str, str]) -> None:
    private, public = app_key
    fake = FakeGitHub(APP_ID, public)
    fake.app_permissions = {**PERMISSIONS, "contents": "read"}  # an App from the old manifest
    with LiveServer(fake.app) as gh:
        done = run(
            ["doctor"],
            {
                "GITHUB_APP_ID": APP_ID,
                "GITHUB_PRIVATE_KEY": private,
                "GITHUB_WEBHOOK_SECRET": "a-long-enough-webhook-secret",
                "GITHUB_API_URL": gh.url,
                "SECREVIEW_LLM_BACKEND": "none",
                "REDIS_URL": redis_url,
            },
        )
    assert done.returncode == 0  # warnings only
    assert "missing contents: write" in done.stdout
    assert "the App is not installed anywhere yet" in done.stdout
    assert "analyzer-only" in done.stdout


def test_serve_refuses_half_configured(env: dict[str, str]) -> None:
    port = str(free_port())
    half = {**env, "GITHUB_PRIVATE_KEY": ""}
    done = run(["serve", "--port", port], half)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "secreview: error: serve not started: private key: neither GITHUB_PRIVATE_KEY nor _PATH "
        "is set; run `secreview setup --url https://YOUR-HOST`, or copy the App's values into "
        ".env (`secreview doctor` shows all)"
    ]
    down = run(["serve", "--port", port], {**env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}"})
    assert down.returncode == 2 and "serve not started: Redis:" in down.stderr


def test_worker_without_any_model_refuses_with_one_line(env: dict[str, str]) -> None:
    no_model = {**env, "CLOUDFLARE_ACCOUNT_ID": "", "CLOUDFLARE_API_TOKEN": ""}
    done = run(["worker", "--pool", "solo"], no_model)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("secreview: error: worker not started: model:")
    assert "SECREVIEW_LLM_BACKEND=none" in lines[0]


def test_analyzer_only_worker_starts_loudly_and_is_healthy(
    env: dict[str, str], tmp_path: Path
) -> None:
    analyzers = {**env, "SECREVIEW_LLM_BACKEND": "none", "LOG_LEVEL": "INFO"}
    argv = [*SECREVIEW, "worker", "--pool", "solo", "--without-mingle", "--without-gossip"]
    with Proc(argv, analyzers, tmp_path / "worker.log") as worker:
        wait_for(
            lambda: not worker.alive() or run(["health", "worker"], analyzers).returncode == 0,
            90,
            "the worker to answer its health check",
        )
        assert worker.alive(), worker.log()
        assert (
            "secreview: warning: model: SECREVIEW_LLM_BACKEND=none: reviews are analyzer-only"
            in worker.log()
        )
    stopped = run(["health", "worker", "--timeout", "1"], analyzers)
    assert stopped.returncode == 1 and "did not answer" in stopped.stdout


def test_health_web(env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/readyz"
    assert run(["health", "web", "--url", url, "--timeout", "1"], env).returncode == 1
    with Proc([*SECREVIEW, "serve", "--port", str(port)], env, tmp_path / "web.log") as web:
        wait_for(lambda: run(["health", "web", "--url", url], env).returncode == 0, 30, "web")
        assert web.alive()
