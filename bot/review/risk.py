"""Risk routing: which changes need the model at all, and which paths must never be cut.

A pull request touching only documentation, images or lockfiles costs no model call (the
deterministic analyzers still run). Security-sensitive paths — auth, crypto, secrets, CI
workflows, infrastructure code, container files, migrations — are always reviewed in full: they
go first, so a unit cap never drops them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bot.diff import ChangedFile
from bot.diff.split import LOCKFILES
from bot.paths import is_prose

# Media and fonts: nothing a security review can read (SVG, which can carry script, is not here).
_MEDIA_SUFFIXES = (
    ".png",
    ".jpg",
    ".jpeg",
    ".gif",
    ".ico",
    ".webp",
    ".pdf",
    ".mp4",
    ".woff",
    ".woff2",
    ".ttf",
)
_SENSITIVE = re.compile(
    r"(^|/)\.github/workflows/|auth(?!ors?\b)|login|oauth|saml|session|passw|crypt|secret|"
    r"token|cert|permission|(^|/)(docker|container)file([.-][^/]*)?$|\.dockerfile$|"
    r"(^|/)docker-compose[^/]*$|\.tf$|\.tfvars$|\.bicep$|(^|/)(k8s|helm|terraform|charts|"
    r"cloudformation)/|(^|/)(migrations?|migrate)/|\.github/secreview\.yml$|"
    r"(^|/)\.gitlab-ci\.yml$|(^|/)jenkinsfile$|(^|/)\.circleci/|(^|/)\.env(\.[^/]*)?$|"
    r"\.(pem|key|p12|pfx|jks|keystore)$",
    re.I,
)


@dataclass(frozen=True, slots=True)
class RiskRoute:
    """The decision for one change."""

    needs_model: bool
    sensitive: tuple[str, ...]
    reason: str


def is_low_risk(path: str) -> bool:
    """Documentation, media, licences and lockfiles: nothing a security review can find."""
    name = path.rsplit("/", 1)[-1]
    return is_prose(path) or name.lower().endswith(_MEDIA_SUFFIXES) or name in LOCKFILES


def is_sensitive(path: str) -> bool:
    """Paths that always get the full review."""
    return bool(_SENSITIVE.search(path))


def route(paths: Iterable[str]) -> RiskRoute:
    """Whether the model is needed for a change touching ``paths``."""
    paths = list(paths)
    sensitive = tuple(p for p in paths if is_sensitive(p))
    if paths and not sensitive and all(is_low_risk(p) for p in paths):
        return RiskRoute(False, (), "only documentation, media or lockfiles changed")
    return RiskRoute(True, sensitive, "")


def sensitive_first(files: Sequence[ChangedFile]) -> list[ChangedFile]:
    """``files`` with security-sensitive ones first (stable otherwise), so unit caps spare them."""
    return sorted(files, key=lambda f: not is_sensitive(f.path))
