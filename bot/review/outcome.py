"""From model answers to a result: validate and place each unit's answer, then assemble.

Pure: a run stores the raw answers and calls these whenever it needs the result, so a worker
that dies between two steps loses nothing that was paid for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from bot import findings as fnd
from bot.diff import ReviewUnit, Skip
from bot.errors import InvalidModelOutput
from bot.findings import Coverage, Finding, Rejection, Reused, ReviewResult, Stats
from bot.model import values as llm
from bot.model.values import ModelRequest, Usage
from bot.review import continuity
from bot.review.plan import Plan

INVALID_OUTPUT = "invalid_model_output"


@dataclass(frozen=True, slots=True)
class UnitOutcome:
    """What came of one unit: placed findings and rejections, or why it has no answer."""

    unit: str
    findings: tuple[Finding, ...] = ()
    rejected: tuple[Rejection, ...] = ()
    error: str | None = None
    model: str = ""
    fixed: tuple[str, ...] = ()  # earlier findings the answer says the code no longer has

    @property
    def answered(self) -> bool:
        """Whether the model's answer for this unit was read."""
        return self.error is None

    @property
    def invalid_output(self) -> bool:
        """Whether the model answered but its answer failed the schema."""
        return self.error is not None and self.error.startswith(INVALID_OUTPUT)


def check_answer(content: str | None) -> str | None:
    """Why ``content`` is not a usable answer (schema, emptiness), or None when it is."""
    if content is None:
        return "empty_response: the model returned no content"
    try:
        fnd.parse_model_output(content)
    except InvalidModelOutput as exc:
        return f"{INVALID_OUTPUT}: {exc}"
    return None


def evaluate(
    plan: Plan, unit_id: str, content: str | None, *, min_confidence: float, model: str = ""
) -> UnitOutcome:
    """Validate one unit's answer and place its findings on the unit's diff."""
    problem = check_answer(content)
    if problem is not None:
        return UnitOutcome(unit_id, error=problem, model=model)
    raw = fnd.parse_model_output(content or "")
    unit = plan.unit(unit_id)
    shown = plan.previous.get(unit_id, ())
    if not shown:
        placed, rejected = fnd.place_findings(
            raw, unit, plan.files, confidence_floor=min_confidence
        )
        kept = _kept(plan, unit_id, placed)
        return UnitOutcome(unit_id, (*placed, *kept), tuple(rejected), model=model)
    # A re-review: continued findings keep their fingerprint, persisting ones are carried over.
    placed, rejected = continuity.place(
        raw, unit, plan.files, shown, confidence_floor=min_confidence
    )
    said = continuity.claims(content or "", shown)
    have = {f.fingerprint for f in placed}
    carried = [
        _replaced(f, unit, plan)
        for f in continuity.carry(plan.earlier.values(), said.persisting)
        if f.fingerprint not in have
    ]
    kept = _kept(plan, unit_id, [*placed, *carried])
    return UnitOutcome(
        unit_id, (*placed, *carried, *kept), tuple(rejected), model=model, fixed=said.fixed
    )


def _kept(plan: Plan, unit_id: str, answered: Iterable[Finding]) -> list[Finding]:
    """The earlier findings on code the unit did not show (narrowed files): kept as they were,
    unless the answer already placed them."""
    have = {f.fingerprint for f in answered}
    return [f for f in plan.carried.get(unit_id, ()) if f.fingerprint not in have]


def _replaced(earlier: Finding, unit: ReviewUnit, plan: Plan) -> Finding:
    """An earlier finding the model says persists, anchored again on the code it cites."""
    placed = continuity.reanchor(earlier, unit, plan.files)
    if placed is not None:
        return placed
    # Its code is not in this unit's hunks any more (an untouched part of the file): it stays,
    # reported in the summary rather than on a line the diff does not show.
    return dataclasses.replace(earlier, unit=unit.id, on_diff=False)


def failed(unit_id: str, reason: str, model: str = "") -> UnitOutcome:
    """The outcome of a unit the model never answered."""
    return UnitOutcome(unit_id, error=reason, model=model)


@dataclass(frozen=True, slots=True)
class Spend:
    """What a run spent with the models: usage per model and requests made."""

    usage: Mapping[str, Usage] = field(default_factory=dict)
    requests: int = 0

    @property
    def total(self) -> Usage:
        """Usage summed over every model."""
        out = Usage()
        for u in self.usage.values():
            out = out + u
        return out

    def cost_usd(self) -> float:
        """What it cost at each model's price."""
        return sum(llm.cost_usd(m, u) for m, u in self.usage.items() if llm.price_known(m))


def assemble(
    plan: Plan,
    outcomes: Iterable[UnitOutcome],
    *,
    spend: Spend = Spend(),
    model: str | None,
    model_skipped: str = "",
    analyzers_only: bool = False,
) -> ReviewResult:
    """Merge unit outcomes, reused file results and analyzer findings into one result.

    ``model_skipped`` names why the model was not asked at all (budget spent, no model
    configured): the files it would have reviewed are then listed as not reviewed. With
    ``analyzers_only`` (a change routed past the model, or the CLI without a model) the
    analyzers' look counts as the review.
    """
    outcomes = list(outcomes)
    answered = {o.unit for o in outcomes if o.answered}
    reviewed_files: dict[str, str] = {}
    failed_files: dict[str, str] = {}
    for o in outcomes:
        for path in plan.unit(o.unit).paths:
            if o.answered:
                reviewed_files.setdefault(path, o.model)
            else:
                failed_files.setdefault(path, f"{o.unit}: {o.error}")
    if model_skipped:
        for unit in plan.units:
            for path in unit.paths:
                failed_files.setdefault(path, model_skipped)
    # A file split over several units counts as reviewed only when every part was answered.
    for path in list(reviewed_files):
        if path in failed_files:
            del reviewed_files[path]
    reused = {p: r for p, r in plan.reused.items()}
    found: list[Finding] = [*plan.analyzer_findings]
    for o in outcomes:
        found += o.findings
    for r in reused.values():
        found += r.findings
    stats_usage = spend.total
    models = {p: m for p, m in reviewed_files.items() if m}
    models.update({p: r.model for p, r in reused.items() if r.model})
    reviewed = [p for p in plan.reviewed if p in reviewed_files]
    narrowed = {s.path for u in plan.units for s in u.segments if s.narrowed}
    if analyzers_only:
        reviewed = list(plan.reviewed)
    return ReviewResult(
        findings=tuple(fnd.dedupe(found)),
        stats=Stats(
            requests=spend.requests,
            prompt_tokens=stats_usage.prompt_tokens,
            cached_tokens=stats_usage.cached_tokens,
            completion_tokens=stats_usage.completion_tokens,
            cost_usd=round(spend.cost_usd(), 6),
            secrets_allowed=plan.secrets_allowed,
        ),
        coverage=Coverage(
            reviewed=tuple(reviewed),
            skipped=plan.skipped,
            reused=tuple(Reused(p, r.from_head) for p, r in sorted(reused.items())),
            failed=tuple(Skip(p, why) for p, why in failed_files.items()),
            models=models,
            narrowed=tuple(p for p in reviewed if p in narrowed),
        ),
        rejected=tuple(r for o in outcomes if o.unit in answered for r in o.rejected),
        failed_units=tuple(
            Skip(", ".join(plan.unit(o.unit).paths), f"{o.unit}: {o.error}")
            for o in outcomes
            if not o.answered
        ),
        model=model,
    )


def batches(
    requests: Sequence[ModelRequest], size_of: Callable[[ModelRequest], int], limit: int
) -> list[list[ModelRequest]]:
    """Split requests into consecutive batches whose summed payload stays under ``limit`` bytes.

    Sizes are summed per request (linear, not re-serialising the batch) with 1 KiB of headroom
    for the envelope; a single request over the limit still gets a batch of its own and the
    client reports it as too large.
    """
    out: list[list[ModelRequest]] = []
    current: list[ModelRequest] = []
    total = 1024
    for req in requests:
        size = size_of(req) + 1
        if current and total + size > limit:
            out.append(current)
            current, total = [], 1024
        current.append(req)
        total += size
    if current:
        out.append(current)
    return out


def findings_by_file(outcomes: Iterable[UnitOutcome]) -> dict[str, list[Finding]]:
    """Model findings of answered units, per path (what a file's stored result keeps)."""
    out: dict[str, list[Finding]] = {}
    for o in outcomes:
        for f in o.findings:
            out.setdefault(f.path, []).append(f)
    return out


def rejected_by_file(outcomes: Iterable[UnitOutcome]) -> dict[str, int]:
    """Rejected candidates of answered units, counted per path."""
    out: dict[str, int] = {}
    for o in outcomes:
        for r in o.rejected:
            out[r.path] = out.get(r.path, 0) + 1
    return out


def with_unit(findings: Iterable[Finding], unit: str | None) -> list[Finding]:
    """``findings`` re-attributed to ``unit`` (reused findings belong to no unit of this run)."""
    return [dataclasses.replace(f, unit=unit) for f in findings]
