"""Full-repository scans requested through the App (``/secreview scan``).

    scan_repository   tarball → plan → submit async batches (state in Redis) → schedule a poll
    poll_scan         poll pending batches once; update the check run as batches finish;
                      re-scheduled with a growing countdown; when all are answered: one retry
                      round for failed units, then evaluate, publish, record the baseline

No worker waits on the model. Every step is recorded in Redis before the next, so a worker killed
midway resumes without paying again for batches that finished. The result becomes the
repository's baseline (later PR reviews say which findings already existed), is uploaded to code
scanning, and is summarised in a "secreview scan" check run and a reply where it was asked for.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bot.findings import Finding, ReviewResult, gate_exceeded
from bot.jobs import ScanJob
from bot.repo_config import RepoConfig
from bot.report import render
from bot.report.publish import annotation
from bot.review import analyzers, engine
from bot.review.context import detect_repo_context
from bot.scan import walk as scan
from bot.scan.run import RedisStore, ScanRun, pending, poll_pending, units_done

if TYPE_CHECKING:
    from workers.pipeline import Services

BASELINE_TTL_S = 90 * 24 * 3600
CHECK_NAME = "secreview scan"


def baseline_key(repo: str) -> str:
    """The Redis set of fingerprints the last full scan of ``repo`` found."""
    return f"secreview:baseline:{repo}"


def scan_key(repo: str, sha: str) -> str:
    """The Redis key of the scan of ``repo`` at ``sha``."""
    return f"secreview:scan:{repo}@{sha}"


def baseline_notes(client: Any, repo: str, findings: Sequence[Finding]) -> list[str]:
    """Summary lines for PR findings that the last full scan had already found."""
    known = client.smembers(baseline_key(repo))
    fingerprints = {k.decode() if isinstance(k, bytes) else k for k in known}
    return [
        f"`{f.fingerprint}` ({f.title}, `{f.path}`) already existed before this pull request "
        "(found by the last full scan)"
        for f in findings
        if f.fingerprint in fingerprints
    ]


def _plan(inst: Any, job: ScanJob, sha: str, config: RepoConfig, svc: Services) -> Any:
    """The scan's review plan: deterministic for one commit, so a poll can rebuild it."""
    with tempfile.TemporaryFile() as archive:  # streamed to disk, never whole in memory
        inst.download_tarball(job.repo, sha, archive)
        archive.seek(0)
        entries = list(scan.walk_tarball(archive))
    texts = {p: d for p, d, r in entries if d is not None and r is None}
    context = detect_repo_context(
        job.repo,
        list(texts),
        lambda p: texts[p].decode("utf-8", "replace") if p in texts else None,
        instructions=config.instructions,
    )
    settings = svc.settings
    max_cost = config.max_cost_usd if config.max_cost_usd is not None else settings.max_cost_usd
    plan = scan.plan_scan(
        entries,
        config,
        budget_tokens=settings.unit_token_budget,
        model=settings.model,
        max_cost_usd=max_cost if settings.model_configured else None,
    )
    analysis = analyzers.analyze_sources((s.path, s.text) for s in plan.files)
    return engine.plan_files(
        plan.changed_files(),
        skipped=[*plan.skipped, *analysis.skipped],
        repo=context,
        kind="scan",
        budget_tokens=settings.unit_token_budget,
        installation=job.installation_id,
        extra_findings=analysis.findings,
        secret_only=plan.secret_only,  # secreview:redaction — documentation is read for secrets
    )


def scan_repository(job: ScanJob, svc: Services) -> tuple[str, str | None]:
    """Start the scan of ``job.repo``; returns the outcome and the key to poll (if any)."""
    inst: Any = svc.github(job.installation_id)
    branch = job.ref or inst.default_branch(job.repo)
    sha = inst.resolve_ref(job.repo, branch)
    key = scan_key(job.repo, sha)
    store = RedisStore(svc.redis, key)
    state = store.load()
    if state is not None and state.get("finished"):
        return "already finished", None
    if state is not None and state.get("submitted_all"):
        return "resumed", key
    # New, or interrupted while submitting (a capacity error, a killed worker): plan again —
    # it is deterministic for one commit — and submit only what is not recorded yet.
    config = inst.repo_config(job.repo, sha)
    review = _plan(inst, job, sha, config, svc)
    check = state["check"] if state else inst.start_check(job.repo, sha, name=CHECK_NAME)
    meta = {
        "job": job.kwargs(),
        "sha": sha,
        "branch": branch,
        "check": check,
        "affinity": review.affinity,
        "units": len(review.units),
        "started": time.time(),
    }
    if not (svc.settings.model_configured and review.requests):
        store.save({**meta, "batches": [], "finished": True})
        _finish(inst, job, meta, engine.offline_result(review), config, svc)
        return "scanned with the analyzers only", None
    run = ScanRun(review, svc.backend(), store, None, time.sleep, 0.0, 0.0, raise_retryable=True)
    if state is None:
        run.state.update(meta)
    run.submit(review.requests, 1)
    run.state["submitted_all"] = True
    store.save(run.state)
    return f"submitted {len(review.requests)} units", key


def poll_scan(key: str, svc: Services) -> tuple[str, bool]:
    """Poll the scan under ``key`` once; returns the outcome and whether to poll again."""
    store = RedisStore(svc.redis, key)
    state = store.load()
    if state is None or state.get("finished"):
        return "nothing to poll", False
    backend = svc.backend()
    job = ScanJob(**state["job"])
    inst: Any = svc.github(job.installation_id)
    if poll_pending(state, backend, state["affinity"], store):
        inst.update_check(
            job.repo,
            state["check"],
            "Scanning",
            f"{units_done(state)} of {state['units']} units reviewed.",
        )
    if pending(state):
        if time.time() - state["started"] < svc.settings.model_deadline_s:
            return f"{units_done(state)}/{state['units']} units answered", True
        ScanRun.time_out_state(state, store, "model_timeout: scan deadline")
    config = inst.repo_config(job.repo, state["sha"])
    run = ScanRun(
        _plan(inst, job, state["sha"], config, svc),
        backend,
        store,
        None,
        time.sleep,
        0.0,
        0.0,
        raise_retryable=True,
    )
    if run.next_round(config.min_confidence):
        return "resubmitted failed units", True
    result = run.finish(config.min_confidence)
    run.state["finished"] = True
    store.save(run.state)
    _finish(inst, job, state, result, config, svc)
    return f"published {len(result.findings)} findings", False


def _finish(
    inst: Any,
    job: ScanJob,
    meta: dict[str, Any],
    result: ReviewResult,
    config: RepoConfig,
    svc: Services,
) -> None:
    result, _ = engine.suppress(result, config)
    key = baseline_key(job.repo)
    pipe = svc.redis.pipeline()
    pipe.delete(key)
    if result.findings:
        pipe.sadd(key, *(f.fingerprint for f in result.findings))
        pipe.expire(key, BASELINE_TTL_S)
    pipe.execute()
    gate = config.fail_on != "none" and gate_exceeded(result.findings, config.fail_on)
    inst.finish_check(
        job.repo,
        meta["check"],
        "failure" if gate else "success",
        render.verdict(result),
        render.report_markdown(result)[:60000],
        [annotation(f) for f in result.findings],
    )
    if job.upload_sarif:
        branch = meta["branch"]
        ref = branch if branch.startswith("refs/") else f"refs/heads/{branch}"
        inst.upload_sarif(job.repo, meta["sha"], ref, render.report_sarif(result))
    if job.pr is not None:
        head = (
            f"Full scan of `{job.repo}` at `{meta['sha'][:12]}` requested by @{job.requested_by}:"
        )
        inst.post_comment(
            job.repo,
            job.pr,
            f"{head} {render.verdict(result)}\n\nDetails are in the **secreview scan** check run.",
        )
