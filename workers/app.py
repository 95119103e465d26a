"""The App's side of a run: pull requests and repositories in, reviews and check runs out.

Sources read GitHub once, in the plan step (the run stores the plan; nothing is fetched again).
Sinks start the check run, publish the review, the sticky summary and the check, and — for a
scan — upload SARIF, answer where the scan was asked for and record the repository's baseline.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from bot.config import Settings
from bot.errors import ConfigError
from bot.findings import Finding, ReviewResult
from bot.jobs import ReviewJob, ScanJob
from bot.model.client import Usage
from bot.repo_config import RepoConfig
from bot.report import render
from bot.report.publish import Posted, annotation
from bot.review import budget, outcomes
from bot.review.context import detect_repo_context
from bot.review.finalize import Final
from bot.review.plan import Lookup, Plan, PlanOptions, plan_change, plan_diff, plan_tree
from bot.review.prompts import PRContext, RepoContext
from bot.review.results import RedisBlobs, RedisResultStore
from bot.review.run import SkipRun, Unsuperseded
from bot.review.state import RunState

log = logging.getLogger("secreview.app")

CONTEXT_TTL_S = 24 * 3600
TTL_S = 7 * 24 * 3600
BASELINE_TTL_S = 90 * 24 * 3600
SCAN_CHECK = "secreview scan"
REVIEW_CHECK = "secreview"


class Installation(Protocol):
    """The GitHub calls a run makes through one installation (``bot.github.client``)."""

    def pull_request(self, repo: str, number: int) -> Any: ...
    def pull_diff(self, repo: str, number: int) -> Any: ...
    def repo_config(self, repo: str, base_ref: str) -> Any: ...
    def start_check(self, repo: str, head_sha: str, name: str = ..., summary: str = ...) -> int: ...
    def update_check(self, repo: str, check_run_id: int, title: str, summary: str) -> None: ...
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
        self, repo: str, number: int, head_sha: str, result: ReviewResult, config: Any, **kw: Any
    ) -> Any: ...
    def post_comment(self, repo: str, number: int, body: str) -> int: ...


def plan_options(settings: Settings, installation: int) -> PlanOptions:
    """Planning knobs from the process settings."""
    return PlanOptions(
        budget_tokens=settings.unit_token_budget,
        max_units=settings.max_units,
        installation=installation,
        model=settings.model,
    )


# --- pull requests ------------------------------------------------------------------------------


def pr_head_key(repo: str, pr: int) -> str:
    """The Redis key holding the newest head a review of the pull request planned."""
    return f"secreview:pr-head:{repo}#{pr}"


def review_scope(repo: str, pr: int) -> str:
    """What the reviews of one pull request continue (their last findings)."""
    return f"{repo}#{pr}"


@dataclass
class PullRequestSource:
    """A pull request at one head: its diff (or paged files), base-branch config, context, and
    — on a re-review — the last findings and the conversation (dismissals, what was posted)."""

    inst: Any
    job: ReviewJob
    settings: Settings
    redis: Any
    posted: Posted | None = None  # read while planning; the sink keeps it for publishing

    def plan(self, lookup: Lookup | None) -> Plan:
        """Fetch once and plan; SkipRun for a closed, draft or superseded pull request."""
        job = self.job
        pr = self.inst.pull_request(job.repo, job.pr)
        if pr.state != "open":
            raise SkipRun("pull request is closed")
        if job.head_sha and pr.head_sha != job.head_sha:
            raise SkipRun(f"superseded by {pr.head_sha[:12]}")
        # GitHub's head moves forward in time: the last planned head is the newest one.
        seen_before = self.redis.set(pr_head_key(job.repo, job.pr), pr.head_sha, ex=TTL_S, get=True)
        try:
            config = self.inst.repo_config(job.repo, pr.base_ref)
        except ConfigError as exc:
            raise ConfigError(
                f"Invalid .github/secreview.yml: the repository configuration on "
                f"`{pr.base_ref}` could not be used: {exc}"
            ) from None
        if pr.draft and not config.review_drafts:
            raise SkipRun("draft pull request (review_drafts is off)")
        stored, scope = RedisResultStore(self.redis), review_scope(job.repo, job.pr)
        earlier = stored.last(scope)
        dismissed: tuple[Any, ...] = ()
        if earlier or seen_before or job.trigger != "opened":
            # Not a pull request's first review: what was posted, and what people dismissed.
            self.posted, said = self.inst.conversation(job.repo, job.pr)
            dismissed = said.dismissed
        else:
            self.posted = Posted()  # just opened: nothing of ours is on it yet
        change = self.inst.pull_diff(job.repo, job.pr)
        repo = repo_context(self.inst, job.repo, self.redis, config.instructions)
        common: dict[str, Any] = {
            "repo": repo,
            "pr": PRContext(title=pr.title, body=pr.body or ""),
            "config": config,
            "options": plan_options(self.settings, job.installation_id),
            "lookup": lookup,
            "earlier": earlier,
            "dismissed": dismissed,
            "memo": RedisBlobs(self.redis),
            "seen": stored.views(scope),
        }
        if change.text is not None:
            return plan_diff(change.text, **common)
        return plan_change(change.files, extra_skipped=tuple(change.skipped), **common)


def repo_context(inst: Any, repo: str, redis: Any, instructions: str) -> RepoContext:
    """The repository context, cached per repository so the prompt prefix stays byte-stable."""
    key = f"secreview:repo-context:{repo}"
    raw = redis.get(key)
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
        base = _detect_context(inst, repo)
        data = {
            "repo": base.repo,
            "languages": list(base.languages),
            "frameworks": list(base.frameworks),
            "manifests": list(base.manifests),
            "security_files": list(base.security_files),
        }
        redis.set(key, json.dumps(data, sort_keys=True), ex=CONTEXT_TTL_S)
    return RepoContext(
        repo=base.repo,
        languages=base.languages,
        frameworks=base.frameworks,
        manifests=base.manifests,
        security_files=base.security_files,
        instructions=instructions,
    )


def _detect_context(inst: Any, repo: str) -> RepoContext:
    tree = getattr(inst, "tree_paths", None)
    read = getattr(inst, "file_text", None)
    if tree is None or read is None:
        return RepoContext(repo=repo)
    paths = tree(repo, "HEAD")
    return detect_repo_context(repo, paths, lambda p: read(repo, p, "HEAD"))


@dataclass
class PullRequestSink:
    """The check run, the review and the sticky summary of one head."""

    inst: Any
    job: ReviewJob
    redis: Any
    settings: Settings
    source: PullRequestSource | None = None

    def started(self, run: RunState, plan: Plan | None) -> None:
        """The in-progress check run, created once; it already lists the analyzers' findings."""
        if self.source is not None and self.source.posted is not None:
            run.sink["posted"] = msgspec.to_builtins(self.source.posted)
        if "check_run_id" in run.sink:
            return
        summary = "secreview is reviewing this change."
        if plan is not None and plan.analyzer_findings:
            n = len(plan.analyzer_findings)
            summary += (
                f" The deterministic analyzers already found {n} issue{'s' if n != 1 else ''}; "
                "the model review is in progress."
            )
        # A first attempt for a new head has created no check run: no need to look for one.
        fresh = run.sink.get("starting", 1) <= 1 and self.job.trigger not in ("command", "rerun")
        run.sink["check_run_id"] = self.inst.start_check(
            self.job.repo, self.job.head_sha, name=REVIEW_CHECK, summary=summary, reuse=not fresh
        )

    def progress(self, run: RunState, plan: Plan) -> None:
        """Nothing per poll: a review is short, and every update is a REST call."""

    def superseded(self, run: RunState) -> str | None:
        """The newer head when the pull request moved on (an old head is never published)."""
        raw = self.redis.get(pr_head_key(self.job.repo, self.job.pr))
        newest = raw.decode() if isinstance(raw, bytes) else raw
        if newest and newest != self.job.head_sha:
            return str(newest)  # a newer head's review already planned: no need to ask GitHub
        # A push whose job has not planned yet: GitHub knows (one call, just before posting).
        pr = self.inst.pull_request(self.job.repo, self.job.pr)
        return None if pr.head_sha == self.job.head_sha else str(pr.head_sha)

    def end_superseded(self, run: RunState, newer: str) -> None:
        """Complete this head's check run as superseded."""
        check = run.sink.get("check_run_id")
        if check is not None:
            self.inst.finish_check(
                self.job.repo,
                int(check),
                "neutral",
                "Superseded by a newer push",
                f"This head was not published: the pull request moved on to `{newer}`.",
            )

    def notes(self, run: RunState, plan: Plan | None, result: ReviewResult) -> list[str]:
        """Which findings the last full scan already knew; how this repository's findings
        fared lately (fixed, dismissed)."""
        notes = baseline_notes(self.redis, self.job.repo, result.findings)
        tally = outcomes.FeedbackStore(self.redis).tally(self.job.repo)
        line = outcomes.summary_line(tally)
        return [*notes, line] if line else notes

    def publish(self, run: RunState, plan: Plan | None, final: Final) -> None:
        """Review, fixed replies, summary and check — idempotent by markers."""
        job = self.job
        check = run.sink.get("check_run_id")
        known = run.sink.get("posted")
        # A publication that was interrupted may have posted part: read GitHub again then.
        posted = (
            msgspec.convert(known, Posted)
            if known is not None and run.sink.get("publishing", 0) <= 1
            else None
        )
        out = self.inst.publish_review(
            job.repo,
            job.pr,
            job.head_sha,
            final.result,
            plan.config if plan is not None else RepoConfig(),
            check_run_id=None if check is None else int(check),
            notes=list(final.notes),
            files=plan.files if plan is not None else {},
            conclusion=final.conclusion,
            dismissed=plan.dismissed if plan is not None else (),
            posted=posted,
        )
        record_metrics(self.redis, run.key, job.repo, final.result, out)
        outcomes.FeedbackStore(self.redis).record_review(
            job.repo,
            job.pr,
            posted=[f.fingerprint for f in final.result.findings],
            fixed=getattr(out, "fixed", ()),
            dismissed=[d.fingerprint for d in (plan.dismissed if plan is not None else ())],
            reactions={
                c.fingerprint: (c.thumbs_up, c.thumbs_down)
                for c in getattr(getattr(out, "posted", None), "comments", ()) or ()
            },
        )


def record_metrics(client: Any, run_key: str, repo: str, result: ReviewResult, posted: Any) -> None:
    """Counters for /metrics, once per run (workers have no endpoint: they write to Redis)."""
    from bot.metrics import SHARED_KEY, incr_shared, series

    if not client.set(f"secreview:recorded:{run_key}", 1, nx=True, ex=7 * 24 * 3600):
        return
    stats = result.stats
    incr_shared(client, "secreview_reviews_total", {"repo": repo})
    incr_shared(client, "secreview_findings_total", {"repo": repo}, len(result.findings))
    incr_shared(client, "secreview_prompt_tokens_total", {"repo": repo}, stats.prompt_tokens)
    incr_shared(client, "secreview_cached_tokens_total", {"repo": repo}, stats.cached_tokens)
    incr_shared(client, "secreview_cost_usd_total", {"repo": repo}, stats.cost_usd)
    comments = getattr(getattr(posted, "posted", None), "comments", ()) or ()
    if not comments:
        return
    key = f"secreview:reactions:{repo}"
    client.hset(key, mapping={str(c.id): f"{c.thumbs_up},{c.thumbs_down}" for c in comments})
    up = down = 0
    for raw in client.hvals(key):
        a, b = (raw.decode() if isinstance(raw, bytes) else raw).split(",")
        up, down = up + int(a), down + int(b)
    client.hset(
        SHARED_KEY,
        mapping={
            series("secreview_finding_reactions", {"repo": repo, "reaction": "+1"}): up,
            series("secreview_finding_reactions", {"repo": repo, "reaction": "-1"}): down,
        },
    )


@dataclass
class RedisBudget:
    """Daily token budgets of one installation and repository; charged once per run."""

    redis: Any
    installation: int
    repo: str
    settings: Settings

    def check(self, estimate: int) -> str | None:
        """Why the run may not spend ``estimate`` tokens today, or None."""
        verdict = budget.check(
            self.redis,
            self.installation,
            self.repo,
            estimate,
            per_installation=self.settings.daily_token_budget_installation,
            per_repo=self.settings.daily_token_budget_repo,
        )
        return None if verdict.allowed else verdict.reason

    def charge(self, run_key: str, usage: Usage) -> None:
        """Add what the run used, once even if publishing is retried."""
        if self.redis.set(f"secreview:charged:{run_key}", 1, nx=True, ex=2 * 24 * 3600):
            budget.charge(self.redis, self.installation, self.repo, usage)


# --- scans --------------------------------------------------------------------------------------


def baseline_key(repo: str) -> str:
    """The Redis set of fingerprints the last full scan of ``repo`` found."""
    return f"secreview:baseline:{repo}"


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


@dataclass
class RepoScanSource:
    """A repository at one commit, through its tarball; config and context at that commit."""

    inst: Any
    job: ScanJob
    sha: str
    settings: Settings
    redis: Any  # where analyses are kept (a rescan skips bandit on unchanged files)

    def plan(self, lookup: Lookup | None) -> Plan:
        """Download, walk and plan the scan."""
        from bot.scan import walk

        config = self.inst.repo_config(self.job.repo, self.sha)
        with tempfile.TemporaryFile() as archive:  # streamed to disk, never whole in memory
            self.inst.download_tarball(self.job.repo, self.sha, archive)
            archive.seek(0)
            entries = list(walk.walk_tarball(archive))
        texts = {p: d for p, d, r in entries if d is not None and r is None}
        context = detect_repo_context(
            self.job.repo,
            list(texts),
            lambda p: texts[p].decode("utf-8", "replace") if p in texts else None,
            instructions=config.instructions,
        )
        settings = self.settings
        max_cost = config.max_cost_usd if config.max_cost_usd is not None else settings.max_cost_usd
        tree = plan_tree(
            entries,
            repo=context,
            config=config,
            options=plan_options(settings, self.job.installation_id),
            max_cost_usd=max_cost if settings.model_configured else None,
            lookup=lookup,
            memo=RedisBlobs(self.redis),
        )
        return tree.plan


@dataclass
class RepoScanSink(Unsuperseded):
    """The "secreview scan" check run, SARIF upload, the reply, and the repository's baseline."""

    inst: Any
    job: ScanJob
    redis: Any

    def started(self, run: RunState, plan: Plan | None) -> None:
        """The in-progress "secreview scan" check run, created once."""
        if "check_run_id" not in run.sink:
            run.sink["check_run_id"] = self.inst.start_check(
                self.job.repo, run.identity["sha"], name=SCAN_CHECK
            )

    def progress(self, run: RunState, plan: Plan) -> None:
        """The check run says how far the scan got, whenever another batch finished."""
        done, total = run.counts()
        if done == run.sink.get("reported", -1) or not total:
            return
        run.sink["reported"] = done
        self.inst.update_check(
            self.job.repo,
            int(run.sink["check_run_id"]),
            "Scanning",
            f"{done} of {total} units reviewed.",
        )

    def publish(self, run: RunState, plan: Plan | None, final: Final) -> None:
        """Baseline, check run, SARIF, and the reply where the scan was asked for."""
        job, result, sha = self.job, final.result, run.identity["sha"]
        key = baseline_key(job.repo)
        pipe = self.redis.pipeline()
        pipe.delete(key)
        if result.findings:
            pipe.sadd(key, *(f.fingerprint for f in result.findings))
            pipe.expire(key, BASELINE_TTL_S)
        pipe.execute()
        report = render.report_markdown(result)
        if final.notes:
            report += "\n## Notes\n\n" + "\n".join(f"- {n}" for n in final.notes) + "\n"
        self.inst.finish_check(
            job.repo,
            int(run.sink["check_run_id"]),
            final.conclusion,
            render.verdict(result),
            render.capped(report),
            [annotation(f) for f in result.findings],
        )
        if job.upload_sarif and not run.sink.get("sarif"):
            branch = str(run.identity["branch"])
            ref = branch if branch.startswith("refs/") else f"refs/heads/{branch}"
            run.sink["sarif"] = self.inst.upload_sarif(
                job.repo, sha, ref, render.report_sarif(result)
            )
        if job.pr is not None and not run.sink.get("replied"):
            head = f"Full scan of `{job.repo}` at `{sha[:12]}` requested by @{job.requested_by}:"
            run.sink["replied"] = self.inst.post_comment(
                job.repo,
                job.pr,
                f"{head} {render.verdict(result)}\n\n"
                "Details are in the **secreview scan** check run.",
            )
