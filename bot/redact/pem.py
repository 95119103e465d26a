"""Private-key blocks: the one kind of secret that spans lines.

A PEM block spans lines, and in a diff every line is a separate DiffLine, so blocks are found on
the joined text of a hunk: from a BEGIN line forward over body lines to END, or from an END whose
BEGIN lies outside the text (a hunk that starts mid-key) backward. Body lines may be wrapped in
string syntax ('"MIIE...\\n" +'), YAML indentation, or all sit on one JSON line
("-----BEGIN ...\\nMIIE...\\n-----END ...").

Patterns run on RE2; each line is searched once for its BEGIN and END markers (never again from
an offset, which would make a line of many markers quadratic).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from bot.redact.linear import compile as _rx
from bot.redact.linear import group
from bot.redact.values import count_placeholders, is_placeholder

BodyKind = Literal["long", "short", "skip", "other"]

_BEGIN = _rx(r"-----BEGIN[A-Z0-9 ]{0,30}PRIVATE KEY(?: BLOCK)?-----")
_END = _rx(r"-----END[A-Z0-9 ]{0,30}PRIVATE KEY(?: BLOCK)?-----")
_ESCAPE = _rx(r"\\[nrt]")
_RUN = _rx(r"[A-Za-z0-9+/=]{2,}")
_WRAPPING = _rx(r"[\s\"'`+,;()|>\\]+")
_BODY = _rx(r"[A-Za-z0-9+/]+={0,2}")
_PLACEHOLDER = _rx(r"\[REDACTED:[a-z0-9-]+\]")
# A PuTTY key file (.ppk): "Private-Lines: N" and then N lines of base64 key material.
_PUTTY = _rx(r"Private-Lines:[ \t]*(?P<n>[0-9]{1,3})")
_PEM_HEADER = _rx(r"\s*[\"'`]?(?:Proc-Type|DEK-Info|Comment|Version):")
_MAX_LINES = 400  # an 8192-bit RSA key is about 100 lines of 64 characters
_LONG_BODY = 16  # shorter base64 lines count only as the last line before END
_MIN_KEY = 24  # base64 characters; "XXXX\nXXXX" in documentation is not a key


@dataclass(frozen=True, slots=True)
class KeyBlock:
    """One private-key block: where it starts (0-based line, column) and what to redact."""

    first: int
    column: int
    last: int
    spans: tuple[tuple[int, int, int], ...]  # (line index, start, end) of key material


@dataclass(slots=True)
class _Builder:
    column: int
    spans: list[tuple[int, int, int]] = field(default_factory=list)
    material: list[str] = field(default_factory=list)

    def add(self, lines: list[str], i: int, span: tuple[int, int] | None) -> None:
        if span is not None:
            self.spans.append((i, *span))
            self.material.append(_WRAPPING.sub("", _ESCAPE.sub("", lines[i][span[0] : span[1]])))

    def build(self, first: int) -> KeyBlock | None:
        material = "".join(self.material)
        if len(material) < _MIN_KEY or _dummy(material):
            return None
        spans = tuple(sorted(self.spans))
        first = min(first, spans[0][0])
        return KeyBlock(first, self.column, spans[-1][0], spans)


def _dummy(material: str) -> bool:
    """Documentation key bodies ("XXXX...", "MIIE...EXAMPLE"); long runs are normal in real ones."""
    return is_placeholder(material, loose=False, runs=False) or len(set(material)) <= 6


def body_kind(line: str) -> BodyKind:
    """'long'/'short' base64 body line, 'skip' (blank, PEM header, placeholder) or 'other'."""
    if _PEM_HEADER.match(line):
        return "skip"
    residue = _WRAPPING.sub("", _ESCAPE.sub("", line))
    if count_placeholders(residue):
        residue = _PLACEHOLDER.sub("", residue)  # a block that was already redacted
        return "skip" if not residue else "other"
    if not residue:
        return "skip"
    if not _BODY.full(residue):
        return "other"
    return "long" if len(residue) >= _LONG_BODY else "short"


def _body_span(line: str, start: int = 0, end: int | None = None) -> tuple[int, int] | None:
    """The stretch of base64 in ``line[start:end]``, skipping escapes such as a literal \\n.

    None unless that part of the line is key material (``_END = b"-----END ...`` is not).
    """
    segment = line[start:end]
    if body_kind(segment) not in ("long", "short"):
        return None
    runs = list(_RUN.finditer(_ESCAPE.sub("  ", segment)))
    if not runs:
        return None
    return start + runs[0].start(), start + runs[-1].end()


def _forward(lines: list[str], i: int, block: _Builder) -> int:
    """Extend a block from the line after BEGIN to its END; returns the last line consumed."""
    j = i
    for j in range(i + 1, min(len(lines), i + _MAX_LINES)):
        end = _END.search(lines[j])
        if end:
            block.add(lines, j, _body_span(lines[j], 0, end.start()))
            return j
        kind = body_kind(lines[j])
        if kind == "other":
            return j - 1
        if kind == "short" and not (j + 1 < len(lines) and _END.test(lines[j + 1])):
            return j - 1  # a short line ends a body only right before END
        if kind != "skip":
            block.add(lines, j, _body_span(lines[j]))
    return j


def _backward(lines: list[str], i: int, end_col: int) -> KeyBlock | None:
    """A block whose END is on line ``i`` and whose BEGIN is not in the text."""
    block = _Builder(0)
    block.add(lines, i, _body_span(lines[i], 0, end_col))
    for j in range(i - 1, max(-1, i - _MAX_LINES), -1):
        kind = body_kind(lines[j])
        if kind == "other" or (kind == "short" and j != i - 1):
            break
        if kind != "skip":
            block.add(lines, j, _body_span(lines[j]))
    if block.spans:
        block.column = min(block.spans)[1]
    return block.build(i)


def _putty(lines: list[str], i: int) -> tuple[list[KeyBlock | None], int] | None:
    """The private lines of a PuTTY key whose "Private-Lines: N" header is line ``i``."""
    m = _PUTTY.search(lines[i])
    if m is None:
        return None
    block = _Builder(m.start())
    last = i
    for j in range(i + 1, min(len(lines), i + 1 + min(int(group(m, "n") or 0), _MAX_LINES))):
        if body_kind(lines[j]) not in ("long", "short"):
            break
        block.add(lines, j, _body_span(lines[j]))
        last = j
    if not block.spans:
        return [], i
    block.column = min(block.spans)[1]
    return [block.build(i + 1)], last


def _line_blocks(lines: list[str], i: int) -> tuple[list[KeyBlock | None], int]:
    """The blocks that start (or, for an orphan END, end) on line ``i``; and the last line used."""
    line = lines[i]
    putty = _putty(lines, i)
    if putty is not None:
        return putty
    begins = [m.span() for m in _BEGIN.finditer(line)]
    ends = [m.span() for m in _END.finditer(line)]
    end_starts = [s for s, _ in ends]
    blocks: list[KeyBlock | None] = []
    pos = 0
    for start, stop in begins:
        if start < pos:
            continue  # inside the block just closed
        block = _Builder(start)
        k = bisect.bisect_left(end_starts, stop)
        end = ends[k] if k < len(ends) else None
        block.add(lines, i, _body_span(line, stop, end[0] if end else None))
        if end is None:
            last = _forward(lines, i, block)
            return [*blocks, block.build(i)], last
        blocks.append(block.build(i))
        pos = end[1]
    if not blocks and ends:
        blocks.append(_backward(lines, i, ends[0][0]))
    return blocks, i


def find_key_blocks(lines: list[str], candidates: Iterable[int]) -> list[KeyBlock]:
    """Every private-key block touching one of the ``candidates`` lines (ascending indexes)."""
    found: list[KeyBlock] = []
    done = -1
    for i in candidates:
        if i <= done:
            continue  # already inside a block found from an earlier BEGIN
        blocks, done = _line_blocks(lines, i)
        found.extend(b for b in blocks if b is not None)
    return found
