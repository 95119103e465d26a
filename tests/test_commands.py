"""Command parsing and the worker's answers (pure)."""

from __future__ import annotations

import datetime as dt

import pytest

from bot.commands import CommandError, find_command, parse_command
from bot.jobs import CommandJob
from workers.commands import answer


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
    assert "only takes commands from owners" in answer(job("/secreview review", authorized=False))
    reply = answer(job("/secreview accept-risk 1a2b3c4d --until 2027-01-31 internal only"))
    assert (
        "accept_risk:" in reply
        and "fingerprint: 1a2b3c4d" in reply
        and "until: 2027-01-31" in reply
    )
    assert "unknown command" in answer(job("/secreview frobnicate"))
