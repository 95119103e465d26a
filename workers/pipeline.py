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

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.errors import ConfigError, ModelCapacity, ModelError
from bot.findings import ReviewResult
from bot.jobs import ReviewJob
from bot.model import client as llm
from bot.model.client import ModelBackend, ModelRequest, ModelResult, Usage
from bot.repo_config import RepoConfig
from bot.review import budget, engine, prompts, risk, verify
from bot.tokens import estimate_tokens
from workers.planning import build_plan
from workers.ports import InstallationPort, Next, PullDiffLike, PullRequestLike, Services, Target
from workers.state import Batch, ReviewState, StoredResult
from workers.telemetry import record_metrics, usage_of

__all__ = [
    "InstallationPort",
    "Next",
    "PullDiffLike",
    "PullRequestLike",
    "Services",
    "Target",
    "build_plan",
    "poll_delay",
    "poll_model_job",
    "review_pull_request",
]

log = logging.getLogger("secreview.pipeline")

RETRYABLE = ("model_capacity", "model_timeout", "missing_response", "model_unavailable_transient")
MAX_ATTEMPTS = {"invalid_model_output": 2, "retryable": 3}
FIRST_POLL_S = 5.0
MAX_POLL_S = 60.0


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
        # The same findings, in the same order, as _finish will see: suppressed, then excluded.
        suppressed, _ = engine.suppress(_assembled(plan, config, state, svc), config)
        result, _ = verify.exclude(suppressed)
        checked = [f for f in result.findings if f.source == "model"]
        if not checked:
            state.verify_results = {}
            return None
        state.verify_checked = [f.fingerprint for f in checked]
        state.verify_groups = len(verify.groups(checked))
        state.verify_request = backend.submit_batch(
            verify.requests(plan, checked), affinity=plan.affinity
        )
    else:
        refs = [f"verify-{g}" for g in range(state.verify_groups)]
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
    budget.charge(svc.redis, target.installation_id, target.repo, usage_of(result))
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
