"""Secrets findings: what a committed secret means and what to do, never the value itself."""

from __future__ import annotations

from bot.findings import Finding, Severity
from bot.paths import is_test, off_target
from bot.redact import rules
from bot.redact.detector import Detector
from bot.redact.rules import PRIVATE_KEY

_META: dict[str, Detector] = {}
for _d in rules.DETECTORS:
    _META.setdefault(_d.kind, _d)
_KEY_IMPACT = (
    "impersonate the key's owner: decrypt data and traffic encrypted to it, sign code, tokens or "
    "commits, or log in wherever the matching public key is trusted"
)
EVIDENCE_MAX = 240


def is_test_path(path: str) -> bool:
    """Whether ``path`` is test code or a fixture. A credential there is usually test data, but
    not always (real keys get pasted into fixtures), so it is still reported, a step lower and
    saying why."""
    return is_test(path)


def describe(kind: str) -> tuple[str, str, bool, bool]:
    """(label, impact, critical, generic) of a kind."""
    if kind == PRIVATE_KEY:
        return "private key", _KEY_IMPACT, True, False
    d = _META[kind]
    return d.label, d.impact, d.critical, d.generic


def _recommendation(kind: str, label: str) -> str:
    purge = (
        "Purge it from git history (git filter-repo or BFG, then force-push and have "
        "collaborators re-clone): deleting the line in a later commit leaves it in every "
        "earlier one."
    )
    if kind == PRIVATE_KEY:
        return (
            "Treat the key as compromised: generate a new key pair, replace the public key "
            "wherever the old one is trusted (servers, deploy keys, certificates) and revoke the "
            "old one. Keep the new key out of the repository — load it at run time from a secret "
            "manager (Vault, AWS Secrets Manager, GitHub Actions secrets) or a file outside the "
            f"repo. {purge}"
        )
    if kind in ("url-password", "dsn-password", "pdo-password", "cli-password"):
        return (
            "Change the password on the service it opens, and build the connection string at run "
            "time from an environment variable or a secret manager instead of a literal. " + purge
        )
    lead = (
        "If this is a real credential, rotate" if kind == "generic-secret" else "Revoke or rotate"
    )
    return (
        f"{lead} this {label} now and treat it as compromised. Load the replacement at run time "
        "from a secret manager (Vault, AWS Secrets Manager, GitHub Actions or Cloudflare "
        f"secrets) or an environment variable, never from a literal in code. {purge}"
    )


def evidence(line: str, column: int) -> str:
    """The redacted line, cut to a window around the placeholder when the line is very long."""
    text = line.strip()
    if len(text) <= EVIDENCE_MAX:
        return text
    offset = len(line) - len(line.lstrip())
    start = max(0, min(column - offset - EVIDENCE_MAX // 3, len(text) - EVIDENCE_MAX))
    return text[start : start + EVIDENCE_MAX]


def _article(label: str) -> str:
    return "an" if label[0] in "AEIOU" or label.startswith(("npm", "age")) else "a"


def _severity(critical: bool, fixture: bool) -> Severity:
    if fixture:
        return "medium" if critical else "low"
    return "critical" if critical else "high"


PR_TITLE = "(pull request title)"
PR_DESCRIPTION = "(pull request description)"


def _pr_finding(path: str, line: int, kind: str, evidence_text: str) -> Finding:
    label, impact, critical, _ = describe(kind)
    where = "title" if path == PR_TITLE else f"description (line {line})"
    return Finding(
        path=path,
        line=line,
        severity=_severity(critical, fixture=False),
        cwe="CWE-798",
        title=f"{label[0].upper()}{label[1:]} pasted in the pull request",
        description=(
            f"The pull request {where} holds {_article(label)} {label} in clear text (redacted "
            "here, and never sent to the model). Everyone who can see the pull request can read "
            "it, and GitHub keeps every edit of the text."
        ),
        exploit_scenario=f"Anyone who can read the pull request can {impact}.",
        recommendation=(
            f"Revoke or rotate this {label} now, then edit the pull request text to remove it "
            "(the edit history still shows the old text to repository readers)."
        ),
        confidence=0.9,
        evidence=evidence_text,
        source="secrets",
    )


def finding(path: str, line: int, kind: str, evidence_text: str) -> Finding:
    """A secrets finding that names the kind of secret and never its value."""
    if path in (PR_TITLE, PR_DESCRIPTION):
        return _pr_finding(path, line, kind, evidence_text)
    label, impact, critical, generic = describe(kind)
    fixture = is_test_path(path)
    # Documentation and examples show made-up keys far more often than real ones: a value known
    # only by its name and randomness is reported lower there. A provider-format key is not.
    illustration = generic and not fixture and off_target(path) is not None
    caveat = (
        " It was recognised by its name and randomness (a high-entropy literal assigned to a "
        "secret-looking name), not by a provider format, so check it is not test data."
        if generic
        else ""
    )
    if fixture:
        caveat += (
            " It sits in test code or a fixture, so it is reported a step lower: if it is only "
            "test data, replace it with an obvious placeholder; if it is real, rotate it."
        )
    if illustration:
        caveat += (
            " It sits in documentation or example code, where such values are usually "
            "illustrations, so it is reported lower: if it is an example, replace it with an "
            "obvious placeholder; if it is real, rotate it."
        )
    lowered = fixture or illustration
    return Finding(
        path=path,
        line=line,
        severity=_severity(critical, lowered),
        cwe="CWE-798",
        title=f"Hard-coded {label}",
        description=(
            f"Line {line} of {path} commits {_article(label)} {label} in clear text (redacted "
            "here, and never sent to the model). Every clone, fork, CI log and package built from "
            "this commit carries "
            f"it, and it stays in git history after the line is removed.{caveat}"
        ),
        exploit_scenario=(
            "Anyone who can read the repository or its history (a contributor, a leaked clone, "
            "a public fork, or one of the bots that scrape GitHub pushes for keys within minutes) "
            f"can {impact}."
        ),
        recommendation=_recommendation(kind, label),
        confidence=(0.5 if generic else 0.7) if lowered else (0.7 if generic else 0.9),
        evidence=evidence_text,
        source="secrets",
    )
