"""The ``secreview`` command: review a diff, scan a repository, run the App's processes."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from bot import __version__, logs
from bot import diff as diffmod
from bot.cli import options
from bot.config import Settings
from bot.errors import ConfigError, SecreviewError, UsageError
from bot.findings import SEVERITY_RANK, Finding, ReviewResult, at_or_above
from bot.model import values as llm
from bot.model.values import Usage
from bot.repo_config import CONFIG_PATH, RepoConfig, parse_repo_config
from bot.report import render
from bot.review.prompts import PRContext, RepoContext

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2
FORMATS = ("json", "sarif", "markdown")
LEVELS = (*SEVERITY_RANK, "none")

log = logging.getLogger("secreview")


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The command-line grammar (DESIGN.md §3)."""
    parser = _Parser(
        prog="secreview",
        description="Security review of pull requests and repositories with a large open model.",
    )
    parser.add_argument("--version", action="version", version=f"secreview {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    review = sub.add_parser("review", help="review a diff for security vulnerabilities")
    review.add_argument("--diff", required=True, help="diff file, or - for standard input")
    review.add_argument("--repo", help="local checkout: repository context and config")
    review.add_argument("--title", default="", help="pull request title (context)")
    review.add_argument("--description", default="", help="pull request description (context)")
    _report_options(review)
    review.set_defaults(func=cmd_review)
    from bot.cli import app as cli_app
    from bot.cli import scan as cli_scan
    from workers import command as worker_command

    cli_scan.register(sub, _report_options)
    cli_app.register(sub)
    worker_command.register(sub)
    return parser


def _report_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, default="markdown", help="report format")
    p.add_argument("--output", "-o", help="write the report here instead of standard output")
    p.add_argument(
        "--fail-on",
        choices=LEVELS,
        help="exit 1 when a finding is at or above this severity (default: the repo config's "
        "fail_on, else high)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress on standard error")
    p.add_argument(
        "--cache-dir",
        help="where per-file results and resumable runs are kept (default: the user cache "
        "directory, e.g. ~/.cache/secreview)",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="reuse nothing from earlier reviews and keep nothing for later ones",
    )


def _read_diff(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    try:
        return Path(source).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read diff {source!r}: {exc.strerror}") from None


def _repo_setup(path: str | None) -> tuple[RepoContext, RepoConfig]:
    if path is None:
        return RepoContext(), RepoConfig()
    from bot.review.context import local_repo_context

    root = Path(path)
    if not root.is_dir():
        raise UsageError(f"--repo {path!r} is not a directory")
    config_file = root / CONFIG_PATH
    config = parse_repo_config(config_file.read_bytes() if config_file.is_file() else None)
    return local_repo_context(root, instructions=config.instructions), config


def progress_printer(
    stream: TextIO, quiet: bool, *, files: int | None = None, model: str | None = None
) -> Callable[[int, int, Usage], None] | None:
    """Progress: a rewriting bar on a terminal, one plain line per step otherwise.

    Units done, tokens, cached share; with ``files`` and ``model`` (a scan) also the files
    planned and the cost so far.
    """
    if quiet:
        return None
    tty = stream.isatty()

    def show(done: int, total: int, usage: Usage) -> None:
        share = usage.cached_tokens / usage.prompt_tokens if usage.prompt_tokens else 0.0
        filled = int(24 * done / total) if total else 24
        bar = f"[{'#' * filled}{'.' * (24 - filled)}] " if tty else "secreview: "
        planned = f"{files} files, " if files is not None else ""
        cost = f", ${llm.cost_usd(model, usage):.4f} so far" if model else ""
        line = (
            f"{bar}{planned}{done}/{total} units, {usage.prompt_tokens:,} tokens "
            f"({share:.0%} cached){cost}"
        )
        stream.write(f"\r{line}" if tty else f"{line}\n")
        if tty and done >= total:
            stream.write("\n")
        stream.flush()

    return show


def analysis_printer(
    stream: TextIO,
    quiet: bool,
    *,
    every_s: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[int, int | None], None] | None:
    """Progress of the analyzers over a tree: a plain line at most every ``every_s`` seconds,
    none for a tree analyzed sooner than that."""
    if quiet:
        return None
    last = [clock()]

    def show(done: int, total: int | None) -> None:
        now = clock()
        if now - last[0] < every_s:
            return
        last[0] = now
        of = f" of {total:,}" if total is not None else ""
        stream.write(f"secreview: analyzing: {done:,}{of} files done\n")
        stream.flush()

    return show


def write_report(result: ReviewResult, fmt: str, output: str | None) -> None:
    """Render ``result`` in ``fmt`` to ``output`` (a path) or standard output."""
    if fmt == "json":
        text = json.dumps(render.report_json(result), indent=2) + "\n"
    elif fmt == "sarif":
        text = json.dumps(render.report_sarif(result), indent=2) + "\n"
    else:
        text = render.report_markdown(result)
    if output is None:
        sys.stdout.write(text)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {output!r}: {exc.strerror}") from None


def exit_status(result: ReviewResult, level: str) -> int:
    """0, or 1 when a finding is at or above ``level``; 2 when the review is incomplete."""
    if level != "none" and at_or_above(result.findings, level):
        return EXIT_FINDINGS
    if result.failed_units or result.coverage.failed:
        return EXIT_USAGE
    return EXIT_OK


OFFLINE_NOTICE = (
    "secreview: no model configured: deterministic analyzers only (secrets, bandit); set "
    "CLOUDFLARE_ACCOUNT_ID and CLOUDFLARE_API_TOKEN (or SECREVIEW_LLM_BACKEND=openai and "
    "OPENAI_BASE_URL) for the model review\n"
)


def cmd_review(args: argparse.Namespace, settings: Settings) -> int:
    """``secreview review``: review one diff and write a report."""
    from bot.cli import runs
    from bot.review import analyzers
    from bot.review.models import pool_for
    from bot.review.plan import Lookup, Plan, PlanOptions, plan_change

    if settings.llm_backend is not None:
        settings.require_model()  # half-configured: say what is missing, never fall back quietly
    models = pool_for(settings)
    options.writable_output(args.output)
    if args.cache_dir is not None and not args.no_cache:
        options.state_dir(Path(args.cache_dir), "--cache-dir")
    diff_bytes = _read_diff(args.diff)
    repo, config = _repo_setup(args.repo)
    where = local_storage(args)
    pr = (
        PRContext(title=args.title, body=args.description)
        if args.title or args.description
        else None
    )
    reader = analyzers.local_reader(Path(args.repo)) if args.repo else None
    knobs = PlanOptions(
        budget_tokens=settings.unit_token_budget,
        max_units=settings.max_units,
        model=settings.model,
    )

    # Parsed before anything is said or run: a bad diff is one line and exit 2, nothing else.
    parsed = diffmod.parse_diff(diff_bytes)
    del diff_bytes
    if not parsed.files:  # an empty diff is a broken pipeline, not a clean change
        raise UsageError(f"the diff {args.diff!r} is empty: nothing to review")

    def make_plan(
        lookup: Lookup | None, earlier: Sequence[Finding], seen: Mapping[str, Sequence[str]]
    ) -> Plan:
        return plan_change(
            parsed.files,
            repo=repo,
            pr=pr,
            config=config,
            options=knobs,
            read=reader,
            lookup=lookup,
            earlier=earlier,
            memo=where.memo(),
            seen=seen,
        )

    if models is None:
        sys.stderr.write(OFFLINE_NOTICE)
    final = runs.drive_local(
        make_plan,
        kind="review",
        settings=settings,
        models=models,
        where=where,
        scope=review_scope(args),
        progress=progress_printer(sys.stderr, args.quiet),
    )
    return report_final(final, args, config)


def review_scope(args: argparse.Namespace) -> str:
    """What a local review continues: the checkout (``--repo``), else the diff file."""
    if args.repo:
        return f"checkout:{Path(args.repo).resolve()}"
    return "" if args.diff == "-" else f"diff:{Path(args.diff).resolve()}"


def local_storage(args: argparse.Namespace) -> Any:
    """Where a command keeps runs and per-file results (``--cache-dir``, ``--no-cache``)."""
    from bot.cli import runs

    if getattr(args, "no_cache", False):
        return runs.LocalRun(None, getattr(args, "state_dir", None))
    cache = Path(args.cache_dir) if getattr(args, "cache_dir", None) else runs.default_cache_dir()
    return runs.LocalRun(cache, getattr(args, "state_dir", None))


def report_final(final: Any, args: argparse.Namespace, config: RepoConfig) -> int:
    """Say the run's notes, write its report, warn about what was not reviewed; the exit status."""
    for note in final.notes:
        if not note.startswith("No model review: analyzers only"):
            sys.stderr.write(f"secreview: {note}\n")
    write_report(final.result, args.format, args.output)
    warn_incomplete(final.result)
    return exit_status(final.result, args.fail_on or config.fail_on)


def warn_incomplete(result: ReviewResult) -> None:
    """One line on standard error per file the model never answered for."""
    for skip in result.coverage.failed:
        sys.stderr.write(f"secreview: warning: not reviewed: {skip.path} ({skip.reason})\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``secreview`` console script."""
    try:
        args, extra = build_parser().parse_known_args(argv)
        if extra:
            if args.command != "worker":
                raise UsageError(f"unrecognized arguments: {' '.join(extra)}")
            args.celery_args = [*extra, *args.celery_args]  # options for Celery itself
        settings = Settings.from_env()
        logs.configure(settings.log_level, settings.log_format)
        func: Callable[[argparse.Namespace, Settings], int] = args.func
        return func(args, settings)
    except (ConfigError, UsageError) as exc:
        sys.stderr.write(f"secreview: error: {exc}\n")
        return EXIT_USAGE
    except SecreviewError as exc:
        sys.stderr.write(f"secreview: error: {exc} ({exc.reason})\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("secreview: interrupted\n")
        return 130
    except OSError as exc:  # a file or socket the user named: one line, never a traceback
        where = f" {exc.filename!r}" if exc.filename else ""
        sys.stderr.write(f"secreview: error:{where} {exc.strerror or exc}\n")
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
