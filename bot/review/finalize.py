"""Finishing a run's result, one order for every driver: suppress → exclude → verify → gate.

Also the check conclusion: the gate applies to whatever was found — a committed secret fails
the check even when the model never answered — and an incomplete model review is concluded as
the repository says (``on_incomplete``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from dataclasses import dataclass

from bot.findings import Finding, Rejection, ReviewResult, gate_exceeded
from bot.model.values import ModelResult
from bot.repo_config import RepoConfig
from bot.review import feedback, suppress, verify
from bot.review.feedback import Dismissal

Conclusion = str  # "success" | "failure" | "neutral"
SECOND_LOOK = "second look"


@dataclass(frozen=True, slots=True)
class Final:
    """The finished result of a run: what to report, the notes, and the check conclusion.

    ``refuted``: fingerprints the verification pass dropped (so a stored file result can
    remember them); ``incomplete``: whether part of the model review is missing.
    """

    result: ReviewResult
    notes: tuple[str, ...] = ()
    conclusion: Conclusion = "success"
    refuted: tuple[str, ...] = ()
    incomplete: bool = False
    failure: str = ""
    verified: int = 0  # model findings the verification pass checked
    verify_usage: tuple[int, int, int] = (0, 0, 0)  # its prompt, cached, completion tokens
    verify_cost_usd: float = 0.0
    dropped: tuple[Finding, ...] = ()  # what the second look dropped (exclusions, verdicts)
    dismissed: tuple[Finding, ...] = ()  # what people dismissed on this pull request


def verification_candidates(
    result: ReviewResult,
    config: RepoConfig,
    reused: Sequence[str],
    dismissed: Sequence[Dismissal] = (),
    settled: Collection[str] = (),
) -> list[Finding]:
    """The model findings the verification pass should check, in the order ``finalize`` sees them.

    Findings of reused files were checked when they were first reviewed, and so were the
    ``settled`` fingerprints (earlier findings on code a narrowed re-review did not show). A
    finding a deterministic analyzer corroborates is not second-guessed: the analyzer's own
    finding would be reported unverified anyway, and a reused result must judge it as a fresh
    one does.
    """
    kept, _ = suppress.apply(result, config)
    remaining, _ = feedback.apply(kept.findings, dismissed)
    excluded, _ = verify.exclude(dataclasses.replace(kept, findings=remaining))
    skip = set(reused)
    return [
        f
        for f in excluded.findings
        if f.source == "model"
        and f.path not in skip
        and f.fingerprint not in settled
        and not f.corroborated_by
    ]


def finalize(
    result: ReviewResult,
    config: RepoConfig,
    *,
    checked: Sequence[str] = (),
    answers: Sequence[ModelResult] = (),
    verify_model: str = "",
    notes: Sequence[str] = (),
    skip_conclusion: str = "",
    verify_note: str = "",
    dismissed: Sequence[Dismissal] = (),
) -> Final:
    """Suppress (the config, then this PR's dismissals), exclude, apply the verification
    verdicts, then gate — always in this order."""
    kept, hidden = suppress.apply(result, config)
    out_notes = [*notes, *hidden.notes()]
    remaining, gone = feedback.apply(kept.findings, dismissed)
    kept = dataclasses.replace(kept, findings=remaining)
    kept, look = verify.exclude(kept)
    refuted: set[str] = set()
    if checked:
        by_fp = {f.fingerprint: f for f in kept.findings}
        findings = [by_fp[fp] for fp in checked if fp in by_fp]
        before = {f.fingerprint for f in kept.findings}
        kept = verify.apply_verdicts(
            kept, findings, answers, look, config.min_confidence, verify_model
        )
        refuted = before - {f.fingerprint for f in kept.findings}
    out_notes += look.notes()
    if verify_note:
        out_notes.append(verify_note)
    dropped = tuple(
        Rejection(SECOND_LOOK, reason)
        for reason, n in sorted(look.dropped.items())
        for _ in range(n)
    )
    kept = dataclasses.replace(kept, rejected=kept.rejected + dropped)
    incomplete = bool(kept.coverage.failed or kept.failed_units)
    return Final(
        result=kept,
        notes=tuple(out_notes),
        conclusion=conclusion(kept, config, incomplete=incomplete, forced=skip_conclusion),
        refuted=tuple(sorted(refuted)),
        incomplete=incomplete,
        verified=look.checked,
        verify_usage=(
            look.usage.prompt_tokens,
            look.usage.cached_tokens,
            look.usage.completion_tokens,
        ),
        verify_cost_usd=look.cost_usd,
        dropped=tuple(f for _why, f in look.dropped_findings),
        dismissed=gone,
    )


def conclusion(
    result: ReviewResult, config: RepoConfig, *, incomplete: bool, forced: str = ""
) -> Conclusion:
    """``failure`` at the gate; else ``on_incomplete`` when the model part is missing; else
    ``forced`` (a budget skip is neutral) or ``success``."""
    if config.fail_on != "none" and gate_exceeded(result.findings, config.fail_on):
        return "failure"
    if incomplete:
        return config.on_incomplete
    return forced or "success"


def failed_run(reason: str, config: RepoConfig | None = None) -> Final:
    """The result of a run that could not even be planned: nothing reviewed, a failure."""
    return Final(
        result=ReviewResult(findings=()),
        notes=(reason,),
        conclusion="failure",
        incomplete=True,
        failure=reason,
    )
