"""Planning a pull request's review: the diff, the base config and a cached repository context."""

from __future__ import annotations

import json
from typing import Any

from bot import diff as diffmod
from bot.repo_config import RepoConfig
from bot.review import engine, risk
from bot.review.prompts import PRContext, RepoContext
from workers.ports import InstallationPort, Services, Target

CONTEXT_TTL_S = 24 * 3600


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
    from bot.review.context import detect_repo_context

    ref = "HEAD"
    paths = tree(target.repo, ref)
    return detect_repo_context(target.repo, paths, lambda p: read(target.repo, p, ref))
