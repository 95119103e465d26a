"""Feedback on a merged pull request: where each of the bot's findings on it ended (issue 10)."""

from __future__ import annotations

from typing import Any

from bot.jobs import MergedJob
from bot.review import outcomes
from workers.driver import Runtime as Services


def record_merge(job: MergedJob, svc: Services) -> str:
    """Record every finding thread's fate at merge: fixed, dismissed, open, and reactions.

    Idempotent (``outcomes.FeedbackStore``): a redelivered ``closed`` event counts nothing twice.
    """
    inst: Any = svc.github(job.installation_id)
    posted = inst.posted(job.repo, job.pr)
    dismissed = {d.fingerprint for d in inst.dismissals(job.repo, job.pr)}
    threads = [c.fingerprint for c in posted.comments]
    fates = outcomes.at_merge(
        threads,
        fixed=[c.fingerprint for c in posted.comments if c.fixed_reply],
        dismissed=dismissed & set(threads),
        reactions={c.fingerprint: (c.thumbs_up, c.thumbs_down) for c in posted.comments},
    )
    store = outcomes.FeedbackStore(svc.redis, clock=svc.clock)
    store.posted(job.repo, job.pr, threads)
    new = store.record_all(job.repo, job.pr, fates)
    return f"merged: {len(threads)} findings, {new} outcomes recorded"
