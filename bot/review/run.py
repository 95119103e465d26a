"""One review run — the whole life of a review, a re-review or a scan (DESIGN.md §8).

    plan ─▶ model (submit ⇄ collect) ─▶ verify (second look) ─▶ publish ─▶ done
     │        one retry policy, one 3006 split, one deadline, model failover (bot.review.policy)
     └─ planning failed ─────────────────────────────────────────▶ publish (a failure summary)

:func:`step` reads the run, does the next piece of work and says how long until the following
one; it never waits. Drivers only repeat it: :func:`run_blocking` (the CLI's review and scan)
sleeps between steps; the App's Celery driver (``workers/driver.py``) schedules a task per step.
The stores (``bot.review.store``) keep the plan once and the state after every side effect, so
a driver killed at any point resumes without paying twice. Whatever fails, every run reaches
``publish`` with a result that says what was reviewed, reused, skipped and failed, and why.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.diff import delta
from bot.errors import ModelError, PayloadTooLarge, SecreviewError
from bot.findings import ReviewResult
from bot.model import values as llm
from bot.model.values import ModelBackend, ModelRequest, ModelResult, Usage
from bot.review import outcome, policy, prompts, verify
from bot.review.finalize import Final, failed_run, finalize, verification_candidates
from bot.review.outcome import Spend, UnitOutcome
from bot.review.plan import Lookup, Plan
from bot.review.policy import Failover
from bot.review.results import FileResult, ResultStore, lookup_in
from bot.review.state import BatchState, RunState, UnitState

log = logging.getLogger("secreview.run")

MAX_POLL_S = 60.0
PUBLISH_ATTEMPTS = 40  # then the run gives up publishing (GitHub down for over half an hour)


class SkipRun(SecreviewError):
    """Nothing to review and nothing to publish (a closed pull request, a superseded head)."""

    reason = "skipped"


class Source(Protocol):
    """Where a run's change comes from; called once, by the plan step."""

    def plan(self, lookup: Lookup | None) -> Plan: ...


class Sink(Protocol):
    """Where a run's result goes: a report file, or GitHub (check run, review, summary)."""

    def started(self, run: RunState, plan: Plan | None) -> None: ...

    def progress(self, run: RunState, plan: Plan) -> None: ...

    def superseded(self, run: RunState) -> str | None: ...

    def end_superseded(self, run: RunState, newer: str) -> None: ...

    def notes(self, run: RunState, plan: Plan | None, result: ReviewResult) -> list[str]: ...

    def publish(self, run: RunState, plan: Plan | None, final: Final) -> None: ...


class RunStore(Protocol):
    """Where a run lives between steps."""

    def save(self, run: RunState) -> None: ...

    def save_plan(self, key: str, plan: Plan) -> None: ...

    def load_plan(self, key: str) -> Plan | None: ...


class Models(Protocol):
    """The models of a run: the failover chain and a client per model."""

    failover: Failover

    def backend(self, model: str) -> ModelBackend: ...

    def verifier(self) -> ModelBackend | None: ...


class Budget(Protocol):
    """Daily token budgets: checked before the model is asked, charged once after publishing."""

    def check(self, estimate: int) -> str | None: ...

    def charge(self, run_key: str, usage: Usage) -> None: ...


@dataclass
class Context:
    """What a step works with; drivers build it (the plan source only for the first step)."""

    store: RunStore
    sink: Sink
    models: Models | None
    source: Source | None = None
    results: ResultStore | None = None
    budget: Budget | None = None
    clock: Callable[[], float] = time.time
    deadline_s: float = 1800.0
    first_poll_s: float = 5.0
    time_slice_s: float = 60.0  # longest a step spends on synchronous (non-batch) requests
    no_model_note: str = "no model is configured"
    offline_ok: bool = False  # no model is a choice (the CLI's analyzers-only mode), not a gap
    extra: dict[str, Any] = field(default_factory=dict)
    _plan: Plan | None = None

    def plan(self, run: RunState) -> Plan | None:
        """The run's stored plan (read once per context)."""
        if self._plan is None:
            self._plan = self.store.load_plan(run.key)
        return self._plan

    def checkpoint(self, run: RunState) -> None:
        """Save now: a side effect that must not be repeated has just happened."""
        run.updated = self.clock()
        self.store.save(run)


class Unsuperseded:
    """The parts of a sink for runs nothing can supersede and that add no notes (a local run,
    a scan of one commit)."""

    def superseded(self, run: RunState) -> str | None:
        """Never superseded."""
        return None

    def end_superseded(self, run: RunState, newer: str) -> None:
        """Never called."""

    def notes(self, run: RunState, plan: Plan | None, result: ReviewResult) -> list[str]:
        """No notes beyond the run's own."""
        return []


@dataclass
class LocalSink(Unsuperseded):
    """A run in this process: progress to a callback, the final result kept for the caller."""

    show: Callable[[int, int, Usage], None] | None = None
    final: Final | None = None
    _last: tuple[int, int, int] = (-1, -1, -1)

    def started(self, run: RunState, plan: Plan | None) -> None:
        """Nothing to announce."""

    def progress(self, run: RunState, plan: Plan) -> None:
        """Units settled so far and tokens spent (only when something changed)."""
        if self.show is None:
            return
        done, total = run.counts()
        usage = Usage()
        for u in run.usage_by_model().values():
            usage = usage + u
        mark = (done, total, usage.prompt_tokens)
        if mark != self._last:
            self._last = mark
            self.show(done, total, usage)

    def publish(self, run: RunState, plan: Plan | None, final: Final) -> None:
        """Keep the result for the caller."""
        self.final = final


def review_plan(
    plan: Plan,
    models: Models | None,
    *,
    results: ResultStore | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.time,
    deadline_s: float = 1800.0,
    first_poll_s: float = 2.0,
    progress: Callable[[int, int, Usage], None] | None = None,
    label: str = "local",
) -> Final:
    """Run ``plan`` to the end in memory and return its final result (library use, benchmarks)."""
    from bot.review.store import MemoryRunStore

    # Time as the run sees it moves at least as far as each sleep asked: a caller whose sleep
    # returns at once (a test, a benchmark against an emulator) never makes the run spin.
    ahead = [0.0]

    def now() -> float:
        return clock() + ahead[0]

    def nap(seconds: float) -> None:
        before = clock()
        sleep(seconds)
        ahead[0] += max(0.0, seconds - (clock() - before))

    store = MemoryRunStore()
    sink = LocalSink(progress)
    if models is not None:
        models.failover.clock = now
    chain = list(models.failover.chain) if models is not None else []
    run = new_run(label, plan.kind, {"models": chain, "label": label}, now=now())
    store.save_plan(run.key, plan)
    ctx = Context(
        store=store,
        sink=sink,
        models=models,
        results=results,
        clock=now,
        deadline_s=deadline_s,
        first_poll_s=first_poll_s,
        offline_ok=True,
        no_model_note="analyzers only (no model is configured)",
    )
    run_blocking(run, ctx, nap)
    assert sink.final is not None
    return sink.final


def step(run: RunState, ctx: Context) -> float | None:
    """Do the next piece of ``run``; seconds until the following step, or None when done."""
    if run.phase == "plan":
        return _plan(run, ctx)
    if run.phase == "model":
        return _model(run, ctx)
    if run.phase == "verify":
        return _verify(run, ctx)
    if run.phase == "publish":
        return _publish(run, ctx)
    return None


def run_blocking(
    run: RunState, ctx: Context, sleep: Callable[[float], None] = time.sleep
) -> RunState:
    """Drive ``run`` to the end in this process, saving after every step (the CLI's driver)."""
    while True:
        wait = step(run, ctx)
        ctx.checkpoint(run)
        if wait is None:
            return run
        if wait > 0:
            sleep(wait)


# --- plan ---------------------------------------------------------------------------------------


def _plan(run: RunState, ctx: Context) -> float:
    plan = ctx.plan(run)
    if plan is None and not run.failure:
        if ctx.source is None:
            raise SecreviewError("the run has no plan and no source to plan from")
        lookup = lookup_in(ctx.results) if ctx.results is not None else None
        try:
            plan = ctx.source.plan(lookup)
        except SkipRun as exc:
            run.phase, run.outcome = "done", str(exc)
            return 0.0
        except SecreviewError as exc:
            run.failure = str(exc)
        except Exception as exc:
            log.exception("planning failed", extra={"run": run.key})
            run.failure = f"planning failed: {type(exc).__name__}"
        if plan is not None:
            ctx.store.save_plan(run.key, plan)
            ctx._plan = plan
        ctx.checkpoint(run)
    # Counted before the sink creates anything: a retry knows it may have created it already.
    run.sink["starting"] = int(run.sink.get("starting", 0)) + 1
    ctx.checkpoint(run)
    ctx.sink.started(run, plan)
    if plan is None:
        run.phase = "publish"
        return 0.0
    _decide_model(run, ctx, plan)
    ctx.checkpoint(run)
    return 0.0


def _decide_model(run: RunState, ctx: Context, plan: Plan) -> None:
    """Whether the model reviews this change, and with which units."""
    if not plan.requests:
        run.phase = "verify"
        return
    if plan.route:
        run.skip, run.skip_kind = f"No model review: {plan.route}.", "route"
        run.phase = "verify"
        return
    if ctx.models is None:
        run.skip = f"No model review: {ctx.no_model_note}."
        run.skip_kind = "offline" if ctx.offline_ok else "no_model"
        run.phase = "verify"
        return
    if ctx.budget is not None:
        refusal = ctx.budget.check(_estimate(plan))
        if refusal is not None:
            run.skip = f"Review skipped: {refusal}. The analyzers still ran."
            run.skip_kind, run.skip_conclusion = "budget", "neutral"
            run.phase = "verify"
            return
    run.units = {u.id: UnitState() for u in plan.units}
    run.model_started = ctx.clock()
    run.phase = "model"


def _estimate(plan: Plan) -> int:
    from bot.tokens import estimate_tokens

    return sum(u.tokens for u in plan.units) + len(plan.units) * estimate_tokens(plan.prefix.text)


# --- model: submit and collect ------------------------------------------------------------------


def _model(run: RunState, ctx: Context) -> float:
    plan = _require_plan(run, ctx)
    assert ctx.models is not None
    now = ctx.clock()
    _poll(run, ctx, plan)
    if now - run.model_started > ctx.deadline_s:
        _time_out(
            run, f"model_timeout: no answer within the review deadline of {ctx.deadline_s:.0f} s"
        )
    else:
        _submit(run, ctx, plan)
    ctx.sink.progress(run, plan)
    waiting = [u for u in run.units.values() if u.status in ("pending", "submitted")]
    if not waiting:
        run.phase = "verify"
        return 0.0
    return _next_wake(run, ctx)


def _next_wake(run: RunState, ctx: Context) -> float:
    now = ctx.clock()
    times = [b.next_poll for b in run.batches if not b.done]
    times += [u.not_before for u in run.units.values() if u.status == "pending"]
    deadline = run.model_started + ctx.deadline_s + 0.1
    wake = min([*times, deadline])
    return max(0.0, wake - now)


def _require_plan(run: RunState, ctx: Context) -> Plan:
    plan = ctx.plan(run)
    if plan is None:
        raise SecreviewError(f"the plan of run {run.key} is missing from the store")
    return plan


def _time_out(run: RunState, reason: str) -> None:
    for unit in run.units.values():
        if unit.status in ("pending", "submitted"):
            unit.status, unit.error, unit.content = "failed", reason, None
    for batch in run.batches:
        batch.done = True


def _poll(run: RunState, ctx: Context, plan: Plan) -> None:
    assert ctx.models is not None
    now = ctx.clock()
    for batch in run.batches:
        if batch.done or batch.next_poll > now:
            continue
        backend = ctx.models.backend(batch.model)
        try:
            status = backend.poll_batch(batch.request_id, batch.refs, affinity=plan.affinity)
        except ModelError as exc:
            if exc.retryable:
                _poll_later(batch, ctx, now)
                continue
            batch.done = True  # the batch is gone for good: its units are tried again
            event = _Event()
            for ref in _members(run, batch):
                _attempt_failed(
                    run, ctx, ref, f"{exc.reason}: {exc}", policy.classify_error(exc), event=event
                )
            continue
        if not status.done:
            _poll_later(batch, ctx, now)
            continue
        batch.done = True
        _collect(run, ctx, batch, status.results, status.usage)
        ctx.checkpoint(run)


def _poll_later(batch: BatchState, ctx: Context, now: float) -> None:
    batch.polls += 1
    batch.next_poll = now + poll_delay(batch.polls, ctx.first_poll_s)


def poll_delay(polls: int, first: float) -> float:
    """A growing countdown between polls: first, ×1.5 each time, capped at a minute."""
    return float(min(MAX_POLL_S, first * 1.5 ** max(0, polls - 1)))


def _members(run: RunState, batch: BatchState) -> list[str]:
    """Units still waiting on ``batch`` (a unit moved on to a newer batch is not its member)."""
    return [
        r
        for r in batch.refs
        if r in run.units
        and run.units[r].status == "submitted"
        and run.units[r].batch == batch.request_id
    ]


def _collect(
    run: RunState,
    ctx: Context,
    batch: BatchState,
    results: Sequence[ModelResult],
    total: Usage,
) -> None:
    run.spend(batch.model, total)
    members = set(_members(run, batch))
    event = _Event()
    for result in results:
        ref = result.external_reference
        if ref not in members:
            continue
        members.discard(ref)
        _answer(run, ctx, ref, result, event)
    for ref in sorted(members):
        _attempt_failed(
            run, ctx, ref, "missing_response: the batch returned no answer", "retry", event=event
        )


def _answer(
    run: RunState, ctx: Context, ref: str, result: ModelResult, event: _Event | None = None
) -> None:
    """Record one unit's answer, or treat its failure by the policy."""
    unit = run.units[ref]
    if result.error is not None:
        _attempt_failed(run, ctx, ref, result.error, policy.classify(result.error), event=event)
        return
    problem = outcome.check_answer(result.content)
    if problem is not None:
        _attempt_failed(run, ctx, ref, problem, "retry", event=event)
        return
    unit.status, unit.content, unit.error, unit.batch = "answered", result.content, None, ""


def _attempt_failed(
    run: RunState,
    ctx: Context,
    ref: str,
    error: str,
    action: policy.Action,
    *,
    event: _Event | None = None,
) -> None:
    """One attempt of ``ref`` failed with ``error``: retry, move to the next model, or give up.

    Units that failed together (one refused batch) share one ``event``: the model's breaker
    counts it once, and they wait the same backoff, so they are sent again as one batch.
    """
    assert ctx.models is not None
    failover = ctx.models.failover
    unit = run.units[ref]
    model = unit.model
    unit.error, unit.content, unit.batch = error, None, ""
    if action == "fail":
        unit.status = "failed"
        return
    if action == "failover":
        failover.refused(model)
        _move_on(run, unit, model)
        return
    invalid = error.startswith(outcome.INVALID_OUTPUT)
    if invalid:
        unit.invalid += 1
    else:
        unit.attempts += 1
        if policy.is_capacity(error) and (event is None or event.count(model)):
            failover.capacity_failure(model)
    if (unit.invalid if invalid else unit.attempts) >= policy.attempts_allowed(error):
        _move_on(run, unit, model)
        return
    unit.status = "pending"
    delay = (
        0.0 if invalid else (event.delay(unit.attempts) if event else policy.backoff(unit.attempts))
    )
    unit.not_before = ctx.clock() + delay


@dataclass
class _Event:
    """One failure shared by several units (a refused batch, one poll's answers)."""

    counted: set[str] = field(default_factory=set)
    delays: dict[int, float] = field(default_factory=dict)

    def count(self, model: str) -> bool:
        """True the first time ``model`` is counted for this event."""
        if model in self.counted:
            return False
        self.counted.add(model)
        return True

    def delay(self, attempt: int) -> float:
        """One backoff per attempt number for every unit of the event."""
        if attempt not in self.delays:
            self.delays[attempt] = policy.backoff(attempt)
        return self.delays[attempt]


def _move_on(run: RunState, unit: UnitState, model: str) -> None:
    """Give up on ``model`` for this unit: the next model of the chain, else failed."""
    if model and model not in unit.tried:
        unit.tried.append(model)
    chain = run.identity.get("models") or []
    if any(m not in unit.tried for m in chain):
        unit.status, unit.model, unit.attempts, unit.invalid = "pending", "", 0, 0
        unit.not_before = 0.0
    else:
        unit.status = "failed"


def _submit(run: RunState, ctx: Context, plan: Plan) -> None:
    """Send every pending unit that may go now, to the model its failover state says."""
    assert ctx.models is not None
    failover = ctx.models.failover
    now = ctx.clock()
    by_model: dict[str, list[ModelRequest]] = {}
    for ref, unit in run.units.items():
        if unit.status != "pending" or unit.not_before > now:
            continue
        if not unit.model or not failover.usable(unit.model):
            chosen = failover.pick(unit.tried)
            if chosen is None:
                reopens = failover.reopens(unit.tried)
                if reopens is None:
                    unit.status = "failed"
                else:
                    unit.not_before = max(reopens, now + 1.0)
                continue
            if chosen != unit.model:
                unit.model, unit.attempts, unit.invalid = chosen, 0, 0
        by_model.setdefault(unit.model, []).append(plan.request(ref))
    started = time.monotonic()
    for model, requests in by_model.items():
        backend = ctx.models.backend(model)
        if not backend.supports_batch:
            for request in requests:
                if time.monotonic() - started > ctx.time_slice_s:
                    return  # the rest goes in the next step: no step runs unbounded
                _run_one(run, ctx, plan, backend, model, request)
            continue
        fmt = getattr(backend, "response_format", None) or prompts.response_format()
        for chunk in outcome.batches(requests, _sizer(fmt), llm.MAX_BATCH_BYTES):
            _submit_chunk(run, ctx, plan, backend, model, chunk)


def _sizer(fmt: Any) -> Callable[[ModelRequest], int]:
    return lambda r: llm.batch_payload_size([r], fmt)


def _submit_chunk(
    run: RunState,
    ctx: Context,
    plan: Plan,
    backend: ModelBackend,
    model: str,
    chunk: Sequence[ModelRequest],
) -> None:
    refs = [r.external_reference for r in chunk]
    try:
        request_id = backend.submit_batch(chunk, affinity=plan.affinity)
    except PayloadTooLarge as exc:
        if len(chunk) > 1:  # Workers AI 3006: split the batch and try each half
            half = len(chunk) // 2
            _submit_chunk(run, ctx, plan, backend, model, chunk[:half])
            _submit_chunk(run, ctx, plan, backend, model, chunk[half:])
            return
        _attempt_failed(run, ctx, refs[0], f"{exc.reason}: {exc}", "fail")
        return
    except ModelError as exc:
        blocked = set(getattr(exc, "references", ()) or ())
        if blocked:  # the egress guard stopped some requests: the others may still go
            for ref in refs:
                if ref in blocked:
                    _attempt_failed(run, ctx, ref, f"{exc.reason}: {exc}", "fail")
            rest = [r for r in chunk if r.external_reference not in blocked]
            if rest:
                _submit_chunk(run, ctx, plan, backend, model, rest)
            return
        event = _Event()
        for ref in refs:
            _attempt_failed(
                run, ctx, ref, f"{exc.reason}: {exc}", policy.classify_error(exc), event=event
            )
        return
    now = ctx.clock()
    if ctx.models is not None:
        ctx.models.failover.accepted(model)
    run.requests += len(chunk)
    run.batches.append(
        BatchState(
            request_id=request_id,
            model=model,
            refs=refs,
            submitted=now,
            next_poll=now + ctx.first_poll_s,
        )
    )
    for ref in refs:
        unit = run.units[ref]
        unit.status, unit.batch = "submitted", request_id
    ctx.checkpoint(run)  # paid for: a restart must poll this batch, not submit it again


def _run_one(
    run: RunState,
    ctx: Context,
    plan: Plan,
    backend: ModelBackend,
    model: str,
    request: ModelRequest,
) -> None:
    """A synchronous request (OpenAI-compatible servers have no batch queue)."""
    ref = request.external_reference
    try:
        result = backend.run(request, affinity=plan.affinity)
    except ModelError as exc:
        run.requests += exc.attempts
        _attempt_failed(run, ctx, ref, f"{exc.reason}: {exc}", policy.classify_error(exc))
        ctx.checkpoint(run)
        return
    run.requests += result.attempts
    run.spend(model, result.usage)
    _answer(run, ctx, ref, result)
    ctx.checkpoint(run)


# --- the second look ----------------------------------------------------------------------------


def _verify(run: RunState, ctx: Context) -> float:
    plan = _require_plan(run, ctx)
    state = run.verify
    verifier = ctx.models.verifier() if ctx.models is not None else None
    if state.status == "todo":
        checked = verification_candidates(
            assemble(run, plan),
            plan.config,
            tuple(plan.reused),
            plan.dismissed,
            settled={f.fingerprint for found in plan.carried.values() for f in found},
        )
        if not plan.config.verify or verifier is None or not checked:
            state.status = "done"
        else:
            state.checked = [f.fingerprint for f in checked]
            state.groups = len(verify.groups(checked))
            state.model, state.started = verifier.model, ctx.clock()
            ctx.checkpoint(run)
            return _verify_submit(run, ctx, plan, verifier, checked)
    elif state.status == "submitted":
        assert verifier is not None
        return _verify_poll(run, ctx, plan, verifier)
    if state.status == "done":
        run.final = _finalize(run, ctx, plan)
        run.phase = "publish"
    return 0.0


def _checked_findings(run: RunState, plan: Plan) -> list[Any]:
    by_fp = {f.fingerprint: f for f in assemble(run, plan).findings}
    return [by_fp[fp] for fp in run.verify.checked if fp in by_fp]


def _verify_submit(
    run: RunState, ctx: Context, plan: Plan, verifier: ModelBackend, checked: Sequence[Any]
) -> float:
    state = run.verify
    requests = verify.requests(plan, checked)
    try:
        if verifier.supports_batch:
            state.request_id = verifier.submit_batch(requests, affinity=plan.affinity)
            run.requests += len(requests)
            state.status, state.next_poll = "submitted", ctx.clock() + ctx.first_poll_s
            ctx.checkpoint(run)
            return ctx.first_poll_s
        for request in requests:
            result = verifier.run(request, affinity=plan.affinity)
            run.requests += result.attempts
            run.spend(verifier.model, result.usage)
            _add_usage(state.usage, result.usage)
            state.answers[request.external_reference] = result.content
    except ModelError as exc:
        run.requests += exc.attempts
        state.attempts += 1
        if exc.retryable and state.attempts < policy.MODEL_ATTEMPTS:
            return policy.backoff(state.attempts)
        state.note = (
            f"The verification pass was not available ({exc.reason}); its findings were kept."
        )
    state.status = "done"
    return 0.0


def _add_usage(into: list[int], usage: Usage) -> None:
    into[0] += usage.prompt_tokens
    into[1] += usage.cached_tokens
    into[2] += usage.completion_tokens


def _verify_poll(run: RunState, ctx: Context, plan: Plan, verifier: ModelBackend) -> float:
    state = run.verify
    now = ctx.clock()
    if now < state.next_poll:
        return state.next_poll - now
    refs = [f"verify-{g}" for g in range(state.groups)]
    try:
        status = verifier.poll_batch(state.request_id, refs, affinity=plan.affinity)
    except ModelError as exc:
        if not exc.retryable:
            state.status, state.note = (
                "done",
                (f"The verification pass failed ({exc.reason}); its findings were kept."),
            )
            return 0.0
        status = None
    if status is not None and status.done:
        run.spend(state.model, status.usage)
        _add_usage(state.usage, status.usage)
        state.answers = {r.external_reference: r.content for r in status.results}
        state.status = "done"
        return 0.0
    if now - state.started > ctx.deadline_s:
        state.status = "done"
        state.note = "The verification pass did not answer in time; its findings were kept."
        return 0.0
    state.attempts += 1
    state.next_poll = now + poll_delay(state.attempts, ctx.first_poll_s)
    return state.next_poll - now


# --- finalize and publish -----------------------------------------------------------------------


def unit_outcomes(run: RunState, plan: Plan) -> list[UnitOutcome]:
    """Every unit's outcome from the stored answers (evaluated afresh: pure and cheap)."""
    out = []
    for unit in plan.units:
        state = run.units.get(unit.id)
        if state is None:
            continue
        if state.status == "answered":
            out.append(
                outcome.evaluate(
                    plan,
                    unit.id,
                    state.content,
                    min_confidence=plan.config.min_confidence,
                    model=state.model,
                )
            )
        else:
            out.append(outcome.failed(unit.id, state.error or "not answered", state.model))
    return out


def _model_name(run: RunState, plan: Plan) -> str | None:
    """The model(s) whose answers the result uses; None when no model had a say."""
    used = {u.model for u in run.units.values() if u.status == "answered" and u.model}
    used |= {r.model for r in plan.reused.values() if r.model}
    if used:
        return ", ".join(sorted(used))
    chain = run.identity.get("models") or []
    return str(chain[0]) if chain and run.units else None


def assemble(run: RunState, plan: Plan) -> ReviewResult:
    """The run's result so far: analyzer findings, answers, reused files, spend, coverage."""
    skipped = run.skip if run.skip_kind in ("budget", "no_model") else ""
    return outcome.assemble(
        plan,
        unit_outcomes(run, plan),
        spend=Spend(run.usage_by_model(), run.requests),
        model=_model_name(run, plan),
        model_skipped=skipped,
        analyzers_only=run.skip_kind in ("route", "offline"),
    )


def _finalize(run: RunState, ctx: Context, plan: Plan) -> Final:
    result = assemble(run, plan)
    notes = [run.skip] if run.skip else []
    notes += ctx.sink.notes(run, plan, result)
    state = run.verify
    # The pass's usage is already in the run's stats; its share rides on one answer for the note.
    answers = [ModelResult(ref, content, Usage()) for ref, content in sorted(state.answers.items())]
    if answers:
        answers[0] = dataclasses.replace(answers[0], usage=Usage(*state.usage))
    return finalize(
        result,
        plan.config,
        checked=state.checked if state.status == "done" and state.answers else (),
        answers=answers,
        verify_model=state.model,
        notes=notes,
        skip_conclusion=run.skip_conclusion,
        verify_note=state.note,
        dismissed=plan.dismissed,
    )


def _publish(run: RunState, ctx: Context) -> float | None:
    plan = ctx.plan(run)
    if run.final is None:
        run.final = failed_run(run.failure or "the run ended without a result")
    newer = ctx.sink.superseded(run)
    if newer:
        ctx.sink.end_superseded(run, newer)
        run.phase, run.outcome = "done", f"superseded by {newer[:12]}"
        return None
    run.sink["publishing"] = int(run.sink.get("publishing", 0)) + 1
    ctx.checkpoint(run)  # a later attempt knows this one may have posted part already
    try:
        ctx.sink.publish(run, plan, run.final)
    except SecreviewError as exc:
        run.publish_attempts += 1
        if run.publish_attempts >= PUBLISH_ATTEMPTS:
            log.error("giving up publishing %s: %s", run.key, exc)
            run.phase, run.outcome = "done", f"publishing failed: {exc.reason}"
            return None
        retry_after = getattr(exc, "retry_after", None)
        return float(retry_after) if retry_after else policy.backoff(run.publish_attempts)
    if plan is not None and ctx.results is not None:
        outcomes = unit_outcomes(run, plan)
        answered = _answered_files(plan, outcomes)
        _store_results(run, ctx, plan, run.final, outcomes, answered)
        _store_last(run, ctx, plan, run.final, answered)
    if ctx.budget is not None:
        ctx.budget.charge(run.key, Spend(run.usage_by_model(), run.requests).total)
    run.phase = "done"
    run.outcome = f"published {len(run.final.result.findings)} findings"
    return None


def _answered_files(plan: Plan, outcomes: Sequence[UnitOutcome]) -> dict[str, str]:
    """Path → model of each file every unit of which was answered (never a partial one)."""
    failed = {p for o in outcomes if not o.answered for p in plan.unit(o.unit).paths}
    models = {p: o.model for o in outcomes if o.answered for p in plan.unit(o.unit).paths}
    return {p: m for p, m in models.items() if p not in failed}


def _store_results(
    run: RunState,
    ctx: Context,
    plan: Plan,
    final: Final,
    outcomes: Sequence[UnitOutcome],
    models: Mapping[str, str],
) -> None:
    """Keep each answered file's result for the next push (never a failed or partial one);
    ``models``: the answered files (:func:`_answered_files`)."""
    if ctx.results is None or not plan.file_keys:
        return
    found = outcome.findings_by_file(o for o in outcomes if o.answered)
    rejected = outcome.rejected_by_file(o for o in outcomes if o.answered)
    refuted = set(final.refuted)
    head = str(run.identity.get("head_sha") or run.identity.get("label") or run.key)
    items: dict[str, FileResult] = {}
    for path, key in plan.file_keys.items():
        if path not in models:
            continue
        kept = [f for f in found.get(path, []) if f.fingerprint not in refuted]
        items[key] = FileResult(
            findings=tuple(outcome.with_unit(kept, None)),
            rejected=rejected.get(path, 0),
            refuted=sum(1 for f in found.get(path, []) if f.fingerprint in refuted),
            model=models[path],
            from_head=head,
        )
    ctx.results.put_many(items)


def _store_last(
    run: RunState, ctx: Context, plan: Plan, final: Final, answered: Mapping[str, str]
) -> None:
    """Keep the model's findings (dismissed ones too) for the next review of this change, and
    what it was shown of each file the model answered for (its next review of a changed file
    is narrowed to what changed since: bot.diff.delta)."""
    scope = run.identity.get("scope")
    if ctx.results is None or not scope:
        return
    mine = [f for f in (*final.result.findings, *final.dismissed) if f.source == "model"]
    ctx.results.put_last(str(scope), outcome.with_unit(mine, None))
    views: dict[str, tuple[str, ...]] = {}
    room = delta.MAX_VIEW_LINES  # per pull request: a file past it is sent whole next time
    for path in sorted(answered.keys() | plan.reused.keys()):
        file = plan.files.get(path)
        view = delta.new_side(file) if file is not None else ()
        if view and len(view) <= room:
            views[path], room = view, room - len(view)
    ctx.results.put_views(str(scope), views)


def new_run(
    key: str, kind: str, identity: Mapping[str, Any], *, now: float | None = None
) -> RunState:
    """A run about to be planned."""
    at = time.time() if now is None else now
    return RunState(
        key=key,
        kind="scan" if kind == "scan" else "review",
        identity=dict(identity),
        created=at,
        updated=at,
        due=at,
    )
