"""What a published review adds to /metrics and to the daily budgets."""

from __future__ import annotations

from typing import Any

from bot.findings import ReviewResult
from bot.model.client import Usage
from workers.ports import Services


def usage_of(result: ReviewResult) -> Usage:
    s = result.stats
    return Usage(s.prompt_tokens, s.cached_tokens, s.completion_tokens)


def record_metrics(svc: Services, repo: str, result: ReviewResult, posted: Any) -> None:
    """Counters for /metrics (kept in Redis: workers have no endpoint), and reviewer reactions.

    Reactions on the bot's comments are a snapshot per comment, so the per-repository totals
    are recomputed from that snapshot rather than incremented twice for the same thumbs-up.
    """
    from bot.metrics import SHARED_KEY, incr_shared, series

    stats = result.stats
    incr_shared(svc.redis, "secreview_reviews_total", {"repo": repo})
    incr_shared(svc.redis, "secreview_findings_total", {"repo": repo}, len(result.findings))
    incr_shared(svc.redis, "secreview_prompt_tokens_total", {"repo": repo}, stats.prompt_tokens)
    incr_shared(svc.redis, "secreview_cached_tokens_total", {"repo": repo}, stats.cached_tokens)
    incr_shared(svc.redis, "secreview_cost_usd_total", {"repo": repo}, stats.cost_usd)
    comments = getattr(posted, "comments", ()) or ()
    if not comments:
        return
    key = f"secreview:reactions:{repo}"
    svc.redis.hset(key, mapping={str(c.id): f"{c.thumbs_up},{c.thumbs_down}" for c in comments})
    up = down = 0
    for raw in svc.redis.hvals(key):
        a, b = (raw.decode() if isinstance(raw, bytes) else raw).split(",")
        up, down = up + int(a), down + int(b)
    svc.redis.hset(
        SHARED_KEY,
        mapping={
            series("secreview_finding_reactions", {"repo": repo, "reaction": "+1"}): up,
            series("secreview_finding_reactions", {"repo": repo, "reaction": "-1"}): down,
        },
    )
