"""Review job state in Redis: submitted batches, answers that came back, what was posted.

The state makes every task idempotent: a re-run (a redelivered webhook, a worker killed mid-task
and its message restored) finds what was already paid for and carries on from there instead of
submitting the same units again. Values are JSON; keys expire after a week.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import redis

from bot.model.client import ModelResult, Usage

PREFIX = "secreview"
TTL_S = 7 * 24 * 3600
Status = Literal["submitted", "published", "superseded", "skipped", "failed"]


@dataclass(slots=True)
class Batch:
    """One submitted async batch and the unit references it carries."""

    request_id: str
    refs: list[str]
    done: bool = False


@dataclass(slots=True)
class StoredResult:
    """A model result as kept between polls."""

    content: str | None
    usage: tuple[int, int, int]
    error: str | None = None

    @classmethod
    def of(cls, result: ModelResult) -> StoredResult:
        """Keep ``result`` (content, usage, error)."""
        u = result.usage
        return cls(
            result.content, (u.prompt_tokens, u.cached_tokens, u.completion_tokens), result.error
        )

    def to_result(self, ref: str) -> ModelResult:
        """The ``ModelResult`` back, for unit ``ref``."""
        return ModelResult(ref, self.content, Usage(*self.usage), self.error)


@dataclass(slots=True)
class ReviewState:
    """Everything a review job has done so far."""

    status: Status
    prefix_sha: str
    units: list[str]
    check_run_id: int | None = None
    batches: list[Batch] = field(default_factory=list)
    results: dict[str, StoredResult] = field(default_factory=dict)
    attempts: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.time)
    polls: int = 0
    spent: tuple[int, int, int] = (0, 0, 0)  # usage of answers replaced by a retry
    poll_token: str = ""  # only the poll carrying this token may advance the review
    # The verification pass: its batch, the fingerprints it checks, and its answers.
    verify_request: str = ""
    verify_checked: list[str] = field(default_factory=list)
    verify_groups: int = 0
    verify_results: dict[str, StoredResult] | None = None

    def forget(self, ref: str) -> None:
        """Drop ``ref``'s answer before a retry, keeping what it cost."""
        old = self.results.pop(ref, None)
        if old is not None:
            self.spent = (
                self.spent[0] + old.usage[0],
                self.spent[1] + old.usage[1],
                self.spent[2] + old.usage[2],
            )

    def pending(self) -> list[Batch]:
        """Batches not yet done."""
        return [b for b in self.batches if not b.done]

    def to_json(self) -> str:
        """Serialise for Redis."""
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> ReviewState:
        """Read back what ``to_json`` wrote."""
        data: dict[str, Any] = json.loads(raw)
        data["batches"] = [Batch(**b) for b in data.get("batches", [])]
        data["results"] = {
            ref: StoredResult(r["content"], tuple(r["usage"]), r.get("error"))
            for ref, r in data.get("results", {}).items()
        }
        data["spent"] = tuple(data.get("spent", (0, 0, 0)))
        if data.get("verify_results") is not None:
            data["verify_results"] = {
                ref: StoredResult(r["content"], tuple(r["usage"]), r.get("error"))
                for ref, r in data["verify_results"].items()
            }
        return cls(**data)


def review_key(repo: str, pr: int, head_sha: str) -> str:
    """The Redis key of one review (a pull request at one head)."""
    return f"{PREFIX}:review:{repo}#{pr}@{head_sha}"


def latest_key(repo: str, pr: int) -> str:
    """The Redis key holding the newest head seen for a pull request."""
    return f"{PREFIX}:pr-head:{repo}#{pr}"


class StateStore:
    """Load, save and lock review states in Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def load(self, key: str) -> ReviewState | None:
        """The state under ``key``, or None when the review has not started."""
        raw = self.redis.get(key)
        return None if raw is None else ReviewState.from_json(raw)

    def save(self, key: str, state: ReviewState) -> None:
        """Store ``state`` (expiring after a week)."""
        self.redis.set(key, state.to_json(), ex=TTL_S)

    def note_head(self, repo: str, pr: int, head_sha: str) -> None:
        """Record ``head_sha`` as the newest head of the pull request."""
        self.redis.set(latest_key(repo, pr), head_sha, ex=TTL_S)

    def latest_head(self, repo: str, pr: int) -> str | None:
        """The newest head recorded for the pull request."""
        raw = self.redis.get(latest_key(repo, pr))
        return raw.decode() if isinstance(raw, bytes) else raw

    @contextmanager
    def lock(self, key: str, ttl_s: int = 300) -> Iterator[bool]:
        """Hold a short lock on ``key``; yields False when another task holds it."""
        lock_key = f"{key}:lock"
        token = f"{time.time_ns()}"
        acquired = bool(self.redis.set(lock_key, token, nx=True, ex=ttl_s))
        try:
            yield acquired
        finally:
            if acquired:
                # Release only our own lock (it may have expired and been taken by another task).
                self.redis.eval(_RELEASE, 1, lock_key, token)


_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
