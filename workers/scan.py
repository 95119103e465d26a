"""Full-repository scans requested through the App (``/secreview scan``).

The tarball is planned like a local tree; units go to Workers AI in batches under the payload
limit with the scan's own affinity key; progress is kept in Redis so a worker killed midway
resumes without paying again for finished batches. The result becomes the repository's
baseline (later PR reviews say which findings already existed), is uploaded to code scanning,
and is summarised in a "secreview scan" check run and a reply where the scan was asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot import analyzers, engine, render, scan
from bot.context import detect_repo_context
from bot.findings import Finding, ReviewResult, gate_exceeded
from bot.jobs import ScanJob
from bot.llm import create_backend
from bot.publish import annotation
from bot.scan_run import RedisStore, plan_key, run_scan

if TYPE_CHECKING:
    from workers.pipeline import Services

BASELINE_TTL_S = 90 * 24 * 3600


def baseline_key(repo: str) -> str:
    """The Redis set of fingerprints the last full scan of ``repo`` found."""
    return f"secreview:baseline:{repo}"


def baseline_notes(
    client: Any, repo: str, findings: list[Finding] | tuple[Finding, ...]
) -> list[str]:
    """Summary lines for PR findings that the last full scan had already found."""
    known = client.smembers(baseline_key(repo))
    fingerprints = {k.decode() if isinstance(k, bytes) else k for k in known}
    return [
        f"`{f.fingerprint}` ({f.title}, `{f.path}`) already existed before this pull request "
        "(found by the last full scan)"
        for f in findings
        if f.fingerprint in fingerprints
    ]


def scan_repository(job: ScanJob, svc: Services) -> str:
    """Scan ``job.repo`` at ``job.ref`` (its default branch when empty)."""
    inst: Any = svc.github(job.installation_id)
    branch = job.ref or inst.default_branch(job.repo)
    sha = inst.resolve_ref(job.repo, branch)
    config = inst.repo_config(job.repo, sha)
    check = inst.start_check(job.repo, sha, name="secreview scan")
    entries = list(scan.walk_tarball(inst.download_tarball(job.repo, sha)))
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
        max_cost_usd=max_cost,
    )
    bandit = [
        f
        for s in plan.files
        if analyzers.is_python(s.path)
        for f in analyzers.bandit_source(s.path, s.text.encode())
    ]
    review = engine.plan_files(
        plan.changed_files(),
        skipped=plan.skipped,
        repo=context,
        kind="scan",
        budget_tokens=settings.unit_token_budget,
        installation=job.installation_id,
        extra_findings=bandit,
    )
    if settings.model_configured and review.requests:
        store = RedisStore(svc.redis, f"secreview:scan:{job.repo}@{sha}:{plan_key(review)}")
        result = run_scan(
            review, create_backend(settings), store, min_confidence=config.min_confidence
        )
    else:
        result = engine.offline_result(review)
    result, _ = engine.suppress(result, config)
    _record_baseline(svc, job.repo, result)
    _publish(inst, job, sha, branch, check, result, config.fail_on)
    return f"scanned {len(plan.files)} files: {len(result.findings)} findings"


def _record_baseline(svc: Services, repo: str, result: ReviewResult) -> None:
    key = baseline_key(repo)
    pipe = svc.redis.pipeline()
    pipe.delete(key)
    if result.findings:
        pipe.sadd(key, *(f.fingerprint for f in result.findings))
        pipe.expire(key, BASELINE_TTL_S)
    pipe.execute()


def _publish(
    inst: Any, job: ScanJob, sha: str, branch: str, check: int, result: ReviewResult, fail_on: str
) -> None:
    text = render.report_markdown(result)
    conclusion = (
        "failure" if fail_on != "none" and gate_exceeded(result.findings, fail_on) else "success"
    )
    inst.finish_check(
        job.repo,
        check,
        conclusion,
        render.verdict(result),
        text[:60000],
        [annotation(f) for f in result.findings],
    )
    if job.upload_sarif:
        ref = branch if branch.startswith("refs/") else f"refs/heads/{branch}"
        inst.upload_sarif(job.repo, sha, ref, render.report_sarif(result))
    if job.pr is not None:
        head = f"Full scan of `{job.repo}` at `{sha[:12]}` requested by @{job.requested_by}:"
        inst.post_comment(
            job.repo,
            job.pr,
            f"{head} {render.verdict(result)}\n\nDetails are in the **secreview scan** check run.",
        )
