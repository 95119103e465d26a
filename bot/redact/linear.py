"""Linear-time regular expressions for all of ``bot.redact``: RE2, never a backtracking engine.

Everything the redactor reads is written by outsiders (PR text, diffs, whole repositories), so a
pattern that can backtrack is a way to stall a worker (issue 11: 31.5 s for one 60 KB PR body).
RE2 matches in time linear in the input whatever the pattern; it has no look-around and no
back-references, so the few checks that needed them are plain Python next to the pattern.

The ``re2`` module's Python layer costs ~17 µs a call and looks group names up afresh each time;
``Regex`` caches the names and answers yes/no questions on ASCII text straight from the engine
(~3 µs), which matters for the value heuristics that run on every candidate.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import re2

Match = Any  # re2._Match: the module ships no type information

_UNANCHORED = re2._Anchor.UNANCHORED
_BOTH = re2._Anchor.ANCHOR_BOTH
_NULL = (-1, -1)
_GROUPS: dict[int, dict[str, int]] = {}  # id of an engine pattern → its group names


class Regex:
    """One RE2 pattern: ``finditer``/``search``/``fullmatch``/``sub`` like ``re``, plus
    ``test`` and ``full`` for plain yes/no answers."""

    __slots__ = ("_engine", "_raw", "groupindex", "pattern")

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._engine: Any = re2.compile(pattern)
        self._raw: Any = self._engine._regexp
        self.groupindex: dict[str, int] = dict(self._engine.groupindex)
        _GROUPS[id(self._engine)] = self.groupindex

    @property
    def programsize(self) -> int:
        """The compiled program's size (a proxy for the engine's memory per match)."""
        size: int = self._engine.programsize
        return size

    def finditer(self, text: str) -> Iterator[Match]:
        """Every non-overlapping match, left to right, in one pass over ``text``."""
        found: Iterator[Match] = self._engine.finditer(text)
        return found

    def search(self, text: str) -> Match | None:
        """The first match anywhere in ``text``."""
        return self._engine.search(text)

    def match(self, text: str) -> Match | None:
        """A match at the start of ``text``."""
        return self._engine.match(text)

    def fullmatch(self, text: str) -> Match | None:
        """A match of the whole of ``text``."""
        return self._engine.fullmatch(text)

    def sub(self, replacement: str, text: str) -> str:
        """``text`` with every match replaced by the literal ``replacement``."""
        out: str = self._engine.sub(replacement.replace("\\", "\\\\"), text)
        return out

    def findall(self, text: str) -> list[Any]:
        """Every match (or its groups), like ``re.findall``."""
        found: list[Any] = self._engine.findall(text)
        return found

    def test(self, text: str) -> bool:
        """Whether the pattern occurs in ``text``."""
        return self._ask(text, _UNANCHORED)

    def full(self, text: str) -> bool:
        """Whether the pattern matches the whole of ``text``."""
        return self._ask(text, _BOTH)

    def lines(self, data: bytes, *, once: bool = False) -> Iterator[tuple[int, int]]:
        """(line number, number of the capturing group that matched) of each match in ``data``
        (UTF-8); with ``once``, only the first match of each line. One pass, no str wrapper."""
        pos, line, counted, size = 0, 0, 0, len(data)
        while pos <= size:
            spans = self._raw.Match(_UNANCHORED, data, pos, size)
            start, end = spans[0]
            if start < 0:
                return
            line += data.count(b"\n", counted, start)
            counted = start
            yield line, next((i for i in range(1, len(spans)) if spans[i][0] >= 0), 0)
            if once:
                newline = data.find(b"\n", end)
                if newline < 0:
                    return
                pos = newline + 1
            else:
                pos = end if end > start else end + 1

    def _ask(self, text: str, anchor: Any) -> bool:
        if text.isascii():  # byte offsets are character offsets: skip the wrapper
            data = text.encode()
            return bool(self._raw.Match(anchor, data, 0, len(data))[0] != _NULL)
        if anchor is _BOTH:
            return self._engine.fullmatch(text) is not None
        return self._engine.search(text) is not None


def compile(pattern: str) -> Regex:
    """``pattern`` compiled by RE2; a construct RE2 cannot run linearly is an error here."""
    return Regex(pattern)


def is_linear(pattern: object) -> bool:
    """Whether ``pattern`` runs on RE2 (the structural test walks every module)."""
    return isinstance(pattern, Regex)


def has(m: Match, name: str) -> bool:
    """Whether the pattern of ``m`` has a group called ``name``."""
    return name in _GROUPS[id(m.re)]


def span(m: Match, name: str) -> tuple[int, int]:
    """The span of a named group, (-1, -1) when it did not take part."""
    result: tuple[int, int] = m.span(_GROUPS[id(m.re)][name])
    return result


def group(m: Match, name: str) -> str | None:
    """The text of a named group, None when it did not take part."""
    start, end = m.span(_GROUPS[id(m.re)][name])
    if start < 0:
        return None
    text: str = m.string[start:end]
    return text


def escape(text: str) -> str:
    """``text`` as a literal pattern."""
    escaped: str = re2.escape(text)
    return escaped
