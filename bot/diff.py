"""Unified diffs as values: parse, filter, map commentable lines, split into review units."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

LineKind = Literal["add", "delete", "context"]
Side = Literal["LEFT", "RIGHT"]
FileStatus = Literal["added", "modified", "deleted", "renamed", "copied"]


@dataclass(frozen=True, slots=True)
class DiffLine:
    """One line of a hunk, without its +/-/space marker and without the line ending."""

    kind: LineKind
    old_lineno: int | None
    new_lineno: int | None
    text: str


@dataclass(frozen=True, slots=True)
class Hunk:
    """One ``@@`` hunk; ``index`` is its position in the file (0-based)."""

    index: int
    old_start: int
    old_length: int
    new_start: int
    new_length: int
    section: str
    lines: tuple[DiffLine, ...]


@dataclass(frozen=True, slots=True)
class ChangedFile:
    """One file of a diff. ``path`` is the new path (``b/`` stripped), the old one if deleted."""

    path: str
    old_path: str | None
    status: FileStatus
    hunks: tuple[Hunk, ...] = ()
    is_binary: bool = False
    old_mode: str | None = None
    new_mode: str | None = None

    @property
    def added(self) -> int:
        """Number of added lines."""
        return sum(1 for h in self.hunks for ln in h.lines if ln.kind == "add")

    @property
    def deleted(self) -> int:
        """Number of removed lines."""
        return sum(1 for h in self.hunks for ln in h.lines if ln.kind == "delete")


@dataclass(frozen=True, slots=True)
class Skip:
    """A file, or part of one, that was not reviewed, and why (listed in coverage)."""

    path: str
    reason: str


@dataclass(frozen=True, slots=True)
class ParsedDiff:
    """The files of a diff in diff order."""

    files: tuple[ChangedFile, ...]


@dataclass(frozen=True, slots=True)
class LineMap:
    """Lines of one file a review comment may be placed on, each with the hunk it belongs to.

    ``right``: new-file line numbers of added and context lines; ``left``: old-file line numbers
    of removed lines. GitHub rejects a comment outside a hunk, or a ``start_line`` in another
    hunk than ``line`` (docs: "Create a review for a pull request").
    """

    right: Mapping[int, int]
    left: Mapping[int, int]

    def hunk_of(self, line: int, side: Side = "RIGHT") -> int | None:
        """The hunk index holding ``line`` on ``side``, or None if it is not commentable."""
        return (self.right if side == "RIGHT" else self.left).get(line)

    def can_comment(self, line: int, side: Side = "RIGHT", start_line: int | None = None) -> bool:
        """Whether GitHub would accept a comment on ``line`` (and ``start_line``) on ``side``."""
        hunk = self.hunk_of(line, side)
        if hunk is None:
            return False
        if start_line is None or start_line == line:
            return True
        return start_line < line and self.hunk_of(start_line, side) == hunk


@dataclass(frozen=True, slots=True)
class FilterRules:
    """Which files to review: globs from the repo config on top of the default exclusions."""

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    default_excludes: bool = True


@dataclass(frozen=True, slots=True)
class UnitSegment:
    """A slice of one file inside a review unit: whole hunks, or part of a huge hunk."""

    path: str
    status: FileStatus
    hunks: tuple[Hunk, ...]
    part: tuple[int, int] | None = None  # (k, n) when a huge hunk was split into n parts


@dataclass(frozen=True, slots=True)
class ReviewUnit:
    """What one model request reviews: segments of one or more files under a token budget."""

    id: str
    segments: tuple[UnitSegment, ...]
    tokens: int

    @property
    def paths(self) -> tuple[str, ...]:
        """Distinct file paths in this unit, in order."""
        return tuple(dict.fromkeys(s.path for s in self.segments))


@dataclass(frozen=True, slots=True)
class SplitResult:
    """Review units plus everything that was left out, with reasons."""

    units: tuple[ReviewUnit, ...]
    skipped: tuple[Skip, ...] = field(default=())


def parse_diff(data: str | bytes) -> ParsedDiff:
    """Parse ``git diff`` / GitHub ``.diff`` output; raises DiffError if it is not a diff."""
    raise NotImplementedError


def line_map(file: ChangedFile) -> LineMap:
    """The commentable-line map of ``file``."""
    raise NotImplementedError


def filter_files(
    files: Iterable[ChangedFile], rules: FilterRules = FilterRules()
) -> tuple[list[ChangedFile], list[Skip]]:
    """Files to review and files skipped (binary, mode-only, deleted, excluded, generated...)."""
    raise NotImplementedError


_MARKER = {"add": "+", "delete": "-", "context": " "}


def render_hunk(hunk: Hunk, lines: Sequence[DiffLine] | None = None) -> str:
    """A hunk as the model sees it: the @@ header, then each line with its new-file number.

    Removed lines carry no number: the model may only cite new-file lines. ``lines`` renders a
    slice of a huge hunk under the same header.
    """
    header = (
        f"@@ -{hunk.old_start},{hunk.old_length} +{hunk.new_start},{hunk.new_length} @@"
        f"{' ' + hunk.section if hunk.section else ''}"
    )
    out = [header]
    for ln in hunk.lines if lines is None else lines:
        number = "" if ln.new_lineno is None else str(ln.new_lineno)
        out.append(f"{number:>6} {_MARKER[ln.kind]} {ln.text}")
    return "\n".join(out) + "\n"


def split_units(
    files: Sequence[ChangedFile], budget_tokens: int, max_units: int | None = None
) -> SplitResult:
    """Pack files' hunks into review units of at most ``budget_tokens`` estimated tokens."""
    raise NotImplementedError
