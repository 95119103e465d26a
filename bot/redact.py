"""Secret detection and placeholder redaction, applied before any text leaves the process."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.diff import ChangedFile
from bot.findings import Finding


@dataclass(frozen=True, slots=True)
class SecretHit:
    """One secret found in a text: its kind, where it was, and the placeholder that replaced it.

    ``digest`` is a short sha256 of the value, so equal secrets can be matched without keeping
    the value itself anywhere.
    """

    kind: str
    line: int
    column: int
    placeholder: str
    digest: str


@dataclass(frozen=True, slots=True)
class Redacted:
    """A text with its secrets replaced by typed placeholders."""

    text: str
    hits: tuple[SecretHit, ...]


def redact_text(text: str) -> Redacted:
    """Replace every secret in ``text`` with a typed placeholder such as ``[REDACTED:aws-access-key]``."""
    raise NotImplementedError


def redact_files(files: Sequence[ChangedFile]) -> tuple[list[ChangedFile], list[Finding]]:
    """Redact the lines of each file; each secret on an added line becomes a secrets finding."""
    raise NotImplementedError


def scan_text(path: str, text: str) -> list[Finding]:
    """Secrets findings for a whole file's text (full-repository scan)."""
    raise NotImplementedError
