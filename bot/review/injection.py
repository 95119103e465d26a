"""Prompt-injection detection: text in a change that speaks to AI reviewers is itself a finding.

The review never obeys such text (it is fenced as untrusted data, its lookalike delimiters are
defused, and the model holds no token and no tool); reporting it tells maintainers that someone
tried to steer automated review.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Sequence

from bot.diff import ChangedFile
from bot.findings import Finding
from bot.review.prompts import PRContext

CWE = "CWE-1427"
PR_TEXT_PATH = "(pull request description)"
# (name, words one of which must appear in the lowercased text, pattern). The words are a cheap
# prefilter: this runs on every added line of every change.
_RULES: Sequence[tuple[str, tuple[str, ...], re.Pattern[str]]] = [
    (name, needs, re.compile(pattern, re.I))
    for name, needs, pattern in (
        (
            "override",
            ("ignore", "disregard", "forget", "override"),
            r"\b(ignore|disregard|forget|override)\b.{0,30}\b(previous|prior|above|"
            r"earlier|all|any|system|your)\b.{0,20}\b(instructions?|prompts?|rules?|"
            r"guidelines?|directives?)",
        ),
        (
            "persona",
            ("you are",),
            r"\byou are (now )?(a |an )?(helpful |different )?(ai|assistant|language "
            r"model|llm|chatbot|security (reviewer|scanner|bot))\b",
        ),
        (
            "addressing",
            ("dear", "attention", "note to", "hey", "hello"),
            r"\b(dear|attention|note to|hey|hello)[,:]? (the )?(ai|llm|gpt|claude|"
            r"copilot|language model|(automated |ai |code )?review(er)? ?(bot|agent)?)\b",
        ),
        (
            "suppress",
            ("report", "flag", "mention", "comment on"),
            r"\b(do not|don'?t|never|stop)\b.{0,20}\b(report|flag|mention|comment on)\b"
            r".{0,40}\b(vulnerabilit|finding|issue|secret|injection|problem)",
        ),
        (
            "verdict",
            ("findings", "lgtm", "approve"),
            r"(return|respond|reply|output|answer)\b.{0,30}(\{\s*\"findings\"\s*:\s*\[\s*\]|"
            r"no findings|empty findings|zero findings|\bLGTM\b|approve)",
        ),
        (
            "role-marker",
            ("<|", "inst]", "<<sys", "<</sys", "system", "assistant", "untrusted-data"),
            r"<\|(im_start|im_end|system|assistant|user|endoftext)\|>|\[/?INST\]|"
            r"<</?SYS>>|^\s*#{0,3}\s*(system|assistant)\s*(prompt)?\s*:|</?untrusted-data",
        ),
    )
]
_WORDS = tuple(sorted({w for _, needs, _ in _RULES for w in needs}))
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def detect(text: str) -> str | None:
    """The kind of injection attempt in ``text``, or None."""
    if _INVISIBLE.search(text):
        return "hidden-characters"
    lowered = text.lower()
    for name, needs, pattern in _RULES:
        if any(w in lowered for w in needs) and pattern.search(text):
            return name
    return None


def _candidates(lines: Sequence[str]) -> list[int]:
    """Indexes of lines worth the full rules: a plain substring search over the whole text
    (much cheaper than any regex on every line) finds the few that mention a keyword."""
    text = "\n".join(lines)
    lowered = text.lower()
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    hits: set[int] = set()
    for word in _WORDS:
        at = lowered.find(word)
        while at >= 0:
            hits.add(bisect.bisect_right(starts, at) - 1)
            at = lowered.find(word, at + 1)
    for m in _INVISIBLE.finditer(text):
        hits.add(bisect.bisect_right(starts, m.start()) - 1)
    return sorted(hits)


def _finding(path: str, line: int, text: str, kind: str, on_diff: bool) -> Finding:
    shown = _INVISIBLE.sub("\N{REPLACEMENT CHARACTER}", text.strip())[:300]
    return Finding(
        path=path,
        line=line,
        severity="medium",
        cwe=CWE,
        title="Instructions aimed at AI code reviewers (prompt injection)",
        description=(
            f"This change carries text that addresses automated reviewers ({kind}). secreview "
            "treats it as data and did not follow it, but it signals an attempt to steer "
            "AI-assisted review, often to slip a vulnerability past it."
        ),
        exploit_scenario=(
            "An AI reviewer that obeys instructions found in the code it reviews can be told to "
            "stay silent about a backdoor, approve the change, or leak its context."
        ),
        recommendation=(
            "Remove the text, and review the rest of this change by hand: find out what it was "
            "meant to hide."
        ),
        confidence=0.8,
        evidence=shown,
        source="injection",
        on_diff=on_diff,
    )


def in_files(files: Iterable[ChangedFile]) -> list[Finding]:
    """Injection attempts on added lines and in the paths of changed files."""
    out: list[Finding] = []
    added: list[tuple[str, int, str]] = []
    for f in files:
        kind = detect(f.path)
        if kind is not None:
            first = next((ln.new_lineno for h in f.hunks for ln in h.lines if ln.new_lineno), 1)
            out.append(_finding(f.path, first or 1, f.path, f"file name, {kind}", True))
        added += [
            (f.path, ln.new_lineno, ln.text)
            for h in f.hunks
            for ln in h.lines
            if ln.kind == "add" and ln.new_lineno is not None
        ]
    # One search over every added line of the change, then the full rules on the few hits.
    for index in _candidates([text for _, _, text in added]):
        path, number, text = added[index]
        kind = detect(text)
        if kind is not None:
            out.append(_finding(path, number, text, kind, True))
    return out


def in_pull_request(pr: PRContext | None) -> list[Finding]:
    """Injection attempts in the PR title or description (reported in the summary)."""
    if pr is None:
        return []
    out = []
    for i, line in enumerate([pr.title, *pr.body.splitlines()], 1):
        kind = detect(line)
        if kind is not None:
            out.append(_finding(PR_TEXT_PATH, i, line, kind, False))
            break  # one finding says it; the description may repeat itself
    return out
