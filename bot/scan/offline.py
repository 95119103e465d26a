"""A scan without a model: the deterministic analyzers over a tree, one file at a time.

With no model there are no units or prompts to build, so nothing needs to hold the whole tree:
each file is read, analyzed (secrets, prompt injection, bandit) and let go, and only findings
and coverage are kept. Peak memory stays near the largest file's, not the tree's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from bot import findings as fnd
from bot.diff import LineMap, Skip, line_map
from bot.findings import Coverage, Finding, ReviewResult
from bot.redact.run import RunRedaction
from bot.repo_config import RepoConfig
from bot.review import analyzers, injection
from bot.scan.plan import Entry, as_changed_file, bundle_dirs, choose, score_text


def analyze_tree(
    entries: Iterable[Entry],
    config: RepoConfig,
    memo: analyzers.Memo | None = None,
    progress: analyzers.Progress | None = None,
) -> ReviewResult:
    """Findings and coverage of an offline scan of ``entries`` (a walker's output); with
    ``memo``, bandit skips the files it analyzed before with the same content; ``progress``
    hears of each file analyzed (the total is unknown while the tree streams)."""
    found: dict[str, list[Finding]] = {}
    ranked: list[tuple[float, str]] = []
    skipped: list[Skip] = []
    inits: list[tuple[str, str]] = []  # package __init__.py heads, for bundled packages
    for path, text, reason in choose(entries, config):
        if reason or text is None:
            skipped.append(Skip(path, reason))
            if text is not None:  # documentation, vendored...: read for secrets only
                found[path] = _secrets_only(path, text)
            continue
        if path.endswith("/__init__.py"):
            inits.append((path, text[:8000]))
        ranked.append((score_text(path, text), path))
        found[path], why = _analyze(path, text, memo)
        skipped += [Skip(path, why)] if why else []
        if progress is not None:
            progress(len(ranked), None)
    if config.filter_rules.default_excludes:
        bundles = bundle_dirs(inits)
        for _, p in ranked:
            if p.startswith(bundles):  # vendored after all: only its secrets stay
                skipped.append(Skip(p, "vendored"))
                found[p] = [f for f in found[p] if f.source == "secrets"]
        ranked = [(s, p) for s, p in ranked if not p.startswith(bundles)]
    ranked.sort(key=lambda item: (-item[0], item[1]))
    reviewed = tuple(p for _, p in ranked)
    every = [f for fs in found.values() for f in fs]
    return ReviewResult(
        findings=tuple(fnd.dedupe(every)),
        coverage=Coverage(reviewed=reviewed, skipped=tuple(skipped)),
        model=None,
    )


def _secrets_only(path: str, text: str) -> list[Finding]:
    """Secrets in a file the scan does not review (documentation, vendored code...)."""
    secrets = RunRedaction.detect(documents=[(path, text)])
    return [_place(f, None) for f in secrets.findings]


def _analyze(
    path: str, text: str, memo: analyzers.Memo | None = None
) -> tuple[list[Finding], str | None]:
    """Secrets, injection and bandit findings of one whole file, placed and fingerprinted;
    and why bandit could not analyze it, if it could not."""
    secrets = RunRedaction.detect(files=[as_changed_file(path, text)])
    clean = secrets.files
    out = [*secrets.findings, *injection.in_files(clean, scan=True)]
    why = None
    if analyzers.is_python(path):
        bandit, why = analyzers.bandit_kept(path, text.encode("utf-8", errors="replace"), memo)
        out += [secrets.scrub_finding(f) for f in bandit]
    lines = line_map(clean[0]) if clean else None
    return [_place(f, lines) for f in out], why


def _place(f: Finding, lines: LineMap | None) -> Finding:
    """``f`` with its fingerprint, and inline placement when the file's lines are known."""
    return dataclasses.replace(
        f,
        fingerprint=f.fingerprint or fnd.fingerprint(f.cwe, f.path, f.evidence),
        on_diff=lines is not None and lines.can_comment(f.line, "RIGHT"),
    )
