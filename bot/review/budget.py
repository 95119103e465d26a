"""Daily token budgets per installation and per repository, kept in Redis.

Over budget, a review is skipped with a clear summary and a neutral check (not a failure): the
team decides whether to raise the budget. Counters expire after the UTC day they count.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from bot.model.values import Usage

_GRACE = dt.timedelta(hours=1)  # a counter outlives its UTC day by this much, then expires


@dataclass(frozen=True, slots=True)
class BudgetDecision:
    """Whether a review may spend ``estimate`` more tokens today, and why not."""

    allowed: bool
    reason: str = ""


def _day(today: dt.date | None) -> str:
    return (today or dt.datetime.now(dt.UTC).date()).isoformat()


def expires_at(day: dt.date) -> dt.datetime:
    """When the counters of ``day`` expire: the end of that UTC day, plus a little grace."""
    return dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC) + _GRACE


def _keys(installation: int, repo: str, today: dt.date | None) -> tuple[str, str]:
    day = _day(today)
    return (
        f"secreview:budget:{day}:installation:{installation}",
        f"secreview:budget:{day}:repo:{repo}",
    )


def check(
    client: Any,
    installation: int,
    repo: str,
    estimate: int,
    *,
    per_installation: int,
    per_repo: int,
    today: dt.date | None = None,
) -> BudgetDecision:
    """Refuse when today's spending plus ``estimate`` would pass a budget (0 = unlimited)."""
    if not per_installation and not per_repo:
        return BudgetDecision(True)  # unlimited: no Redis round trip
    estimate = max(0, estimate)
    inst_key, repo_key = _keys(installation, repo, today)
    spent_inst, spent_repo = (int(v or 0) for v in client.mget(inst_key, repo_key))
    if per_installation and spent_inst + estimate > per_installation:
        return _refusal("the installation's", per_installation, spent_inst, estimate)
    if per_repo and spent_repo + estimate > per_repo:
        return _refusal("this repository's", per_repo, spent_repo, estimate)
    return BudgetDecision(True)


def _refusal(whose: str, limit: int, spent: int, estimate: int) -> BudgetDecision:
    return BudgetDecision(
        False,
        f"{whose} daily budget of {limit:,} tokens is spent "
        f"({spent:,} used today, this review needs about {estimate:,} more)",
    )


def charge(
    client: Any, installation: int, repo: str, usage: Usage, today: dt.date | None = None
) -> None:
    """Add what a review really used (prompt + completion tokens) to today's counters."""
    tokens = max(0, usage.prompt_tokens) + max(0, usage.completion_tokens)
    if not tokens:
        return
    day = today or dt.datetime.now(dt.UTC).date()
    pipe = client.pipeline()
    for key in _keys(installation, repo, day):
        pipe.incrby(key, tokens)
        pipe.expireat(key, expires_at(day))
    pipe.execute()
