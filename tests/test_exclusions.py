"""The policy's "What NOT to report", applied before any second model call."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from bot.findings import Finding, ReviewResult
from bot.review import exclusions, verify


def finding(**changes: Any) -> Finding:
    base = Finding(
        path="app/views.py",
        line=3,
        severity="high",
        cwe="CWE-89",
        title="SQL injection in search",
        description="The search term is formatted into the query.",
        exploit_scenario="An attacker sends ' OR 1=1 --.",
        recommendation="Bind the term as a parameter.",
        confidence=0.9,
        evidence="db.execute(q)",
        fingerprint="ab" * 8,
    )
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"cwe": "CWE-400", "title": "Unbounded upload size"}, exclusions.RESOURCE_EXHAUSTION),
        ({"cwe": "CWE-20", "title": "Denial of service via huge JSON body"}, "resource"),
        ({"cwe": "CWE-1333", "title": "Catastrophic backtracking"}, "slow regular expression"),
        ({"cwe": "CWE-307", "title": "Password guessing"}, "missing rate limiting"),
        ({"cwe": "CWE-284", "title": "Login endpoint has no rate limiting"}, "missing rate limit"),
        ({"cwe": "CWE-693", "title": "Missing Content-Security-Policy header"}, "headers only"),
        ({"cwe": "CWE-1021", "title": "Clickjacking"}, "headers only"),
        ({"cwe": "CWE-16", "title": "No X-Frame-Options or HSTS headers"}, "headers only"),
        ({"cwe": "CWE-1104", "title": "Old requests pinned"}, "outdated dependency"),
        ({"cwe": "CWE-1395", "title": "Outdated jinja2"}, "outdated dependency"),
        ({"cwe": "CWE-117", "title": "User name written to the log"}, "log spoofing"),
        ({"cwe": "CWE-20", "title": "Log injection via the user agent"}, "log spoofing"),
        ({"cwe": "CWE-778", "title": "Admin actions"}, "missing logging"),
        ({"cwe": "CWE-20", "title": "No audit logging of role changes"}, "missing logging"),
        ({"cwe": "CWE-563", "title": "Unused token"}, "unused variable"),
        ({"path": "tests/test_views.py"}, exclusions.TESTS_OR_DOCS),
        ({"path": "app/views_test.go"}, exclusions.TESTS_OR_DOCS),
        ({"path": "src/__mocks__/api.ts"}, exclusions.TESTS_OR_DOCS),
        ({"path": "examples/demo/server.py"}, exclusions.TESTS_OR_DOCS),
        ({"path": "docs/guide.md"}, exclusions.TESTS_OR_DOCS),
        ({"path": "conftest.py"}, exclusions.TESTS_OR_DOCS),
        # bandit's password rules flag every test password; the secrets scanner reads tests.
        (
            {"path": "tests/test_auth.py", "source": "bandit", "cwe": "CWE-259", "rule": "B106"},
            exclusions.TESTS_OR_DOCS,
        ),
        ({"evidence": " \n "}, exclusions.NO_EVIDENCE),
        ({"evidence": "", "severity": "critical"}, exclusions.NO_EVIDENCE),
    ],
)
def test_excluded_classes(changes: dict[str, Any], reason: str) -> None:
    got = exclusions.reason(finding(**changes))
    assert got is not None and reason in got
    assert verify.exclusion_reason(finding(**changes)) == got


@pytest.mark.parametrize(
    "changes",
    [
        {},
        # Critical findings are never dropped by class: "unless ... clearly severe".
        {"cwe": "CWE-400", "severity": "critical", "title": "Unauthenticated zip bomb"},
        {"path": "tests/test_views.py", "severity": "critical"},
        # Committed credentials are reported even in tests and fixtures.
        {"path": "tests/fixtures/settings.py", "cwe": "CWE-798", "title": "Live key"},
        # The analyzers that are never excluded.
        {"path": "tests/conftest.py", "source": "secrets", "cwe": "CWE-798"},
        {"path": "docs/x.md", "source": "injection", "cwe": "CWE-1427", "evidence": ""},
        # A named advisory is evidence enough for an outdated dependency.
        {"cwe": "CWE-1104", "title": "jinja2 2.10 is vulnerable to CVE-2024-22195"},
        {"cwe": "CWE-1395", "title": "Old lodash", "description": "GHSA-p6mc-m468-83gw applies"},
        # Near misses the title rules must not catch.
        {"cwe": "CWE-290", "title": "Rate limiter bypass via X-Forwarded-For"},
        {"cwe": "CWE-352", "title": "Missing CSRF token on transfer"},
        {"cwe": "CWE-532", "title": "Tokens written to logs without redaction in debug logging"},
        {"cwe": "CWE-916", "title": "Unsalted hash makes brute force of passwords cheap"},
        {"path": "app/testing_utils/auth.py"},
        {"path": "src/contest/views.py"},
    ],
)
def test_kept(changes: dict[str, Any]) -> None:
    assert exclusions.reason(finding(**changes)) is None


def test_exclude_counts_each_reason_and_keeps_the_rest() -> None:
    kept_one = finding()
    result = ReviewResult(
        findings=(
            kept_one,
            finding(path="tests/a.py", fingerprint="1" * 16),
            finding(path="docs/b.md", fingerprint="2" * 16),
            finding(cwe="CWE-400", fingerprint="3" * 16),
            finding(evidence="", fingerprint="4" * 16),
        )
    )
    out, look = verify.exclude(result)
    assert out.findings == (kept_one,)
    assert look.dropped == {
        exclusions.TESTS_OR_DOCS: 2,
        exclusions.RESOURCE_EXHAUSTION: 1,
        exclusions.NO_EVIDENCE: 1,
    }
    (note,) = look.notes()
    assert note.startswith("Second look: 4 candidate findings dropped (")
    assert "2 only in tests, examples or documentation" in note


def test_every_rule_has_a_distinct_reason_and_a_way_to_match() -> None:
    reasons = [rule.reason for rule in exclusions.RULES]
    assert len(set(reasons)) == len(reasons)
    assert all(rule.cwes or rule.title is not None for rule in exclusions.RULES)
