"""Reports and comment bodies: JSON, SARIF 2.1.0, Markdown, review comments, summary, check run."""

from __future__ import annotations

import re
from collections import Counter, defaultdict, deque
from collections.abc import Iterable, Sequence
from pathlib import PurePosixPath
from typing import Any

from bot import __version__
from bot.diff import Skip
from bot.findings import SEVERITIES, SEVERITY_RANK, Finding, ReviewResult
from bot.repo_config import RepoConfig
from bot.report.sarif import cwe_url, report_sarif, sarif_gzip_base64

__all__ = [
    "comment_body",
    "cwe_url",
    "finding_marker",
    "report_json",
    "report_markdown",
    "report_sarif",
    "sarif_gzip_base64",
    "summary_marker",
]

_MARKER_OPEN = re.compile(r"<!--", re.I)
_MENTION = re.compile(r"(?<![\w`])@(?=[A-Za-z0-9])")
_BACKTICKS = re.compile(r"`+")
_LANGUAGES = {
    ".py": "python", ".pyi": "python", ".js": "javascript", ".mjs": "javascript",
    ".cjs": "javascript", ".jsx": "jsx", ".ts": "typescript", ".tsx": "tsx", ".go": "go",
    ".rb": "ruby", ".java": "java", ".kt": "kotlin", ".kts": "kotlin", ".scala": "scala",
    ".php": "php", ".cs": "csharp", ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp",
    ".hpp": "cpp", ".rs": "rust", ".swift": "swift", ".m": "objectivec", ".sh": "bash",
    ".bash": "bash", ".zsh": "bash", ".ps1": "powershell", ".sql": "sql", ".html": "html",
    ".htm": "html", ".xml": "xml", ".yml": "yaml", ".yaml": "yaml", ".json": "json",
    ".toml": "toml", ".ini": "ini", ".tf": "hcl", ".hcl": "hcl", ".vue": "vue",
    ".lua": "lua", ".pl": "perl", ".r": "r", ".dart": "dart", ".ex": "elixir", ".exs": "elixir",
}  # fmt: skip
_FILENAMES = {"dockerfile": "dockerfile", "makefile": "makefile", "gemfile": "ruby"}


# --- JSON --------------------------------------------------------------------------------


def report_json(result: ReviewResult) -> dict[str, Any]:
    """The DESIGN.md §3 JSON report, extended with rejections, failed units, model and version."""
    stats = result.stats
    return {
        "findings": [f.to_json() for f in result.findings],
        "stats": {
            "requests": stats.requests,
            "prompt_tokens": stats.prompt_tokens,
            "cached_tokens": stats.cached_tokens,
            "completion_tokens": stats.completion_tokens,
            "cost_usd": round(stats.cost_usd, 6),
            "secrets_allowed": stats.secrets_allowed,
        },
        "coverage": {
            "reviewed": list(result.coverage.reviewed),
            "skipped": [{"path": s.path, "reason": s.reason} for s in result.coverage.skipped],
            "reused": [{"path": r.path, "from_head": r.from_head} for r in result.coverage.reused],
            "failed": [{"path": s.path, "reason": s.reason} for s in result.coverage.failed],
            "models": dict(sorted(result.coverage.models.items())),
            "narrowed": list(result.coverage.narrowed),
        },
        "rejected": rejected_counts(result),
        "failed_units": [{"path": s.path, "reason": s.reason} for s in result.failed_units],
        "model": result.model,
        "version": __version__,
    }


def rejected_counts(result: ReviewResult) -> dict[str, int]:
    """Rejected candidate findings counted by reason, reasons sorted."""
    counts = Counter(r.reason for r in result.rejected)
    return dict(sorted(counts.items()))


# --- untrusted text ----------------------------------------------------------------------


def _defuse(text: str) -> str:
    """Break every ``<!--`` so model text can never open a comment or forge our markers."""
    return _MARKER_OPEN.sub("<!-\u200b-", text)


def _prose(text: str) -> str:
    """Model prose made safe for GitHub Markdown.

    HTML comments are dropped (they would hide text, or forge a ``<!-- secreview:`` marker);
    outside code spans ``<`` is escaped so no raw HTML renders and ``@name`` cannot ping
    anyone; inside code spans (shown literally) a stray ``<!--`` is broken with a zero-width
    space instead.
    """
    text = drop_html_comments(text)
    out, pos = [], 0
    for start, end in code_spans(text):
        out.append(_escape_plain(text[pos:start]))
        out.append(_defuse(text[start:end]))
        pos = end
    out.append(_escape_plain(text[pos:]))
    return "".join(out).strip()


def drop_html_comments(text: str) -> str:
    """``text`` without its ``<!-- … -->`` comments, in one pass (a regex's lazy ``.*?`` would
    rescan to the end from every unclosed ``<!--``: quadratic on hostile text)."""
    out, pos = [], 0
    while (start := text.find("<!--", pos)) >= 0:
        end = text.find("-->", start + 4)
        if end < 0:
            break  # no comment closes after here, so none of the later openers does either
        out.append(text[pos:start])
        pos = end + 3
    out.append(text[pos:])
    return "".join(out)


def _escaped(text: str, index: int) -> bool:
    """Whether ``text[index]`` follows an odd number of backslashes (Markdown's escape)."""
    before = text[max(0, index - 64) : index]
    slashes = len(before) - len(before.rstrip("\\"))
    return slashes % 2 == 1


def code_spans(text: str) -> list[tuple[int, int]]:
    """Where GitHub Markdown's inline code spans are: a run of N backticks opens one and the next
    run of exactly N closes it; an opener with no closer, or escaped by a backslash, is literal
    (so what follows it is escaped as prose: the safe side). Linear in ``text``."""
    runs = [m.span() for m in _BACKTICKS.finditer(text)]
    later: dict[int, deque[int]] = defaultdict(deque)
    for index, (start, end) in enumerate(runs):
        later[end - start].append(index)
    spans, i = [], 0
    while i < len(runs):
        start, end = runs[i]
        closers = later[end - start]
        while closers and closers[0] <= i:
            closers.popleft()
        if closers and not _escaped(text, start):
            j = closers.popleft()
            spans.append((start, runs[j][1]))
            i = j + 1
        else:
            i += 1
    return spans


def _escape_plain(text: str) -> str:
    return _MENTION.sub("@\u200b", text.replace("<", "&lt;"))


def _cell(text: str) -> str:
    """One Markdown table cell: one line, pipes escaped."""
    return " ".join(_prose(text).split()).replace("|", "\\|")


def _fence(content: str, info: str = "") -> str:
    """A fenced code block no backtick run in ``content`` can close early."""
    longest = max((len(m) for m in _BACKTICKS.findall(content)), default=0)
    fence = "`" * max(3, longest + 1)
    body = _defuse(content).rstrip("\n")
    return f"{fence}{info}\n{body}\n{fence}"


def _code(text: str) -> str:
    """An inline code span that backticks in ``text`` cannot break."""
    longest = max((len(m) for m in _BACKTICKS.findall(text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{_defuse(text)}{pad}{ticks}"


def language(path: str) -> str:
    """The fenced-code language of ``path`` guessed from its name; "" when unknown."""
    name = PurePosixPath(path).name.lower()
    if name in _FILENAMES:
        return _FILENAMES[name]
    return _LANGUAGES.get(PurePosixPath(name).suffix, "")


def _cwe_link(cwe: str) -> str:
    url = cwe_url(cwe)
    return f"[{_cell(cwe)}]({url})" if url else _cell(cwe)


def _lines(f: Finding) -> str:
    if f.start_line is not None and f.start_line != f.line:
        return f"{f.start_line}-{f.line}"
    return str(f.line)


# --- comments ----------------------------------------------------------------------------


def finding_marker(fingerprint: str) -> str:
    """The hidden marker on every inline comment."""
    return f"<!-- secreview:finding fp={fingerprint} -->"


def summary_marker(head_sha: str) -> str:
    """The hidden marker on the one sticky summary comment."""
    return f"<!-- secreview:summary head={head_sha} -->"


def comment_body(finding: Finding) -> str:
    """The body of one inline review comment, ending with its marker."""
    parts = [
        f"**{finding.severity.upper()}** · {_cell(finding.title)} · {_cwe_link(finding.cwe)}",
        _prose(finding.description),
        f"**Exploit scenario.** {_prose(finding.exploit_scenario)}",
        f"**Recommendation.** {_prose(finding.recommendation)}",
    ]
    if finding.suggestion and finding.on_diff:
        parts.append(_fence(finding.suggestion, "suggestion"))
    parts.append(dismiss_line(finding) + "\n" + finding_marker(finding.fingerprint))
    return "\n\n".join(p for p in parts if p)


def dismiss_line(finding: Finding) -> str:
    """Source, confidence, the short fingerprint and the exact command that dismisses it.

    Commands are read from pull-request comments (``issue_comment``), not from replies in the
    review thread, so the line says where to write it.
    """
    fp = finding.fingerprint
    return (
        f"<sub>secreview · {finding.source} · confidence {finding.confidence:.2f} · "
        f"fingerprint `{fp}` · not a problem? Comment `/secreview ignore {fp} <reason>` on "
        "this pull request (a pull request adds it to `.github/secreview.yml`)</sub>"
    )


def config_section(config: RepoConfig, level: str = "###") -> list[str]:
    """Which file set each effective setting (organisation defaults, the repository's own file),
    and problems with the shared file; nothing when every setting is a default."""
    if not config.provenance and not config.notes:
        return []
    out = [f"{level} Configuration", ""]
    out += [f"- {_cell(note)}" for note in config.notes]
    if config.provenance:
        rows = [f"`{key}` from {_code(source)}" for key, source in config.provenance]
        out.append(f"- Settings: {'; '.join(rows)}; everything else is a default")
    return [*out, ""]


# --- Markdown report ---------------------------------------------------------------------


def verdict(result: ReviewResult) -> str:
    """One line: how many findings of which severity, and whether the review is complete."""
    counts = Counter(f.severity for f in result.findings)
    if result.findings:
        parts = ", ".join(f"{counts[s]} {s}" for s in SEVERITIES if counts[s])
        noun = "finding" if len(result.findings) == 1 else "findings"
        text = f"{len(result.findings)} security {noun} ({parts})."
    elif result.coverage.reviewed or result.coverage.reused or result.failed_units:
        text = "No security findings."
    else:  # "no findings" would claim a review that did not happen
        n = len(result.coverage.skipped)
        text = "Nothing was reviewed: " + (
            "there were no files."
            if not n
            else "the one file was skipped (see Coverage)."
            if n == 1
            else f"all {n} files were skipped (see Coverage)."
        )
    if result.failed_units:
        n = len(result.failed_units)
        text += f" Review incomplete: {n} unit{'s' if n != 1 else ''} failed."
    return text


def _table(findings: Iterable[Finding]) -> list[str]:
    rows = ["| # | Severity | Location | CWE | Title |", "|---|---|---|---|---|"]
    for i, f in enumerate(findings, 1):
        where = _code(f"{f.path}:{_lines(f)}").replace("|", "\\|")
        cells = [str(i), f.severity, where, _cwe_link(f.cwe), _cell(f.title)]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def _details(i: int, f: Finding) -> list[str]:
    out = [
        f"### {i}. {f.severity.upper()}: {_cell(f.title)}",
        "",
        f"{_code(f.path)} {'lines' if '-' in _lines(f) else 'line'} {_lines(f)} · "
        f"{_cwe_link(f.cwe)} · confidence "
        f"{f.confidence:.2f} · source {f.source} · fingerprint {_code(f.fingerprint)}",
        "",
        _prose(f.description),
        "",
        f"**Exploit scenario.** {_prose(f.exploit_scenario)}",
        "",
        f"**Recommendation.** {_prose(f.recommendation)}",
        "",
        "**Evidence**",
        "",
        _fence(f.evidence, language(f.path)),
        "",
    ]
    if f.suggestion:
        out += ["**Suggested change**", "", _fence(f.suggestion, language(f.path)), ""]
    return out


def findings_table(findings: Iterable[Finding]) -> list[str]:
    """The Markdown table of findings (severity, location, CWE, title)."""
    return _table(findings)


def cell(text: str) -> str:
    """``text`` made safe for one Markdown table cell or list item."""
    return _cell(text)


def stats_section(result: ReviewResult, level: str = "##") -> list[str]:
    """The statistics section (model, requests, tokens, cached share, cost)."""
    return [f"{level} Statistics", *_stats(result)[1:]]


def coverage_section(result: ReviewResult, level: str = "##") -> list[str]:
    """The coverage section (reviewed, skipped with reasons, failed units, rejections)."""
    return [f"{level} Coverage", *_coverage(result)[1:]]


def _stats(result: ReviewResult) -> list[str]:
    s = result.stats
    return [
        "## Statistics",
        "",
        f"- Model: {_code(result.model) if result.model else 'none (analyzers only)'}",
        f"- Requests: {s.requests:,}",
        f"- Prompt tokens: {s.prompt_tokens:,} ({s.cached_share:.1%} cached)",
        f"- Completion tokens: {s.completion_tokens:,}",
        f"- Cost: ${s.cost_usd:.4f} USD",
        "",
    ]


def _coverage(result: ReviewResult) -> list[str]:
    cov = result.coverage
    out = ["## Coverage", "", f"- Reviewed files: {len(cov.reviewed)}"]
    models = sorted(set(cov.models.values()))
    if len(models) > 1:  # failover: say which model judged which file
        for model in models:
            paths = sorted(p for p, m in cov.models.items() if m == model)
            out.append(f"  - by {_code(model)}: {', '.join(_code(p) for p in paths)}")
    if cov.narrowed:
        out.append(
            f"- Reviewed as the changes since the last review (earlier findings elsewhere in "
            f"them kept): {len(cov.narrowed)}"
        )
        out += [f"  - {_code(p)}" for p in cov.narrowed]
    if cov.reused:
        out.append(f"- Unchanged since an earlier review (its result reused): {len(cov.reused)}")
        out += [f"  - {_code(r.path)} (from {_code(r.from_head[:12])})" for r in cov.reused]
    out.append(f"- Not reviewed by the model: {len(cov.failed)}")
    out += [f"  - {_code(s.path)}: {_cell(s.reason)}" for s in cov.failed]
    out.append(f"- Skipped: {len(cov.skipped)}")
    out += _skipped(cov.skipped)
    out.append(f"- Failed units: {len(result.failed_units)}")
    out += [f"  - {_code(s.path)}: {_cell(s.reason)}" for s in result.failed_units]
    counts = rejected_counts(result)
    out.append(f"- Rejected candidate findings: {sum(counts.values())}")
    out += [f"  - {_cell(reason)}: {n}" for reason, n in counts.items()]
    return [*out, ""]


SKIPPED_LISTED = 50  # a longer skip list is grouped by reason
SKIPPED_PER_REASON = 10
SKIPPED_REASONS = 30


def _skipped(skipped: Sequence[Skip]) -> list[str]:
    """Each skipped file with its reason; a long list (a scan skips thousands) grouped by
    reason with a few paths each, so what follows it stays within a summary's limit. The JSON
    report lists every file."""
    if len(skipped) <= SKIPPED_LISTED:
        return [f"  - {_code(s.path)}: {_cell(s.reason)}" for s in skipped]
    groups: dict[str, list[str]] = {}
    for s in skipped:
        groups.setdefault(s.reason, []).append(s.path)
    out = []
    ranked = sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    for reason, paths in ranked[:SKIPPED_REASONS]:
        shown = ", ".join(_code(p) for p in paths[:SKIPPED_PER_REASON])
        more = len(paths) - SKIPPED_PER_REASON
        tail = f" and {more:,} more" if more > 0 else ""
        out.append(f"  - {_cell(reason)} ({len(paths):,}): {shown}{tail}")
    rest = ranked[SKIPPED_REASONS:]
    if rest:
        files = sum(len(paths) for _, paths in rest)
        out.append(f"  - {files:,} more files for {len(rest):,} other reasons")
    return [*out, "  - (the JSON report, `--format json`, lists every skipped file)"]


def capped(text: str, limit: int = 65_000) -> str:
    """``text`` cut at a line boundary to fit ``limit`` characters, saying that it was cut."""
    if len(text) <= limit:
        return text
    head = text[: limit - 300]
    head = head[: head.rfind("\n") + 1] or head
    left = text.count("\n", len(head))
    return head + (
        f"\n*… {left:,} more lines not shown (GitHub's limit is 65,536 characters); the "
        "annotations and the JSON report list everything.*\n"
    )


def report_markdown(result: ReviewResult) -> str:
    """A human-readable report: verdict, table, details, statistics, coverage."""
    findings = sorted(result.findings, key=lambda f: (-SEVERITY_RANK[f.severity], f.path, f.line))
    out = ["# secreview security review", "", f"**Verdict:** {verdict(result)}", ""]
    if findings:
        out += [*_table(findings), "", "## Findings", ""]
        for i, f in enumerate(findings, 1):
            out += _details(i, f)
    out += _stats(result) + _coverage(result)
    return "\n".join(out).rstrip("\n") + "\n"
