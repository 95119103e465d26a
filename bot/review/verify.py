"""The second look before posting: deterministic exclusions, then a model that tries to refute.

Exclusions follow the policy's "What NOT to report" (tests and docs unless critical, resource
exhaustion, non-security classes, findings without evidence); the secrets and injection
analyzers are never excluded. The verification pass asks a model — ``SECREVIEW_VERIFY_MODEL``
may name a cheaper one — to refute each remaining model finding against the code it cites. Its
requests start with the review's exact system prefix and affinity key, so they ride the same
prompt cache. A finding survives only when confirmed at ``min_confidence`` or above; an answer
that fails the schema keeps the finding (never dropped on a parse failure) and is counted.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from bot.findings import Finding, ReviewResult
from bot.model import values as llm
from bot.model.values import ModelRequest, ModelResult, Usage
from bot.review import exclusions, prompts
from bot.review.plan import Plan

VERDICT_SCHEMA: dict[str, Any] = json.loads(
    resources.files("prompts").joinpath("verify.schema.json").read_text(encoding="utf-8")
)
_CLAIM_FIELDS = (
    "path",
    "line",
    "severity",
    "cwe",
    "title",
    "description",
    "exploit_scenario",
    "evidence",
)


def response_format() -> dict[str, Any]:
    """The ``response_format`` of verification requests."""
    return {
        "type": "json_schema",
        "json_schema": {"name": "verdict", "schema": VERDICT_SCHEMA, "strict": False},
    }


def exclusion_reason(f: Finding) -> str | None:
    """Why the policy drops ``f`` before any second model call, or None to keep it."""
    return exclusions.reason(f)


@dataclass
class SecondLook:
    """What the second look dropped and why, and what it cost."""

    dropped: Counter[str] = field(default_factory=Counter)
    dropped_findings: list[tuple[str, Finding]] = field(default_factory=list)
    checked: int = 0
    unparsed: int = 0
    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0

    def notes(self) -> list[str]:
        """Lines for the summary."""
        if not self.dropped and not self.checked:
            return []
        total = sum(self.dropped.values())
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(self.dropped.items()))
        line = f"Second look: {total} candidate finding{'s' if total != 1 else ''} dropped"
        line += f" ({reasons})." if total else "."
        if self.checked:
            line += (
                f" {self.checked} checked by the verification pass "
                f"({self.usage.prompt_tokens:,} prompt tokens, "
                f"{self.usage.cached_tokens:,} cached, ${self.cost_usd:.4f})."
            )
        if self.unparsed:
            line += f" {self.unparsed} verdicts could not be read; those findings were kept."
        return [line]


def exclude(result: ReviewResult) -> tuple[ReviewResult, SecondLook]:
    """Apply the deterministic exclusions."""
    look = SecondLook()
    kept = []
    for f in result.findings:
        reason = exclusion_reason(f)
        if reason is None:
            kept.append(f)
        else:
            look.dropped[reason] += 1
            look.dropped_findings.append((reason, f))
    return dataclasses.replace(result, findings=tuple(kept)), look


def _context(plan: Plan, f: Finding) -> str:
    """The code the finding cites: the unit's diff text for its file."""
    if f.unit is not None:
        try:
            unit = plan.unit(f.unit)
        except StopIteration:
            unit = None
        if unit is not None:
            return prompts.render_unit(unit)
    return f.evidence


def groups(findings: Sequence[Finding]) -> list[list[int]]:
    """Indexes of ``findings`` grouped by the unit they came from (first appearance first).

    One verification request per unit, not per finding: the unit's code and the system prefix
    are sent once for all of its findings.
    """
    by_unit: dict[str, list[int]] = {}
    for i, f in enumerate(findings):
        by_unit.setdefault(f.unit or f.path, []).append(i)
    return list(by_unit.values())


def requests(plan: Plan, findings: Sequence[Finding], max_tokens: int = 1024) -> list[ModelRequest]:
    """One verification request per unit with findings, under the review's own system prefix."""
    out = []
    for g, members in enumerate(groups(findings)):
        claims = [
            {"index": k, **{name: getattr(findings[i], name) for name in _CLAIM_FIELDS}}
            for k, i in enumerate(members)
        ]
        user = (
            prompts.environment()
            .get_template("verify.j2")
            .render(
                claims=json.dumps(claims, indent=1),
                code=_context(plan, findings[members[0]]),
            )
        )
        out.append(
            ModelRequest(
                external_reference=f"verify-{g}",
                messages=(
                    {"role": "system", "content": plan.prefix.text},
                    {"role": "user", "content": user},
                ),
                max_tokens=max_tokens,
            )
        )
    return out


def parse_verdicts(content: str | None) -> dict[int, tuple[str, float]] | None:
    """index → ``(verdict, confidence)``; None when the answer does not fit the schema."""
    if not content:
        return None
    try:
        data = json.loads(content.strip().removeprefix("```json").removesuffix("```"))
    except (ValueError, RecursionError):  # malformed, huge numbers, pathological nesting
        return None
    items = data.get("verdicts") if isinstance(data, dict) else None
    if not isinstance(items, list):
        return None
    out: dict[int, tuple[str, float]] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("index"), int):
            continue
        verdict, confidence = item.get("verdict"), item.get("confidence")
        known = verdict in ("confirmed", "refuted", "uncertain")
        if known and isinstance(confidence, int | float) and 0 <= confidence <= 1:
            out[item["index"]] = (str(verdict), float(confidence))
    return out


def apply_verdicts(
    result: ReviewResult,
    checked: Sequence[Finding],
    answers: Sequence[ModelResult],
    look: SecondLook,
    threshold: float,
    model: str,
) -> ReviewResult:
    """Keep what the verification pass confirmed at ``threshold`` or above."""
    by_ref = {a.external_reference: a for a in answers}
    drop: set[str] = set()
    usage = Usage()
    for g, members in enumerate(groups(checked)):
        answer = by_ref.get(f"verify-{g}")
        if answer is not None:
            usage = usage + answer.usage
        verdicts = parse_verdicts(answer.content if answer else None) or {}
        for k, i in enumerate(members):
            f = checked[i]
            if k not in verdicts:
                look.unparsed += 1  # no readable verdict: keep the finding
                continue
            kind, confidence = verdicts[k]
            why = None
            if kind == "refuted":
                why = "refuted by the verification pass"
            elif kind == "uncertain" or confidence < threshold:
                why = "not confirmed with enough confidence"
            if why is not None:
                look.dropped[why] += 1
                look.dropped_findings.append((why, f))
                drop.add(f.fingerprint)
    look.checked += len(checked)
    look.usage = look.usage + usage
    look.cost_usd += llm.cost_usd(model, usage) if llm.price_known(model) else 0.0
    return dataclasses.replace(
        result, findings=tuple(f for f in result.findings if f.fingerprint not in drop)
    )
