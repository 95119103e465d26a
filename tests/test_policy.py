"""The one retry policy: what each failure leads to, backoff jitter, and the breakers."""

from __future__ import annotations

import os

import pytest
import redis

from bot.errors import ModelCapacity, ModelError, ModelQuotaExceeded, PayloadTooLarge
from bot.review import policy
from bot.review.policy import Failover, MemoryBreaker, RedisBreaker

A, B = "@cf/moonshotai/kimi-k2.6", "@cf/moonshotai/kimi-k2.5"


@pytest.mark.parametrize(
    ("error", "action"),
    [
        ("invalid_model_output: not JSON", "retry"),
        ("model_capacity: 3040", "retry"),
        ("model_timeout: batch deadline", "retry"),
        ("missing_response: the batch returned no answer", "retry"),
        ("model_quota: 3036", "failover"),
        ("model_unavailable: 5007", "failover"),
        ("model_auth: 10000", "failover"),
        ("model_payload_too_large: 3006", "fail"),
        ("egress_blocked: aws-secret-key", "fail"),
        ("something nobody foresaw", "retry"),
    ],
)
def test_what_each_failure_leads_to(error: str, action: str) -> None:
    assert policy.classify(error) == action


def test_what_each_refusal_leads_to() -> None:
    assert policy.classify_error(ModelCapacity("busy")) == "retry"
    assert policy.classify_error(ModelQuotaExceeded("spent")) == "failover"
    assert policy.classify_error(PayloadTooLarge("big")) == "fail"
    assert policy.classify_error(ModelError("bad", reason="model_auth")) == "failover"
    assert policy.classify_error(ModelError("odd", reason="model")) == "fail"
    assert policy.attempts_allowed("invalid_model_output: x") == policy.INVALID_ATTEMPTS == 2


def test_backoff_grows_is_capped_and_jitters_differently_after_fork() -> None:
    delays = [policy.backoff(n) for n in range(10)]
    assert all(0 < d <= policy.BACKOFF_MAX_S for d in delays)
    assert delays[0] < policy.BACKOFF_MAX_S / 2 <= delays[-1]
    policy._RNG.seed(1234)  # the parent's state, as every forked worker would inherit it
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a forked worker draws its own jitter, not its parent's next value
        os.write(write, repr(policy.backoff(5)).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = float(os.read(read, 64))
    assert child != policy.backoff(5)  # not in lockstep with the parent's next draw


def test_one_model_never_opens_its_breaker() -> None:
    clock = [1000.0]
    failover = Failover([A], MemoryBreaker(), clock=lambda: clock[0])
    for _ in range(20):
        failover.capacity_failure(A)
    assert failover.usable(A)


def test_a_fleet_s_few_capacity_errors_do_not_open_a_breaker_a_storm_does() -> None:
    clock = [1000.0]
    failover = Failover([A, B], MemoryBreaker(), clock=lambda: clock[0])
    for _ in range(20):
        failover.accepted(A)
    for _ in range(5):
        failover.capacity_failure(A)
    assert failover.usable(A) and failover.pick() == A
    for _ in range(20):
        failover.capacity_failure(A)
    assert not failover.usable(A) and failover.pick() == B
    clock[0] += policy.BREAKER_OPEN_S + 1
    assert failover.usable(A)


def test_breakers_are_shared_by_every_worker_through_redis(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    one = Failover([A, B], RedisBreaker(client))
    other = Failover([A, B], RedisBreaker(client))
    for _ in range(policy.BREAKER_THRESHOLD):
        one.capacity_failure(A)
    assert not other.usable(A) and other.pick() == B
    one.refused(B)
    assert other.pick() is None and other.reopens() is not None
    client.close()
