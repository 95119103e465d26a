"""Suppressions from the base branch: ``ignore`` for good, ``accept_risk`` until a date.

An acceptance that has expired no longer hides its finding, and the summary says so; one that
expires soon is announced ahead of time, so the team can renew or fix it before it reappears.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from bot.findings import Finding, ReviewResult
from bot.repo_config import RepoConfig, Suppression

SOON = dt.timedelta(days=14)


@dataclass(frozen=True, slots=True)
class Suppressed:
    """What the suppressions did to one review."""

    hidden: tuple[tuple[Finding, Suppression], ...] = ()
    expired: tuple[tuple[Finding, Suppression], ...] = ()
    expiring: tuple[tuple[Finding, Suppression], ...] = ()

    def notes(self) -> list[str]:
        """Summary lines: each hidden, expired or soon-expiring suppression."""
        lines = []
        for f, rule in self.hidden:
            until = f" until {rule.until.isoformat()}" if rule.until else ""
            why = rule.reason or "no reason"
            lines.append(f"`{f.fingerprint}` ({f.title}) suppressed{until}: {why}")
        for f, rule in self.expired:
            lines.append(
                f"`{f.fingerprint}` ({f.title}): the accepted risk expired on "
                f"{_until(rule).isoformat()}, so it is reported again"
            )
        for f, rule in self.expiring:
            lines.append(
                f"`{f.fingerprint}` ({f.title}): the accepted risk expires on "
                f"{_until(rule).isoformat()}; renew it or fix the finding"
            )
        return lines


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _until(rule: Suppression) -> dt.date:
    return rule.until or dt.date.max


def _rules_for(config: RepoConfig, fingerprint: str) -> list[Suppression]:
    return [rule for rule in config.suppressions if rule.fingerprint == fingerprint]


def apply(
    result: ReviewResult, config: RepoConfig, *, today: dt.date | None = None
) -> tuple[ReviewResult, Suppressed]:
    """Hide the findings an active suppression covers; report expired and expiring ones."""
    day = today or _utc_today()
    kept: list[Finding] = []
    hidden, expired, expiring = [], [], []
    for f in result.findings:
        rules = _rules_for(config, f.fingerprint)
        active = [rule for rule in rules if rule.active(day)]
        if not active:
            kept.append(f)
            if rules:  # every rule for it has expired: name the latest one
                expired.append((f, max(rules, key=_until)))
            continue
        # An ignore outlasts any acceptance; otherwise the latest acceptance wins.
        rule = max(active, key=_until)
        hidden.append((f, rule))
        if rule.until is not None and rule.until - day <= SOON:
            expiring.append((f, rule))
    out = dataclasses.replace(result, findings=tuple(kept))
    return out, Suppressed(tuple(hidden), tuple(expired), tuple(expiring))
