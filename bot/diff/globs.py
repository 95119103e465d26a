"""Gitignore-style globs (config include/exclude, a scanned tree's .gitignore files) by pathspec.

Patterns come from outsiders (a repository's ``.gitignore``, ``.github/secreview.yml``), so
they are matched by pathspec on google-re2, a linear-time engine: ten ``*`` in one pattern
cost what one does. (pathspec also compiles each pattern with ``re`` to validate it; only re2
ever matches.) pathspec implements git's rules (a pattern without a ``/`` matches at any
depth, a trailing ``/`` matches directories only, ``!`` re-includes, the last match wins).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import re2

from bot.errors import ConfigError

if TYPE_CHECKING:
    import pathspec

Matcher = Callable[[str], bool]
MAX_PATTERNS = 2000  # a .gitignore or config list longer than this is read only that far
MAX_PATTERN_CHARS = 1000  # a longer line is not a glob anyone wrote by hand: ignored


def _clean(patterns: Iterable[str]) -> list[str]:
    """Patterns as pathspec reads them: ``./`` prefixes dropped, over-long lines left out."""
    out = []
    for raw in patterns:
        line = raw.rstrip("\r\n")
        if len(line) > MAX_PATTERN_CHARS or "\0" in line:
            continue
        stripped = line.strip()
        negated = stripped.startswith("!")
        body = stripped[1:] if negated else stripped
        if body.startswith("./"):
            line = ("!" if negated else "") + body[2:]
        out.append(line)
        if len(out) >= MAX_PATTERNS:
            break
    return out


def spec(patterns: Iterable[str], *, strict: bool = True) -> pathspec.GitIgnoreSpec:
    """A compiled gitignore spec on the re2 backend; a bad pattern is a ConfigError if ``strict``.

    Not strict (a scanned tree's own .gitignore): a line pathspec rejects is skipped, as git
    itself skips what it cannot read.
    """
    import pathspec  # imported on first use: most runs have no globs at all

    lines = _clean(patterns)
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines, backend="re2")
    except (ValueError, TypeError, re.error, re2.error) as exc:
        if strict:
            raise ConfigError(f"invalid glob in {lines!r:.200}: {exc}") from None
    kept = []
    for line in lines:
        try:
            pathspec.GitIgnoreSpec.from_lines([line], backend="re2")
        except (ValueError, TypeError, re.error, re2.error):
            continue
        kept.append(line)
    return pathspec.GitIgnoreSpec.from_lines(kept, backend="re2")


def _nothing(path: str) -> bool:
    return False


@functools.lru_cache(maxsize=128)
def compile_globs(patterns: tuple[str, ...]) -> Matcher:
    """A matcher for gitignore-style ``patterns``; the last match wins, ``!`` negates."""
    if not any(p.strip() for p in patterns):
        return _nothing  # the usual case: no config globs, nothing to compile
    for raw in patterns:
        _check(raw)
    compiled = spec(patterns)

    def matches(path: str) -> bool:
        return bool(compiled.match_file(path))

    return matches


def _check(raw: str) -> None:
    """Reject a config glob pathspec would silently read as something else."""
    body = raw.strip().removeprefix("!")
    if "[" in body:
        _class_ranges(raw, body)


def _class_ranges(raw: str, body: str) -> None:
    """A character range written backwards (``[z-a]``) is a typo, not an empty class."""
    i = body.find("[")
    while i >= 0:
        end = body.find("]", i + 2)
        if end < 0:
            return
        members = body[i + 1 : end].lstrip("!^")
        for k in range(1, len(members) - 1):
            if members[k] == "-" and members[k - 1] > members[k + 1]:
                raise ConfigError(f"invalid glob {raw!r}: bad character range")
        i = body.find("[", end)
