"""``secreview scan PATH|OWNER/REPO[@REF]``: audit a whole repository, resumably."""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from bot.cli import options
from bot.config import Settings
from bot.errors import ConfigError, UsageError
from bot.findings import ReviewResult
from bot.repo_config import CONFIG_PATH, RepoConfig, parse_repo_config

_SHA = re.compile(r"[0-9a-f]{40}")
_REMOTE = re.compile(r"^(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)(?:@(?P<ref>.+))?$")


def register(sub: Any, report_options: Any) -> None:
    """Add ``scan`` to the ``secreview`` parser."""
    p = sub.add_parser("scan", help="scan a whole repository (a local path or OWNER/REPO[@REF])")
    p.add_argument("target", help="a local directory, or OWNER/REPO[@REF] through the App")
    report_options(p)
    p.add_argument(
        "--upload-sarif",
        action="store_true",
        help="upload the SARIF to GitHub code scanning (OWNER/REPO only)",
    )
    p.add_argument(
        "--max-cost",
        type=options.dollars,
        metavar="USD",
        help="plan only what fits this model cost (default: the repo config's "
        "max_cost_usd, else SECREVIEW_MAX_COST_USD)",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=None,
        help="where progress is kept so a killed scan resumes without paying twice "
        "(default: runs/ under the cache directory)",
    )
    p.set_defaults(func=cmd_scan)


def _local(target: str) -> tuple[Any, RepoConfig, Any]:
    root = Path(target)
    config_file = root / CONFIG_PATH
    config = parse_repo_config(config_file.read_bytes() if config_file.is_file() else None)
    from bot.review.context import local_repo_context
    from bot.scan import walk as scan

    return scan.walk_tree(root), config, local_repo_context(root, instructions=config.instructions)


def _remote(target: str, settings: Settings) -> tuple[Any, RepoConfig, Any, Any, str, str, str]:
    m = _REMOTE.match(target)
    if m is None or Path(target).exists():
        raise UsageError(f"{target!r} is neither a directory nor OWNER/REPO[@REF]")
    if not settings.github_app_id or not settings.github_private_key:
        raise ConfigError(
            f"{target!r} is not a local directory; scanning OWNER/REPO goes through the GitHub "
            "App: set GITHUB_APP_ID and GITHUB_PRIVATE_KEY (or GITHUB_PRIVATE_KEY_PATH)"
        )
    from bot.github.client import GitHubApp
    from bot.review.context import detect_repo_context

    repo = m.group("repo")
    inst = GitHubApp(settings).installation_for_repo(repo)
    ref = m.group("ref") or inst.default_branch(repo)
    sha = inst.resolve_ref(repo, ref)
    config = inst.repo_config(repo, sha)
    with tempfile.TemporaryFile() as archive:  # streamed to disk, never whole in memory
        inst.download_tarball(repo, sha, archive)
        archive.seek(0)
        from bot.scan import walk as scan

        entries = list(scan.walk_tarball(archive))
    texts = {p: d for p, d, r in entries if d is not None and r is None}
    context = detect_repo_context(
        repo,
        list(texts),
        lambda p: texts[p].decode("utf-8", "replace") if p in texts else None,
        instructions=config.instructions,
    )
    git_ref = ref if ref.startswith("refs/") else f"refs/heads/{ref}"
    if _SHA.fullmatch(ref):  # a bare commit: code scanning files it under the default branch
        git_ref = f"refs/heads/{inst.default_branch(repo)}"
    return entries, config, context, inst, repo, sha, git_ref


def cmd_scan(args: argparse.Namespace, settings: Settings) -> int:
    """Plan, review (or analyze offline), report, and optionally upload SARIF."""
    from bot.cli import review as cli
    from bot.cli import runs
    from bot.review.models import pool_for
    from bot.review.plan import PlanOptions, TreePlan, plan_tree

    if settings.llm_backend is not None:
        settings.require_model()  # half-configured: say what is missing, never fall back quietly
    if args.state_dir is not None:
        options.state_dir(args.state_dir)
    if args.cache_dir is not None and not args.no_cache:
        options.state_dir(Path(args.cache_dir), "--cache-dir")
    models = pool_for(settings)
    options.writable_output(args.output)
    remote = None
    if Path(args.target).is_dir():
        if args.upload_sarif:
            raise UsageError("--upload-sarif needs OWNER/REPO[@REF]: GitHub must know the commit")
        entries, config, context = _local(args.target)
    else:
        entries, config, context, *remote = _remote(args.target, settings)
    max_cost = (
        args.max_cost
        if args.max_cost is not None
        else (config.max_cost_usd if config.max_cost_usd is not None else settings.max_cost_usd)
    )
    if max_cost is not None and max_cost < 0:
        raise UsageError(f"--max-cost must be a dollar amount of at least 0, not {max_cost}")
    where = cli.local_storage(args)
    ticker = cli.analysis_printer(sys.stderr, args.quiet)
    if models is None:  # analyzers only: stream the tree, never hold it (bot.scan.offline)
        from bot.review.finalize import finalize
        from bot.scan.offline import analyze_tree

        sys.stderr.write(cli.OFFLINE_NOTICE)
        offline = finalize(analyze_tree(entries, config, where.memo(), ticker), config)
        code = cli.report_final(offline, args, config)
        if remote:
            _upload(args, offline.result, remote)
        return code
    knobs = PlanOptions(budget_tokens=settings.unit_token_budget, model=settings.model)
    planned: list[TreePlan] = []

    def make_plan(lookup: Any, _earlier: Any, _seen: Any) -> Any:
        tree = plan_tree(
            entries,
            repo=context,
            config=config,
            options=knobs,
            max_cost_usd=max_cost,
            lookup=lookup,
            memo=where.memo(),
            progress=ticker,
        )
        planned.append(tree)
        _announce(args, tree, max_cost)
        return tree.plan

    final = runs.drive_local(
        make_plan,
        kind="scan",
        settings=settings,
        models=models,
        where=where,
        progress=None
        if args.quiet
        else cli.progress_printer(sys.stderr, False, files=None, model=settings.model),
        deadline_s=max(settings.model_deadline_s, 3600),
        resumed=lambda where: _say(args, f"resuming the scan recorded in {where}"),
    )
    code = cli.report_final(final, args, config)
    if remote:
        _upload(args, final.result, remote)
    return code


def _announce(args: argparse.Namespace, tree: Any, max_cost: float | None) -> None:
    """One line on what will be reviewed, and what a cost budget leaves out."""
    skipped = f"{len(tree.plan.skipped):,} skipped (listed in the report)"
    reused = f", {len(tree.plan.reused)} unchanged since a scan before" if tree.plan.reused else ""
    _say(
        args,
        f"planned {_count(tree.files, 'file')} in {_count(len(tree.plan.units), 'unit')}{reused} "
        f"(~{tree.estimated_tokens:,} tokens, ~${tree.estimated_cost_usd:.2f}); {skipped}",
    )
    if tree.over_budget:
        shown = ", ".join(tree.over_budget[:5])
        more = f" and {len(tree.over_budget) - 5} more" if len(tree.over_budget) > 5 else ""
        _say(
            args,
            f"{len(tree.over_budget)} lower-ranked files left out to stay under the "
            f"${max_cost:.2f} cost budget: {shown}{more}",
        )


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _upload(args: argparse.Namespace, result: ReviewResult, remote: list[Any]) -> None:
    if not args.upload_sarif:
        return
    from bot.report import render

    inst, repo, sha, git_ref = remote
    sarif_id = inst.upload_sarif(repo, sha, git_ref, render.report_sarif(result))
    _say(args, f"uploaded SARIF to code scanning of {repo}@{sha[:12]} on {git_ref} ({sarif_id})")


def _say(args: argparse.Namespace, line: str) -> None:
    if not args.quiet:
        sys.stderr.write(f"secreview: {line}\n")
