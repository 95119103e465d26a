"""Where every posted finding ends: fixed by a later push, dismissed, still open at merge, or
reacted to — counted per repository, for /metrics and for one line of the summary.

Kept in Redis under ``secreview:feedback:<repo>:``: one sorted set of posted findings and one per
outcome, members ``<pr>:<fingerprint>`` scored by when it happened. Recording is idempotent per
(fingerprint, PR, outcome): a re-run, a redelivered webhook or a later push that reports the same
fate again changes nothing, and the /metrics counter moves only with the first record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from bot.metrics import FINDING_OUTCOMES, FINDINGS_POSTED, SHARED_KEY, series

Outcome = Literal["fixed", "dismissed", "open_at_merge", "thumbs_up", "thumbs_down"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
PREFIX = "secreview:feedback:"
WINDOW_DAYS = 30
# Records older than this are trimmed: long after any redelivery could count them twice.
KEEP_S = 400 * 24 * 3600

# KEYS: the sorted set, the shared metrics hash; ARGV: score, member, trim-before score, field.
# Adds the member once; only a new member moves the shared /metrics counter.
_RECORD = """
local added = redis.call('ZADD', KEYS[1], 'NX', ARGV[1], ARGV[2])
if added == 1 then
  redis.call('HINCRBYFLOAT', KEYS[2], ARGV[4], 1)
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
end
return added
"""


@dataclass(frozen=True, slots=True)
class Tally:
    """Findings posted in a repository within a window, and how many met each outcome."""

    posted: int
    outcomes: Mapping[str, int]

    def count(self, outcome: Outcome) -> int:
        """How many of the posted findings met ``outcome``."""
        return self.outcomes.get(outcome, 0)


def summary_line(tally: Tally, days: int = WINDOW_DAYS) -> str | None:
    """ "of N findings posted here in the last 30 days, X were fixed, Y dismissed" (+ the rest)."""
    if tally.posted == 0:
        return None
    noun = "finding" if tally.posted == 1 else "findings"
    line = (
        f"Of {tally.posted} {noun} posted here in the last {days} days, "
        f"{tally.count('fixed')} {'was' if tally.count('fixed') == 1 else 'were'} fixed, "
        f"{tally.count('dismissed')} dismissed"
    )
    extra = []
    if tally.count("open_at_merge"):
        extra.append(f"{tally.count('open_at_merge')} still open at merge")
    if tally.count("thumbs_up") or tally.count("thumbs_down"):
        extra.append(f"👍 {tally.count('thumbs_up')} / 👎 {tally.count('thumbs_down')}")
    return line + (f"; {', '.join(extra)}" if extra else "") + "."


def _key(repo: str, kind: str) -> str:
    return f"{PREFIX}{repo}:{kind}"


def _member(pr: int, fingerprint: str) -> str:
    return f"{pr}:{fingerprint}"


class FeedbackStore:
    """The outcomes of posted findings, per repository, in Redis (``redis.Redis``-like client)."""

    def __init__(self, client: Any, clock: Callable[[], float] = time.time) -> None:
        self.redis = client
        self.clock = clock
        self._script = client.register_script(_RECORD)

    def _add(self, repo: str, kind: str, pr: int, fingerprint: str, metric: str, at: float) -> bool:
        keys = [_key(repo, kind), SHARED_KEY]
        args = [at, _member(pr, fingerprint), at - KEEP_S, metric]
        return bool(self._script(keys=keys, args=args))

    def posted(
        self, repo: str, pr: int, fingerprints: Iterable[str], at: float | None = None
    ) -> int:
        """Record findings posted on ``pr``; returns how many were new."""
        when = self.clock() if at is None else at
        metric = series(FINDINGS_POSTED, {"repo": repo})
        return sum(self._add(repo, "posted", pr, fp, metric, when) for fp in set(fingerprints))

    def record(
        self, repo: str, pr: int, fingerprint: str, outcome: Outcome, at: float | None = None
    ) -> bool:
        """Record that a posted finding met ``outcome``; False when it was recorded before."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        when = self.clock() if at is None else at
        metric = series(FINDING_OUTCOMES, {"repo": repo, "outcome": outcome})
        return self._add(repo, outcome, pr, fingerprint, metric, when)

    def record_all(
        self, repo: str, pr: int, outcomes: Mapping[str, Outcome | Iterable[Outcome]]
    ) -> int:
        """Record ``fingerprint → outcome(s)`` for ``pr``; returns how many were new."""
        new = 0
        for fingerprint, which in outcomes.items():
            for outcome in (which,) if isinstance(which, str) else which:
                new += self.record(repo, pr, fingerprint, outcome)
        return new

    def record_review(
        self,
        repo: str,
        pr: int,
        *,
        posted: Iterable[str] = (),
        fixed: Iterable[str] = (),
        dismissed: Iterable[str] = (),
        reactions: Mapping[str, tuple[int, int]] | None = None,
    ) -> int:
        """One call after publishing a review: what it posted, what pushes fixed, what people
        dismissed, and reactions (fingerprint → (👍, 👎)); returns how many records were new."""
        new = self.posted(repo, pr, posted)
        fates: dict[str, list[Outcome]] = {}
        for fp in fixed:
            fates.setdefault(fp, []).append("fixed")
        for fp in dismissed:
            fates.setdefault(fp, []).append("dismissed")
        for fp, (up, down) in (reactions or {}).items():
            if up:
                fates.setdefault(fp, []).append("thumbs_up")
            if down:
                fates.setdefault(fp, []).append("thumbs_down")
        return new + self.record_all(repo, pr, fates)

    def tally(self, repo: str, days: int = WINDOW_DAYS, now: float | None = None) -> Tally:
        """Findings posted in the last ``days`` days and the outcomes they met (at any time)."""
        since = (self.clock() if now is None else now) - days * 24 * 3600
        members = self.redis.zrangebyscore(_key(repo, "posted"), since, "+inf")
        if not members:
            return Tally(0, {})
        pipe = self.redis.pipeline(transaction=False)
        for outcome in OUTCOMES:
            pipe.zmscore(_key(repo, outcome), members)
        scores = pipe.execute()
        counts: dict[str, int] = {
            outcome: sum(score is not None for score in found)
            for outcome, found in zip(OUTCOMES, scores, strict=True)
        }
        return Tally(len(members), counts)


def at_merge(
    open_fingerprints: Iterable[str],
    fixed: Iterable[str] = (),
    dismissed: Iterable[str] = (),
    reactions: Mapping[str, tuple[int, int]] | None = None,
) -> dict[str, list[Outcome]]:
    """The final fate of each of the bot's threads when its pull request is merged.

    ``open_fingerprints``: every finding thread; ``fixed``: those answered "Fixed in";
    ``dismissed``: those reviewers rejected; ``reactions``: fingerprint → (👍, 👎).
    """
    fixed_set, dismissed_set = set(fixed), set(dismissed)
    fates: dict[str, list[Outcome]] = {}
    for fp in set(open_fingerprints) | fixed_set | dismissed_set:
        if fp in dismissed_set:
            fates[fp] = ["dismissed"]
        elif fp in fixed_set:
            fates[fp] = ["fixed"]
        else:
            fates[fp] = ["open_at_merge"]
    for fp, (up, down) in (reactions or {}).items():
        fate = fates.setdefault(fp, [])
        if up:
            fate.append("thumbs_up")
        if down:
            fate.append("thumbs_down")
    return fates
