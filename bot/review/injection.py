"""Prompt-injection detection: text in a change that speaks to AI reviewers is itself a finding.

The review never obeys such text (it is fenced as untrusted data, its lookalike delimiters are
defused, and the model holds no token and no tool); reporting it tells maintainers that someone
tried to steer automated review.

Every pattern here runs on text an outsider wrote (PR title and body, diff lines, file names),
so all of them are compiled by google-re2, whose automaton cannot backtrack: time is linear in
the text whatever it holds. Invisible characters are reported only where they can deceive a
reader of code or prose (source, docs, PR text, file names), and not where a script needs them:
joiners and direction marks beside the letters of Persian, Arabic or Indic text, or in
translation catalogs and data files.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence

import re2

from bot.diff import ChangedFile, clean_text
from bot.findings import Finding
from bot.review.prompts import PRContext

CWE = "CWE-1427"
PR_TEXT_PATH = "(pull request description)"
# (name, words one of which must appear in the lowercased text, pattern). The words are a cheap
# prefilter: this runs on every added line of every change.
_RULES: Sequence[tuple[str, tuple[str, ...], re2._Regexp]] = [
    (name, needs, re2.compile(pattern))
    for name, needs, pattern in (
        (
            "override",
            ("ignore", "disregard", "forget", "override"),
            r"(?i)\b(ignore|disregard|forget|override)\b.{0,30}\b(previous|prior|above|"
            r"earlier|all|any|system|your)\b.{0,20}\b(instructions?|prompts?|rules?|"
            r"guidelines?|directives?)",
        ),
        (
            "persona",
            ("you are",),
            r"(?i)\byou are (now )?(a |an )?(helpful |different )?(ai|assistant|language "
            r"model|llm|chatbot|security (reviewer|scanner|bot))\b",
        ),
        (
            "addressing",
            ("dear", "attention", "note to", "hey", "hello"),
            r"(?i)\b(dear|attention|note to|hey|hello)[,:]? (the )?(ai|llm|gpt|claude|"
            r"copilot|language model|(automated |ai |code )?review(er)? ?(bot|agent)?)\b",
        ),
        (
            "suppress",
            ("report", "flag", "mention", "comment on"),
            r"(?i)\b(do not|don'?t|never|stop)\b.{0,20}\b(report|flag|mention|comment on)\b"
            r".{0,40}\b(vulnerabilit|finding|issue|secret|injection|problem)",
        ),
        (
            "verdict",
            ("findings", "lgtm", "approve"),
            r"(?i)(return|respond|reply|output|answer)\b.{0,30}(\{\s*\"findings\"\s*:\s*\[\s*\]|"
            r"no findings|empty findings|zero findings|\bLGTM\b|\bapprove (it|this|the (pr|pull"
            r" request|change))\b)",
        ),
        (
            "role-marker",
            ("<|", "inst]", "<<sys", "<</sys", "system", "assistant", "untrusted-data"),
            # Chat-template tokens; a Markdown heading naming a role; "System prompt:"; or a
            # capitalised role word opening a line of prose. Not a `system:` key of YAML or a
            # `system: bool = False` parameter: those are lower case and hold no sentence.
            r"(?i:<\|(im_start|im_end|system|assistant|user|endoftext)\|>|\[/?INST\]|"
            r"<</?SYS>>|</?untrusted-data)"
            r"|^\s*(?i:#{2,3}\s*(system|assistant)(\s+prompt)?\s*:?\s*$)"
            r"|^\s*(?i:(#+\s*)?(system|assistant)\s+prompt\s*:)"
            r"|^\s*(#+|//)?\s*(SYSTEM|System|ASSISTANT|Assistant)\s*:\s+[A-Za-z'-]+"
            r"(\s+[A-Za-z'-]+){3}",
        ),
    )
]
_WORDS = tuple(sorted({w for _, needs, _ in _RULES for w in needs}))
# Characters that change what a reader sees without being seen: bidirectional embeddings,
# overrides and isolates (CVE-2021-42574, "Trojan Source"), zero-width spaces and joiners,
# direction marks, invisible operators and a byte-order mark away from the start of a file.
_INVISIBLE_CHARS = "\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff"
_INVISIBLE = re2.compile(f"[{_INVISIBLE_CHARS}]")
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Translation catalogs and data: invisible characters there are the text's own (Persian ZWNJ,
# Arabic and Hebrew direction marks) and reach no reader of code.
_DATA_SUFFIXES = (
    ".po", ".pot", ".mo", ".json", ".csv", ".tsv", ".xlf", ".xliff", ".strings",
    ".stringsdict", ".arb", ".resx", ".ftl", ".properties", ".dic", ".aff", ".svg", ".xml",
)  # fmt: skip
_DATA_DIRS = frozenset({"locale", "locales", "translations", "i18n", "l10n", "lang"})


def _legitimate_invisible(text: str, at: int) -> bool:
    """A joiner, space or mark that sits beside non-ASCII letters: part of the script's text.

    Bidi embeddings and overrides never are (they reorder code itself); a byte-order mark is
    only at the very start.
    """
    char = text[at]
    if char in _BIDI_CONTROLS:
        return False
    if char == "\ufeff":
        return at == 0
    before = text[at - 1] if at > 0 else ""
    after = text[at + 1] if at + 1 < len(text) else ""
    return any(c and not c.isascii() and c.isprintable() for c in (before, after))


def _hidden(text: str) -> bool:
    """Whether ``text`` holds an invisible character that could deceive a reader."""
    return any(not _legitimate_invisible(text, m.start()) for m in _INVISIBLE.finditer(text))


def detect(text: str) -> str | None:
    """The kind of injection attempt in ``text``, or None."""
    text = clean_text(text)  # re2 matches UTF-8: a lone surrogate must not raise
    if _INVISIBLE.search(text) and _hidden(text):
        return "hidden-characters"
    return _detect_text(text)


def is_data_file(path: str) -> bool:
    """Translation catalogs, locale data and data files: their invisible characters belong to
    their text (Django's ``conf/locale/ar/formats.py`` writes dates with right-to-left marks)."""
    lowered = path.lower()
    return lowered.endswith(_DATA_SUFFIXES) or bool(
        _DATA_DIRS.intersection(lowered.split("/")[:-1])
    )


def _candidates(lines: Sequence[str], invisible: Sequence[bool]) -> list[int]:
    """Indexes of lines worth the full rules: a plain substring search over the whole text
    (much cheaper than any regex on every line) finds the few that mention a keyword."""
    text = clean_text("\n".join(lines))  # the same length: surrogates become U+FFFD
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
        index = bisect.bisect_right(starts, m.start()) - 1
        if invisible[index]:
            hits.add(index)
    return sorted(hits)


def _finding(path: str, line: int, text: str, kind: str, on_diff: bool, scan: bool) -> Finding:
    shown = _INVISIBLE.sub("\N{REPLACEMENT CHARACTER}", text.strip())[:300]
    where = "This code carries" if scan else "This change carries"
    rest = "the code around it" if scan else "the rest of this change"
    return Finding(
        path=path,
        line=line,
        severity="medium",
        cwe=CWE,
        title="Instructions aimed at AI code reviewers (prompt injection)",
        description=(
            f"{where} text that addresses automated reviewers ({kind}). secreview "
            "treats it as data and did not follow it, but it signals an attempt to steer "
            "AI-assisted review, often to slip a vulnerability past it."
        ),
        exploit_scenario=(
            "An AI reviewer that obeys instructions found in the code it reviews can be told to "
            "stay silent about a backdoor, approve the change, or leak its context."
        ),
        recommendation=(
            f"Remove the text, and review {rest} by hand: find out what it was meant to hide."
        ),
        confidence=0.8,
        evidence=shown,
        source="injection",
        on_diff=on_diff,
    )


def in_files(files: Iterable[ChangedFile], *, scan: bool = False) -> list[Finding]:
    """Injection attempts on added lines and in the paths of changed files.

    ``scan``: the files are a repository's code, not a change (the wording says so).
    """
    out: list[Finding] = []
    added: list[tuple[str, int, str]] = []
    invisible: list[bool] = []
    for f in files:
        kind = detect(f.path)
        if kind is not None:
            first = next((ln.new_lineno for h in f.hunks for ln in h.lines if ln.new_lineno), 1)
            out.append(_finding(f.path, first or 1, f.path, f"file name, {kind}", True, scan))
        lines = [
            (f.path, ln.new_lineno, ln.text)
            for h in f.hunks
            for ln in h.lines
            if ln.kind == "add" and ln.new_lineno is not None
        ]
        added += lines
        invisible += [not is_data_file(f.path)] * len(lines)
    # One search over every added line of the change, then the full rules on the few hits.
    for index in _candidates([text for _, _, text in added], invisible):
        path, number, text = added[index]
        kind = detect(text) if invisible[index] else _detect_text(text)
        if kind is not None:
            out.append(_finding(path, number, text, kind, True, scan))
    return out


def _detect_text(text: str) -> str | None:
    """The text rules alone (a data file's invisible characters are its own)."""
    lowered = text.lower()
    for name, needs, pattern in _RULES:
        if any(w in lowered for w in needs) and pattern.search(text):
            return name
    return None


def in_pull_request(pr: PRContext | None) -> list[Finding]:
    """Injection attempts in the PR title or description (reported in the summary)."""
    if pr is None:
        return []
    out = []
    for i, line in enumerate([pr.title, *pr.body.splitlines()], 1):
        kind = detect(line)
        if kind is not None:
            out.append(_finding(PR_TEXT_PATH, i, line, kind, False, False))
            break  # one finding says it; the description may repeat itself
    return out
