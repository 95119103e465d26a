"""Secret detection and placeholder redaction, applied before any text leaves the process."""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from bot.diff import ChangedFile, DiffLine, Hunk
from bot.findings import Finding, Severity
from bot.redact import rules
from bot.redact.pem import find_key_blocks
from bot.redact.rules import PRIVATE_KEY
from bot.redact.values import count_placeholders, placeholder, placeholder_spans

__all__ = [
    "KINDS",
    "Redacted",
    "SecretHit",
    "count_placeholders",
    "redact_files",
    "redact_text",
    "scan_text",
]

KINDS: tuple[str, ...] = (PRIVATE_KEY, *(d.kind for d in rules.DETECTORS))


@dataclass(frozen=True, slots=True)
class SecretHit:
    """One secret found in a text: its kind, where it was, and the placeholder that replaced it.

    ``digest`` is a short sha256 of the value, so equal secrets can be matched without keeping
    the value itself anywhere. ``end_line`` is the last line of a secret that spans several
    lines (a private-key block), None for a one-line secret.
    """

    kind: str
    line: int
    column: int
    placeholder: str
    digest: str
    end_line: int | None = None


@dataclass(frozen=True, slots=True)
class Redacted:
    """A text with its secrets replaced by typed placeholders."""

    text: str
    hits: tuple[SecretHit, ...]


Span = tuple[int, int, str]  # start, end, kind — one redacted stretch of one line


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def _key_hits(
    lines: list[str], candidates: list[int], spans: dict[int, list[Span]]
) -> list[SecretHit]:
    """Claim the spans of every private-key block; one hit per block."""
    hits = []
    for block in find_key_blocks(lines, candidates):
        for i, start, end in block.spans:
            spans.setdefault(i, []).append((start, end, PRIVATE_KEY))
        value = "\n".join(lines[i][start:end] for i, start, end in block.spans)
        end_line = block.last + 1 if block.last != block.first else None
        hits.append(
            SecretHit(
                PRIVATE_KEY, block.first + 1, block.column, placeholder(PRIVATE_KEY),
                _digest(value), end_line,
            )
        )  # fmt: skip
    return hits


# --- one-line detectors -------------------------------------------------------------------------


class _Taken:
    """The claimed spans of one line, disjoint and sorted: overlap checks stay logarithmic even
    on a minified line with thousands of secrets."""

    def __init__(self, spans: list[tuple[int, int]]) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        for start, end in sorted(spans):
            if self.ends and start < self.ends[-1]:
                self.ends[-1] = max(self.ends[-1], end)
            else:
                self.starts.append(start)
                self.ends.append(end)

    def overlaps(self, start: int, end: int) -> bool:
        i = bisect.bisect_left(self.starts, end)  # spans [0, i) start before ``end``
        return i > 0 and self.ends[i - 1] > start

    def add(self, start: int, end: int) -> None:
        i = bisect.bisect_left(self.starts, start)
        self.starts.insert(i, start)
        self.ends.insert(i, end)


def _detect_line(
    line: str, families: frozenset[str], claimed: list[Span]
) -> list[tuple[Span, str]]:
    """New spans on one line (with their values), skipping anything already claimed."""
    taken = _Taken([(s, e) for s, e, _ in claimed] + placeholder_spans(line))
    found: list[tuple[Span, str]] = []
    lowered = line.lower() if "kw" in families else ""
    for detector in rules.detectors_for(families):
        if detector.needs and not _has_any(lowered, detector.needs):
            continue
        for m in detector.pattern.finditer(line):
            group = rules.value_group(m)
            start, end = m.span(group)
            if taken.overlaps(start, end) or not detector.check(m):
                continue
            taken.add(start, end)
            found.append(((start, end, detector.kind), m.group(group)))
    return found


def _has_any(text: str, words: tuple[str, ...]) -> bool:
    # A plain loop: this runs for every candidate line and a generator costs more than the test.
    for word in words:  # noqa: SIM110
        if word in text:
            return True
    return False


def _candidates(text: str) -> dict[int, frozenset[str]]:
    """Line index → families of the prefilter anchors present on that line."""
    found: dict[int, set[str]] = {}
    folded: str | None = None
    for family, anchor, fold in rules.ANCHORS:
        if fold and folded is None:
            folded = text.lower()
        subject = folded if fold and folded is not None else text
        line, last = 0, 0
        for m in anchor.finditer(subject):
            line += subject.count("\n", last, m.start())
            last = m.start()
            found.setdefault(line, set()).add(family)
    return {i: frozenset(f) for i, f in found.items()}


def redact_text(text: str) -> Redacted:
    """Replace each secret in ``text`` with a typed placeholder such as ``[REDACTED:jwt]``."""
    candidates = _candidates(text)
    if not candidates:
        return Redacted(text, ())
    lines = text.split("\n")
    spans: dict[int, list[Span]] = {}
    hits = _key_hits(lines, sorted(i for i, f in candidates.items() if "pkey" in f), spans)
    for i in sorted(candidates):
        for (start, end, kind), value in _detect_line(lines[i], candidates[i], spans.get(i, [])):
            spans.setdefault(i, []).append((start, end, kind))
            hits.append(SecretHit(kind, i + 1, start, placeholder(kind), _digest(value)))
    if not spans:
        return Redacted(text, ())
    for i, line_spans in spans.items():
        lines[i] = _apply(lines[i], line_spans)
    hits.sort(key=lambda h: (h.line, h.column, rules.ORDER.get(h.kind, -1)))
    return Redacted("\n".join(lines), tuple(hits))


def _apply(line: str, spans: list[Span]) -> str:
    pieces, pos = [], 0
    for start, end, kind in sorted(spans):
        pieces += [line[pos:start], placeholder(kind)]
        pos = end
    pieces.append(line[pos:])
    return "".join(pieces)


# --- findings -----------------------------------------------------------------------------------

_META = {d.kind: d for d in rules.DETECTORS}
_KEY_IMPACT = (
    "impersonate the key's owner: decrypt data and traffic encrypted to it, sign code, tokens or "
    "commits, or log in wherever the matching public key is trusted"
)
_EVIDENCE_MAX = 240


def _describe(kind: str) -> tuple[str, str, bool, bool]:
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
    if kind == "url-password":
        return (
            "Change the password on the service the URL points to, and build the URL at run time "
            "from an environment variable or a secret manager instead of a literal. " + purge
        )
    lead = (
        "If this is a real credential, rotate" if kind == "generic-secret" else "Revoke or rotate"
    )
    return (
        f"{lead} this {label} now and treat it as compromised. Load the replacement at run time "
        "from a secret manager (Vault, AWS Secrets Manager, GitHub Actions or Cloudflare "
        f"secrets) or an environment variable, never from a literal in code. {purge}"
    )


def _evidence(line: str, column: int) -> str:
    """The redacted line, cut to a window around the placeholder when the line is very long."""
    text = line.strip()
    if len(text) <= _EVIDENCE_MAX:
        return text
    offset = len(line) - len(line.lstrip())
    start = max(0, min(column - offset - _EVIDENCE_MAX // 3, len(text) - _EVIDENCE_MAX))
    return text[start : start + _EVIDENCE_MAX]


def _article(label: str) -> str:
    return "an" if label[0] in "AEIOU" or label.startswith("npm") else "a"


def _finding(path: str, line: int, kind: str, evidence: str) -> Finding:
    """A secrets finding that names the kind of secret and never its value."""
    label, impact, critical, generic = _describe(kind)
    severity: Severity = "critical" if critical else "high"
    caveat = (
        " It was recognised by its name and randomness (a high-entropy literal assigned to a "
        "secret-looking name), not by a provider format, so check it is not test data."
        if generic
        else ""
    )
    return Finding(
        path=path,
        line=line,
        severity=severity,
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
        confidence=0.7 if generic else 0.9,
        evidence=evidence,
        source="secrets",
    )


def scan_text(path: str, text: str) -> list[Finding]:
    """Secrets findings for a whole file's text (full-repository scan)."""
    redacted = redact_text(text)
    if not redacted.hits:
        return []
    lines = redacted.text.split("\n")
    return [
        _finding(path, hit.line, hit.kind, _evidence(lines[hit.line - 1], hit.column))
        for hit in redacted.hits
    ]


# --- diffs --------------------------------------------------------------------------------------
# The hunks of all files are redacted as one text (one prefilter pass, not thousands): each hunk
# as its @@ section line (git copies a source line there), its lines, then a separator line that
# no private-key block runs through, so a block spans consecutive lines of one hunk only.

_SEPARATOR = "\x00"


def _redact_lines(texts: list[str]) -> tuple[list[str], tuple[SecretHit, ...]]:
    """Redact consecutive lines as one text, so a private-key block is seen whole."""
    if any("\n" in t for t in texts):  # never expected; keep line alignment regardless
        parts = [redact_text(t) for t in texts]
        hits = tuple(
            dataclasses.replace(h, line=i + 1, end_line=None)
            for i, p in enumerate(parts)
            for h in p.hits
        )
        return [p.text for p in parts], hits
    redacted = redact_text("\n".join(texts))
    if not redacted.hits:
        return texts, ()
    return redacted.text.split("\n"), redacted.hits


def _layout(files: Sequence[ChangedFile]) -> tuple[list[str], list[int]]:
    """The joined lines of every hunk, and the index of each hunk's section line in them."""
    texts: list[str] = []
    starts: list[int] = []
    for file in files:
        for hunk in file.hunks:
            starts.append(len(texts))
            texts.append(hunk.section)
            texts.extend(ln.text for ln in hunk.lines)
            texts.append(_SEPARATOR)
    return texts, starts


def _first_added(lines: Sequence[DiffLine], first: int, last: int) -> int | None:
    """Index of the first added line in ``lines[first..last]``; a key block may begin in context."""
    for i in range(max(first, 0), min(last, len(lines) - 1) + 1):
        if lines[i].kind == "add" and lines[i].new_lineno is not None:
            return i
    return None


def _rebuild(
    path: str, hunk: Hunk, texts: list[str], start: int, hits: list[SecretHit]
) -> tuple[Hunk, list[Finding]]:
    """``hunk`` with its redacted texts (its section at ``start``) and its added lines' findings."""
    new = texts[start + 1 : start + 1 + len(hunk.lines)]
    lines = tuple(
        ln if text == ln.text else dataclasses.replace(ln, text=text)
        for ln, text in zip(hunk.lines, new, strict=True)
    )
    findings = []
    for hit in hits:
        first = hit.line - 2 - start  # index into lines; -1 is the section line
        added = _first_added(lines, first, (hit.end_line or hit.line) - 2 - start)
        if added is not None:
            line = lines[added]
            evidence = _evidence(line.text, hit.column if added == first else 0)
            findings.append(_finding(path, line.new_lineno or 0, hit.kind, evidence))
    return dataclasses.replace(hunk, lines=lines, section=texts[start]), findings


def redact_files(files: Sequence[ChangedFile]) -> tuple[list[ChangedFile], list[Finding]]:
    """Redact the lines of each file; each secret on an added line becomes a secrets finding."""
    texts, starts = _layout(files)
    texts, hits = _redact_lines(texts)
    if not hits:
        return list(files), []
    by_hunk: dict[int, list[SecretHit]] = {}
    for hit in hits:
        by_hunk.setdefault(bisect.bisect_right(starts, hit.line - 1) - 1, []).append(hit)
    out: list[ChangedFile] = []
    findings: list[Finding] = []
    k = 0
    for file in files:
        hunks = list(file.hunks)
        for j, hunk in enumerate(file.hunks):
            if k in by_hunk:
                hunks[j], found = _rebuild(file.path, hunk, texts, starts[k], by_hunk[k])
                findings.extend(found)
            k += 1
        changed = any(a is not b for a, b in zip(hunks, file.hunks, strict=True))
        out.append(dataclasses.replace(file, hunks=tuple(hunks)) if changed else file)
    return out, findings
