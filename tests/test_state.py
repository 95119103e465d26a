"""Review state in the real Redis: round trips, retries keep their cost, locks exclude."""

from __future__ import annotations

import redis

from bot.model.client import ModelResult, Usage
from workers.state import Batch, ReviewState, StateStore, StoredResult, review_key


def test_state_round_trips_through_redis(redis_url: str) -> None:
    store = StateStore(redis.Redis.from_url(redis_url))
    key = review_key("octo/shop", 7, "a" * 40)
    state = ReviewState(status="submitted", prefix_sha="p" * 64, units=["u1", "u2"], check_run_id=9)
    state.batches.append(Batch("req-1", ["u1", "u2"]))
    state.results["u1"] = StoredResult.of(ModelResult("u1", '{"findings": []}', Usage(100, 80, 5)))
    store.save(key, state)

    loaded = store.load(key)
    assert loaded is not None
    assert loaded == state
    assert loaded.pending() == [Batch("req-1", ["u1", "u2"])]
    assert loaded.results["u1"].to_result("u1") == ModelResult(
        "u1", '{"findings": []}', Usage(100, 80, 5)
    )
    assert store.redis.ttl(key) > 6 * 24 * 3600


def test_missing_state_is_none(redis_url: str) -> None:
    assert StateStore(redis.Redis.from_url(redis_url)).load(review_key("o/r", 1, "b" * 40)) is None


def test_forgetting_an_answer_keeps_its_cost() -> None:
    state = ReviewState(status="submitted", prefix_sha="", units=["u1"])
    state.results["u1"] = StoredResult(None, (1000, 900, 0), "model_capacity: busy")
    state.forget("u1")
    state.forget("u1")  # nothing left to forget: the cost is counted once
    assert "u1" not in state.results
    assert state.spent == (1000, 900, 0)
    assert ReviewState.from_json(state.to_json()).spent == (1000, 900, 0)


def test_lock_excludes_a_second_holder_and_releases(redis_url: str) -> None:
    store = StateStore(redis.Redis.from_url(redis_url))
    key = review_key("octo/shop", 7, "c" * 40)
    with store.lock(key) as first:
        assert first
        with store.lock(key) as second:
            assert not second
    with store.lock(key) as again:
        assert again


def test_newest_head_is_recorded(redis_url: str) -> None:
    store = StateStore(redis.Redis.from_url(redis_url))
    store.note_head("octo/shop", 7, "d" * 40)
    store.note_head("octo/shop", 7, "e" * 40)
    assert store.latest_head("octo/shop", 7) == "e" * 40
    assert store.latest_head("octo/shop", 8) is None
