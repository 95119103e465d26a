"""Pull-request review orchestration: plain functions the Celery tasks call.

A review is a small state machine kept in Redis (``workers/state.py``):

    review_pull_request  fetch PR, diff, base config → plan → start check → submit async batch
    poll_model_job       poll each pending batch; resubmit units worth retrying; when every
                         unit has an answer: evaluate, merge, publish once, mark published

Neither step waits for the model: each returns ``Next(poll_in=…)`` and the task layer schedules
the next poll with that countdown. Every step is idempotent, so a task that runs twice (webhook
redelivered, worker killed and its message restored) changes nothing the first run did.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis

from bot import budget, engine, llm, prompts, risk, verify
from bot import diff as diffmod
from bot.config import Settings
from bot.errors import ConfigError, ModelCapacity, ModelError
from bot.findings import ReviewResult
from bot.jobs import ReviewJob
from bot.llm import ModelBackend, ModelRequest, ModelResult, Usage
from bot.prompts import PRContext, RepoContext
from bot.repo_config import RepoConfig
from bot.tokens import estimate_tokens
from workers.state import Batch, ReviewState, StateStore, StoredResult, review_key

log = logging.getLogger("secreview.pipeline")

RETRYABLE = ("model_capacity", "model_timeout", "missing_response", "model_unavailable_transient")
MAX_ATTEMPTS = {"invalid_model_output": 2, "retryable": 3}
FIRST_POLL_S = 5.0
MAX_POLL_S = 60.0
CONTEXT_TTL_S = 24 * 3600


class PullRequestLike(Protocol):
    """What the pipeline reads of a pull request (``bot.github.PullRequest``)."""

    @property
    def repo(self) -> str: ...
    @property
    def number(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def head_sha(self) -> str: ...
    @property
    def base_ref(self) -> str: ...
    @property
    def draft(self) -> bool: ...
    @property
    def state(self) -> str: ...


class PullDiffLike(Protocol):
    """A pull request's change: unified diff text, or files from the paged ``/files`` API."""

    @property
    def text(self) -> str | None: ...
    @property
    def files(self) -> Sequence[diffmod.ChangedFile]: ...
    @property
    def skipped(self) -> Sequence[diffmod.Skip]: ...


class InstallationPort(Protocol):
    """The GitHub calls a review makes, through one installation (``bot.github.Installation``)."""

    def pull_request(self, repo: str, number: int) -> Any: ...
    def pull_diff(self, repo: str, number: int) -> Any: ...
    def repo_config(self, repo: str, base_ref: str) -> RepoConfig: ...
    def post_comment(self, repo: str, number: int, body: str) -> int: ...
    def start_check(self, repo: str, head_sha: str, name: str = ...) -> int: ...
    def finish_check(
        self,
        repo: str,
        check_run_id: int,
        conclusion: str,
        title: str,
        summary: str,
        annotations: Sequence[Any] = ...,
    ) -> None: ...
    def publish_review(
        self,
        repo: str,
        pr: Any,
        head_sha: str,
        result: ReviewResult,
        config: RepoConfig,
        *,
        check_run_id: int | None,
        notes: Sequence[str] = ...,
        files: Any = ...,
        conclusion: str | None = ...,
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class Next:
    """What the task layer should do next: poll again after ``poll_in`` seconds, or stop."""

    outcome: str
    poll_in: float | None = None
    token: str = ""


def _again(outcome: str, delay: float, state: ReviewState, svc: Services, target: Target) -> Next:
    """Schedule one poll carrying a fresh token, which makes older polls no-ops.

    The poll is queued *before* the caller saves the new token: a worker killed in between
    leaves the old token in force, so the restored older poll carries on (the new one, if it was
    queued, finds a token it does not hold and stops). The other order could orphan the review.
    """
    state.poll_token = uuid.uuid4().hex
    step = Next(outcome, poll_in=delay, token=state.poll_token)
    if svc.schedule is not None:
        svc.schedule(target, step)
        return Next(outcome, token=state.poll_token)  # already scheduled
    return step


@dataclass
class Services:
    """The pipeline's ports: settings, Redis, GitHub per installation, the model backend."""

    settings: Settings
    redis: redis.Redis
    github: Callable[[int], InstallationPort]
    backend: Callable[[], ModelBackend]
    clock: Callable[[], float] = time.time
    schedule: Callable[[Target, Next], None] | None = None  # queue a poll (the task layer's)
    verify_backend: Callable[[], ModelBackend] | None = None  # the second look's model
    store: StateStore = field(init=False)

    def __post_init__(self) -> None:
        self.store = StateStore(self.redis)


@dataclass(frozen=True, slots=True)
class Target:
    """One review: a pull request at one head, through one installation."""

    installation_id: int
    repo: str
    pr: int
    head_sha: str

    @property
    def key(self) -> str:
        """The review's Redis key."""
        return review_key(self.repo, self.pr, self.head_sha)

    def kwargs(self) -> dict[str, Any]:
        """The poll task's keyword arguments."""
        return {
            "installation_id": self.installation_id,
            "repo": self.repo,
            "pr": self.pr,
            "head_sha": self.head_sha,
        }


# --- step 1: start ---------------------------------------------------------------------------


def review_pull_request(job: ReviewJob, svc: Services) -> tuple[Next, Target | None]:
    """Start (or resume) the review of ``job``; returns what to do next and the review target."""
    inst = svc.github(job.installation_id)
    pr = inst.pull_request(job.repo, job.pr)
    head = job.head_sha or pr.head_sha
    if pr.state != "open":
        return Next("pull request is closed"), None
    if pr.head_sha != head:
        # A newer push has its own job; reviewing an old head would only be thrown away.
        return Next(f"superseded by {pr.head_sha[:12]}"), None
    target = Target(job.installation_id, job.repo, job.pr, head)
    with svc.store.lock(target.key) as held:
        if not held:
            return Next("another task is working on this review"), target
        state = svc.store.load(target.key)
        if state is not None and not _restart(job, state):
            if state.status == "submitted":
                step = _again("resumed", svc.settings.first_poll_s, state, svc, target)
                svc.store.save(target.key, state)
                return step, target
            return Next(f"already {state.status}"), target
        svc.store.note_head(job.repo, job.pr, head)
        return _start(inst, pr, target, svc), target


def _restart(job: ReviewJob, state: ReviewState) -> bool:
    """An explicit re-run (command, re-requested check) reviews a finished head again."""
    return job.trigger in ("command", "rerun") and state.status != "submitted"


def _start(inst: InstallationPort, pr: Any, target: Target, svc: Services) -> Next:
    try:
        config = inst.repo_config(target.repo, pr.base_ref)
    except ConfigError as exc:
        check = inst.start_check(target.repo, target.head_sha)
        inst.finish_check(
            target.repo,
            check,
            "failure",
            "Invalid .github/secreview.yml",
            f"The repository configuration on `{pr.base_ref}` could not be used: {exc}",
        )
        _save_final(svc, target, "failed")
        return Next(f"invalid repository config: {exc}")
    if pr.draft and not config.review_drafts:
        return Next("draft pull request (review_drafts is off)")
    plan = build_plan(inst, pr, config, target, svc)
    check = inst.start_check(target.repo, target.head_sha)
    state = ReviewState(
        status="submitted",
        prefix_sha=plan.prefix.sha256,
        units=[u.id for u in plan.units],
        check_run_id=check,
        started=svc.clock(),
    )
    skip = _skip_model(plan, target, svc)
    if not plan.requests or skip:
        return _finish(inst, pr, config, plan, state, target, svc, skip)
    backend = svc.backend()
    try:
        _submit(backend, plan, list(plan.requests), state)
    except ModelError as exc:
        if exc.retryable:
            raise  # capacity, timeouts: the task retries with backoff
        # Quota spent (3036), model unavailable, plan or credentials wrong: say so on the PR
        # rather than leave the check spinning; the analyzers' findings still get posted.
        note = f"No model review: Workers AI refused the request ({exc.reason}: {exc})."
        return _finish(inst, pr, config, plan, state, target, svc, Skipped(note, "neutral"))
    step = _again(
        f"submitted {len(plan.requests)} units", svc.settings.first_poll_s, state, svc, target
    )
    svc.store.save(target.key, state)
    log.info(
        "review submitted",
        extra={
            "repo": target.repo,
            "pr": target.pr,
            "head_sha": target.head_sha,
            "prefix_sha": plan.prefix.sha256[:12],
            "units": len(plan.units),
        },
    )
    return step


def build_plan(
    inst: InstallationPort, pr: Any, config: RepoConfig, target: Target, svc: Services
) -> engine.ReviewPlan:
    """Plan the review of ``pr``'s diff (deterministic: a re-plan yields the same units)."""
    change = inst.pull_diff(target.repo, target.pr)
    repo = repo_context(inst, target, config, svc)
    common: dict[str, Any] = {
        "repo": repo,
        "budget_tokens": svc.settings.unit_token_budget,
        "max_units": svc.settings.max_units,
        "installation": target.installation_id,
    }
    if change.text is not None:
        parsed = diffmod.parse_diff(change.text)
        files, extra_skips = list(parsed.files), ()
    else:
        files, extra_skips = list(change.files), tuple(change.skipped)
    kept, skipped = diffmod.filter_files(files, config.filter_rules)
    kept = risk.sensitive_first(kept)  # a unit cap never drops auth, crypto, workflows, IaC
    pr_ctx = PRContext(title=pr.title, body=pr.body or "", files=tuple(f.path for f in kept))
    return engine.plan_files(kept, skipped=(*extra_skips, *skipped), pr=pr_ctx, **common)


def repo_context(
    inst: InstallationPort, target: Target, config: RepoConfig, svc: Services
) -> RepoContext:
    """The repository context, cached per repository so the prompt prefix stays byte-stable."""
    key = f"secreview:repo-context:{target.repo}"
    raw = svc.redis.get(key)
    if raw is not None:
        data = json.loads(raw)
        base = RepoContext(
            repo=str(data["repo"]),
            languages=tuple(data["languages"]),
            frameworks=tuple(data["frameworks"]),
            manifests=tuple(data["manifests"]),
            security_files=tuple(data["security_files"]),
        )
    else:
        base = _detect_context(inst, target)
        data = {k: list(v) if isinstance(v, tuple) else v for k, v in _fields(base).items()}
        svc.redis.set(key, json.dumps(data, sort_keys=True), ex=CONTEXT_TTL_S)
    return RepoContext(
        repo=base.repo,
        languages=base.languages,
        frameworks=base.frameworks,
        manifests=base.manifests,
        security_files=base.security_files,
        instructions=config.instructions,
    )


def _fields(ctx: RepoContext) -> dict[str, Any]:
    return {
        "repo": ctx.repo,
        "languages": ctx.languages,
        "frameworks": ctx.frameworks,
        "manifests": ctx.manifests,
        "security_files": ctx.security_files,
        "instructions": "",
    }


def _detect_context(inst: InstallationPort, target: Target) -> RepoContext:
    tree = getattr(inst, "tree_paths", None)
    read = getattr(inst, "file_text", None)
    if tree is None or read is None:
        return RepoContext(repo=target.repo)
    from bot.context import detect_repo_context

    ref = "HEAD"
    paths = tree(target.repo, ref)
    return detect_repo_context(target.repo, paths, lambda p: read(target.repo, p, ref))


def _submit(
    backend: ModelBackend, plan: engine.ReviewPlan, requests: list[ModelRequest], state: ReviewState
) -> None:
    """Submit ``requests`` as async batches under the payload limit, recording each batch.

    A unit's earlier answer is dropped (its cost kept) only once its retry is accepted, so a
    capacity error while resubmitting loses nothing: the next poll tries again.
    """
    if not backend.supports_batch:
        # An OpenAI-compatible server has no queue: answer now, so polling finds it done.
        for req in requests:
            result = backend.run(req, affinity=plan.affinity)
            _accepted(state, [req.external_reference])
            state.results[req.external_reference] = StoredResult.of(result)
        return
    fmt = prompts.response_format()
    chunks = engine.batches(
        requests, lambda r: llm.batch_payload_size([r], fmt), llm.MAX_BATCH_BYTES
    )
    for chunk in chunks:
        refs = [r.external_reference for r in chunk]
        request_id = backend.submit_batch(chunk, affinity=plan.affinity)
        _accepted(state, refs)
        state.batches.append(Batch(request_id, refs))


def _accepted(state: ReviewState, refs: Sequence[str]) -> None:
    for ref in refs:
        state.attempts[ref] = state.attempts.get(ref, 0) + 1
        state.forget(ref)


# --- step 2: poll ----------------------------------------------------------------------------


def poll_model_job(target: Target, svc: Services, token: str = "") -> Next:
    """Poll the review's batches; when every unit is answered, evaluate and publish."""
    with svc.store.lock(target.key) as held:
        if not held:
            return Next("another task is working on this review", svc.settings.first_poll_s, token)
        state = svc.store.load(target.key)
        if state is None or state.status != "submitted":
            return Next(f"nothing to poll ({state.status if state else 'no review'})")
        if token and token != state.poll_token:
            return Next("a newer poll owns this review")
        return _poll(target, state, svc)


def _poll(target: Target, state: ReviewState, svc: Services) -> Next:
    backend = svc.backend()
    affinity = ""
    pending = state.pending()
    if pending:
        affinity = _affinity(target, state)
    for batch in pending:
        status = backend.poll_batch(batch.request_id, batch.refs, affinity=affinity)
        if status.done:
            for result in status.results:
                state.results[result.external_reference] = StoredResult.of(result)
            batch.done = True
    state.polls += 1
    if state.pending():
        if svc.clock() - state.started > svc.settings.model_deadline_s:
            _time_out(state)
        else:
            delay = poll_delay(state.polls, svc.settings.first_poll_s)
            step = _again("waiting for the model", delay, state, svc, target)
            svc.store.save(target.key, state)
            return step
    inst = svc.github(target.installation_id)
    pr = inst.pull_request(target.repo, target.pr)
    if pr.head_sha != target.head_sha:
        return _supersede(inst, pr, target, state, svc)
    config = inst.repo_config(target.repo, pr.base_ref)
    plan = build_plan(inst, pr, config, target, svc)
    if plan.prefix.sha256 != state.prefix_sha or [u.id for u in plan.units] != state.units:
        log.warning("plan changed between submit and poll; reviewing again", extra=_ids(target))
        return _start(inst, pr, target, svc)
    retry = _retry_requests(plan, state)
    if retry:
        try:
            _submit(backend, plan, retry, state)
        except ModelCapacity:
            log.warning(
                "out of capacity while resubmitting; trying again later", extra=_ids(target)
            )
        delay = poll_delay(0, svc.settings.first_poll_s)
        step = _again(f"resubmitted {len(retry)} units", delay, state, svc, target)
        svc.store.save(target.key, state)
        return step
    if config.verify and svc.verify_backend is not None and state.verify_results is None:
        waiting = _verify_step(plan, config, state, target, svc)
        if waiting is not None:
            return waiting
    return _finish(inst, pr, config, plan, state, target, svc)


def _assembled(
    plan: engine.ReviewPlan, config: RepoConfig, state: ReviewState, svc: Services
) -> ReviewResult:
    outcomes = [
        engine.evaluate(plan, _result(state, ref), min_confidence=config.min_confidence)
        for ref in state.units
    ]
    return engine.assemble(plan, outcomes, model=svc.settings.model, extra_usage=_spent(state))


def _verify_step(
    plan: engine.ReviewPlan, config: RepoConfig, state: ReviewState, target: Target, svc: Services
) -> Next | None:
    """Submit the verification batch, or poll it; None once its answers are in."""
    assert svc.verify_backend is not None
    backend = svc.verify_backend()
    if not state.verify_request:
        result, _ = verify.exclude(_assembled(plan, config, state, svc))
        checked = [f for f in result.findings if f.source == "model"]
        if not checked:
            state.verify_results = {}
            return None
        state.verify_checked = [f.fingerprint for f in checked]
        state.verify_request = backend.submit_batch(
            verify.requests(plan, checked), affinity=plan.affinity
        )
    else:
        refs = [f"verify-{i}" for i in range(len(state.verify_checked))]
        status = backend.poll_batch(state.verify_request, refs, affinity=plan.affinity)
        if status.done:
            state.verify_results = {
                r.external_reference: StoredResult.of(r) for r in status.results
            }
            return None
    step = _again(
        "verifying findings", poll_delay(0, svc.settings.first_poll_s), state, svc, target
    )
    svc.store.save(target.key, state)
    return step


def _affinity(target: Target, state: ReviewState) -> str:
    return prompts.affinity_key(target.installation_id, target.repo, state.prefix_sha, "review")


def poll_delay(polls: int, first: float = FIRST_POLL_S) -> float:
    """A growing countdown between polls: 5 s, 7.5 s, 11 s … capped at a minute."""
    return float(min(MAX_POLL_S, first * 1.5**polls))


def _time_out(state: ReviewState) -> None:
    for batch in state.pending():
        for ref in batch.refs:
            state.results[ref] = StoredResult(None, (0, 0, 0), "model_timeout: review deadline")
            state.attempts[ref] = MAX_ATTEMPTS["retryable"]
        batch.done = True


def _retry_requests(plan: engine.ReviewPlan, state: ReviewState) -> list[ModelRequest]:
    """Units whose answer is worth one more try: invalid output once, capacity a few times."""
    out = []
    for ref in state.units:
        stored = state.results.get(ref)
        tries = state.attempts.get(ref, 0)
        if stored is None:
            continue
        invalid = engine.evaluate(plan, stored.to_result(ref)).invalid_output
        again = invalid and tries < MAX_ATTEMPTS["invalid_model_output"]
        if again or (_retryable(stored.error) and tries < MAX_ATTEMPTS["retryable"]):
            out.append(plan.request(ref))
    return out


def _retryable(error: str | None) -> bool:
    return error is not None and error.startswith(RETRYABLE)


def _skip_model(plan: engine.ReviewPlan, target: Target, svc: Services) -> Skipped | None:
    """Why this change gets no model call: low risk, or today's token budget is spent."""
    paths = [*plan.files, *(s.path for s in plan.skipped)]
    decision = risk.route(paths)
    if not decision.needs_model:
        return Skipped(f"No model review: {decision.reason}.", None)
    settings = svc.settings
    estimate = sum(u.tokens for u in plan.units) + len(plan.units) * estimate_tokens(
        plan.prefix.text
    )
    verdict = budget.check(
        svc.redis,
        target.installation_id,
        target.repo,
        estimate,
        per_installation=settings.daily_token_budget_installation,
        per_repo=settings.daily_token_budget_repo,
    )
    if not verdict.allowed:
        return Skipped(f"Review skipped: {verdict.reason}. The analyzers still ran.", "neutral")
    return None


@dataclass(frozen=True, slots=True)
class Skipped:
    """A review answered by the analyzers alone, and the check conclusion to force (if any)."""

    note: str
    conclusion: str | None


def _finish(
    inst: InstallationPort,
    pr: Any,
    config: RepoConfig,
    plan: engine.ReviewPlan,
    state: ReviewState,
    target: Target,
    svc: Services,
    skipped: Skipped | None = None,
) -> Next:
    """Evaluate every answer, publish once, and mark the review published."""
    outcomes = [
        engine.evaluate(plan, _result(state, ref), min_confidence=config.min_confidence)
        for ref in state.units
        if skipped is None
    ]
    model = svc.settings.model if plan.requests and skipped is None else None
    result = engine.assemble(plan, outcomes, model=model, extra_usage=_spent(state))
    result, notes = engine.suppress(result, config)
    result, look = verify.exclude(result)
    if state.verify_results:
        by_fp = {f.fingerprint: f for f in result.findings}
        checked = [by_fp[fp] for fp in state.verify_checked if fp in by_fp]
        answers = [r.to_result(ref) for ref, r in state.verify_results.items()]
        model_name = svc.settings.verify_model or svc.settings.model
        result = verify.apply_verdicts(
            result, checked, answers, look, config.min_confidence, model_name
        )
    notes += look.notes()
    from workers.scan import baseline_notes

    notes += baseline_notes(svc.redis, target.repo, result.findings)
    if skipped is not None:
        notes.insert(0, skipped.note)
    budget.charge(svc.redis, target.installation_id, target.repo, _usage(result))
    inst.publish_review(
        target.repo,
        pr,
        target.head_sha,
        result,
        config,
        check_run_id=state.check_run_id,
        notes=notes,
        files=plan.files,
        conclusion=skipped.conclusion if skipped else None,
    )
    state.status = "published"
    svc.store.save(target.key, state)
    record_metrics(svc, target.repo, result, getattr(inst, "last_posted", None))
    log.info("review published", extra={**_ids(target), "findings": len(result.findings)})
    return Next(f"published {len(result.findings)} findings")


def _usage(result: ReviewResult) -> Usage:
    s = result.stats
    return Usage(s.prompt_tokens, s.cached_tokens, s.completion_tokens)


def record_metrics(svc: Services, repo: str, result: ReviewResult, posted: Any) -> None:
    """Counters for /metrics (kept in Redis: workers have no endpoint), and reviewer reactions.

    Reactions on the bot's comments are a snapshot per comment, so the per-repository totals
    are recomputed from that snapshot rather than incremented twice for the same thumbs-up.
    """
    from bot.metrics import SHARED_KEY, incr_shared, series

    stats = result.stats
    incr_shared(svc.redis, "secreview_reviews_total", {"repo": repo})
    incr_shared(svc.redis, "secreview_findings_total", {"repo": repo}, len(result.findings))
    incr_shared(svc.redis, "secreview_prompt_tokens_total", {"repo": repo}, stats.prompt_tokens)
    incr_shared(svc.redis, "secreview_cached_tokens_total", {"repo": repo}, stats.cached_tokens)
    incr_shared(svc.redis, "secreview_cost_usd_total", {"repo": repo}, stats.cost_usd)
    comments = getattr(posted, "comments", ()) or ()
    if not comments:
        return
    key = f"secreview:reactions:{repo}"
    svc.redis.hset(key, mapping={str(c.id): f"{c.thumbs_up},{c.thumbs_down}" for c in comments})
    up = down = 0
    for raw in svc.redis.hvals(key):
        a, b = (raw.decode() if isinstance(raw, bytes) else raw).split(",")
        up, down = up + int(a), down + int(b)
    svc.redis.hset(
        SHARED_KEY,
        mapping={
            series("secreview_finding_reactions", {"repo": repo, "reaction": "+1"}): up,
            series("secreview_finding_reactions", {"repo": repo, "reaction": "-1"}): down,
        },
    )


def _result(state: ReviewState, ref: str) -> ModelResult:
    stored = state.results.get(ref)
    if stored is None:
        return ModelResult(ref, None, error="missing_response")
    return stored.to_result(ref)


def _spent(state: ReviewState) -> Usage:
    """Usage of superseded attempts is not in the final results; it is billed all the same."""
    return Usage(*state.spent)


def _supersede(
    inst: InstallationPort, pr: Any, target: Target, state: ReviewState, svc: Services
) -> Next:
    if state.check_run_id is not None:
        inst.finish_check(
            target.repo,
            state.check_run_id,
            "neutral",
            "Superseded by a newer push",
            f"This head was not published: the pull request moved on to `{pr.head_sha}`.",
        )
    state.status = "superseded"
    svc.store.save(target.key, state)
    return Next(f"superseded by {pr.head_sha[:12]}")


def _save_final(svc: Services, target: Target, status: str) -> None:
    state = ReviewState(
        status="failed" if status == "failed" else "skipped", prefix_sha="", units=[]
    )
    svc.store.save(target.key, state)


def _ids(target: Target) -> dict[str, Any]:
    return {"repo": target.repo, "pr": target.pr, "head_sha": target.head_sha}
