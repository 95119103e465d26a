"""Daily token budgets in the real Redis: refuse before submitting, charge after, expire daily."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
import redis

from bot.model.client import Usage
from bot.review import budget

REPO = "octo/shop"
TODAY = dt.datetime.now(dt.UTC).date()


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    conn = redis.Redis.from_url(redis_url)
    try:
        yield conn
    finally:
        conn.close()


def check(
    client: redis.Redis, estimate: int, inst: int = 0, repo: int = 0
) -> budget.BudgetDecision:
    return budget.check(client, 3, REPO, estimate, per_installation=inst, per_repo=repo)


def test_unlimited_never_refuses_and_never_needs_redis() -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    assert budget.check(dead, 3, REPO, 10**12, per_installation=0, per_repo=0).allowed


def test_charges_accumulate_per_installation_and_per_repository(client: redis.Redis) -> None:
    budget.charge(client, 3, REPO, Usage(1000, 900, 200))
    budget.charge(client, 3, "octo/other", Usage(500, 0, 50))
    day = TODAY.isoformat()
    assert int(client.get(f"secreview:budget:{day}:installation:3") or 0) == 1750
    assert int(client.get(f"secreview:budget:{day}:repo:{REPO}") or 0) == 1200
    assert int(client.get(f"secreview:budget:{day}:repo:octo/other") or 0) == 550


def test_the_repository_budget_refuses_with_a_human_reason(client: redis.Redis) -> None:
    budget.charge(client, 3, REPO, Usage(9000, 0, 500))
    assert check(client, 400, repo=10_000).allowed
    decision = check(client, 600, repo=10_000)
    assert not decision.allowed
    assert decision.reason == (
        "this repository's daily budget of 10,000 tokens is spent "
        "(9,500 used today, this review needs about 600 more)"
    )
    # Another repository of the same installation still has its own budget.
    assert budget.check(client, 3, "octo/other", 600, per_installation=0, per_repo=10_000).allowed


def test_the_installation_budget_counts_every_repository(client: redis.Redis) -> None:
    budget.charge(client, 3, "octo/a", Usage(30_000, 0, 0))
    budget.charge(client, 3, "octo/b", Usage(15_000, 0, 0))
    decision = check(client, 6_000, inst=50_000, repo=1_000_000)
    assert not decision.allowed and decision.reason.startswith("the installation's daily budget")
    other_installation = budget.check(client, 4, REPO, 6_000, per_installation=50_000, per_repo=0)
    assert other_installation.allowed


def test_yesterdays_spending_does_not_count_today(client: redis.Redis) -> None:
    yesterday = TODAY - dt.timedelta(days=1)
    budget.charge(client, 3, REPO, Usage(10**6, 0, 0), today=yesterday)
    assert check(client, 1000, inst=5000, repo=5000).allowed
    assert client.get(f"secreview:budget:{TODAY.isoformat()}:repo:{REPO}") is None


def test_counters_expire_after_their_utc_day(client: redis.Redis) -> None:
    budget.charge(client, 3, REPO, Usage(100, 0, 10))
    end = budget.expires_at(TODAY).timestamp()
    for key in client.keys("secreview:budget:*"):
        ttl = client.ttl(key)
        now = dt.datetime.now(dt.UTC).timestamp()
        assert 0 < ttl <= 25 * 3600
        assert abs((now + ttl) - end) <= 5
    assert budget.expires_at(dt.date(2026, 3, 1)) == dt.datetime(2026, 3, 2, 1, 0, tzinfo=dt.UTC)


def test_a_past_day_is_not_kept(client: redis.Redis) -> None:
    budget.charge(client, 3, REPO, Usage(100, 0, 0), today=TODAY - dt.timedelta(days=3))
    assert client.keys("secreview:budget:*") == []


def test_nothing_used_writes_nothing_and_negative_figures_are_ignored(client: redis.Redis) -> None:
    budget.charge(client, 3, REPO, Usage(0, 0, 0))
    budget.charge(client, 3, REPO, Usage(-50, 0, -5))
    assert client.keys("secreview:budget:*") == []
    assert check(client, -(10**9), repo=1).allowed
