"""What reviewers said about posted findings: dismissals from thread replies and commands.

Pure: GitHub is the record. ``bot.github.client`` reads the review comments (the bot's finding
comments and the replies in their threads) and the PR's issue comments into ``Comment`` values;
``dismissals`` decides which fingerprints people with write access rejected, by whom and when.
Recomputed from GitHub on every review, a dismissal lasts as long as its thread: every later push
of the pull request honours it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

from bot.review.prompts import PreviousFinding

# Who may dismiss: the same associations whose /secreview commands are obeyed (DESIGN.md §6).
WRITE_ACCESS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})
_APOSTROPHE = "['\u2019]?"
# Phrases that reject a finding, as people write them in a reply.
_REJECTIONS = re.compile(
    r"\b(?:false[ -]positives?|won" + _APOSTROPHE + r"t fix|will not fix|wontfix|"
    r"not (?:a|an) (?:real )?(?:bug|issue|vulnerability|problem)|not exploitable|"
    r"by design|intended behaviou?r|accepted risk|accept(?:ing)? the risk)\b",
    re.IGNORECASE,
)
# "this is NOT a false positive", "isn't a false positive", "no false positive here"
_NEGATED = re.compile(r"(?:\bnot|n" + _APOSTROPHE + r"t|\bno|\bnever)\s+(?:\w+\s+){0,2}$", re.I)
_IGNORE = re.compile(r"^/secreview\s+ignore\b(?P<rest>.*)$", re.IGNORECASE)
_FINGERPRINT = re.compile(r"[0-9a-f]{8,64}")
_CODE_BLOCK = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
_SENTENCE_END = re.compile(r"[.!?\n]")

How = Literal["reply", "command"]


@dataclass(frozen=True, slots=True)
class Comment:
    """A comment on a pull request, as GitHub lists it (review comment or issue comment)."""

    id: int
    body: str
    author: str
    association: str  # GitHub's author_association: OWNER, MEMBER, COLLABORATOR, NONE...
    created_at: str  # ISO 8601, as GitHub sends it
    in_reply_to: int | None = None
    bot: bool = False


@dataclass(frozen=True, slots=True)
class Dismissal:
    """A finding a person with write access rejected on this pull request."""

    fingerprint: str
    by: str
    at: str
    how: How
    reason: str
    path: str = ""


@dataclass(frozen=True, slots=True)
class ReviewFeedback:
    """What a re-review needs from the conversation: dismissals and the findings still open."""

    dismissed: tuple[Dismissal, ...] = ()
    previous: tuple[PreviousFinding, ...] = ()


class HasFingerprint(Protocol):
    """Anything with a fingerprint (``bot.findings.Finding``)."""

    @property
    def fingerprint(self) -> str: ...


F = TypeVar("F", bound=HasFingerprint)


def _prose(body: str) -> str:
    """``body`` without quoted lines and code blocks (people quote the bot's own words)."""
    text = _CODE_BLOCK.sub("", body)
    return "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith(">"))


def _sentence_end(text: str, start: int) -> str:
    found = _SENTENCE_END.search(text, start)
    return found.group() if found else ""


def rejection(body: str) -> str | None:
    """What in ``body`` rejects a finding (a phrase or ``/secreview ignore``), or None.

    A phrase that is negated ("not a false positive") or asked ("a false positive?") is no
    decision.
    """
    text = _prose(body)
    for line in text.splitlines():
        command = _IGNORE.match(line.strip())
        if command:
            return line.strip()
    for match in _REJECTIONS.finditer(text):
        before = text[: match.start()]
        sentence_start = max(before.rfind(c) for c in ".!?\n") + 1
        if _NEGATED.search(before[sentence_start:]):
            continue
        if _sentence_end(text, match.end()) == "?":
            continue
        return match.group().lower()
    return None


def _command_fingerprint(reason: str) -> str | None:
    """The fingerprint a ``/secreview ignore <fp> ...`` line names, if any."""
    match = _IGNORE.match(reason)
    words = match.group("rest").split() if match else []
    return words[0] if words and _FINGERPRINT.fullmatch(words[0]) else None


def _by_write_user(comment: Comment) -> bool:
    return not comment.bot and comment.association in WRITE_ACCESS


def dismissals(
    threads: Mapping[int, str],
    replies: Iterable[Comment],
    commands: Iterable[Comment] = (),
    paths: Mapping[str, str] | None = None,
) -> tuple[Dismissal, ...]:
    """Fingerprints people with write access rejected, the earliest decision for each.

    ``threads`` maps the id of each of the bot's finding comments to its fingerprint; a reply in
    one of those threads that rejects it dismisses that fingerprint (a ``/secreview ignore``
    reply naming another fingerprint is ignored). ``commands`` are the PR's issue comments:
    ``/secreview ignore <fingerprint> <reason>`` there dismisses the fingerprint it names.
    """
    found: list[Dismissal] = []
    for reply in replies:
        fingerprint = threads.get(reply.in_reply_to) if reply.in_reply_to is not None else None
        if fingerprint is None or not _by_write_user(reply):
            continue
        reason = rejection(reply.body)
        named = _command_fingerprint(reason) if reason else None
        if reason is None or (named is not None and named != fingerprint):
            continue
        found.append(Dismissal(fingerprint, reply.author, reply.created_at, "reply", reason))
    for comment in commands:
        if not _by_write_user(comment):
            continue
        for line in _prose(comment.body).splitlines():
            named = _command_fingerprint(line.strip())
            if named is not None:
                found.append(
                    Dismissal(named, comment.author, comment.created_at, "command", line.strip())
                )
    earliest: dict[str, Dismissal] = {}
    for d in sorted(found, key=lambda d: (d.at, d.how != "reply")):
        earliest.setdefault(d.fingerprint, d)
    where = paths or {}
    return tuple(
        Dismissal(d.fingerprint, d.by, d.at, d.how, d.reason, where.get(d.fingerprint, ""))
        for d in sorted(earliest.values(), key=lambda d: d.fingerprint)
    )


def apply(
    findings: Sequence[F], dismissed: Iterable[Dismissal]
) -> tuple[tuple[F, ...], tuple[F, ...]]:
    """``(kept, dismissed)``: findings whose fingerprint someone dismissed are not raised again."""
    gone = {d.fingerprint for d in dismissed}
    kept = tuple(f for f in findings if f.fingerprint not in gone)
    return kept, tuple(f for f in findings if f.fingerprint in gone)
