"""A re-review continues the last one: earlier findings go into the unit, the answer says which
persist, which moved and which are fixed.

Pure. The unit message carries ``prompts.PreviousFinding`` values for its files
(``previous_for``, ``from_findings``). The answer (prompts/findings.schema.json) may list
unchanged ones under ``persisting`` instead of writing them out again (output tokens cost 25×
cached input), report a moved one as a finding with its old ``fingerprint``, and list the ones
the code no longer has under ``fixed``. ``place`` keeps a continued finding's old fingerprint,
so its thread, its dismissal and its history stay attached whatever words the model used;
``claims`` reads ``persisting``/``fixed``; ``carry`` keeps persisting findings in the result.

Wiring: whoever passes ``previous=`` to ``prompts.build_unit_message`` must also honour
``claims(...).persisting`` (``carry`` the stored findings, or at least keep their threads open):
a persisting finding is absent from the answer's ``findings``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bot.diff import ChangedFile, ReviewUnit, UnitSegment
from bot.findings import Finding, Rejection, place_findings
from bot.review.prompts import PreviousFinding

Fate = Literal["persists", "fixed", "unknown"]
_FENCED = re.compile(r"\A```[ \t]*(?:json)?[ \t]*\n(?P<body>.*)\n[ \t]*```\Z", re.DOTALL | re.I)


_MODEL_FIELDS = frozenset(
    {
        "path",
        "line",
        "start_line",
        "severity",
        "cwe",
        "title",
        "description",
        "exploit_scenario",
        "recommendation",
        "confidence",
        "evidence",
        "suggestion",
    }
)


def reanchor(
    earlier: Finding, unit: ReviewUnit, files: Mapping[str, ChangedFile]
) -> Finding | None:
    """An earlier finding placed again on ``unit`` by the code it cites, keeping its
    fingerprint; None when that code is not in the unit any more."""
    raw = {k: v for k, v in earlier.to_json().items() if k in _MODEL_FIELDS and v is not None}
    placed, _ = place_findings([raw], unit, files)
    return dataclasses.replace(placed[0], fingerprint=earlier.fingerprint) if placed else None


def whole_file_unit(file: ChangedFile, unit_id: str = "") -> ReviewUnit:
    """A unit holding all of ``file``'s patch (to place findings on lines a narrowed unit does
    not show)."""
    return ReviewUnit(unit_id, (UnitSegment(file.path, file.status, file.hunks),), 0)


def previous_for(
    unit: ReviewUnit, posted: Iterable[PreviousFinding]
) -> tuple[PreviousFinding, ...]:
    """The earlier findings on the files of ``unit``, in a stable order."""
    paths = set(unit.paths)
    return tuple(sorted({p for p in posted if p.path in paths}, key=lambda p: (p.path, p.line)))


def as_previous(f: Finding) -> PreviousFinding:
    """One earlier finding as a unit message shows it."""
    return PreviousFinding(f.fingerprint, f.path, f.line, f.cwe, f.title)


def from_findings(findings: Iterable[Finding]) -> tuple[PreviousFinding, ...]:
    """Earlier findings as a unit message shows them (e.g. a file's stored result of the last
    head; ``bot.github.client.previous_findings`` reads the same from the bot's open threads)."""
    return tuple(PreviousFinding(f.fingerprint, f.path, f.line, f.cwe, f.title) for f in findings)


def place(
    raw: Sequence[Mapping[str, Any]],
    unit: ReviewUnit,
    files: Mapping[str, ChangedFile],
    previous: Sequence[PreviousFinding],
    *,
    confidence_floor: float = 0.0,
) -> tuple[list[Finding], list[Rejection]]:
    """``findings.place_findings``, keeping the fingerprint of an earlier finding it continues.

    A claim is honoured only for an earlier finding of the same file and CWE, once per unit: the
    model cannot move a fingerprint to another flaw or file.
    """
    known = {p.fingerprint: p for p in previous}
    taken: set[str] = set()
    placed: list[Finding] = []
    rejected: list[Rejection] = []
    for item in raw:
        ok, no = place_findings([item], unit, files, confidence_floor=confidence_floor)
        rejected += no
        for finding in ok:
            claim = known.get(str(item.get("fingerprint", "")))
            if (
                claim is not None
                and claim.fingerprint not in taken
                and claim.path == finding.path
                and claim.cwe.strip().upper() == finding.cwe
            ):
                taken.add(claim.fingerprint)
                finding = dataclasses.replace(finding, fingerprint=claim.fingerprint)
            placed.append(finding)
    return placed, rejected


@dataclass(frozen=True, slots=True)
class Claims:
    """What an answer said about the earlier findings it was shown, besides its findings."""

    persisting: tuple[str, ...] = ()
    fixed: tuple[str, ...] = ()


def _listed(data: Any, name: str, shown: set[str]) -> tuple[str, ...]:
    listed = data.get(name) if isinstance(data, dict) else None
    if not isinstance(listed, list):
        return ()
    return tuple(sorted({fp for fp in listed if isinstance(fp, str) and fp in shown}))


def claims(content: str, previous: Sequence[PreviousFinding]) -> Claims:
    """The ``persisting`` and ``fixed`` fingerprints of an answer (only ones it was shown; a
    fingerprint claimed both ways counts as persisting: never report as fixed what may not be)."""
    text = content.strip()
    fenced = _FENCED.match(text)
    try:
        data = json.loads(fenced.group("body") if fenced else text)
    except (ValueError, RecursionError):
        return Claims()
    shown = {p.fingerprint for p in previous}
    persisting = _listed(data, "persisting", shown)
    fixed = tuple(fp for fp in _listed(data, "fixed", shown) if fp not in persisting)
    return Claims(persisting, fixed)


def carry(stored: Iterable[Finding], persisting: Iterable[str]) -> tuple[Finding, ...]:
    """The earlier findings (e.g. the file's stored result) an answer said still persist: they
    stay in the result as they were, without the model writing them out again."""
    keep = set(persisting)
    return tuple(f for f in stored if f.fingerprint in keep)


def fates(
    previous: Sequence[PreviousFinding],
    current: Iterable[str],
    fixed: Iterable[str],
    persisting: Iterable[str] = (),
) -> dict[str, Fate]:
    """What became of each earlier finding of a re-reviewed file.

    ``persists`` when a current finding carries its fingerprint or the answer listed it as
    persisting; ``fixed`` when the answer said so; ``unknown`` when it said neither.
    """
    now, gone = set(current) | set(persisting), set(fixed)
    return {
        p.fingerprint: "persists"
        if p.fingerprint in now
        else "fixed"
        if p.fingerprint in gone
        else "unknown"
        for p in previous
    }
