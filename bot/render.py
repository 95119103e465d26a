"""Reports and comment bodies: JSON, SARIF 2.1.0, Markdown, review comments, summary, check run."""

from __future__ import annotations

from typing import Any

from bot.findings import Finding, ReviewResult


def report_json(result: ReviewResult) -> dict[str, Any]:
    """The DESIGN.md §3 JSON report."""
    raise NotImplementedError


def report_sarif(result: ReviewResult) -> dict[str, Any]:
    """A SARIF 2.1.0 log GitHub code scanning accepts."""
    raise NotImplementedError


def report_markdown(result: ReviewResult) -> str:
    """A human-readable report."""
    raise NotImplementedError


def finding_marker(fingerprint: str) -> str:
    """The hidden marker on every inline comment."""
    return f"<!-- secreview:finding fp={fingerprint} -->"


def summary_marker(head_sha: str) -> str:
    """The hidden marker on the one sticky summary comment."""
    return f"<!-- secreview:summary head={head_sha} -->"


def comment_body(finding: Finding) -> str:
    """The body of one inline review comment, ending with its marker."""
    raise NotImplementedError
