"""The App's driver of runs: one Celery task per step, a lease per run, and a sweeper.

    job task ─▶ start (a run in Redis, or the one already there) ─▶ drive
    drive:   lease the run ─▶ step, step … until it must wait ─▶ save ─▶ schedule the next step
    sweep:   every run whose next step is overdue and whose lease lapsed is driven again

A step task carries the run's current token; a stale one (a redelivered message, a duplicate
from the sweeper) finds another token and does nothing. A worker killed mid-step stops renewing
its lease, so the run is picked up again by the sweeper within a lease and a sweep interval: a
lost message, a dead worker or a Redis restart delays a review; nothing loses it.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.config import Settings
from bot.errors import GitHubError, ModelError, RateLimited, SecreviewError
from bot.jobs import ReviewJob, ScanJob
from bot.review import policy
from bot.review.models import ModelPool
from bot.review.policy import RedisBreaker
from bot.review.results import RedisResultStore
from bot.review.run import Context, new_run, step
from bot.review.state import RunState, new_token
from bot.review.store import RedisRunStore, StaleRun
from workers.app import (
    PullRequestSink,
    PullRequestSource,
    RedisBudget,
    RepoScanSink,
    RepoScanSource,
    review_scope,
)

log = logging.getLogger("secreview.driver")

MAX_COUNTDOWN_S = 120.0  # longer waits are left to the sweeper (no message sits unacked for long)
FAILED_STEPS = 5  # consecutive failed steps before a run ends with what it has


def review_key(repo: str, pr: int, head_sha: str) -> str:
    """The key of the review of a pull request at one head."""
    return f"review:{repo}#{pr}@{head_sha}"


def scan_key(repo: str, sha: str) -> str:
    """The key of the scan of a repository at one commit."""
    return f"scan:{repo}@{sha}"


Schedule = Callable[[str, str, float, str], None]  # key, token, countdown, queue


@dataclass
class Runtime:
    """What the driver needs in a worker process: settings, Redis, GitHub, models, a scheduler."""

    settings: Settings
    redis: Any
    github: Callable[[int], Any]
    schedule: Schedule
    clock: Callable[[], float] = time.time
    models: Callable[[], ModelPool | None] | None = None
    store: RedisRunStore = field(init=False)

    def __post_init__(self) -> None:
        self.store = RedisRunStore(self.redis, lease_s=self.settings.lease_s)
        self._pool: ModelPool | None = None
        self._pool_built = False

    def model_pool(self) -> ModelPool | None:
        """The models (one client per model per process), or None when none is configured."""
        if not self._pool_built:
            self._pool_built = True
            if self.models is not None:
                self._pool = self.models()
            elif self.settings.model_configured:
                self._pool = ModelPool(self.settings, RedisBreaker(self.redis), max_retries=0)
            if self._pool is not None:
                self._pool.failover.clock = lambda: self.clock()
        return self._pool


def queue_for(run: RunState) -> str:
    """Scans stay on the scan queue; a review plans on the review queue, then waits on polls."""
    from bot import jobs

    if run.kind == "scan":
        return jobs.QUEUE_SCANS
    return jobs.QUEUE_REVIEWS if run.phase == "plan" else jobs.QUEUE_POLLS


# --- starting runs ------------------------------------------------------------------------------


def start_review(job: ReviewJob, rt: Runtime) -> str:
    """Start the review of ``job``'s head, or leave the run that is already there alone."""
    key = review_key(job.repo, job.pr, job.head_sha)
    identity = {
        "job": job.kwargs(),
        "head_sha": job.head_sha,
        "models": list(rt.settings.model_chain),
        "scope": review_scope(job.repo, job.pr),
    }
    return _start(key, "review", identity, job.trigger in ("command", "rerun"), rt)


def start_scan(job: ScanJob, rt: Runtime) -> str:
    """Start the scan of ``job``'s repository at the commit its ref points to now."""
    inst = rt.github(job.installation_id)
    branch = job.ref or inst.default_branch(job.repo)
    sha = inst.resolve_ref(job.repo, branch)
    identity = {
        "job": job.kwargs(),
        "sha": sha,
        "branch": branch,
        "head_sha": sha,
        "models": list(rt.settings.model_chain),
    }
    return _start(scan_key(job.repo, sha), "scan", identity, False, rt)


def _start(key: str, kind: str, identity: dict[str, Any], again: bool, rt: Runtime) -> str:
    run = new_run(key, kind, identity, now=rt.clock())
    run.token = new_token()
    if not rt.store.create(run):
        existing = rt.store.load(key)
        if existing is None or existing.phase != "done" or not again:
            state = existing.phase if existing is not None else "gone"
            return f"already {'reviewed' if state == 'done' else state}"
        run.token = new_token()
        rt.store.replace(run)
    return drive(key, run.token, rt)


# --- driving ------------------------------------------------------------------------------------


def context_for(run: RunState, rt: Runtime) -> Context:
    """The step context of ``run``: its source, its sink, its stores and its models."""
    settings = rt.settings
    job = run.identity["job"]
    inst = rt.github(int(job["installation_id"]))
    if run.kind == "scan":
        scan = ScanJob(**job)
        source: Any = RepoScanSource(inst, scan, str(run.identity["sha"]), settings, rt.redis)
        sink: Any = RepoScanSink(inst, scan, rt.redis)
        deadline = max(settings.model_deadline_s, 3600)
    else:
        review = ReviewJob(**job)
        source = PullRequestSource(inst, review, settings, rt.redis)
        sink = PullRequestSink(inst, review, rt.redis, settings, source)
        deadline = settings.model_deadline_s
    return Context(
        store=rt.store,
        sink=sink,
        models=rt.model_pool(),
        source=source,
        results=RedisResultStore(rt.redis),
        budget=RedisBudget(rt.redis, int(job["installation_id"]), str(job["repo"]), settings),
        clock=rt.clock,
        deadline_s=deadline,
        first_poll_s=settings.first_poll_s,
        time_slice_s=settings.task_soft_limit_s / 2,
        no_model_note=(
            "the worker has no model configured (set CLOUDFLARE_ACCOUNT_ID and "
            "CLOUDFLARE_API_TOKEN, or OPENAI_BASE_URL)"
        ),
    )


def drive(key: str, token: str, rt: Runtime) -> str:
    """Advance the run under ``key`` as far as it goes without waiting; schedule the rest."""
    with rt.store.lease(key) as held:
        if not held:
            return "another worker holds this run"
        run = rt.store.load(key)
        if run is None:
            rt.store.forget(key)
            return "no such run"
        if run.phase == "done":
            return f"done: {run.outcome}"
        if token != run.token:
            return "a newer step owns this run"
        ctx = context_for(run, rt)
        budget_s = rt.settings.task_soft_limit_s / 2
        started = time.monotonic()
        try:
            while True:
                wait = _guarded_step(run, ctx, rt)
                if wait is None:
                    run.token, run.due = "", 0.0
                    rt.store.save(run)
                    log.info("run finished", extra={"run": key, "outcome": run.outcome})
                    return run.outcome
                if wait > 0 or time.monotonic() - started > budget_s:
                    return _schedule(run, wait, rt)
                rt.store.save(run)
        except StaleRun:
            return "another worker saved this run first"


def _guarded_step(run: RunState, ctx: Context, rt: Runtime) -> float | None:
    """One step; a failure is retried later, and a run that keeps failing ends with what it has."""
    try:
        wait = step(run, ctx)
    except StaleRun:
        raise
    except Exception as exc:
        run.errors += 1
        wait = _after_failure(run, exc)
        log.log(
            logging.WARNING if isinstance(exc, SecreviewError) else logging.ERROR,
            "step failed (%s: %s); next try in %.0f s",
            type(exc).__name__,
            exc,
            wait,
            exc_info=not isinstance(exc, SecreviewError),
            extra={"run": run.key, "phase": run.phase},
        )
        return wait
    run.errors = 0
    return wait


def _after_failure(run: RunState, exc: Exception) -> float:
    if isinstance(exc, RateLimited):
        return max(1.0, exc.retry_after)
    if run.errors >= FAILED_STEPS and run.phase in ("plan", "model", "verify"):
        # A step that keeps failing must not keep the check spinning: end with what we have.
        reason = getattr(exc, "reason", type(exc).__name__)
        run.failure = run.failure or f"the review could not continue ({reason})"
        if run.phase == "plan":
            run.phase = "publish"
        else:
            for unit in run.units.values():
                if unit.status in ("pending", "submitted"):
                    unit.status, unit.error = "failed", f"{reason}: the review could not continue"
            run.verify.status = "done"
            run.phase = "verify"
        return 0.0
    transient = isinstance(exc, GitHubError | ModelError | ConnectionError | OSError)
    return policy.backoff(run.errors + (1 if transient else 3))


def _schedule(run: RunState, wait: float, rt: Runtime) -> str:
    """Save the run with a fresh token and queue its next step (or leave it to the sweeper)."""
    now = rt.clock()
    run.token = new_token()
    run.due = now + wait
    rt.store.save(run)
    if wait <= MAX_COUNTDOWN_S:
        rt.schedule(run.key, run.token, wait, queue_for(run))
    return f"{run.phase}: next step in {wait:.0f} s"


# --- the sweeper --------------------------------------------------------------------------------


# kombu's Redis transport keeps a message a worker took, until acked, in these two keys; a
# worker killed (or cut off by a Redis restart) leaves its messages there until the visibility
# timeout hands them out again (kombu.transport.redis.QoS, the pinned versions).
UNACKED, UNACKED_INDEX = "unacked", "unacked_index"
UNACKED_MIN_AGE_S = 5.0


def sweep_unacked(rt: Runtime) -> int:
    """Drop the broker's records of taken messages whose work is moot; how many.

    A step whose run finished or moved on to another token, or a review job whose run exists
    (the sweeper drives it): handing them out again after the visibility timeout would only run
    a no-op. Anything else — a job whose run was never created — is left to be restored.
    """
    now = time.time()
    moot: list[str] = []
    for tag, raw in rt.redis.hscan_iter(UNACKED, count=200):
        name = tag.decode() if isinstance(tag, bytes) else str(tag)
        score = rt.redis.zscore(UNACKED_INDEX, name)
        if score is not None and now - float(score) < UNACKED_MIN_AGE_S:
            continue  # just taken by a live worker: not ours to judge yet
        task, kwargs = _message(raw)
        if task is not None and _moot(task, kwargs, rt):
            moot.append(name)
    if moot:
        pipe = rt.redis.pipeline()
        pipe.hdel(UNACKED, *moot)
        pipe.zrem(UNACKED_INDEX, *moot)
        pipe.execute()
    return len(moot)


def _message(raw: bytes | str) -> tuple[str | None, dict[str, Any]]:
    """The task name and keyword arguments of one unacked record (None if unreadable)."""
    try:
        envelope = json.loads(raw)[0]
        body = json.loads(base64.b64decode(envelope["body"]))
        return str(envelope["headers"]["task"]), dict(body[1])
    except (ValueError, KeyError, IndexError, TypeError):
        return None, {}


def _moot(task: str, kwargs: dict[str, Any], rt: Runtime) -> bool:
    from bot import jobs

    if task == jobs.TASK_SWEEP:
        return True
    if task == jobs.TASK_STEP:
        run = rt.store.load(str(kwargs.get("key", "")))
        return run is None or run.phase == "done" or kwargs.get("token") != run.token
    if task == jobs.TASK_REVIEW and kwargs.get("trigger") not in ("command", "rerun"):
        key = review_key(
            str(kwargs.get("repo")), int(kwargs.get("pr", 0)), str(kwargs.get("head_sha"))
        )
        return rt.store.load(key) is not None
    return False


def sweep(rt: Runtime, grace_s: float | None = None) -> int:
    """Re-drive every run whose next step is overdue and that no worker holds; how many."""
    grace = rt.settings.sweep_interval_s if grace_s is None else grace_s
    now = rt.clock()
    count = 0
    for key in rt.store.overdue(now - grace):
        if rt.store.leased(key):
            continue
        run = rt.store.load(key)
        if run is None or run.phase == "done":
            rt.store.forget(key)
            continue
        run.token = new_token()
        run.due = now + grace
        try:
            rt.store.save(run)
        except StaleRun:
            continue  # it moved on meanwhile: not overdue after all
        rt.schedule(key, run.token, 0.0, queue_for(run))
        count += 1
        log.warning("re-driving an overdue run", extra={"run": key, "phase": run.phase})
    return count
