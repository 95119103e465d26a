"""Model findings as values: schema validation, evidence check, placement, fingerprints, gate."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.resources
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast

from bot.diff import ChangedFile, ReviewUnit, Side, Skip, line_map
from bot.errors import InvalidModelOutput

if TYPE_CHECKING:  # jsonschema is imported when a model answer is first validated, not before
    import jsonschema
    from jsonschema.exceptions import ValidationError

Severity = Literal["critical", "high", "medium", "low"]
SEVERITIES: tuple[Severity, ...] = ("critical", "high", "medium", "low")
SEVERITY_RANK: Mapping[str, int] = {"critical": 4, "high": 3, "medium": 2, "low": 1}
Source = Literal["model", "secrets", "bandit", "injection"]

PATH_NOT_IN_UNIT = "path not in reviewed unit"
EVIDENCE_NOT_FOUND = "evidence not found in diff"
BELOW_THRESHOLD = "below confidence threshold"

# Partial-line citations shorter than this could match almost anywhere ("=", "x"), so a
# fragment must be this long unless it is a whole line.
_MIN_FRAGMENT = 6
_FENCED = re.compile(r"\A```[ \t]*(?:json)?[ \t]*\n(?P<body>.*)\n[ \t]*```\Z", re.DOTALL | re.I)
_WHITESPACE = re.compile(r"\s+")
# The report's field order: the model-output fields of DESIGN.md §3 first, then ours.
_JSON_FIELDS = (
    "path", "line", "start_line", "severity", "cwe", "title", "description", "exploit_scenario",
    "recommendation", "confidence", "evidence", "suggestion", "fingerprint", "source", "rule",
    "on_diff", "side", "unit", "corroborated_by",
)  # fmt: skip
# Deterministic analyzers whose finding on a line the model also reports becomes corroboration
# of the model's finding (the injection detector reports text, not code: never merged).
_CORROBORATING = frozenset({"bandit", "secrets"})


@dataclass(frozen=True, slots=True)
class Finding:
    """One security finding placed on the new file; ``on_diff``: it can be commented inline."""

    path: str
    line: int
    severity: Severity
    cwe: str
    title: str
    description: str
    exploit_scenario: str
    recommendation: str
    confidence: float
    evidence: str
    start_line: int | None = None
    suggestion: str | None = None
    source: Source = "model"
    fingerprint: str = ""
    side: Side = "RIGHT"
    on_diff: bool = True
    unit: str | None = None
    rule: str | None = None  # an analyzer's own rule id (bandit's "B602"); None for the model
    # Analyzers that found the same weakness on the same line ("bandit B602"): the model's
    # explanation is kept and they are listed here.
    corroborated_by: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """The DESIGN.md §3 report shape of this finding (model-output fields first)."""
        out = {name: getattr(self, name) for name in _JSON_FIELDS}
        out["corroborated_by"] = list(self.corroborated_by)
        return out


@dataclass(frozen=True, slots=True)
class Rejection:
    """A candidate finding that was dropped, and why (counted in the summary, never silent)."""

    unit: str
    reason: str
    title: str = ""
    path: str = ""


@dataclass(frozen=True, slots=True)
class Stats:
    """Model usage of one review or scan."""

    requests: int = 0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    secrets_allowed: int = 0  # secrets on allow-commented lines: redacted, not reported

    @property
    def cached_share(self) -> float:
        """Cached prompt tokens as a fraction of all prompt tokens."""
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else 0.0


@dataclass(frozen=True, slots=True)
class Reused:
    """A file whose result was carried over from an earlier review of the same patch."""

    path: str
    from_head: str


@dataclass(frozen=True, slots=True)
class Coverage:
    """What was reviewed, reused, skipped and failed, with reasons; which model judged what.

    ``reviewed``: files the model answered for in this run; ``reused``: files whose unchanged
    patch kept an earlier answer; ``failed``: files the model was asked about but never
    answered for (so not reviewed); ``models``: path → the model whose answer was used;
    ``narrowed``: reviewed files the model was sent only the changes of since the last review.
    """

    reviewed: tuple[str, ...] = ()
    skipped: tuple[Skip, ...] = ()
    reused: tuple[Reused, ...] = ()
    failed: tuple[Skip, ...] = ()
    models: dict[str, str] = field(default_factory=dict)
    narrowed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ReviewResult:
    """Everything a report needs: findings, usage, coverage, and what was dropped."""

    findings: tuple[Finding, ...]
    stats: Stats = field(default_factory=Stats)
    coverage: Coverage = field(default_factory=Coverage)
    rejected: tuple[Rejection, ...] = ()
    failed_units: tuple[Skip, ...] = ()
    model: str | None = None


# --- schema validation -------------------------------------------------------------------


@functools.cache
def _validator() -> jsonschema.protocols.Validator:
    import jsonschema

    text = (importlib.resources.files("prompts") / "findings.schema.json").read_text("utf-8")
    schema = json.loads(text)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)


def _unfence(content: str) -> str:
    """The text inside one surrounding ```json fence, or the stripped text if it has none."""
    text = content.strip()
    if not text.startswith("```"):
        return text
    match = _FENCED.match(text)
    if match is None:
        raise InvalidModelOutput("not JSON: unterminated or malformed code fence")
    return match.group("body")


def _where(error: ValidationError) -> str:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    return f"${path}"


def _describe(error: ValidationError) -> str:
    """A short message for one schema error that never quotes a large part of the output."""
    if error.validator == "type":
        got = type(error.instance).__name__
        return f"{_where(error)}: expected {error.validator_value}, got {got}"
    message = error.message if len(error.message) <= 160 else error.message[:157] + "..."
    return f"{_where(error)}: {message}"


_FIRST = {"type": 0, "required": 1}  # at one location, name the most basic problem first


def _path_key(error: ValidationError) -> tuple[tuple[tuple[int, int | str], ...], int]:
    path = tuple((0, p) if isinstance(p, int) else (1, str(p)) for p in error.absolute_path)
    return path, _FIRST.get(str(error.validator), 2)


def parse_model_output(content: str) -> list[dict[str, Any]]:
    """Validate raw model output against prompts/findings.schema.json; InvalidModelOutput if not."""
    text = _unfence(content)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidModelOutput(f"not JSON: {exc.msg} at line {exc.lineno}") from None
    except (ValueError, RecursionError) as exc:
        # Pathological answers: nesting deeper than the parser's stack, integers longer than
        # Python converts. Garbage from the model is invalid output, never a crash.
        raise InvalidModelOutput(f"not usable JSON: {type(exc).__name__}") from None
    try:
        errors = sorted(_validator().iter_errors(data), key=_path_key)
    except RecursionError:
        raise InvalidModelOutput("schema: nested too deeply") from None
    if errors:
        raise InvalidModelOutput(f"schema: {_describe(errors[0])}")
    return list(data["findings"])


# --- fingerprints ------------------------------------------------------------------------


def _normalize_line(text: str) -> str:
    squashed = _WHITESPACE.sub(" ", text).strip()
    if squashed[:1] in ("+", "-"):
        squashed = squashed[1:].lstrip()
    return squashed


def normalize_evidence(text: str) -> str:
    """Evidence as one line: whitespace runs collapsed, diff markers the model copied dropped."""
    lines = (_normalize_line(ln) for ln in text.splitlines())
    return " ".join(ln for ln in lines if ln)


def fingerprint(cwe: str, path: str, evidence: str, occurrence: int = 0) -> str:
    """A stable id that survives code moving within the file: CWE + path + normalized evidence,
    and for the k-th place in the file with the same evidence (k > 0), that ordinal.

    The first occurrence keeps the plain digest, so fingerprints already posted or suppressed
    stay valid; a second identical line is a second finding with its own id.
    """
    parts = [cwe.strip().upper(), path, normalize_evidence(evidence)]
    if occurrence:
        parts.append(f"#{occurrence}")
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()[:16]


# --- placement ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Match:
    first: int
    last: int
    text: str  # the matched new-file lines, verbatim


def _runs(unit: ReviewUnit, path: str) -> list[list[tuple[int, str]]]:
    """The unit's new-side lines of ``path`` as runs of consecutive new-file line numbers."""
    lines: dict[int, str] = {}
    for seg in unit.segments:
        if seg.path != path:
            continue
        for hunk in seg.hunks:
            for ln in hunk.lines:
                if ln.new_lineno is not None:
                    lines[ln.new_lineno] = ln.text
    runs: list[list[tuple[int, str]]] = []
    for number in sorted(lines):
        if not runs or runs[-1][-1][0] != number - 1:
            runs.append([])
        runs[-1].append((number, lines[number]))
    return runs


def _cites(ev: tuple[str, ...], line: str, how: str) -> bool:
    """Whether one evidence line (in any of its variants) cites ``line`` whole or ``how``-partly."""
    for variant in ev:
        if variant == line:
            return True
        if len(variant) < _MIN_FRAGMENT:
            continue
        if (how == "in" and variant in line) or (how == "end" and line.endswith(variant)):
            return True
        if how == "start" and line.startswith(variant):
            return True
    return False


def _window_matches(evidence: Sequence[tuple[str, ...]], window: Sequence[str]) -> bool:
    """Whether ``evidence`` lines are a contiguous citation of ``window`` (ends may be partial)."""
    if len(evidence) == 1:
        return _cites(evidence[0], window[0], "in")
    middle = all(
        _cites(ev, ln, "whole") for ev, ln in zip(evidence[1:-1], window[1:-1], strict=True)
    )
    return (
        middle
        and _cites(evidence[0], window[0], "end")
        and _cites(evidence[-1], window[-1], "start")
    )


def _variants(line: str) -> tuple[str, ...]:
    """An evidence line as written and without a copied diff marker (YAML's "- " is real code)."""
    squashed = _WHITESPACE.sub(" ", line).strip()
    stripped = _normalize_line(line)
    return (squashed,) if stripped == squashed else (squashed, stripped)


def _find_evidence(evidence: str, runs: Sequence[Sequence[tuple[int, str]]]) -> list[_Match]:
    """Every place the evidence lines occur as consecutive non-blank new-side lines."""
    wanted = [_variants(ln) for ln in evidence.splitlines() if _normalize_line(ln)]
    if not wanted:
        return []
    matches = []
    for run in runs:
        # Blank lines are transparent: models drop them when citing code.
        kept = [(no, _WHITESPACE.sub(" ", text).strip()) for no, text in run]
        kept = [(no, norm) for no, norm in kept if norm]
        norms = [norm for _, norm in kept]
        for i in range(len(kept) - len(wanted) + 1):
            if _window_matches(wanted, norms[i : i + len(wanted)]):
                first, last = kept[i][0], kept[i + len(wanted) - 1][0]
                text = "\n".join(t for no, t in run if first <= no <= last)
                matches.append(_Match(first, last, text))
    return matches


def _best(matches: Sequence[_Match], start: int, line: int) -> _Match:
    """The match overlapping the model's lines, else the nearest one, else the earliest."""

    def distance(m: _Match) -> int:
        if m.last < start:
            return start - m.last
        if m.first > line:
            return m.first - line
        return 0

    return min(matches, key=lambda m: (distance(m), m.first))


def _anchor(match: _Match, start: int, line: int, known: set[int]) -> tuple[int | None, int]:
    """(start_line, line): the model's range if it holds the match, else the matched lines.

    The model's range counts only if every line of it is shown in the unit: a range across a
    gap between hunks could not be commented as a whole, and collapsing it onto ``line`` would
    put the comment away from the cited code.
    """
    holds = start <= match.first and match.last <= line
    if holds and line - start < 500 and all(n in known for n in range(start, line + 1)):
        return (start if start != line else None), line
    return (match.first if match.first != match.last else None), match.last


def _commentable(
    file: ChangedFile | None, line: int, start_line: int | None
) -> tuple[bool, int | None]:
    """(on_diff, start_line): a range across hunks becomes a one-line comment rather than a 422."""
    if file is None:
        return False, start_line
    lines = line_map(file)
    if not lines.can_comment(line, "RIGHT"):
        return False, start_line
    if start_line is not None and not lines.can_comment(line, "RIGHT", start_line):
        return True, None
    return True, start_line


def _place_one(
    raw: Mapping[str, Any],
    unit: ReviewUnit,
    files: Mapping[str, ChangedFile],
    source: Source,
) -> Finding | str:
    """A placed Finding, or the reason it was rejected."""
    path = str(raw["path"])
    if path not in unit.paths:
        return PATH_NOT_IN_UNIT
    runs = _runs(unit, path)
    claimed_line = int(raw["line"])
    claimed_start = int(raw["start_line"]) if raw.get("start_line") is not None else None
    start = min(claimed_start or claimed_line, claimed_line)
    matches = _find_evidence(str(raw["evidence"]), runs)
    if not matches:
        return EVIDENCE_NOT_FOUND
    match = _best(matches, start, claimed_line)
    known = {no for run in runs for no, _ in run}
    start_line, line = _anchor(match, start, claimed_line, known)
    on_diff, start_line = _commentable(files.get(path), line, start_line)
    # A suggestion replaces exactly the commented lines: keep it only where those are the
    # lines the model wrote it for, or applying it would corrupt the file.
    same_range = (start_line or line, line) == (claimed_start or claimed_line, claimed_line)
    suggestion = raw.get("suggestion") if on_diff and same_range else None
    cwe = str(raw["cwe"]).strip().upper()
    return Finding(
        path=path,
        line=line,
        start_line=start_line,
        severity=cast(Severity, str(raw["severity"]).strip().lower()),
        cwe=cwe,
        title=str(raw["title"]).strip(),
        description=str(raw["description"]).strip(),
        exploit_scenario=str(raw["exploit_scenario"]).strip(),
        recommendation=str(raw["recommendation"]).strip(),
        confidence=float(raw["confidence"]),
        evidence=match.text,
        suggestion=str(suggestion) if suggestion is not None else None,
        source=source,
        fingerprint=fingerprint(cwe, path, match.text),
        side="RIGHT",
        on_diff=on_diff,
        unit=unit.id,
    )


def place_findings(
    raw: Sequence[Mapping[str, Any]],
    unit: ReviewUnit,
    files: Mapping[str, ChangedFile],
    source: Source = "model",
    *,
    confidence_floor: float = 0.0,
) -> tuple[list[Finding], list[Rejection]]:
    """Check each raw finding's evidence against the unit's new-file lines and place it.

    The evidence must occur on the new side of the file within the unit; line numbers are
    re-anchored to where it does occur. ``evidence`` becomes the verbatim diff lines that were
    matched, and the fingerprint is computed over them.
    """
    placed: list[Finding] = []
    rejected: list[Rejection] = []
    for item in raw:
        outcome = _place_one(item, unit, files, source)
        if isinstance(outcome, Finding) and outcome.confidence < confidence_floor:
            outcome = BELOW_THRESHOLD
        if isinstance(outcome, Finding):
            placed.append(outcome)
        else:
            title, path = str(item.get("title", "")), str(item.get("path", ""))
            rejected.append(Rejection(unit.id, outcome, title=title, path=path))
    return placed, rejected


# --- dedupe and gate ---------------------------------------------------------------------


def _order(f: Finding) -> tuple[int, str, int, str, str]:
    return (-SEVERITY_RANK[f.severity], f.path, f.line, f.cwe, f.fingerprint)


# Child weaknesses that name the same flaw as their parent, for telling whether two findings at
# one place are one: bandit's B308 calls a ``mark_safe`` call CWE-79 and its B703 calls the same
# call CWE-80; a model may say CWE-77 where bandit says CWE-78. Each finding keeps its own CWE.
_CWE_FAMILY = {
    "CWE-80": "CWE-79",
    "CWE-83": "CWE-79",
    "CWE-87": "CWE-79",
    "CWE-564": "CWE-89",
    "CWE-77": "CWE-78",
    "CWE-95": "CWE-94",
    "CWE-23": "CWE-22",
    "CWE-36": "CWE-22",
}


def cwe_family(cwe: str) -> str:
    """``cwe`` normalized, or its parent when it is a child that names the same flaw."""
    c = cwe.strip().upper()
    return _CWE_FAMILY.get(c, c)


def dedupe(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per place, stably sorted; every distinct place keeps its own finding.

    An analyzer finding on a line the model reports with the same CWE (or one of its family)
    becomes corroboration of the model's finding (whose explanation is kept). Findings with the
    same CWE family, path, evidence and line are one (the most severe, then the most confident;
    another rule's finding there is named as corroboration); the same evidence on other lines
    gets its occurrence ordinal in its fingerprint (:func:`fingerprint`).
    """
    merged = _corroborate(list(findings))
    groups: dict[tuple[str, str, str], dict[int, Finding]] = {}
    for f in merged:
        key = (cwe_family(f.cwe), f.path, normalize_evidence(f.evidence))
        places = groups.setdefault(key, {})
        kept = places.get(f.line)
        if kept is None:
            places[f.line] = f
        elif _preference(f) < _preference(kept):
            places[f.line] = _also_found(f, kept)
        else:
            places[f.line] = _also_found(kept, f)
    out = []
    for (_, path, _), places in groups.items():
        for k, line in enumerate(sorted(places)):
            f = places[line]
            if k or not f.fingerprint:
                own = f.cwe.strip().upper()
                f = dataclasses.replace(f, fingerprint=fingerprint(own, path, f.evidence, k))
            out.append(f)
    return sorted(out, key=_order)


def _also_found(kept: Finding, other: Finding) -> Finding:
    """``kept``, naming ``other`` (the same flaw at the same place) as corroboration when another
    analyzer rule found it."""
    if other.source == "model" or (other.source, other.rule) == (kept.source, kept.rule):
        return kept
    name = f"{other.source} {other.rule}" if other.rule else other.source
    if name in kept.corroborated_by:
        return kept
    return dataclasses.replace(kept, corroborated_by=(*kept.corroborated_by, name))


def _corroborate(findings: list[Finding]) -> list[Finding]:
    """Fold analyzer findings into the model finding that covers their line with their CWE."""
    model: dict[tuple[str, str], list[int]] = {}
    for i, f in enumerate(findings):
        if f.source == "model":
            model.setdefault((f.path, cwe_family(f.cwe)), []).append(i)
    if not model:
        return findings
    out = list(findings)
    dropped: set[int] = set()
    for i, f in enumerate(findings):
        if f.source not in _CORROBORATING:
            continue
        for j in model.get((f.path, cwe_family(f.cwe)), ()):
            m = out[j]
            if (m.start_line or m.line) <= f.line <= m.line:
                out[j] = _with_corroboration(m, f)
                dropped.add(i)
                break
    return [f for i, f in enumerate(out) if i not in dropped]


def _with_corroboration(model: Finding, analyzer: Finding) -> Finding:
    name = f"{analyzer.source} {analyzer.rule}" if analyzer.rule else analyzer.source
    severity = max(model.severity, analyzer.severity, key=lambda s: SEVERITY_RANK[s])
    return dataclasses.replace(
        model,
        severity=severity,
        confidence=max(model.confidence, analyzer.confidence),
        corroborated_by=tuple(dict.fromkeys((*model.corroborated_by, name))),
    )


def _preference(f: Finding) -> tuple[int, float, int]:
    return (-SEVERITY_RANK[f.severity], -f.confidence, f.line)


def _rank(level: str) -> int:
    rank = SEVERITY_RANK.get(level.strip().lower())
    if rank is None:
        raise ValueError(f"unknown severity level {level!r}; expected one of {SEVERITIES}")
    return rank


def at_or_above(findings: Iterable[Finding], level: str) -> list[Finding]:
    """Findings whose severity is ``level`` or worse."""
    floor = _rank(level)
    return [f for f in findings if SEVERITY_RANK[f.severity] >= floor]


def gate_exceeded(findings: Iterable[Finding], level: str) -> bool:
    """Whether any finding is at or above ``level``; ``none`` never trips the gate."""
    if level.strip().lower() == "none":
        return False
    return bool(at_or_above(findings, level))
