"""SARIF 2.1.0 output for GitHub code scanning, and its gzip+base64 upload encoding."""

from __future__ import annotations

import base64
import gzip
import json
import re
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from bot import __version__
from bot.findings import SEVERITY_RANK, Finding, ReviewResult

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
INFORMATION_URI = "https://github.com/secreview/secreview"
MAX_RESULTS = 5_000
# GitHub: "the maximum size for a gzip-compressed SARIF file is 10 MB" (REST "Upload an
# analysis as SARIF data"); decimal megabytes, the stricter reading.
MAX_GZIP_BYTES = 10_000_000
FINGERPRINT_KEY = "secreview/v1"

# GitHub maps security-severity to its levels: >9.0 critical, 7.0-8.9 high, 4.0-6.9 medium.
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0"}
LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note"}
_PREFIX = {"model": "secreview", "secrets": "secrets", "bandit": "bandit", "injection": "injection"}
_ABOUT = {
    "model": "Reported by secreview's model review; every result cites the code it rests on.",
    "secrets": "A credential committed to the repository, found by secreview's secret "
    "scanner; the secret value is never repeated in the report.",
    "bandit": "Reported by the Bandit static analyzer and triaged by secreview.",
    "injection": "Text aimed at AI code reviewers (prompt injection), found by secreview's "
    "injection detector before any model saw the code.",
}
_CWE_ID = re.compile(r"^CWE-([0-9]+)$")
CWE_NAMES = {
    "CWE-20": "Improper input validation",
    "CWE-1427": "Improper neutralization of input used for LLM prompting",
    "CWE-22": "Path traversal",
    "CWE-77": "Command injection",
    "CWE-78": "OS command injection",
    "CWE-79": "Cross-site scripting",
    "CWE-88": "Argument injection",
    "CWE-89": "SQL injection",
    "CWE-90": "LDAP injection",
    "CWE-94": "Code injection",
    "CWE-95": "Eval injection",
    "CWE-113": "HTTP response splitting",
    "CWE-117": "Log injection",
    "CWE-200": "Exposure of sensitive information",
    "CWE-209": "Sensitive information in error messages",
    "CWE-250": "Execution with unnecessary privileges",
    "CWE-259": "Hard-coded password",
    "CWE-269": "Improper privilege management",
    "CWE-284": "Improper access control",
    "CWE-285": "Improper authorization",
    "CWE-287": "Improper authentication",
    "CWE-295": "Improper certificate validation",
    "CWE-306": "Missing authentication for a critical function",
    "CWE-311": "Missing encryption of sensitive data",
    "CWE-312": "Cleartext storage of sensitive information",
    "CWE-319": "Cleartext transmission of sensitive information",
    "CWE-321": "Hard-coded cryptographic key",
    "CWE-327": "Broken or risky cryptographic algorithm",
    "CWE-328": "Weak hash",
    "CWE-330": "Insufficiently random values",
    "CWE-338": "Cryptographically weak pseudo-random number generator",
    "CWE-345": "Insufficient verification of data authenticity",
    "CWE-347": "Improper verification of a cryptographic signature",
    "CWE-352": "Cross-site request forgery",
    "CWE-362": "Race condition",
    "CWE-377": "Insecure temporary file",
    "CWE-400": "Uncontrolled resource consumption",
    "CWE-434": "Unrestricted upload of dangerous file type",
    "CWE-502": "Deserialization of untrusted data",
    "CWE-532": "Sensitive information in log files",
    "CWE-601": "Open redirect",
    "CWE-611": "XML external entity reference",
    "CWE-639": "Authorization bypass through a user-controlled key",
    "CWE-668": "Exposure of a resource to the wrong sphere",
    "CWE-732": "Incorrect permission assignment",
    "CWE-770": "Allocation of resources without limits",
    "CWE-798": "Hard-coded credentials",
    "CWE-862": "Missing authorization",
    "CWE-863": "Incorrect authorization",
    "CWE-915": "Mass assignment",
    "CWE-916": "Weak password hash",
    "CWE-918": "Server-side request forgery",
    "CWE-942": "Overly permissive CORS policy",
    "CWE-1004": "Cookie without HttpOnly",
    "CWE-1321": "Prototype pollution",
    "CWE-1333": "Regular expression denial of service",
    "CWE-1336": "Template injection",
}


def cwe_url(cwe: str) -> str | None:
    """The MITRE page of ``cwe`` ("CWE-89"), or None if it is not a CWE id."""
    match = _CWE_ID.match(cwe.strip().upper())
    return f"https://cwe.mitre.org/data/definitions/{match.group(1)}.html" if match else None


def cwe_name(cwe: str) -> str:
    """A short human name of ``cwe``, or a generic one for ids not in the table."""
    return CWE_NAMES.get(cwe.upper(), f"Weakness {cwe}")


def rule_id(f: Finding) -> str:
    """``secreview/CWE-89``, ``secrets/CWE-798``, ``bandit/B602``: source, then rule or CWE."""
    return f"{_PREFIX.get(f.source, f.source)}/{f.rule or f.cwe}"


def _order(f: Finding) -> tuple[int, str, int, str, str]:
    return (-SEVERITY_RANK[f.severity], f.path, f.line, f.cwe, f.fingerprint)


def _precision(findings: Sequence[Finding]) -> str:
    """GitHub's precision tag from the least confident result of a rule."""
    lowest = min(f.confidence for f in findings)
    return "high" if lowest >= 0.8 else "medium" if lowest >= 0.5 else "low"


def _rule(rid: str, findings: Sequence[Finding]) -> dict[str, Any]:
    first = findings[0]  # findings are sorted, so the first is the most severe
    name = cwe_name(first.cwe)
    url = cwe_url(first.cwe)
    about = _ABOUT.get(first.source, "")
    if first.rule:
        about += f" Analyzer rule: {first.rule}."
    ref = f" See {url}" if url else ""
    cwe_md = f"[{first.cwe}]({url})" if url else first.cwe
    rule: dict[str, Any] = {
        "id": rid,
        "name": re.sub(r"[^A-Za-z0-9]", "", name.title()),
        "shortDescription": {"text": f"{name} ({first.cwe})"},
        "fullDescription": {"text": f"{name} ({first.cwe}). {about}"},
        "help": {
            "text": f"{name} ({first.cwe}). {about} Each result describes the exploit "
            f"scenario and the recommended fix.{ref}",
            "markdown": f"**{name}** ({cwe_md})\n\n{about}\n\nEach result describes the "
            "exploit scenario and the recommended fix.",
        },
        "defaultConfiguration": {"level": LEVEL[first.severity]},
        "properties": {
            "tags": ["security", *([f"external/cwe/{first.cwe.lower()}"] if url else [])],
            "security-severity": SECURITY_SEVERITY[first.severity],
            "precision": _precision(findings),
        },
    }
    if url:
        rule["helpUri"] = url
    return rule


def _result(f: Finding, index: int, rid: str) -> dict[str, Any]:
    region = {"startLine": f.start_line or f.line, "endLine": f.line}
    return {
        "ruleId": rid,
        "ruleIndex": index,
        "level": LEVEL[f.severity],
        "message": {"text": f"{f.title}\n\n{f.description}"},
        "locations": [
            {
                "physicalLocation": {
                    "artifactLocation": {"uri": quote(f.path, safe="/"), "uriBaseId": "%SRCROOT%"},
                    "region": region,
                }
            }
        ],
        "partialFingerprints": {FINGERPRINT_KEY: f.fingerprint},
        "properties": {
            "severity": f.severity,
            "confidence": f.confidence,
            "cwe": f.cwe,
            "source": f.source,
        },
    }


def _invocation(result: ReviewResult) -> dict[str, Any]:
    """Failed units become tool notifications: the log says the review was incomplete."""
    out: dict[str, Any] = {"executionSuccessful": not result.failed_units}
    if result.failed_units:
        out["toolExecutionNotifications"] = [
            {"level": "error", "message": {"text": f"{s.path}: {s.reason}"}}
            for s in result.failed_units
        ]
    return out


def report_sarif(
    result: ReviewResult,
    *,
    tool_version: str = __version__,
    source_root: str | None = None,
    category: str | None = None,
) -> dict[str, Any]:
    """A SARIF 2.1.0 log GitHub code scanning accepts (at most MAX_RESULTS results).

    ``source_root`` (an absolute ``file:`` URI ending in ``/``) resolves ``%SRCROOT%``;
    ``category`` becomes ``automationDetails.id`` so PR reviews and scans stay apart.
    """
    ordered = sorted(result.findings, key=_order)
    kept = ordered[:MAX_RESULTS]
    by_rule: dict[str, list[Finding]] = {}
    for f in kept:
        by_rule.setdefault(rule_id(f), []).append(f)
    rule_ids = sorted(by_rule)
    index = {rid: i for i, rid in enumerate(rule_ids)}
    root: dict[str, Any] = {"description": {"text": "The root of the reviewed repository."}}
    if source_root:
        root["uri"] = source_root
    run: dict[str, Any] = {
        "tool": {
            "driver": {
                "name": "secreview",
                "informationUri": INFORMATION_URI,
                "version": tool_version,
                "semanticVersion": tool_version,
                "rules": [_rule(rid, by_rule[rid]) for rid in rule_ids],
            }
        },
        "invocations": [_invocation(result)],
        "originalUriBaseIds": {"%SRCROOT%": root},
        "columnKind": "utf16CodeUnits",
        "results": [_result(f, index[rule_id(f)], rule_id(f)) for f in kept],
        "properties": {
            "model": result.model,
            "totalResults": len(ordered),
            "truncated": len(ordered) > len(kept),
            "omittedResults": len(ordered) - len(kept),
        },
    }
    if category:
        run["automationDetails"] = {"id": f"{category.rstrip('/')}/"}
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def sarif_gzip_base64(sarif: Mapping[str, Any], *, limit: int = MAX_GZIP_BYTES) -> str:
    """gzip then base64, as GitHub's SARIF upload API wants; ValueError over ``limit`` bytes."""
    raw = json.dumps(sarif, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    packed = gzip.compress(raw, mtime=0)  # mtime=0: same log, same bytes
    if len(packed) > limit:
        raise ValueError(
            f"SARIF is {len(packed):,} bytes gzip-compressed, over GitHub's upload limit of "
            f"{limit:,} bytes; lower the number of results or split the upload"
        )
    return base64.b64encode(packed).decode("ascii")
