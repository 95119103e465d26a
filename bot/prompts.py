"""Prompt building: a byte-stable cached prefix (policy, schema, repo context) + one unit message."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bot.diff import ReviewUnit


@dataclass(frozen=True, slots=True)
class RepoContext:
    """What the model should know about a repository; rendered from sorted inputs only."""

    repo: str = ""
    languages: tuple[str, ...] = ()
    frameworks: tuple[str, ...] = ()
    manifests: tuple[str, ...] = ()
    security_files: tuple[str, ...] = ()
    instructions: str = ""


@dataclass(frozen=True, slots=True)
class PRContext:
    """Untrusted pull-request text: title, description and the changed files."""

    title: str = ""
    body: str = ""
    files: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Prefix:
    """The stable system prompt and its sha256 (which keys cache affinity)."""

    text: str
    sha256: str


def build_prefix(repo: RepoContext) -> Prefix:
    """Policy → output schema → repo context, byte-identical for equal inputs."""
    raise NotImplementedError


def render_unit(unit: ReviewUnit) -> str:
    """The diff text of a unit: each segment's path header and its rendered hunks."""
    raise NotImplementedError


def build_unit_message(
    unit: ReviewUnit,
    pr: PRContext | None = None,
    hints: Sequence[str] = (),
    redactions: int = 0,
) -> str:
    """The volatile user message: fenced PR context, then hints, then the fenced unit."""
    raise NotImplementedError


def build_messages(prefix: Prefix, unit_message: str) -> tuple[dict[str, str], ...]:
    """System message = prefix, user message = unit message."""
    raise NotImplementedError


def findings_schema() -> dict[str, Any]:
    """prompts/findings.schema.json."""
    raise NotImplementedError


def response_format() -> dict[str, Any]:
    """The ``response_format`` json_schema object sent with every request."""
    raise NotImplementedError


def affinity_key(
    installation: int | str, repo: str, prefix_sha: str, kind: Literal["review", "scan"] = "review"
) -> str:
    """``sr-`` + sha256(installation, repo, prefix_sha, kind)[:24]: one key per repo and prefix."""
    raise NotImplementedError
