"""Secret detection and placeholder redaction, applied before any text leaves the process.

``redact_text`` finds every secret in a text (one RE2 prefilter pass over the whole text, then
each detector once over the lines its family flagged) and replaces it with a typed placeholder.
Lines marked ``gitleaks:allow`` or ``pragma: allowlist secret`` are still redacted (the value
never leaves) but not reported; ``Redacted.allowed`` counts them.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from bot.diff import ChangedFile, DiffLine, Hunk
from bot.findings import Finding
from bot.redact import rules
from bot.redact.detector import Detector, value_group, value_span
from bot.redact.linear import Match, group
from bot.redact.linear import compile as _rx
from bot.redact.pem import find_key_blocks
from bot.redact.report import evidence as _evidence
from bot.redact.report import finding as _finding
from bot.redact.rules import PRIVATE_KEY
from bot.redact.values import (
    count_placeholders,
    is_reference,
    placeholder,
    placeholder_spans,
    plausible_secret,
)

__all__ = [
    "KINDS",
    "Redacted",
    "SecretHit",
    "confident_kind",
    "count_placeholders",
    "detect",
    "redact_files",
    "redact_text",
    "redact_with_values",
    "scan_text",
]

KINDS: tuple[str, ...] = (PRIVATE_KEY, *dict.fromkeys(d.kind for d in rules.DETECTORS))
ALLOW_MARKERS = ("gitleaks:allow", "pragma: allowlist secret")
_ALLOW_NEXT = "pragma: allowlist nextline secret"


@dataclass(frozen=True, slots=True)
class SecretHit:
    """One secret found in a text: its kind, where it was, and the placeholder that replaced it.

    ``digest`` is a short sha256 of the value, so equal secrets can be matched without keeping
    the value itself anywhere. ``end_line`` is the last line of a secret that spans several
    lines (a private-key block), None for a one-line secret. ``allowed`` marks a hit on a line
    its author marked with an allow comment: redacted, not reported.
    """

    kind: str
    line: int
    column: int
    placeholder: str
    digest: str
    end_line: int | None = None
    allowed: bool = False


@dataclass(frozen=True, slots=True)
class Redacted:
    """A text with its secrets replaced by typed placeholders."""

    text: str
    hits: tuple[SecretHit, ...]

    @property
    def reported(self) -> tuple[SecretHit, ...]:
        """The hits to report (not on an allow-commented line)."""
        return tuple(h for h in self.hits if not h.allowed)

    @property
    def allowed(self) -> int:
        """How many secrets sat on allow-commented lines."""
        return sum(1 for h in self.hits if h.allowed)


Span = tuple[int, int, str]  # start, end, kind — one redacted stretch of one line
Found = tuple[SecretHit, str]  # a hit and its value (values stay in memory, never in a result)


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def _allowed(lines: list[str], i: int) -> bool:
    line = lines[i]
    if any(marker in line for marker in ALLOW_MARKERS):
        return True
    return i > 0 and _ALLOW_NEXT in lines[i - 1]


def _key_hits(lines: list[str], candidates: list[int], spans: dict[int, list[Span]]) -> list[Found]:
    """Claim the spans of every private-key block; one hit per block."""
    hits: list[Found] = []
    for block in find_key_blocks(lines, candidates):
        for i, start, end in block.spans:
            spans.setdefault(i, []).append((start, end, PRIVATE_KEY))
        value = "\n".join(lines[i][start:end] for i, start, end in block.spans)
        end_line = block.last + 1 if block.last != block.first else None
        allowed = _allowed(lines, block.first)
        hit = SecretHit(
            PRIVATE_KEY, block.first + 1, block.column, placeholder(PRIVATE_KEY),
            _digest(value), end_line, allowed,
        )  # fmt: skip
        hits.append((hit, value))
    return hits


# --- a name on one line, its value on the next ----------------------------------------------------

# Kubernetes and compose env entries ("- name: DB_PASSWORD" then "value: ..."), and YAML block
# scalars ("password: |" then the value, indented, on the next line).
_ENV_NAME = _rx(r"""^[ \t]*-?[ \t]*name[ \t]*:[ \t]*["']?(?P<name>[\w.-]{1,80})["']?[ \t]*$""")
_ENV_VALUE = _rx(
    r"""^[ \t]*value[ \t]*:[ \t]*"""
    r"""(?:"(?P<dq>[^"]{6,})"|'(?P<sq>[^']{6,})'|(?P<b>[^\s"'#|>][^\s#]*))[ \t]*$"""
)
_BLOCK_NAME = _rx(
    r"""^[ \t]*-?[ \t]*["']?(?P<name>[\w.-]{1,80})["']?[ \t]*:[ \t]*[|>][-+]?[ \t]*$"""
)
_BLOCK_VALUE = _rx(r"^[ \t]+(?P<b>\S+)[ \t]*$")
# Terraform: variable "db_password" { ... default = "..." ... } within a few lines.
_TF_VARIABLE = _rx(r"""^[ \t]*variable[ \t]+"(?P<name>[\w.-]{1,80})"[ \t]*\{[ \t]*$""")
_TF_DEFAULT = _rx(r"""^[ \t]*default[ \t]*=[ \t]*"(?P<dq>[^"]{6,})"[ \t]*$""")
_TF_LOOKAHEAD = 6
_BLOCK_INDICATORS = ("|", ">", "|-", "|+", ">-", ">+")
_NEXT_LINE_MAX = 400
GENERIC = "generic-secret"


def _value_below(lines: list[str], i: int) -> tuple[Match, int, Match | None] | None:
    """For a name on line ``i`` whose value sits below it: the name's match, the value's line
    and the value's match (None when that line holds no value); None for any other line.

    Plain substring tests come first: this runs on every keyword line, and most are none of
    these forms."""
    line = lines[i]
    if "name" in line and (named := _ENV_NAME.match(line)):
        return named, i + 1, _ENV_VALUE.match(lines[i + 1])
    if line.rstrip().endswith(_BLOCK_INDICATORS) and (named := _BLOCK_NAME.match(line)):
        return named, i + 1, _BLOCK_VALUE.match(lines[i + 1])
    if "variable" in line and (named := _TF_VARIABLE.match(line)):
        for j in range(i + 1, min(len(lines), i + 1 + _TF_LOOKAHEAD)):
            if len(lines[j]) > _NEXT_LINE_MAX or lines[j].strip() == "}":
                break
            if valued := _TF_DEFAULT.match(lines[j]):
                return named, j, valued
    return None


def _next_line_hits(
    lines: list[str], candidates: list[int], spans: dict[int, list[Span]]
) -> list[Found]:
    """Secrets whose secret-like name is on a keyword line and whose value is on the next line
    (or, in a Terraform variable block, a few lines below)."""
    hits: list[Found] = []
    for i in candidates:
        if i + 1 >= len(lines) or len(lines[i]) > _NEXT_LINE_MAX:
            continue
        below = _value_below(lines, i)
        if below is None:
            continue
        named, where, valued = below
        if valued is None or len(lines[where]) > _NEXT_LINE_MAX:
            continue
        if not rules.secret_like(group(named, "name") or ""):
            continue
        start, end = value_span(valued)
        value = lines[where][start:end]
        if is_reference(value) or not plausible_secret(value, bare=value_group(valued) == "b"):
            continue  # an interpolation (the value is elsewhere), or not a secret
        spans.setdefault(where, []).append((start, end, GENERIC))
        hit = SecretHit(
            GENERIC, where + 1, start, placeholder(GENERIC), _digest(value),
            allowed=_allowed(lines, where),
        )  # fmt: skip
        hits.append((hit, value))
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


def confident_kind(text: str) -> str | None:
    """The kind of the first high-confidence secret in ``text`` (the egress guard's detectors:
    provider formats and private keys, never name-based guesses), or None."""
    candidates = _candidates(text, keywords=False)
    if not candidates:
        return None
    lines = text.split("\n")
    if "pkey" in candidates and find_key_blocks(lines, candidates["pkey"]):
        return PRIVATE_KEY
    joined: dict[str, _Lines] = {}
    for detector in rules.detectors_for(frozenset(candidates)):
        if not detector.confident:
            continue
        if detector.family not in joined:
            joined[detector.family] = _Lines(lines, candidates[detector.family])
        for m in detector.pattern.finditer(joined[detector.family].text):
            if detector.accepts(m) is not None:
                return detector.kind
    return None


def _candidates(text: str, *, keywords: bool = True) -> dict[str, list[int]]:
    """Family → ascending indexes of the lines where one of its anchors occurs (two RE2 passes
    over the UTF-8 bytes: only line numbers are needed, and bytes keep a newline a newline)."""
    data = text.encode("utf-8", "surrogatepass")
    found: dict[str, set[int]] = {}
    for line, index in rules.PREFILTER.lines(data):
        found.setdefault(rules.FAMILIES[index - 1], set()).add(line)
    keyword_lines = [line for line, _ in rules.KEYWORDS.lines(data, once=True)] if keywords else []
    if keyword_lines:
        found["kw"] = set(keyword_lines)
    return {family: sorted(lines) for family, lines in found.items()}


class _Lines:
    """The candidate lines of one family joined into one text, so each of its detectors reads
    them in one call (RE2 calls cost tens of microseconds each: per line, that adds up)."""

    def __init__(self, lines: list[str], indexes: list[int]) -> None:
        self.indexes = indexes
        self.starts: list[int] = []
        pos = 0
        for i in indexes:
            self.starts.append(pos)
            pos += len(lines[i]) + 1
        self.text = "\n".join(lines[i] for i in indexes)

    def locate(self, offset: int) -> tuple[int, int]:
        """(line index, column) of an offset in the joined text."""
        k = bisect.bisect_right(self.starts, offset) - 1
        return self.indexes[k], offset - self.starts[k]


def _run(
    detector: Detector, joined: _Lines, taken: dict[int, _Taken], lines: list[str]
) -> list[tuple[int, int, int, str]]:
    """(line, start, end, value) of each new claim of ``detector`` on its family's lines."""
    out = []
    for m in detector.pattern.finditer(joined.text):
        found = detector.accepts(m)
        if found is None:
            continue
        start, end = found
        i, column = joined.locate(start)
        claims = taken.get(i)
        if claims is None:
            claims = taken[i] = _Taken(placeholder_spans(lines[i]))
        if claims.overlaps(column, column + end - start):
            continue
        claims.add(column, column + end - start)
        out.append((i, column, column + end - start, joined.text[start:end]))
    return out


def detect(text: str) -> tuple[list[str], dict[int, list[Span]], list[Found]]:
    """The lines of ``text``, the spans to redact on each, and each hit with its value."""
    candidates = _candidates(text)
    lines = text.split("\n")
    if not candidates:
        return lines, {}, []
    spans: dict[int, list[Span]] = {}
    found = _key_hits(lines, candidates.get("pkey", []), spans)
    found += _next_line_hits(lines, candidates.get("kw", []), spans)
    taken = {
        i: _Taken([(s, e) for s, e, _ in sp] + placeholder_spans(lines[i]))
        for i, sp in spans.items()
    }
    joined: dict[str, _Lines] = {}
    allow: dict[int, bool] = {}
    for detector in rules.detectors_for(frozenset(candidates)):
        if detector.family not in joined:
            joined[detector.family] = _Lines(lines, candidates[detector.family])
        for i, start, end, value in _run(detector, joined[detector.family], taken, lines):
            spans.setdefault(i, []).append((start, end, detector.kind))
            if i not in allow:  # once per line: a minified line may hold thousands of hits
                allow[i] = _allowed(lines, i)
            hit = SecretHit(
                detector.kind, i + 1, start, placeholder(detector.kind), _digest(value),
                allowed=allow[i],
            )  # fmt: skip
            found.append((hit, value))
    found.sort(key=lambda f: (f[0].line, f[0].column, rules.ORDER.get(f[0].kind, -1)))
    return lines, spans, found


def redact_text(text: str) -> Redacted:
    """Replace each secret in ``text`` with a typed placeholder such as ``[REDACTED:jwt]``."""
    lines, spans, found = detect(text)
    if not spans:
        return Redacted(text, ())
    for i, line_spans in spans.items():
        lines[i] = _apply(lines[i], line_spans)
    return Redacted("\n".join(lines), tuple(hit for hit, _ in found))


def redact_with_values(text: str) -> tuple[Redacted, list[tuple[str, str]]]:
    """``redact_text`` plus the (kind, value) of each secret, for a run's other occurrences."""
    lines, spans, found = detect(text)
    if not spans:
        return Redacted(text, ()), []
    redacted = Redacted(_joined(lines, spans), tuple(hit for hit, _ in found))
    return redacted, [(hit.kind, value) for hit, value in found]


def _apply(line: str, spans: list[Span]) -> str:
    pieces, pos = [], 0
    for start, end, kind in sorted(spans):
        pieces += [line[pos:start], placeholder(kind)]
        pos = end
    pieces.append(line[pos:])
    return "".join(pieces)


def scan_text(path: str, text: str) -> list[Finding]:
    """Secrets findings for a whole file's text (full-repository scan; allowed lines excluded)."""
    redacted = redact_text(text)
    if not redacted.hits:
        return []
    lines = redacted.text.split("\n")
    return [
        _finding(path, hit.line, hit.kind, _evidence(lines[hit.line - 1], hit.column))
        for hit in redacted.reported
    ]


# --- diffs --------------------------------------------------------------------------------------
# The hunks of all files are redacted as one text (one prefilter pass, not thousands): each hunk
# as its @@ section line (git copies a source line there), its lines, then a separator line that
# no private-key block runs through, so a block spans consecutive lines of one hunk only.

_SEPARATOR = "\x00"


@dataclass(frozen=True, slots=True)
class DiffRedaction:
    """Redacted files, their secrets findings, the allow-commented count, and (kind, value) of
    every secret found: the values are for the run's redaction of other occurrences only."""

    files: list[ChangedFile]
    findings: list[Finding]
    allowed: int
    values: list[tuple[str, str]]


def _redact_lines(texts: list[str]) -> tuple[list[str], list[Found]]:
    """Redact consecutive lines as one text, so a private-key block is seen whole."""
    if any("\n" in t for t in texts):  # never expected; keep line alignment regardless
        out, found = [], []
        for i, t in enumerate(texts):
            lines, spans, hits = detect(t)
            out.append(_joined(lines, spans))
            found += [(dataclasses.replace(h, line=i + 1, end_line=None), v) for h, v in hits]
        return out, found
    lines, spans, found = detect("\n".join(texts))
    if not spans:
        return texts, []
    return _joined(lines, spans).split("\n"), found


def _joined(lines: list[str], spans: dict[int, list[Span]]) -> str:
    for i, line_spans in spans.items():
        lines[i] = _apply(lines[i], line_spans)
    return "\n".join(lines)


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
) -> tuple[Hunk, list[Finding], int]:
    """``hunk`` with its redacted texts (its section at ``start``), its added lines' findings,
    and how many of its added-line secrets were allow-commented."""
    new = texts[start + 1 : start + 1 + len(hunk.lines)]
    lines = tuple(
        ln if text == ln.text else dataclasses.replace(ln, text=text)
        for ln, text in zip(hunk.lines, new, strict=True)
    )
    findings = []
    allowed = 0
    for hit in hits:
        first = hit.line - 2 - start  # index into lines; -1 is the section line
        added = _first_added(lines, first, (hit.end_line or hit.line) - 2 - start)
        if added is None:
            continue
        if hit.allowed:
            allowed += 1
            continue
        line = lines[added]
        evidence = _evidence(line.text, hit.column if added == first else 0)
        findings.append(_finding(path, line.new_lineno or 0, hit.kind, evidence))
    return dataclasses.replace(hunk, lines=lines, section=texts[start]), findings, allowed


def redact_diff(files: Sequence[ChangedFile]) -> DiffRedaction:
    """Redact the lines of each file; each secret on an added line becomes a secrets finding."""
    texts, starts = _layout(files)
    texts, found = _redact_lines(texts)
    if not found:
        return DiffRedaction(list(files), [], 0, [])
    by_hunk: dict[int, list[SecretHit]] = {}
    for hit, _ in found:
        by_hunk.setdefault(bisect.bisect_right(starts, hit.line - 1) - 1, []).append(hit)
    out: list[ChangedFile] = []
    findings: list[Finding] = []
    allowed = k = 0
    for file in files:
        hunks = list(file.hunks)
        for j, hunk in enumerate(file.hunks):
            if k in by_hunk:
                hunks[j], found_here, allowed_here = _rebuild(
                    file.path, hunk, texts, starts[k], by_hunk[k]
                )
                findings.extend(found_here)
                allowed += allowed_here
            k += 1
        changed = any(a is not b for a, b in zip(hunks, file.hunks, strict=True))
        out.append(dataclasses.replace(file, hunks=tuple(hunks)) if changed else file)
    return DiffRedaction(out, findings, allowed, [(h.kind, v) for h, v in found])


def redact_files(files: Sequence[ChangedFile]) -> tuple[list[ChangedFile], list[Finding]]:
    """Redact the lines of each file; each secret on an added line becomes a secrets finding."""
    done = redact_diff(files)
    return done.files, done.findings
