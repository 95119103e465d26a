"""RepoConfig: allowlisted keys, validation, suppressions that expire."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.errors import ConfigError
from bot.repo_config import RepoConfig, parse_repo_config


def test_empty_or_missing_config_gives_defaults() -> None:
    assert parse_repo_config(None) == RepoConfig()
    assert parse_repo_config("") == RepoConfig()
    assert parse_repo_config("# only a comment\n") == RepoConfig()


def test_full_config_is_parsed() -> None:
    cfg = parse_repo_config(
        """
fail_on: medium
comment_threshold: high
include: ["src/**"]
exclude: docs/**
instructions: |
  Payment tokens are confidential.
review_drafts: true
max_inline_comments: 10
min_confidence: 0.7
ignore:
  - fingerprint: abc123
    reason: false positive in test helper
accept_risk:
  - fingerprint: def456
    until: 2026-12-31
    reason: fix scheduled
"""
    )
    assert cfg.fail_on == "medium" and cfg.comment_threshold == "high"
    assert cfg.include == ("src/**",) and cfg.exclude == ("docs/**",)
    assert cfg.filter_rules.include == ("src/**",)
    assert cfg.instructions == "Payment tokens are confidential."
    assert cfg.review_drafts and cfg.max_inline_comments == 10 and cfg.min_confidence == 0.7
    assert cfg.suppressed("abc123") is not None
    assert cfg.suppressed("def456", today=dt.date(2026, 12, 31)) is not None
    assert cfg.suppressed("def456", today=dt.date(2027, 1, 1)) is None  # expired comes back
    assert cfg.suppressed("zzz") is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fail_on: severe", "fail_on"),
        ("colour: blue", "unknown setting"),
        ("include: 3", "include must be a list"),
        ("- a\n- b", "must be a mapping"),
        ("max_inline_comments: 500", "between"),
        ("min_confidence: high", "must be a number"),
        ("accept_risk:\n  - fingerprint: x\n    reason: no date", "until"),
        ("ignore:\n  - reason: no fingerprint", "fingerprint"),
        ("a: [unclosed", "not valid YAML"),
        ("instructions: [1, 2]", "instructions must be text"),
    ],
)
def test_bad_config_is_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_repo_config(text)


def test_oversized_config_is_refused() -> None:
    with pytest.raises(ConfigError, match="larger than"):
        parse_repo_config("instructions: " + "x" * 70_000)


def test_yaml_tags_cannot_construct_objects() -> None:
    with pytest.raises(ConfigError):
        parse_repo_config("fail_on: !!python/object/apply:os.system ['true']")


def test_an_all_digit_fingerprint_must_be_quoted() -> None:
    with pytest.raises(ConfigError, match="quote the ignore fingerprint"):
        parse_repo_config(b"ignore:\n  - fingerprint: 1234567890123456\n")
    config = parse_repo_config(b"ignore:\n  - fingerprint: '0123456789012345'\n")
    assert config.suppressed("0123456789012345") is not None
