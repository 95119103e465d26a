"""Daily token budgets per installation and per repository, kept in Redis.

Over budget, a review is skipped with a clear summary and a neutral check (not a failure): the
team decides whether to raise the budget. Counters expire after the UTC day they count.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from bot.llm import Usage

_TTL_S = 2 * 24 * 3600


@dataclass(frozen=True, slots=True)
class BudgetDecision:
    """Whether a review may spend ``estimate`` more tokens today, and why not."""

    allowed: bool
    reason: str = ""


def _day(today: dt.date | None) -> str:
    return (today or dt.datetime.now(dt.UTC).date()).isoformat()


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
    inst_key, repo_key = _keys(installation, repo, today)
    spent_inst, spent_repo = (int(v or 0) for v in client.mget(inst_key, repo_key))
    if per_installation and spent_inst + estimate > per_installation:
        return BudgetDecision(
            False,
            f"the installation's daily budget of {per_installation:,} "
            f"tokens is spent ({spent_inst:,} used today)",
        )
    if per_repo and spent_repo + estimate > per_repo:
        return BudgetDecision(
            False,
            f"this repository's daily budget of {per_repo:,} tokens "
            f"is spent ({spent_repo:,} used today)",
        )
    return BudgetDecision(True)


def charge(
    client: Any, installation: int, repo: str, usage: Usage, today: dt.date | None = None
) -> None:
    """Add what a review really used (prompt + completion tokens) to today's counters."""
    tokens = usage.prompt_tokens + usage.completion_tokens
    pipe = client.pipeline()
    for key in _keys(installation, repo, today):
        pipe.incrby(key, tokens)
        pipe.expire(key, _TTL_S)
    pipe.execute()
