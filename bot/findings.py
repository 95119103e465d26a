"""Model findings as values: schema validation, evidence check, placement, fingerprints, gate."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from bot.diff import ChangedFile, ReviewUnit, Side, Skip

Severity = Literal["critical", "high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low")
SEVERITY_RANK: Mapping[str, int] = {"critical": 4, "high": 3, "medium": 2, "low": 1}
Source = Literal["model", "secrets", "bandit"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One security finding, placed on the new file; ``on_diff`` means it can be commented inline."""

    path: str
    line: int
    severity: Severity
    cwe: str
    title: str
    description: str
    exploit_scenario: str
    recommendation: str
    confidence: float
    evidence: str
    start_line: int | None = None
    suggestion: str | None = None
    source: Source = "model"
    fingerprint: str = ""
    side: Side = "RIGHT"
    on_diff: bool = True
    unit: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The DESIGN.md §3 report shape of this finding."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Rejection:
    """A candidate finding that was dropped, and why (counted in the summary, never silent)."""

    unit: str
    reason: str
    title: str = ""
    path: str = ""


@dataclass(frozen=True, slots=True)
class Stats:
    """Model usage of one review or scan."""

    requests: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def cached_share(self) -> float:
        """Cached prompt tokens as a fraction of all prompt tokens."""
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


@dataclass(frozen=True, slots=True)
class Coverage:
    """What was reviewed and what was skipped, with reasons."""

    reviewed: tuple[str, ...] = ()
    skipped: tuple[Skip, ...] = ()


@dataclass(frozen=True, slots=True)
class ReviewResult:
    """Everything a report needs: findings, usage, coverage, and what was dropped."""

    findings: tuple[Finding, ...]
    stats: Stats = field(default_factory=Stats)
    coverage: Coverage = field(default_factory=Coverage)
    rejected: tuple[Rejection, ...] = ()
    failed_units: tuple[Skip, ...] = ()
    model: str | None = None


def parse_model_output(content: str) -> list[dict[str, Any]]:
    """Validate raw model output against prompts/findings.schema.json; InvalidModelOutput if not."""
    raise NotImplementedError


def fingerprint(cwe: str, path: str, evidence: str) -> str:
    """A stable id that survives the code moving within the file: CWE + path + normalized evidence."""
    raise NotImplementedError


def place_findings(
    raw: Sequence[Mapping[str, Any]],
    unit: ReviewUnit,
    files: Mapping[str, ChangedFile],
    source: Source = "model",
) -> tuple[list[Finding], list[Rejection]]:
    """Check each raw finding's evidence against the unit's new-file lines and place it."""
    raise NotImplementedError


def dedupe(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per fingerprint (the most severe, then the most confident), stably sorted."""
    raise NotImplementedError


def at_or_above(findings: Iterable[Finding], level: str) -> list[Finding]:
    """Findings whose severity is ``level`` or worse."""
    raise NotImplementedError
