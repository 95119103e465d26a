"""Organisation defaults: ``OWNER/.github:secreview.yml`` under each repository's own file,
setting by setting, with provenance; an invalid shared file is reported, never quoted, never
leaked."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.config import Settings
from bot.errors import ConfigError
from bot.findings import ReviewResult
from bot.github.client import GitHubApp, Installation
from bot.repo_config import CONFIG_PATH, RepoConfig, merge_repo_config, parse_repo_config
from bot.report import render
from bot.report.publish import summary_body
from tests.emulators.server import LiveServer
from tests.fakes.github import FakeGitHub

ORG = "octo/.github:secreview.yml"
SHARED = b"""
fail_on: medium
exclude: ["docs/**"]
instructions: Payment tokens are confidential across the organisation.
verify: true
"""


def test_repository_file_overrides_setting_by_setting() -> None:
    config = merge_repo_config(
        SHARED, b"fail_on: critical\nmin_confidence: 0.7\n", shared_label=ORG
    )
    assert config.fail_on == "critical" and config.min_confidence == 0.7
    assert config.exclude == ("docs/**",) and config.verify is True
    assert "Payment tokens" in config.instructions
    assert dict(config.provenance) == {
        "exclude": ORG,
        "fail_on": CONFIG_PATH,
        "instructions": ORG,
        "min_confidence": CONFIG_PATH,
        "verify": ORG,
    }
    assert config.notes == ()


def test_shared_defaults_alone_and_neither() -> None:
    assert merge_repo_config(SHARED, None, shared_label=ORG).fail_on == "medium"
    empty = merge_repo_config(None, None, shared_label=ORG)
    assert empty == RepoConfig() and empty.provenance == ()


@pytest.mark.parametrize(
    ("shared", "kind"),
    [
        (b"fail_on: [unclosed\napi_token: ghp_supersecretvalue123", "not valid YAML"),
        (b"- just\n- a list\n", "not a mapping of settings"),
        (b"fail_on: high\nsecret_sauce: ghp_supersecretvalue123\n", "unknown settings"),
        (b"min_confidence: 7\n", "a setting with an invalid value"),
    ],
)
def test_invalid_shared_file_is_reported_without_its_contents(shared: bytes, kind: str) -> None:
    config = merge_repo_config(shared, b"fail_on: low\n", shared_label=ORG)
    assert config.fail_on == "low" and config.min_confidence == 0.5  # own file + defaults
    assert len(config.notes) == 1 and kind in config.notes[0] and ORG in config.notes[0]
    assert "ghp_" not in config.notes[0] and "secret_sauce" not in config.notes[0]
    assert dict(config.provenance) == {"fail_on": CONFIG_PATH}


def test_invalid_repository_file_is_still_an_error() -> None:
    with pytest.raises(ConfigError):
        merge_repo_config(SHARED, b"fail_on: sometimes\n", shared_label=ORG)


def test_local_file_has_provenance_too() -> None:
    assert parse_repo_config(b"verify: true\n").provenance == (("verify", CONFIG_PATH),)


def test_summary_says_which_file_set_what() -> None:
    config = merge_repo_config(b"fail_on: [", b"verify: true\n", shared_label=ORG)
    body = summary_body("a" * 40, ReviewResult(findings=()), (), (), (), config=config)
    section = body[body.index("### Configuration") :]
    assert "`verify` from `.github/secreview.yml`" in section
    assert "not valid YAML and was not applied" in section
    assert render.config_section(RepoConfig()) == []


# --- fetched through the App ---------------------------------------------------------------


@pytest.fixture
def org(app_key: tuple[str, str]) -> Iterator[tuple[FakeGitHub, Installation]]:
    fake = FakeGitHub("77", app_key[1])
    for name in ("octo/shop", "octo/billing", "octo/.github"):
        fake.add_repo(name, 5)
    fake.add_repo("other/app", 6)
    fake.set_file("octo/.github", "main", "secreview.yml", SHARED)
    fake.set_file("octo/shop", "main", CONFIG_PATH, b"instructions: shop-only secret context\n")
    with LiveServer(fake.app) as server:
        settings = Settings.from_env(
            {"GITHUB_APP_ID": "77", "GITHUB_PRIVATE_KEY": app_key[0], "GITHUB_API_URL": server.url}
        )
        yield fake, GitHubApp(settings).installation(5)


def test_every_repository_of_the_owner_gets_the_defaults(
    org: tuple[FakeGitHub, Installation],
) -> None:
    fake, inst = org
    shop = inst.repo_config("octo/shop", "main")
    billing = inst.repo_config("octo/billing", "main")
    assert shop.instructions == "shop-only secret context"  # its own file wins
    assert dict(shop.provenance)["instructions"] == CONFIG_PATH
    assert billing.fail_on == shop.fail_on == "medium" and billing.verify
    assert "shop-only" not in billing.instructions  # never leaked into another repository
    assert billing.instructions.startswith("Payment tokens")
    assert fake.calls("GET", r"^/repos/octo/\.github/contents/secreview\.yml$")


def test_an_unreadable_shared_repository_is_no_error(app_key: tuple[str, str]) -> None:
    fake = FakeGitHub("77", app_key[1])
    fake.add_repo("solo/app", 9)  # the App is not installed on solo/.github
    with LiveServer(fake.app) as server:
        settings = Settings.from_env(
            {"GITHUB_APP_ID": "77", "GITHUB_PRIVATE_KEY": app_key[0], "GITHUB_API_URL": server.url}
        )
        config = GitHubApp(settings).installation(9).repo_config("solo/app", "main")
    assert config == RepoConfig()


def test_a_broken_shared_file_is_reported_once_per_repository(
    org: tuple[FakeGitHub, Installation],
) -> None:
    fake, inst = org
    fake.set_file("octo/.github", "main", "secreview.yml", b"fail_on: [\ntoken: ghp_leak\n")
    for repo in ("octo/shop", "octo/billing"):
        config = inst.repo_config(repo, "main")
        assert len(config.notes) == 1 and "ghp_leak" not in config.notes[0]
        assert config.fail_on == "high"  # the defaults, not half of a broken file
