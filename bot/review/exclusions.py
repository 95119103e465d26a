"""Deterministic exclusions: the classes the review policy says not to report.

They mirror prompts/policy.md.j2's "What NOT to report": resource exhaustion, missing rate
limiting, missing hardening headers alone, outdated dependencies without a named advisory, log
spoofing, missing logging, code-quality classes, findings only in tests, examples or
documentation, and findings that cite no evidence. Critical findings are never dropped by class
(the policy's "unless ... clearly severe"); hard-coded credentials are reported even in tests, by
the secrets scanner (which tells test values from keys) and the model, not by bandit's password
rules, which flag every test password (a scan does not run bandit there at all); the secrets and
injection analyzers are never excluded.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.findings import Finding
from bot.paths import off_target

NO_EVIDENCE = "no evidence cited"
TESTS_OR_DOCS = "only in tests, examples or documentation"
RESOURCE_EXHAUSTION = "resource exhaustion (policy: not reported)"
NEVER_EXCLUDED = frozenset({"secrets", "injection"})
# Hard-coded credentials: the policy reports them even in tests and fixtures.
CREDENTIAL_CWES = frozenset({"CWE-798", "CWE-259", "CWE-321", "CWE-256", "CWE-312"})

_ADVISORY = re.compile(r"\b(CVE-\d{4}-\d{4,}|GHSA(-[0-9a-z]{4}){3})\b", re.IGNORECASE)
_MISSING = r"\b(missing|absent|lacks?|lacking|lack of|no|without|insufficient)\s+(\S+\s+){0,3}?"


@dataclass(frozen=True, slots=True)
class Rule:
    """One excluded class: matched by CWE or by title, with the reason the summary shows."""

    reason: str
    cwes: frozenset[str] = frozenset()
    title: re.Pattern[str] | None = None
    unless_advisory: bool = False  # keep the finding when it names a CVE or GHSA advisory

    def matches(self, f: Finding) -> bool:
        """Whether ``f`` belongs to this class."""
        hit = f.cwe in self.cwes or bool(self.title and self.title.search(f.title))
        if hit and self.unless_advisory:
            text = " ".join((f.title, f.description, f.evidence, f.exploit_scenario))
            return _ADVISORY.search(text) is None
        return hit


def _title(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE | re.DOTALL)


RULES: tuple[Rule, ...] = (
    Rule(
        RESOURCE_EXHAUSTION,
        frozenset({"CWE-400", "CWE-770", "CWE-834", "CWE-674", "CWE-789", "CWE-405", "CWE-409"}),
        _title(r"\b(denial of service|dos|resource exhaustion|memory exhaustion)\b"),
    ),
    Rule("slow regular expression (policy: not reported)", frozenset({"CWE-1333"})),
    Rule("algorithmic complexity (policy: not reported)", frozenset({"CWE-407"})),
    Rule(
        "missing rate limiting (policy: not reported)",
        frozenset({"CWE-307", "CWE-799"}),
        _title(_MISSING + r"(rate.?limit(s|ing|er)?|throttl\w*)\b"),
    ),
    Rule(
        "missing hardening headers only (policy: not reported)",
        frozenset({"CWE-1021"}),
        _title(
            _MISSING + r"(security headers?|content.security.policy|csp|x-frame-options|"
            r"hsts|strict-transport-security|x-content-type-options|referrer-policy|"
            r"permissions-policy|x-xss-protection)\b"
        ),
    ),
    Rule(
        "outdated dependency without a named advisory (policy: not reported)",
        frozenset({"CWE-1104", "CWE-937", "CWE-1035", "CWE-1395"}),
        _title(r"\b(outdated|out.of.date|old version|end.of.life|eol|unmaintained)\b"),
        unless_advisory=True,
    ),
    Rule(
        "log spoofing (policy: not reported)",
        frozenset({"CWE-117"}),
        _title(r"\blog (injection|forging|forgery|spoofing)\b"),
    ),
    Rule(
        "missing logging (policy: not reported)",
        frozenset({"CWE-778", "CWE-223"}),
        _title(
            r"\b(missing|insufficient|no|lack of)\s+((security|audit|access|event)\s+)?logging\b"
        ),
    ),
    Rule("coding-standard issue, not a vulnerability", frozenset({"CWE-710", "CWE-398"})),
    Rule("dead code, not a vulnerability", frozenset({"CWE-1164", "CWE-561"})),
    Rule("unused variable, not a vulnerability", frozenset({"CWE-563"})),
)


def is_test_or_docs(path: str) -> bool:
    """Test code, fixtures, examples or documentation (:func:`bot.paths.off_target`)."""
    return off_target(path) is not None


def reason(f: Finding) -> str | None:
    """Why the policy drops ``f`` before any second model call, or None to keep it."""
    if f.source in NEVER_EXCLUDED:
        return None
    if not f.evidence.strip():
        return NO_EVIDENCE
    if f.severity == "critical":
        return None
    for rule in RULES:
        if rule.matches(f):
            return rule.reason
    if is_test_or_docs(f.path) and (f.cwe not in CREDENTIAL_CWES or f.source == "bandit"):
        return TESTS_OR_DOCS  # credentials there: the secrets scanner's and the model's to report
    return None
