"""``secreview scan PATH|OWNER/REPO[@REF]``: audit a whole repository, resumably."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path
from typing import Any

from bot import analyzers, engine, scan
from bot.config import Settings
from bot.errors import UsageError
from bot.findings import Finding, ReviewResult
from bot.repo_config import CONFIG_PATH, RepoConfig, parse_repo_config

_REMOTE = re.compile(r"^(?P<repo>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+)(?:@(?P<ref>.+))?$")
DEFAULT_STATE_DIR = Path(os.path.expanduser("~")) / ".cache" / "secreview" / "scans"


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
        type=float,
        metavar="USD",
        help="plan only what fits this model cost (default: the repo config's "
        "max_cost_usd, else SECREVIEW_MAX_COST_USD)",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help="where progress is kept so a killed scan resumes without paying twice",
    )
    p.set_defaults(func=cmd_scan)


def _local(target: str) -> tuple[Any, RepoConfig, Any]:
    root = Path(target)
    config_file = root / CONFIG_PATH
    config = parse_repo_config(config_file.read_bytes() if config_file.is_file() else None)
    from bot.context import local_repo_context

    return scan.walk_tree(root), config, local_repo_context(root, instructions=config.instructions)


def _remote(target: str, settings: Settings) -> tuple[Any, RepoConfig, Any, Any, str, str]:
    m = _REMOTE.match(target)
    if m is None:
        raise UsageError(f"{target!r} is neither a directory nor OWNER/REPO[@REF]")
    from bot.context import detect_repo_context
    from bot.github import GitHubApp

    repo = m.group("repo")
    inst = GitHubApp(settings).installation_for_repo(repo)
    ref = m.group("ref") or "HEAD"
    sha = inst.resolve_ref(repo, ref)
    config = inst.repo_config(repo, sha)
    entries = list(scan.walk_tarball(inst.download_tarball(repo, sha)))
    texts = {p: d for p, d, r in entries if d is not None and r is None}
    context = detect_repo_context(
        repo,
        list(texts),
        lambda p: texts[p].decode("utf-8", "replace") if p in texts else None,
        instructions=config.instructions,
    )
    return entries, config, context, inst, repo, sha


def cmd_scan(args: argparse.Namespace, settings: Settings) -> int:
    """Plan, review (or analyze offline), report, and optionally upload SARIF."""
    from bot import cli

    offline = settings.llm_backend is None
    if not offline:
        settings.require_model()
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
    plan = scan.plan_scan(
        entries,
        config,
        budget_tokens=settings.unit_token_budget,
        model=settings.model,
        max_cost_usd=None if offline else max_cost,
    )
    _say(
        args,
        f"planned {len(plan.files)} files in {len(plan.groups)} units "
        f"(~{plan.estimated_tokens:,} tokens, ~${plan.estimated_cost_usd:.2f}); "
        f"{len(plan.skipped)} skipped"
        + (f", {len(plan.over_budget)} over the cost budget" if plan.over_budget else ""),
    )
    review = engine.plan_files(
        plan.changed_files(),
        skipped=plan.skipped,
        repo=context,
        kind="scan",
        budget_tokens=settings.unit_token_budget,
        extra_findings=_bandit(plan),
    )
    if offline:
        sys.stderr.write(cli.OFFLINE_NOTICE)
        result = engine.offline_result(review)
    else:
        result = _run(review, settings, args, config)
    result, notes = engine.suppress(result, config)
    for note in notes:
        _say(args, note)
    cli.write_report(result, args.format, args.output)
    if remote:
        _upload(args, result, remote)
    cli.warn_incomplete(result)
    return cli.exit_status(result, args.fail_on or config.fail_on)


def _bandit(plan: scan.ScanPlan) -> list[Finding]:
    out: list[Finding] = []
    for f in plan.files:
        if analyzers.is_python(f.path):
            out += analyzers.bandit_source(f.path, f.text.encode())
    return out


def _run(
    review: engine.ReviewPlan, settings: Settings, args: argparse.Namespace, config: RepoConfig
) -> ReviewResult:
    from bot import cli
    from bot.llm import create_backend
    from bot.scan_run import FileStore, plan_key, run_scan

    store = FileStore(args.state_dir / f"{plan_key(review)}.json")
    if store.load() is not None:
        _say(args, f"resuming the scan recorded in {store.path}")
    return run_scan(
        review,
        create_backend(settings),
        store,
        progress=cli.progress_printer(sys.stderr, args.quiet),
        min_confidence=config.min_confidence,
    )


def _upload(args: argparse.Namespace, result: ReviewResult, remote: list[Any]) -> None:
    if not args.upload_sarif:
        return
    from bot import render

    inst, repo, sha = remote
    sarif_id = inst.upload_sarif(
        repo, sha, f"refs/heads/{_branch(args.target)}", render.report_sarif(result)
    )
    _say(args, f"uploaded SARIF to code scanning of {repo}@{sha[:12]} ({sarif_id})")


def _branch(target: str) -> str:
    m = _REMOTE.match(target)
    ref = m.group("ref") if m else None
    return ref if ref and not re.fullmatch(r"[0-9a-f]{40}", ref) else "main"


def _say(args: argparse.Namespace, line: str) -> None:
    if not args.quiet:
        sys.stderr.write(f"secreview: {line}\n")
