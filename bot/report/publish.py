"""What to post on a pull request, decided from the findings and what the bot posted before.

Pure: GitHub is the record (DESIGN.md §3 markers), read by ``bot/github.py`` into ``Posted``;
this module decides the new inline comments, the fixed threads, the sticky summary and the check
run, so a re-run, a redelivery or a push never duplicates a comment.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.diff import ChangedFile, line_map
from bot.findings import SEVERITY_RANK, Finding, ReviewResult, gate_exceeded
from bot.repo_config import RepoConfig
from bot.report import render

FINDING_MARKER = re.compile(r"<!-- secreview:finding fp=([0-9a-f]+) -->")
SUMMARY_MARKER = re.compile(r"<!-- secreview:summary head=([0-9a-f]*) -->")
REVIEW_MARKER = re.compile(r"<!-- secreview:review head=([0-9a-f]+) -->")
OPEN_MARKER = re.compile(r"<!-- secreview:open ([0-9a-f ]*)-->")
_LEVEL = {"critical": "failure", "high": "failure", "medium": "warning", "low": "notice"}
# GitHub refuses an issue comment over 65,536 characters; stay well under it.
MAX_SUMMARY_CHARS = 65_000
MAX_OPEN_MARKER_CHARS = 20_000


@dataclass(frozen=True, slots=True)
class PostedComment:
    """One of the bot's inline comments: which finding, where, and whether it was answered."""

    id: int
    fingerprint: str
    path: str
    fixed_reply: bool = False
    thumbs_up: int = 0  # reactions from reviewers: the bot's precision, as people judge it
    thumbs_down: int = 0


@dataclass(frozen=True, slots=True)
class Posted:
    """Everything the bot posted on a pull request before, as read back from GitHub."""

    reviewed_heads: frozenset[str] = frozenset()
    comments: tuple[PostedComment, ...] = ()
    summary_id: int | None = None
    summary_open: frozenset[str] = frozenset()

    def commented(self) -> dict[str, PostedComment]:
        """Fingerprint → the bot's comment thread for it."""
        return {c.fingerprint: c for c in self.comments}


@dataclass(frozen=True, slots=True)
class PublishPlan:
    """What to post for one head."""

    review_comments: tuple[dict[str, Any], ...]
    inline: tuple[Finding, ...]
    summary_only: tuple[Finding, ...]
    fixed: tuple[PostedComment, ...]
    fixed_elsewhere: tuple[str, ...]
    post_review: bool
    summary: str
    conclusion: str
    annotations: tuple[dict[str, Any], ...] = field(default=())


def review_marker(head_sha: str) -> str:
    """The hidden marker on the bot's review of ``head_sha``."""
    return f"<!-- secreview:review head={head_sha} -->"


def open_marker(fingerprints: Iterable[str]) -> str:
    """The hidden list of open fingerprints in the summary (to say later what was fixed)."""
    return f"<!-- secreview:open {' '.join(sorted(set(fingerprints)))} -->"


def ordered(findings: Iterable[Finding]) -> list[Finding]:
    """Most severe first, then by place."""
    return sorted(findings, key=lambda f: (-SEVERITY_RANK[f.severity], f.path, f.line))


def review_comment(f: Finding, files: Mapping[str, ChangedFile]) -> dict[str, Any] | None:
    """The ``comments[]`` entry for ``f``, or None when GitHub would reject its line."""
    file = files.get(f.path)
    if file is None or not f.on_diff:
        return None
    lines = line_map(file)
    if not lines.can_comment(f.line, "RIGHT"):
        return None
    comment: dict[str, Any] = {
        "path": f.path,
        "line": f.line,
        "side": "RIGHT",
        "body": render.comment_body(f),
    }
    start = f.start_line
    if start is not None and start < f.line and lines.can_comment(f.line, "RIGHT", start):
        comment["start_line"] = start
        comment["start_side"] = "RIGHT"
    return comment


def plan_publish(
    head_sha: str,
    result: ReviewResult,
    files: Mapping[str, ChangedFile],
    config: RepoConfig,
    posted: Posted,
    notes: Sequence[str] = (),
    dismissed: Sequence[Dismissed] = (),
) -> PublishPlan:
    """Decide the review, fixed replies, summary and check run for ``head_sha``.

    ``dismissed`` (``bot.review.feedback.dismissals``): findings reviewers rejected; they are
    neither open nor fixed, and the summary says who dismissed them.
    """
    commented = posted.commented()
    current = {f.fingerprint for f in result.findings}
    threshold = SEVERITY_RANK[config.comment_threshold]
    comments: list[dict[str, Any]] = []
    inline: list[Finding] = []
    summary_only: list[Finding] = []
    for f in ordered(result.findings):
        if f.fingerprint in commented:
            continue  # still open: its thread already says it, do not repost
        entry = None
        if SEVERITY_RANK[f.severity] >= threshold and len(comments) < config.max_inline_comments:
            entry = review_comment(f, files)
        if entry is None:
            summary_only.append(f)
        else:
            comments.append(entry)
            inline.append(f)
    rejected = {d.fingerprint for d in dismissed}
    fixed = tuple(
        c
        for fp, c in sorted(commented.items())
        if fp not in current and not c.fixed_reply and fp not in rejected
    )
    fixed_elsewhere = tuple(sorted(posted.summary_open - current - set(commented) - rejected))
    gate = gate_exceeded(result.findings, config.fail_on) if config.fail_on != "none" else False
    summary = summary_body(
        head_sha,
        result,
        summary_only,
        fixed,
        fixed_elsewhere,
        notes,
        config=config,
        dismissed=dismissed,
    )
    return PublishPlan(
        review_comments=tuple(comments),
        inline=tuple(inline),
        summary_only=tuple(summary_only),
        fixed=fixed,
        fixed_elsewhere=fixed_elsewhere,
        post_review=bool(comments) and head_sha not in posted.reviewed_heads,
        summary=summary,
        conclusion="failure" if gate else "success",
        annotations=tuple(annotation(f) for f in ordered(result.findings)),
    )


def annotation(f: Finding) -> dict[str, Any]:
    """A check-run annotation for ``f``."""
    start = f.start_line if f.start_line is not None and f.start_line <= f.line else f.line
    return {
        "path": f.path,
        "start_line": start,
        "end_line": f.line,
        "annotation_level": _LEVEL[f.severity],
        "title": f"{f.severity.upper()} {f.cwe}: {f.title}"[:255],
        "message": f"{f.description}\n\nRecommendation: {f.recommendation}"[:64000],
    }


def summary_body(
    head_sha: str,
    result: ReviewResult,
    summary_only: Sequence[Finding],
    fixed: Sequence[PostedComment],
    fixed_elsewhere: Sequence[str],
    notes: Sequence[str] = (),
    config: RepoConfig | None = None,
    *,
    dismissed: Sequence[Dismissed] = (),
) -> str:
    """The sticky summary comment, ending with its hidden markers."""
    findings = ordered(result.findings)
    out = [
        "## secreview security review",
        "",
        f"**Verdict:** {render.verdict(result)} (head `{head_sha[:12]}`)",
        "",
    ]
    if findings:
        out += [*render.findings_table(findings), ""]
    if fixed or fixed_elsewhere:
        out += ["### Fixed since the last review", ""]
        out += [f"- `{c.fingerprint}` in `{c.path}`" for c in fixed]
        out += [f"- `{fp}`" for fp in fixed_elsewhere]
        out.append("")
    out += dismissed_section(dismissed)
    if summary_only:
        out += ["### Not commented inline", ""]
        out += [
            f"- **{f.severity}** `{f.path}:{f.line}` {f.cwe} {render.cell(f.title)} "
            f"(`{f.fingerprint}`{'' if f.on_diff else ', outside the diff'})"
            for f in summary_only
        ]
        out.append("")
    if notes:
        out += ["### Notes", "", *[f"- {n}" for n in notes], ""]
    out += render.stats_section(result, level="###")
    out += render.coverage_section(result, level="###")
    out += render.config_section(config) if config is not None else []  # issue 13: provenance
    tail = [render.summary_marker(head_sha), open_marker(_capped_fingerprints(findings))]
    room = MAX_SUMMARY_CHARS - sum(len(x) + 1 for x in tail)
    return "\n".join(capped_lines(out, room) + tail) + "\n"


def capped_lines(lines: Sequence[str], limit: int) -> list[str]:
    """``lines`` up to ``limit`` characters, then one line saying how many were left out."""
    out: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        if used + len(line) + 1 > limit - 300:
            rest = len(lines) - i
            out += [
                "",
                f"*… {rest:,} more lines not shown: GitHub limits a comment to 65,536 characters. "
                "The check run's annotations and `secreview review --format json` list "
                "everything.*",
                "",
            ]
            break
        out.append(line)
        used += len(line) + 1
    return out


def _capped_fingerprints(findings: Sequence[Finding]) -> list[str]:
    out: list[str] = []
    used = 0
    for f in findings:  # most severe first: those are the ones worth tracking
        used += len(f.fingerprint) + 1
        if used > MAX_OPEN_MARKER_CHARS:
            break
        out.append(f.fingerprint)
    return out


def with_refused(
    plan: PublishPlan,
    refused: Sequence[Finding],
    head_sha: str,
    result: ReviewResult,
    notes: Sequence[str] = (),
    config: RepoConfig | None = None,
    dismissed: Sequence[Dismissed] = (),
) -> PublishPlan:
    """``plan`` after GitHub refused some inline comments: those findings become summary rows."""
    gone = {f.fingerprint for f in refused}
    summary_only = (*plan.summary_only, *refused)
    note = (
        f"GitHub refused {len(refused)} inline comment{'s' if len(refused) != 1 else ''}; "
        "listed under *Not commented inline* instead."
    )
    return dataclasses.replace(
        plan,
        inline=tuple(f for f in plan.inline if f.fingerprint not in gone),
        summary_only=summary_only,
        summary=summary_body(
            head_sha,
            result,
            summary_only,
            plan.fixed,
            plan.fixed_elsewhere,
            [*notes, note],
            config,
            dismissed=dismissed,
        ),
    )


def parse_open(body: str) -> frozenset[str]:
    """The open fingerprints a previous summary recorded."""
    m = OPEN_MARKER.search(body)
    return frozenset(m.group(1).split()) if m else frozenset()


# --- dismissed findings (issue 10): who rejected what ---------------------------------------

_LOGIN = re.compile(r"[^A-Za-z0-9\[\]_.-]")


class Dismissed(Protocol):
    """A finding reviewers dismissed (``bot.review.feedback.Dismissal``)."""

    @property
    def fingerprint(self) -> str: ...
    @property
    def by(self) -> str: ...
    @property
    def at(self) -> str: ...
    @property
    def how(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def path(self) -> str: ...


def dismissed_section(dismissed: Sequence[Dismissed]) -> list[str]:
    """The summary's list of dismissed findings: which, where, by whom, how and when."""
    if not dismissed:
        return []
    out = ["### Dismissed by reviewers", ""]
    for d in sorted(dismissed, key=lambda d: (d.path, d.fingerprint)):
        where = f" in `{render.cell(d.path)}`" if d.path else ""
        # A reply's reason is one of feedback's fixed phrases; a command's text is not echoed.
        how = "`/secreview ignore`" if d.reason.startswith("/secreview") else f'"{d.reason}"'
        when = f", {d.at[:10]}" if d.at else ""
        login = _LOGIN.sub("", d.by)
        out.append(f"- `{d.fingerprint}`{where}: dismissed by @{login} ({how}{when})")
    out.append("")
    return out
