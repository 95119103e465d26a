"""Fault trials against the installed App (issue 9 part 5): real ``secreview serve`` and
``secreview worker`` processes, real Redis, the fake GitHub and the Workers AI emulator.

Every trial ends in the same invariant (``tests/appstack.assert_invariant``): for the final head
exactly one review, one summary and one completed check, no duplicate fingerprint, the planted
findings posted (or, where the model never answered, the summary says so and the secrets
detector's AWS key is posted and fails the check); afterwards nothing queued or unacked, no lock
or lease key, workers alive, ``/readyz`` 200.

Trials run with ``tests.appstack.FAST_ENV`` (10 s hard task limit, 1 s sweeps, 60 s model
deadline, 15 s where the model never answers; the visibility timeout left to its derived
default). A trial fails early when neither fake has seen a request for 45 s: longer than a lapsed
run lease (30 s) and two sweeps, so a review nobody drives any more.

Each trial's outcome and seconds from delivery to published are appended to the JSON-lines file
named by ``FAULTS_REPORT`` when it is set (``make bench-app-faults`` renders the table).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.appstack import (
    FAST_ENV,
    HEAD,
    PR,
    PR_DIFF,
    REPO,
    AppStack,
    Expect,
    assert_invariant,
    pr_event,
)
from tests.fakes.hold import Hold
from tests.procs import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

REPORT = os.environ.get("FAULTS_REPORT")  # read at import: conftest clears the environment per test
REVIEWS = rf"/repos/{REPO}/pulls/{PR}/reviews$"


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture
def record(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    """A trial's row: the test sets ``seconds``; the outcome is read from its report."""
    row: dict[str, Any] = {"trial": request.node.name, "seconds": None}
    yield row
    report = getattr(request.node, "rep_call", None)
    if report is None:
        row["outcome"] = "error in setup"
    elif report.passed:
        row["outcome"] = "published, invariant holds"
    else:
        errors = [ln.removeprefix("E").strip() for ln in str(report.longrepr).splitlines()]
        errors = [ln for ln in errors if ln]
        problems = [ln for ln in errors if ln.startswith("- ") and "--" not in ln][:3]
        reason = "; ".join(p.removeprefix("- ") for p in problems) if problems else errors[0]
        row["outcome"] = "FAILED: " + reason.removeprefix("AssertionError: ")[:200]
    if REPORT:
        with Path(REPORT).open("a", encoding="utf-8") as out:
            out.write(json.dumps(row) + "\n")


def _stack(
    tmp: Path, key: tuple[str, str], url: str, server: RedisServer | None, **env: str
) -> AppStack:
    stack = AppStack(tmp, key, url, server, env={**FAST_ENV, **env})
    stack.open_pull()
    return stack


@pytest.fixture
def stack(redis_url: str, tmp_path: Path, app_key: tuple[str, str]) -> Iterator[AppStack]:
    """The App on the shared test Redis database."""
    app = _stack(tmp_path, app_key, redis_url, None)
    try:
        yield app.start()
    finally:
        app.close()


@pytest.fixture
def short_deadline_stack(
    redis_url: str, tmp_path: Path, app_key: tuple[str, str]
) -> Iterator[AppStack]:
    """The App with a 15 s model deadline, for trials where the model never answers."""
    app = _stack(tmp_path, app_key, redis_url, None, SECREVIEW_MODEL_DEADLINE="15")
    try:
        yield app.start()
    finally:
        app.close()


@pytest.fixture
def private_stack(tmp_path: Path, app_key: tuple[str, str]) -> Iterator[AppStack]:
    """The App on a private redis-server (append-only file, as shipped) a trial may restart."""
    if not RedisServer.available():
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path, appendonly=True).start()
    app = _stack(tmp_path, app_key, server.url, server)
    try:
        yield app.start()
    finally:
        app.close()
        server.stop()


def _review(stack: AppStack, record: dict[str, Any], expect: Expect | None = None) -> None:
    """Deliver the pull request, wait for it to be published, check the invariant."""
    start = time.time()
    assert stack.deliver("pull_request", pr_event("opened", HEAD)).status_code == 202
    record["seconds"] = round(stack.wait_published(since=start), 1)
    assert_invariant(stack, [expect or Expect()])


# --- the baseline --------------------------------------------------------------------------------


def test_no_fault(stack: AppStack, record: dict[str, Any]) -> None:
    _review(stack, record)


# --- kill -9 the worker at each step of a review -------------------------------------------------

Holder = Callable[[AppStack], Hold]
KILL_POINTS: dict[str, Holder] = {
    "fetching_pr": lambda s: s.github.inject.hold("GET", rf"/pulls/{PR}$", "drop"),
    "check_created": lambda s: s.github.inject.hold("POST", r"/check-runs$", "process"),
    "batch_submitted": lambda s: s.model.state.inject.hold("submit", "process"),
    "polling": lambda s: s.model.state.inject.hold("poll", "drop"),
    "review_posted": lambda s: s.github.inject.hold("POST", REVIEWS, "process"),
    "summary_posted": lambda s: s.github.inject.hold("POST", rf"/issues/{PR}/comments$", "process"),
    "check_completing": lambda s: s.github.inject.hold("PATCH", r"/check-runs/\d+$", "drop"),
}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_worker_killed(stack: AppStack, record: dict[str, Any], point: str) -> None:
    """kill -9 at the held request, then a fresh worker (as an orchestrator restarts it)."""
    hold = KILL_POINTS[point](stack)
    start = time.time()
    assert stack.deliver("pull_request", pr_event("opened", HEAD)).status_code == 202
    hold.wait(60)
    stack.kill_workers()
    hold.release()  # GitHub or the model finishes (or drops) the request of a dead client
    stack.start_worker()
    record["seconds"] = round(stack.wait_published(since=start), 1)
    assert_invariant(stack)


def test_message_lost(stack: AppStack, record: dict[str, Any]) -> None:
    """The worker dies while polling and its messages are gone: only the sweeper can save it."""
    hold = stack.model.state.inject.hold("poll", "drop")
    start = time.time()
    assert stack.deliver("pull_request", pr_event("opened", HEAD)).status_code == 202
    hold.wait(60)
    stack.kill_workers()
    client = stack.redis()
    client.delete("unacked", "unacked_index", *client.keys("secreview.*"))
    client.close()
    hold.release()
    stack.start_worker()
    record["seconds"] = round(stack.wait_published(since=start), 1)
    assert_invariant(stack)


# --- GitHub faults -------------------------------------------------------------------------------


def test_github_502_once_on_review(stack: AppStack, record: dict[str, Any]) -> None:
    stack.github.inject.fail("POST", REVIEWS, 502)
    _review(stack, record)


def test_github_502_after_review_created(stack: AppStack, record: dict[str, Any]) -> None:
    """GitHub created the review but the gateway answered 502: posting again would duplicate."""
    stack.github.inject.fail("POST", REVIEWS, 502, after=True)
    _review(stack, record)


def test_github_422_on_every_review(stack: AppStack, record: dict[str, Any]) -> None:
    """GitHub refuses every review: the findings go into the summary as path:line rows."""
    stack.github.inject.fail("POST", REVIEWS, 422, times=None, message="Validation Failed")
    _review(stack, record, Expect(reviews_refused=True))


def test_github_secondary_rate_limit(stack: AppStack, record: dict[str, Any]) -> None:
    """403 with retry-after on the review POST: published after the wait, never before it."""
    limit = stack.github.inject.secondary_rate_limit(REVIEWS, seconds=3)
    _review(stack, record)
    assert limit.refused >= 1
    assert limit.early == 0, f"{limit.early} writes sent before retry-after elapsed"


# --- Workers AI faults ---------------------------------------------------------------------------


def test_model_out_of_capacity_always(
    short_deadline_stack: AppStack, record: dict[str, Any]
) -> None:
    """3040 on every request until the deadline: the analyzers' findings still publish and gate."""
    stack = short_deadline_stack
    stack.model.state.fail_next("capacity", times=100_000, on=("run", "submit", "poll"))
    _review(stack, record, Expect(model_answered=False))


def test_model_malformed_once(stack: AppStack, record: dict[str, Any]) -> None:
    """One malformed answer is retried once (DESIGN.md §7) and the retry's findings post."""
    stack.model.state.inject.garbage_answers = 1
    _review(stack, record)


def test_model_malformed_twice(stack: AppStack, record: dict[str, Any]) -> None:
    """Malformed again after the one retry: the unit fails, and the summary says so."""
    stack.model.state.inject.garbage_answers = 2
    _review(stack, record, Expect(model_answered=False))


@pytest.mark.slow
def test_model_slow(stack: AppStack, record: dict[str, Any]) -> None:
    """Answers ready 5-7 s after submit: polled, never waited for in a worker."""
    stack.model.state.inject.latency = (5.0, 7.0)
    _review(stack, record)


@pytest.mark.slow
def test_model_past_deadline(short_deadline_stack: AppStack, record: dict[str, Any]) -> None:
    """The batch never finishes: at SECREVIEW_MODEL_DEADLINE the review publishes what it has."""
    stack = short_deadline_stack
    stack.model.state.never_finish = True
    _review(stack, record, Expect(model_answered=False))


# --- Redis faults --------------------------------------------------------------------------------


def test_redis_restarted_after_submit(private_stack: AppStack, record: dict[str, Any]) -> None:
    stack = private_stack
    assert stack.redis_server is not None
    start = time.time()
    assert stack.deliver("pull_request", pr_event("opened", HEAD)).status_code == 202
    submitted = stack.model.state.requests
    deadline = time.monotonic() + 60
    while not any(r.kind == "submit" for r in submitted) and time.monotonic() < deadline:
        time.sleep(0.05)
    stack.redis_server.restart(down_s=2)
    record["seconds"] = round(stack.wait_published(since=start), 1)
    assert_invariant(stack)


def test_redis_restarted_during_review_task(
    private_stack: AppStack, record: dict[str, Any]
) -> None:
    stack = private_stack
    assert stack.redis_server is not None
    hold = stack.github.inject.hold("POST", r"/check-runs$", "process")
    start = time.time()
    assert stack.deliver("pull_request", pr_event("opened", HEAD)).status_code == 202
    hold.wait(60)
    stack.redis_server.restart(down_s=2)
    hold.release()
    record["seconds"] = round(stack.wait_published(since=start), 1)
    assert_invariant(stack)


def test_redis_down_at_delivery(private_stack: AppStack, record: dict[str, Any]) -> None:
    """503 while Redis is down (GitHub shows the failed delivery and does not redeliver by
    itself); the user redelivers the same delivery once Redis is back, and it is reviewed."""
    stack = private_stack
    assert stack.redis_server is not None
    assert httpx.get(stack.url + "/readyz").status_code == 200  # the receiver holds a connection
    stack.redis_server.stop()
    assert stack.deliver("pull_request", pr_event("opened", HEAD), "d-1").status_code == 503
    stack.redis_server.start()
    start = time.time()
    assert stack.deliver("pull_request", pr_event("opened", HEAD), "d-1").status_code == 202
    record["seconds"] = round(stack.wait_published(since=start), 1)
    assert_invariant(stack)


# --- load ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_twenty_deliveries_at_once(stack: AppStack, record: dict[str, Any]) -> None:
    """Five pushes to one PR, ten other PRs opened and five redeliveries, all at the same moment:
    each final head published once, the superseded heads' checks (if any) completed."""
    pushes = [f"{i:x}" * 40 for i in range(1, 6)]
    stack.github.push(REPO, PR, pushes[-1], PR_DIFF)  # the PR's head is the last push
    others = list(range(101, 111))
    for number in others:
        stack.open_pull(pr=number, head=f"{number:040x}")
    deliveries = [("synchronize", PR, head, f"push-{i}") for i, head in enumerate(pushes)]
    deliveries += [("opened", n, f"{n:040x}", f"open-{n}") for n in others]
    deliveries += [("opened", n, f"{n:040x}", f"open-{n}") for n in others[:5]]  # redelivered
    start = time.time()

    def send(item: tuple[str, int, str, str]) -> int:
        action, number, head, delivery = item
        return stack.deliver(
            "pull_request", pr_event(action, head, pr=number), delivery
        ).status_code

    with ThreadPoolExecutor(len(deliveries)) as pool:
        statuses = list(pool.map(send, deliveries))
    assert statuses == [202] * 20
    finals = [Expect(head=pushes[-1])] + [Expect(head=f"{n:040x}", pr=n) for n in others]
    record["seconds"] = round(
        max(stack.wait_published(e.head, since=start, timeout=180) for e in finals), 1
    )
    assert_invariant(stack, finals)
    superseded = [r for r in stack.github.reviews if r["commit_id"] in pushes[:-1]]
    assert not superseded, "a superseded head was reviewed"
