"""Unified diffs as values: parse, filter, map commentable lines, split into review units."""

from __future__ import annotations

import contextlib
import gc
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from unidiff.errors import UnidiffParseError
from unidiff.patch import Hunk as UnidiffHunk
from unidiff.patch import PatchedFile, PatchSet

from bot.errors import DiffError

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
    # Only the lines changed since the last review are in ``hunks`` (bot.diff.delta).
    narrowed: bool = False

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
    narrowed: bool = False  # only the lines changed since the last review (bot.diff.delta)


@dataclass(frozen=True, slots=True)
class ReviewUnit:
    """What one model request reviews: segments of one or more files under a token budget."""

    id: str
    segments: tuple[UnitSegment, ...]
    tokens: int
    # The rendered diff split_units measured, kept so prompts need not render it again. Not an
    # __init__ argument: dataclasses.replace() resets it, so a unit with other (e.g. redacted)
    # segments can never carry a stale text.
    _text: str = field(default="", init=False, repr=False, compare=False)

    @property
    def paths(self) -> tuple[str, ...]:
        """Distinct file paths in this unit, in order."""
        return tuple(dict.fromkeys(s.path for s in self.segments))


@dataclass(frozen=True, slots=True)
class SplitResult:
    """Review units plus everything that was left out, with reasons."""

    units: tuple[ReviewUnit, ...]
    skipped: tuple[Skip, ...] = field(default=())


# --- parsing ------------------------------------------------------------------------------------

_DEV_NULL = "/dev/null"
_KINDS: dict[str, LineKind] = {"+": "add", "-": "delete", " ": "context"}
# git's C-style quoting of unusual paths (quote_c_style in git's quote.c)
_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}
_OCTAL = frozenset("01234567")
# git's default a/ b/ prefixes, the mnemonic ones (diff.mnemonicPrefix) and --no-index's 1/ 2/;
# the same set unidiff strips
_PREFIX_CHARS = frozenset("abciow12")
_SUBMODULE_MODE = "160000"
_SURROGATE = re.compile("[\ud800-\udfff]")  # a single class: nothing to backtrack
_SET_KIND, _SET_OLD, _SET_NEW, _SET_TEXT = (
    DiffLine.__dict__[name].__set__ for name in ("kind", "old_lineno", "new_lineno", "text")
)


def parse_diff(data: str | bytes) -> ParsedDiff:
    """Parse ``git diff`` / GitHub ``.diff`` output; raises DiffError if it is not a diff.

    Bytes are decoded as UTF-8 with replacement characters (diffs of latin-1 files are common).
    An empty or blank input is an empty diff; any other input without a single file header is
    not a diff. Line text loses its marker and its line ending (``\r\n`` included).
    """
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else clean_text(data)
    if "\r" in text:
        # unidiff anchors header fields with "$", which a CRLF-saved diff would defeat; line
        # text drops the "\r" anyway, so normalising first loses nothing. A diff with bare CR
        # line endings only (classic Mac) has no "\n" at all.
        text = text.replace("\r\n", "\n")
        if "\n" not in text:
            text = text.replace("\r", "\n")
    if not text.strip():
        return ParsedDiff(())
    with _gc_paused():
        try:
            patch = PatchSet(text)
        except (UnidiffParseError, ValueError) as exc:
            # unidiff's messages end with the offending diff line: keep only the kind of
            # error, so no diff content (possibly a secret) reaches logs.
            raise DiffError(f"malformed diff: {str(exc).split(':', 1)[0]}") from None
        if not patch:
            raise DiffError("not a unified diff: no 'diff --git' or '---'/'+++' file header")
        return ParsedDiff(tuple(_changed_file(pf) for pf in patch))


def clean_text(text: str) -> str:
    """``text`` as valid Unicode: lone surrogates (from JSON escapes or a surrogateescape
    decoding) become U+FFFD, so every later step can encode it as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)  # one for one: offsets stay valid
    return text


# GitHub's file statuses (``GET pulls/{n}/files``) in our vocabulary
_GITHUB_STATUS: dict[str, FileStatus] = {
    "added": "added",
    "removed": "deleted",
    "modified": "modified",
    "changed": "modified",
    "unchanged": "modified",
    "renamed": "renamed",
    "copied": "copied",
}


def parse_file_patch(
    path: str, patch: str, *, status: str = "modified", old_path: str | None = None
) -> ChangedFile:
    """One entry of GitHub's ``pulls/{n}/files``, whose ``patch`` holds only the hunks.

    ``status`` may be GitHub's word (``removed``, ``changed``...) or ours.
    """
    hunks: tuple[Hunk, ...] = ()
    if patch.strip():
        hunks = parse_diff(f"--- a/file\n+++ b/file\n{patch}").files[0].hunks
    file_status = _GITHUB_STATUS.get(status, "modified")
    moved = file_status in ("renamed", "copied")
    return ChangedFile(clean_text(path), old_path if moved else None, file_status, hunks)


def files_api_entry(entry: Mapping[str, object]) -> ChangedFile | Skip:
    """One entry of GitHub's paged ``pulls/{n}/files`` as a file, or a Skip with the right reason.

    GitHub leaves ``patch`` out of binary files, renames and deletions without content
    changes, and diffs too large to show (docs: "List pull requests files"); the counts and
    the status tell which.
    """
    path = clean_text(str(entry.get("filename") or ""))
    status = str(entry.get("status") or "modified")
    previous = entry.get("previous_filename")
    old_path = clean_text(str(previous)) if previous else None
    patch = entry.get("patch")
    if isinstance(patch, str) and patch.strip():
        try:
            file = parse_file_patch(path, patch, status=status, old_path=old_path)
        except DiffError:
            file = None
        if file is None or not file.hunks:
            return Skip(path, "patch from GitHub could not be parsed")
        return file
    changes = entry.get("changes")
    file_status = _GITHUB_STATUS.get(status, "modified")
    if file_status == "deleted":
        return Skip(path, "file deleted")
    if changes == 0 and file_status in ("renamed", "copied"):
        return Skip(path, f"{file_status} without changes")
    if changes == 0:
        return Skip(path, "binary file" if file_status != "added" else "binary or empty file")
    return Skip(path, "diff too large for GitHub to show (no patch)")


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the duration of a parse.

    Parsing allocates a few objects per diff line and none of them form reference cycles, so
    collections in between find nothing and only re-scan the growing heap: about a third of
    the parse time of a 100k-line diff.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _changed_file(pf: PatchedFile) -> ChangedFile:
    """One unidiff file as a ChangedFile: paths, status, modes and hunks."""
    info = _extended_header(pf.patch_info)
    old = None if pf.source_file == _DEV_NULL else _clean_path(pf.source_file)
    new = None if pf.target_file == _DEV_NULL else _clean_path(pf.target_file)
    old_path: str | None = None
    status: FileStatus
    if new is None:
        status, path = "deleted", old
    elif old is None:
        status, path = "added", new
    elif "copy from" in info:
        status, path, old_path = "copied", info.get("copy to", new), info["copy from"]
    elif "rename from" in info or old != new:
        status, path, old_path = "renamed", info.get("rename to", new), info.get("rename from", old)
    else:
        status, path = "modified", new
    if not path:
        raise DiffError("malformed diff: a file entry has no path")
    return ChangedFile(
        path=path,
        old_path=old_path,
        status=status,
        hunks=tuple(_hunk(i, h) for i, h in enumerate(pf)),
        is_binary=bool(pf.is_binary_file),
        old_mode=pf.source_mode,
        new_mode=pf.target_mode,
    )


def _hunk(index: int, uh: UnidiffHunk) -> Hunk:
    """One unidiff hunk as a Hunk; no-newline markers and trailing blank lines are dropped."""
    kinds, new = _KINDS, object.__new__
    set_kind, set_old, set_new, set_text = _SET_KIND, _SET_OLD, _SET_NEW, _SET_TEXT
    lines: list[DiffLine] = []
    append = lines.append
    # The parser's hot loop, once per diff line. A frozen dataclass's __init__ spends four
    # object.__setattr__ calls per instance; filling the slots directly builds an equal
    # DiffLine in half the time (tests compare both ways).
    for ln in uh:
        kind = kinds.get(ln.line_type)
        if kind is not None:
            line = new(DiffLine)
            set_kind(line, kind)
            set_old(line, ln.source_line_no)
            set_new(line, ln.target_line_no)
            set_text(line, ln.value.rstrip("\r\n"))
            append(line)
    return Hunk(
        index=index,
        old_start=uh.source_start,
        old_length=uh.source_length,
        new_start=uh.target_start,
        new_length=uh.target_length,
        section=uh.section_header,
        lines=tuple(lines),
    )


def _extended_header(patch_info: Iterable[str] | None) -> dict[str, str]:
    """``rename from``/``rename to``/``copy from``/``copy to`` of a git extended header."""
    found: dict[str, str] = {}
    for line in patch_info or ():
        for key in ("rename from", "rename to", "copy from", "copy to"):
            if line.startswith(key + " "):
                found[key] = unquote_path(line[len(key) + 1 :].rstrip("\n"))
    return found


def _clean_path(raw: str) -> str:
    """A header path unquoted and without its ``a/``/``b/`` prefix."""
    name = unquote_path(raw)
    if len(name) > 2 and name[1] == "/" and name[0] in _PREFIX_CHARS:
        return name[2:]
    return name


def unquote_path(name: str) -> str:
    """Undo git's C-style quoting (``"caf\\303\\251.txt"`` → ``café.txt``); others unchanged."""
    if len(name) < 2 or name[0] != '"' or name[-1] != '"':
        return name
    body, out, i = name[1:-1], bytearray(), 0
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            digits = body[i + 1 : i + 4]
            if len(digits) == 3 and set(digits) <= _OCTAL:
                out.append(int(digits, 8) & 0xFF)
                i += 4
                continue
            if body[i + 1] in _ESCAPES:
                out.append(_ESCAPES[body[i + 1]])
                i += 2
                continue
        out += char.encode("utf-8", errors="replace")
        i += 1
    return out.decode("utf-8", errors="replace")


def is_submodule(file: ChangedFile) -> bool:
    """Whether ``file`` is a git submodule (gitlink) entry."""
    return _SUBMODULE_MODE in (file.old_mode, file.new_mode)


# --- commentable lines ---------------------------------------------------------------------------


def line_map(file: ChangedFile) -> LineMap:
    """The commentable-line map of ``file``."""
    right: dict[int, int] = {}
    left: dict[int, int] = {}
    for hunk in file.hunks:
        index = hunk.index
        for ln in hunk.lines:
            if ln.new_lineno is not None:  # added or context: the RIGHT side
                right[ln.new_lineno] = index
            elif ln.old_lineno is not None:  # removed: the LEFT side
                left[ln.old_lineno] = index
    return LineMap(right=right, left=left)


# --- rendering: what the model sees, and what token estimates are computed on -------------------

# the marker column between the line number and the text, spaces included
_MARKER = {"add": " + ", "delete": " - ", "context": "   "}


def render_hunk(hunk: Hunk, lines: Sequence[DiffLine] | None = None) -> str:
    """A hunk as the model sees it: the @@ header, then each line with its new-file number.

    Removed lines carry no number: the model may only cite new-file lines. ``lines`` renders a
    slice of a huge hunk under the same header.
    """
    header = (
        f"@@ -{hunk.old_start},{hunk.old_length} +{hunk.new_start},{hunk.new_length} @@"
        f"{' ' + hunk.section if hunk.section else ''}\n"
    )
    marker = _MARKER
    # one f-string per line, no helper calls: prompts render every diff line at least once
    body = [
        f"{'' if ln.new_lineno is None else ln.new_lineno:>6}{marker[ln.kind]}{ln.text}\n"
        for ln in (hunk.lines if lines is None else lines)
    ]
    return header + "".join(body)


NARROWED = "changes since the last review"


def segment_header(
    path: str, status: FileStatus, part: tuple[int, int] | None = None, narrowed: bool = False
) -> str:
    """The line introducing a file in a unit: ``### path (status)`` or ``(status, part k/n)``,
    with ``, changes since the last review`` when only those lines are shown."""
    if not path.isprintable():
        # a path is PR-controlled text: a newline in it must not start a line of its own
        path = path.encode("unicode_escape").decode("ascii")
    suffix = f", part {part[0]}/{part[1]}" if part else ""
    if narrowed:
        suffix += f", {NARROWED}"
    return f"### {path} ({status}{suffix})"


def render_segment(segment: UnitSegment) -> str:
    """A unit segment as sent: its header line, then its rendered hunks."""
    hunks = "".join(render_hunk(h) for h in segment.hunks)
    header = segment_header(segment.path, segment.status, segment.part, segment.narrowed)
    return f"{header}\n{hunks}"


def render_unit_diff(unit: ReviewUnit) -> str:
    """The diff text of a unit (segments separated by a blank line); ``unit.tokens`` is its size."""
    return unit._text or "\n".join(render_segment(s) for s in unit.segments)
