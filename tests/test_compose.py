"""docker-compose.yml runs as written: health checks everywhere, the key file mounted, secrets
only from .env, commands the CLI accepts; ``docker compose config`` when a client is installed."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli.review import build_parser

ROOT = Path(__file__).resolve().parent.parent
SECRET_NAMES = re.compile(r"SECRET|TOKEN|PRIVATE_KEY$|PASSWORD|API_KEY")


def compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def app_services() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in compose()["services"].items() if s.get("build") == "."}


def test_every_service_has_a_health_check() -> None:
    for name, service in compose()["services"].items():
        test = (service.get("healthcheck") or {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), name


def test_health_checks_and_commands_are_real_cli_invocations() -> None:
    parser = build_parser()
    for name, service in app_services().items():
        for argv in (service["command"], service["healthcheck"]["test"][2:]):
            args, extra = parser.parse_known_args(argv)
            assert args.command in ("serve", "worker", "health"), (name, argv)
            assert not extra or args.command == "worker", (name, argv)
    assert app_services()["worker"]["healthcheck"]["test"][1:4] == ["secreview", "health", "worker"]


def test_key_file_is_mounted_and_redis_is_the_service() -> None:
    data = compose()
    assert data["secrets"]["github_app_key"]["file"].startswith("${GITHUB_PRIVATE_KEY_PATH")
    for name, service in app_services().items():
        env = service["environment"]
        assert "github_app_key" in service["secrets"], name
        assert env["GITHUB_PRIVATE_KEY_PATH"] == "/run/secrets/github_app_key"
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert service["env_file"] == ".env" and service["user"].startswith("${SECREVIEW_UID")
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"


def test_secrets_only_from_env() -> None:
    for name, service in compose()["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAMES.search(key):
                assert str(value).startswith(("${", "/run/secrets/")), (name, key)
    text = (ROOT / "docker-compose.yml").read_text()
    assert not re.search(r"(ghs_|whsec|BEGIN [A-Z ]*PRIVATE KEY)", text)


def compose_client() -> list[str] | None:
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config(tmp_path: Path) -> None:
    client = compose_client()
    if client is None:
        pytest.skip("no docker compose client here; the structure is checked by the tests above")
    for name in ("docker-compose.yml", "Dockerfile"):
        shutil.copy(ROOT / name, tmp_path / name)
    key = tmp_path / "app.pem"
    key.write_text("not read by config\n")
    (tmp_path / ".env").write_text(
        f"GITHUB_APP_ID=1\nGITHUB_WEBHOOK_SECRET=s\nGITHUB_PRIVATE_KEY_PATH={key}\n"
    )
    done = subprocess.run([*client, "config", "-q"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    (tmp_path / ".env").write_text("GITHUB_WEBHOOK_SECRET=s\n")
    missing = subprocess.run(
        [*client, "config", "-q"], cwd=tmp_path, capture_output=True, text=True
    )
    assert missing.returncode != 0 and "GITHUB_APP_ID" in missing.stderr
