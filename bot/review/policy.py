"""The one retry policy of a run: what to do with each kind of model failure, and failover.

Every driver (the CLI's loop, the App's Celery steps, scans) asks this module, so the answer to
"retry, wait, move to the next model, or give up?" is decided — and tested — in one place.

    answer fails the schema          → once more on the same model, then the next model
    capacity (3040), timeout (3007),  → again with backoff, up to MODEL_ATTEMPTS on one model;
    transport, missing answer            repeated capacity opens the model's circuit breaker
    quota (3036), unknown model,      → the model's breaker opens; the next model, if any
    plan required, credentials
    too large (3006) for one unit     → failed (a batch is split before that)
    egress blocked, anything else     → failed
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from bot.errors import ModelError, ModelQuotaExceeded, ModelUnavailable, PayloadTooLarge
from bot.review.outcome import INVALID_OUTPUT

Action = Literal["retry", "failover", "fail"]

MODEL_ATTEMPTS = 3  # tries of one unit on one model for capacity, timeouts and transport
INVALID_ATTEMPTS = 2  # answers that fail the schema, per model (DESIGN.md §7: one retry)
BACKOFF_BASE_S = 2.0
BACKOFF_MAX_S = 60.0
# A breaker opens after this many capacity failures of one model within the window, when they
# are at least half of its attempts there (a fleet sees a few 3040s at any time).
BREAKER_THRESHOLD = 3
BREAKER_FAILURE_SHARE = 0.5
BREAKER_WINDOW_S = 120.0
BREAKER_OPEN_S = 120.0  # capacity: try the model again after this long
BREAKER_REFUSED_S = 900.0  # quota, unknown model, plan, credentials: much longer

REFUSED = ("model_quota", "model_unavailable", "model_auth", "model_plan", "model_forbidden")
FATAL = ("model_payload_too_large", "egress_blocked", "model_batch_unsupported")


def classify(error: str) -> Action:
    """What to do about a unit whose attempt ended with ``error`` (a ``reason: text`` string).

    Errors nobody foresaw are retried too (bounded by MODEL_ATTEMPTS): losing a review to a
    one-off failure costs more than asking again.
    """
    if error.startswith(REFUSED):
        return "failover"
    if error.startswith(FATAL):
        return "fail"
    return "retry"


def classify_error(exc: ModelError) -> Action:
    """What to do about a request the model API refused outright with ``exc``."""
    if isinstance(exc, PayloadTooLarge) or exc.reason.startswith(FATAL):
        return "fail"
    if exc.retryable:
        return "retry"
    if isinstance(exc, ModelQuotaExceeded | ModelUnavailable) or exc.reason.startswith(REFUSED):
        return "failover"
    return "fail"


def is_capacity(error: str) -> bool:
    """Whether ``error`` says the model is overloaded (counts towards its breaker)."""
    return error.startswith(("model_capacity", "model_timeout"))


def attempts_allowed(error: str) -> int:
    """How many attempts on one model ``error`` is worth."""
    return INVALID_ATTEMPTS if error.startswith(INVALID_OUTPUT) else MODEL_ATTEMPTS


# Jitter must differ between forked workers, or they retry in lockstep: reseeded after fork.
_RNG = random.Random()
os.register_at_fork(after_in_child=_RNG.seed)


def backoff(attempt: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, capped."""
    ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2.0 ** max(0, attempt))
    return ceiling / 2 + (rng or _RNG).uniform(0, ceiling / 2)


class Breaker(Protocol):
    """Per-model circuit breaker state (in Redis for the App, in memory for the CLI)."""

    def open_until(self, model: str) -> float: ...

    def trip(self, model: str, until: float) -> None: ...

    def failure(self, model: str, now: float) -> tuple[int, int]: ...

    def success(self, model: str, now: float) -> None: ...


@dataclass
class MemoryBreaker:
    """A breaker for one process."""

    opened: dict[str, float] = field(default_factory=dict)
    failures: dict[str, list[float]] = field(default_factory=dict)
    successes: dict[str, list[float]] = field(default_factory=dict)

    def open_until(self, model: str) -> float:
        """When ``model`` may be tried again (0: it may now)."""
        return self.opened.get(model, 0.0)

    def trip(self, model: str, until: float) -> None:
        """Keep ``model`` out of use until ``until``."""
        self.opened[model] = max(self.opened.get(model, 0.0), until)

    def failure(self, model: str, now: float) -> tuple[int, int]:
        """Record a capacity failure; (failures, successes) within the window."""
        failed = self._count(self.failures, model, now)
        ok = [t for t in self.successes.get(model, []) if now - t < BREAKER_WINDOW_S]
        return failed, len(ok)

    def success(self, model: str, now: float) -> None:
        """Record an accepted request."""
        self._count(self.successes, model, now)

    @staticmethod
    def _count(events: dict[str, list[float]], model: str, now: float) -> int:
        recent = [t for t in events.get(model, []) if now - t < BREAKER_WINDOW_S]
        recent.append(now)
        events[model] = recent
        return len(recent)


class RedisBreaker:
    """A breaker shared by every worker: one key per model, expiring with the window."""

    PREFIX = "secreview:breaker:"

    def __init__(self, client: Any) -> None:
        self.redis = client

    def open_until(self, model: str) -> float:
        """When ``model`` may be tried again (0: it may now)."""
        raw = self.redis.get(f"{self.PREFIX}open:{model}")
        return float(raw) if raw else 0.0

    def trip(self, model: str, until: float) -> None:
        """Keep ``model`` out of use until ``until``."""
        ttl = max(1, int(until - time.time()) + 1)
        self.redis.set(f"{self.PREFIX}open:{model}", repr(until), ex=ttl)

    def failure(self, model: str, now: float) -> tuple[int, int]:
        """Record a capacity failure; (failures, successes) within the window."""
        pipe = self._counted(f"{self.PREFIX}fail:{model}")
        pipe.get(f"{self.PREFIX}ok:{model}")
        count, _, ok = pipe.execute()
        return int(count), int(ok or 0)

    def success(self, model: str, now: float) -> None:
        """Record an accepted request (one INCR; the count expires with the window)."""
        self._counted(f"{self.PREFIX}ok:{model}").execute()

    def _counted(self, key: str) -> Any:
        """A pipeline that counts one more event under ``key`` (expiring with the window)."""
        pipe = self.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, int(BREAKER_WINDOW_S), nx=True)
        return pipe


@dataclass
class Failover:
    """The ordered models of a run and their breakers: which model a unit should use now."""

    chain: Sequence[str]
    breaker: Breaker
    clock: Callable[[], float] = time.time

    def usable(self, model: str) -> bool:
        """Whether ``model``'s breaker is closed."""
        return self.breaker.open_until(model) <= self.clock()

    def pick(self, tried: Sequence[str] = ()) -> str | None:
        """The first usable model not in ``tried``; None when every such model is open."""
        for model in self.chain:
            if model not in tried and self.usable(model):
                return model
        return None

    def after(self, model: str) -> list[str]:
        """The models after ``model`` in the chain."""
        chain = list(self.chain)
        return chain[chain.index(model) + 1 :] if model in chain else []

    def reopens(self, tried: Sequence[str] = ()) -> float | None:
        """When the first model not in ``tried`` can be used again (None: never, all refused)."""
        times = [self.breaker.open_until(m) for m in self.chain if m not in tried]
        return min(times) if times else None

    def capacity_failure(self, model: str) -> None:
        """Count a capacity failure; open the breaker when they keep coming.

        Only with somewhere else to go: with one model, opening it would only make every unit
        wait, which each unit's own backoff already does. And only when failures are a large
        share of the model's recent attempts, not a fleet's few.
        """
        now = self.clock()
        failed, ok = self.breaker.failure(model, now)
        if len(self.chain) < 2 or failed < BREAKER_THRESHOLD:
            return
        if failed >= BREAKER_FAILURE_SHARE * (failed + ok):
            self.breaker.trip(model, now + BREAKER_OPEN_S)

    def accepted(self, model: str) -> None:
        """The model took a request (counts against opening its breaker)."""
        if len(self.chain) > 1:
            self.breaker.success(model, self.clock())

    def refused(self, model: str) -> None:
        """The model refuses work (quota, plan, unknown model, credentials): open it for long."""
        self.breaker.trip(model, self.clock() + BREAKER_REFUSED_S)
