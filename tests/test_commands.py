"""Commands: parsing, replies, and triage through a pull request on the base branch."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.github.commands import CommandError, find_command, parse_command
from bot.jobs import CommandJob
from bot.repo_config import parse_repo_config
from workers.commands import answer, with_suppression


def job(command: str, authorized: bool = True) -> CommandJob:
    return CommandJob(1, "octo/shop", 7, 99, "alice", command, "d", authorized)


def test_commands_parse() -> None:
    assert parse_command("/secreview review").verb == "review"
    assert parse_command("/secreview").verb == "help"
    ignore = parse_command("/secreview ignore 1a2b3c4d5e6f7a8b test fixture only")
    assert (ignore.verb, ignore.fingerprint, ignore.reason) == (
        "ignore",
        "1a2b3c4d5e6f7a8b",
        "test fixture only",
    )
    risk = parse_command('/secreview accept-risk 1a2b3c4d --until 2027-01-31 "behind the VPN"')
    assert risk.until == dt.date(2027, 1, 31) and risk.reason == "behind the VPN"


@pytest.mark.parametrize(
    "line",
    [
        "/secreview frobnicate",
        "/secreview ignore nothex reason",
        "/secreview ignore 1a2b3c4d",
        "/secreview accept-risk 1a2b3c4d reason",
        "/secreview accept-risk 1a2b3c4d --until 2027-13-01 x",
        "/secreview review now",
        '/secreview ignore 1a2b3c4d "unterminated',
    ],
)
def test_bad_commands_say_how(line: str) -> None:
    with pytest.raises(CommandError):
        parse_command(line)


def test_find_command_needs_its_own_line() -> None:
    assert find_command("thanks!\n/secreview scan\n") == "/secreview scan"
    assert find_command("please run /secreview scan") is None
    assert find_command("/secreviewer") is None


def test_answers() -> None:
    assert "write access" in str(answer(job("/secreview review", authorized=False)))
    command = answer(job("/secreview accept-risk 1a2b3c4d --until 2027-01-31 internal only"))
    assert not isinstance(command, str) and command.verb == "accept-risk"
    assert "unknown command" in str(answer(job("/secreview frobnicate")))


def test_suppressions_are_added_to_the_config_and_validated() -> None:
    cmd = parse_command("/secreview accept-risk 1a2b3c4d --until 2027-01-31 internal only")
    current = "fail_on: critical\nignore:\n  - fingerprint: ffff0000\n    reason: x\n"
    config = parse_repo_config(with_suppression(current, cmd).encode())
    assert config.fail_on == "critical"
    assert {s.fingerprint for s in config.suppressions} == {"ffff0000", "1a2b3c4d"}
    assert config.suppressed("1a2b3c4d", dt.date(2027, 1, 31)) is not None
    assert config.suppressed("1a2b3c4d", dt.date(2027, 2, 1)) is None  # it comes back


def test_triage_opens_a_pull_request_on_the_base_branch(
    redis_url: str,
    app_key: tuple[str, str],
) -> None:
    import redis

    from bot.config import Settings
    from bot.github.client import GitHubApp
    from tests.emulators.server import LiveServer
    from tests.fakes.github import FakeGitHub, Pull
    from workers.commands import run_command
    from workers.driver import Runtime

    fake = FakeGitHub("88", app_key[1])
    repo = fake.add_repo("octo/shop", 4)
    fake.set_file("octo/shop", "main", ".github/secreview.yml", b"fail_on: high\n")
    fake.add_pull("octo/shop", Pull(7, "a" * 40, ""))
    repo.permissions.update({"alice": "write", "bob": "read"})
    with LiveServer(fake.app) as gh:
        env = {
            "GITHUB_APP_ID": "88",
            "GITHUB_PRIVATE_KEY": app_key[0],
            "GITHUB_API_URL": gh.url,
            "REDIS_URL": redis_url,
        }
        settings = Settings.from_env(env)
        svc = Runtime(
            settings=settings,
            redis=redis.Redis.from_url(redis_url),
            github=GitHubApp(settings).installation,
            schedule=lambda *_step: None,
        )
        line = "/secreview ignore 1a2b3c4d5e6f7a8b test fixture only"
        cmd = CommandJob(4, "octo/shop", 7, 1, "alice", line, "d")
        assert run_command(cmd, svc) == "proposed #8"
        assert run_command(cmd, svc) == "proposed #8"  # a repeated command reuses the PR
        branch = "secreview/ignore-1a2b3c4d5e6f7a8b"
        proposed = parse_repo_config(repo.files[(branch, ".github/secreview.yml")])
        assert proposed.fail_on == "high" and proposed.suppressed("1a2b3c4d5e6f7a8b")
        assert parse_repo_config(repo.files[("main", ".github/secreview.yml")]).suppressions == ()
        assert repo.pulls[8].base_ref == "main" and "@alice" in repo.pulls[8].body
        # A collaborator without write access is refused, and nothing is proposed.
        assert run_command(CommandJob(4, "octo/shop", 7, 2, "bob", line, "d"), svc) == "refused"
        assert len(repo.pulls) == 2
        assert "write access" in fake.issue_comments[-1]["body"]
