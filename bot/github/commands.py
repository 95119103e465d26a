"""``/secreview`` commands in pull-request comments: a small grammar, parsed without I/O."""

from __future__ import annotations

import datetime as dt
import re
import shlex
from dataclasses import dataclass
from typing import Literal

from bot.errors import SecreviewError

PREFIX = "/secreview"
WRITE_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})
_FINGERPRINT = re.compile(r"[0-9a-f]{8,64}")
Verb = Literal["review", "scan", "ignore", "accept-risk", "help"]
USAGE = (
    "Commands: `/secreview review`, `/secreview scan`, "
    "`/secreview ignore <fingerprint> <reason>`, "
    "`/secreview accept-risk <fingerprint> --until YYYY-MM-DD <reason>`"
)


class CommandError(SecreviewError):
    """A ``/secreview`` line that does not parse; the message says how to write it."""

    reason = "bad_command"


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed command."""

    verb: Verb
    fingerprint: str = ""
    reason: str = ""
    until: dt.date | None = None


def find_command(body: str) -> str | None:
    """The first line of ``body`` that starts with ``/secreview``, if any."""
    for line in body.splitlines():
        stripped = line.strip()
        if stripped == PREFIX or stripped.startswith(PREFIX + " "):
            return stripped
    return None


def parse_command(line: str) -> Command:
    """Parse one ``/secreview ...`` line; CommandError with usage on anything else."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise CommandError(f"cannot parse command ({exc}). {USAGE}") from None
    if not words or words[0] != PREFIX:
        raise CommandError(f"not a secreview command. {USAGE}")
    if len(words) == 1 or words[1] == "help":
        return Command("help")
    verb, args = words[1], words[2:]
    if verb in ("review", "scan"):
        if args:
            raise CommandError(f"`{verb}` takes no arguments. {USAGE}")
        return Command(verb)  # type: ignore[arg-type]
    if verb == "ignore":
        fingerprint, rest = _fingerprint(args)
        if not rest:
            raise CommandError("`ignore` needs a reason after the fingerprint")
        return Command("ignore", fingerprint, " ".join(rest))
    if verb == "accept-risk":
        fingerprint, rest = _fingerprint(args)
        if len(rest) < 2 or rest[0] != "--until":
            raise CommandError("`accept-risk` needs `--until YYYY-MM-DD` and a reason")
        until = _date(rest[1])
        if not rest[2:]:
            raise CommandError("`accept-risk` needs a reason after the date")
        return Command("accept-risk", fingerprint, " ".join(rest[2:]), until)
    raise CommandError(f"unknown command `{verb}`. {USAGE}")


def _fingerprint(args: list[str]) -> tuple[str, list[str]]:
    if not args or not _FINGERPRINT.fullmatch(args[0]):
        raise CommandError("expected a finding fingerprint (hex, as shown in the comment)")
    return args[0], args[1:]


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"`{text}` is not a date (YYYY-MM-DD)") from None
