"""Outcomes of posted findings (bot/review/outcomes.py) in a real Redis, and their /metrics."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from bot.metrics import SHARED_KEY, Registry
from bot.review import outcomes
from bot.review.outcomes import FeedbackStore, Tally

DAY = 24 * 3600
NOW = 1_800_000_000.0
REPO = "octo/shop"


@pytest.fixture
def store(redis_url: str) -> Iterator[FeedbackStore]:
    client = redis.Redis.from_url(redis_url)
    yield FeedbackStore(client, clock=lambda: NOW)
    client.close()


def metrics(store: FeedbackStore) -> str:
    return Registry().render(store.redis.hgetall(SHARED_KEY))


def test_recording_is_idempotent_per_fingerprint_pr_and_outcome(store: FeedbackStore) -> None:
    assert store.posted(REPO, 7, ["aa", "bb", "aa"]) == 2
    assert store.posted(REPO, 7, ["aa", "bb"]) == 0  # a re-run posts nothing new
    assert store.posted(REPO, 8, ["aa"]) == 1  # the same fingerprint on another PR
    assert store.record(REPO, 7, "aa", "fixed") is True
    for _ in range(3):  # redelivered, re-run, reported again by a later push
        assert store.record(REPO, 7, "aa", "fixed") is False
    assert store.record(REPO, 7, "aa", "thumbs_up") is True  # another outcome of the same one
    assert store.record_all(REPO, 7, {"bb": "dismissed", "aa": ["fixed", "thumbs_up"]}) == 1
    text = metrics(store)
    assert f'secreview_findings_posted_total{{repo="{REPO}"}} 3' in text
    assert f'secreview_finding_outcomes_total{{outcome="fixed",repo="{REPO}"}} 1' in text
    assert f'secreview_finding_outcomes_total{{outcome="dismissed",repo="{REPO}"}} 1' in text
    assert f'secreview_finding_outcomes_total{{outcome="thumbs_up",repo="{REPO}"}} 1' in text
    assert "# TYPE secreview_finding_outcomes_total counter" in text


def test_repositories_are_counted_apart(store: FeedbackStore) -> None:
    store.posted(REPO, 1, ["aa"])
    store.posted("octo/other", 1, ["aa"])
    store.record("octo/other", 1, "aa", "dismissed")
    assert store.tally(REPO) == Tally(1, {o: 0 for o in outcomes.OUTCOMES})
    assert store.tally("octo/other").count("dismissed") == 1


def test_the_window_counts_findings_posted_in_the_last_30_days(store: FeedbackStore) -> None:
    store.posted(REPO, 1, ["old"], at=NOW - 45 * DAY)
    store.posted(REPO, 2, ["a", "b", "c", "d"], at=NOW - 3 * DAY)
    store.record(REPO, 1, "old", "fixed")
    store.record(REPO, 2, "a", "fixed")
    store.record(REPO, 2, "b", "fixed")
    store.record(REPO, 2, "c", "dismissed")
    store.record(REPO, 2, "d", "open_at_merge")
    tally = store.tally(REPO)
    assert tally.posted == 4
    assert (tally.count("fixed"), tally.count("dismissed")) == (2, 1)
    assert outcomes.summary_line(tally) == (
        "Of 4 findings posted here in the last 30 days, 2 were fixed, 1 dismissed; "
        "1 still open at merge."
    )
    assert store.tally(REPO, now=NOW + 40 * DAY).posted == 0


def test_summary_line_wording() -> None:
    assert outcomes.summary_line(Tally(0, {})) is None
    one = Tally(1, {"fixed": 1, "thumbs_down": 2})
    assert outcomes.summary_line(one) == (
        "Of 1 finding posted here in the last 30 days, 1 was fixed, 0 dismissed; 👍 0 / 👎 2."
    )


def test_unknown_outcomes_are_refused(store: FeedbackStore) -> None:
    with pytest.raises(ValueError):
        store.record(REPO, 1, "aa", "ignored")  # type: ignore[arg-type]


def test_fates_at_merge() -> None:
    fates = outcomes.at_merge(
        ["a", "b", "c"], fixed=["b"], dismissed=["c"], reactions={"a": (1, 0), "c": (0, 2)}
    )
    assert fates == {
        "a": ["open_at_merge", "thumbs_up"],
        "b": ["fixed"],
        "c": ["dismissed", "thumbs_down"],
    }


def test_one_call_after_publishing(store: FeedbackStore) -> None:
    new = store.record_review(
        REPO, 4, posted=["a", "b"], fixed=["a"], dismissed=["b"], reactions={"b": (0, 1)}
    )
    assert new == 5
    again = store.record_review(REPO, 4, posted=["a"], fixed=["a"], reactions={"b": (0, 3)})
    assert again == 0
    tally = store.tally(REPO)
    assert [tally.count(o) for o in ("fixed", "dismissed", "thumbs_down", "thumbs_up")] == [
        1,
        1,
        1,
        0,
    ]
