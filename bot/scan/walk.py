"""Full-repository scans, reading side: walk a local tree or a tarball's bytes.

Nothing in the scanned tree is executed or imported; symbolic links are not followed and archive
members that would escape are refused. Everything is bounded: a tarball is streamed from a file
with caps on its unpacked size, member count and member size; a tree's depth and path lengths
are capped; every cap that bites is an entry with its reason, never an error. Planning (ranking,
budget, packing) is ``bot.scan.plan``; its names are re-exported here.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import stat
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pathspec

from bot.diff import globs
from bot.scan.plan import (
    COMPLETION_TOKENS_GUESS,
    OVER_BUDGET,
    PREFIX_TOKENS_GUESS,
    Entry,
    ScanPlan,
    SourceFile,
    as_changed_file,
    estimate_cost,
    pack,
    plan_scan,
    score,
    select,
    skip_reason,
)

__all__ = [
    "ARCHIVE_PATH",
    "COMPLETION_TOKENS_GUESS",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_MEMBERS",
    "MAX_UNPACKED_BYTES",
    "OVER_BUDGET",
    "PREFIX_TOKENS_GUESS",
    "Entry",
    "ScanPlan",
    "SourceFile",
    "as_changed_file",
    "estimate_cost",
    "pack",
    "plan_scan",
    "score",
    "select",
    "skip_reason",
    "walk_tarball",
    "walk_tree",
]

MAX_FILE_BYTES = 512 * 1024
MAX_MEMBERS = 100_000  # entries of one archive; GitHub's largest repositories have fewer files
MAX_UNPACKED_BYTES = 2 << 30  # everything an archive unpacks to, headers included
MAX_DEPTH = 64  # directory levels below the root; real trees stay well under 30
MAX_PATH_CHARS = 4096  # Linux's PATH_MAX
ARCHIVE_PATH = "(repository archive)"  # the coverage entry of a limit that stops a whole walk
_VCS_DIRS = frozenset({".git", ".hg", ".svn"})  # version control metadata: not repository content
_SKIP_DIRS = frozenset(
    {
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        "dist",
        "build",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".idea",
    }
)


def _too_deep() -> str:
    return f"nested deeper than {MAX_DEPTH} directories"


_TOO_LONG = f"path longer than {MAX_PATH_CHARS} characters"


class _GitIgnore:
    """Nested .gitignore files with git's semantics, matched by pathspec on re2.

    Each .gitignore applies below its own directory; the deepest one that matches decides (a
    deeper file is read later, so it wins over its parents, as in git).
    """

    def __init__(self) -> None:
        self.specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []  # (dir, spec), parents first

    def add(self, directory: str, text: str) -> None:
        """Read the .gitignore found in ``directory`` ("" for the root)."""
        spec = globs.spec(text.splitlines(), strict=False)
        if spec.patterns:
            self.specs.append((directory, spec))

    def ignored(self, path: str, is_dir: bool = False) -> bool:
        """Whether ``path`` (relative to the tree's root) is ignored."""
        for directory, spec in reversed(self.specs):
            if directory and not path.startswith(directory + "/"):
                continue
            rel = path[len(directory) + 1 :] if directory else path
            result = spec.check_file(rel + "/" if is_dir else rel)
            if result.include is not None:
                return bool(result.include)
        return False


def walk_tree(root: Path) -> Iterator[Entry]:
    """``(path, content, skip reason)`` for every file under ``root``; symlinks not followed.

    Depth-first without recursion (a hostile tree may nest thousands of levels): a directory
    deeper than MAX_DEPTH is listed once with that reason and not entered.
    """
    base = root.resolve()
    ignore = _GitIgnore()
    pending: list[tuple[str, int]] = [("", 0)]
    while pending:
        rel_dir, depth = pending.pop()
        current = base / rel_dir if rel_dir else base
        try:
            with os.scandir(current) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            yield f"{rel_dir}/", None, f"unreadable ({exc.strerror})"
            continue
        if any(c.name == ".gitignore" and c.is_file(follow_symlinks=False) for c in children):
            with contextlib.suppress(OSError):
                ignore.add(rel_dir, _read_text(current / ".gitignore"))
        ignore.specs = [(d, s) for d, s in ignore.specs if not d or _within(rel_dir, d)]
        subdirs = []
        for child in children:
            path = f"{rel_dir}/{child.name}" if rel_dir else child.name
            entry = _tree_entry(child, path, depth, ignore)
            if entry is None:
                continue
            if isinstance(entry, str):
                subdirs.append((path, depth + 1))
            else:
                yield entry
        pending.extend(reversed(subdirs))


def _within(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory + "/")


def _tree_entry(
    child: os.DirEntry[str], path: str, depth: int, ignore: _GitIgnore
) -> Entry | str | None:
    """The entry of one directory child, "dir" to descend into it, or None (ignored)."""
    try:
        mode = child.stat(follow_symlinks=False).st_mode
    except OSError as exc:
        return path, None, f"unreadable ({exc.strerror})"
    is_dir = stat.S_ISDIR(mode)
    if is_dir and child.name in _VCS_DIRS:
        return None
    if ignore.ignored(path, is_dir=is_dir):
        return None  # ignored by .gitignore: not part of the repository
    if stat.S_ISLNK(mode):
        return path, None, "symbolic link"
    if len(path) > MAX_PATH_CHARS:
        return path[:MAX_PATH_CHARS], None, _TOO_LONG
    if is_dir:
        if child.name in _SKIP_DIRS:
            return f"{path}/", None, "build output or tool cache directory"
        if depth + 1 > MAX_DEPTH:
            return f"{path}/", None, _too_deep()
        return "dir"
    if not stat.S_ISREG(mode):
        return path, None, "not a regular file"
    return path, *_read(Path(child.path))


def _read_text(path: Path) -> str:
    with path.open("rb") as handle:
        return handle.read(MAX_FILE_BYTES).decode("utf-8", "replace")


def _read(full: Path) -> tuple[bytes | None, str | None]:
    try:
        if full.stat().st_size > MAX_FILE_BYTES:
            return None, f"larger than {MAX_FILE_BYTES // 1024} KB"
        return full.read_bytes(), None
    except OSError as exc:
        return None, f"unreadable ({exc.strerror})"


class ArchiveTooLarge(Exception):
    """The archive unpacked past MAX_UNPACKED_BYTES."""


class _Capped(io.RawIOBase):
    """A read-only stream that refuses to yield more than ``limit`` bytes in total."""

    def __init__(self, inner: BinaryIO, limit: int) -> None:
        self.inner, self.left = inner, limit

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self.inner.read(min(len(buffer), self.left + 1))
        if len(data) > self.left:
            raise ArchiveTooLarge
        self.left -= len(data)
        buffer[: len(data)] = data
        return len(data)


def walk_tarball(
    source: Path | BinaryIO, *, max_unpacked: int = MAX_UNPACKED_BYTES
) -> Iterator[Entry]:
    """``(path, content, skip reason)`` for a GitHub tarball (its top directory stripped).

    ``source`` is the archive on disk (or an open binary stream); it is read once, front to
    back, and never held whole. Past MAX_MEMBERS entries or ``max_unpacked`` bytes the walk
    stops with one ARCHIVE_PATH entry saying so; a corrupt archive likewise.
    """
    with contextlib.ExitStack() as stack:
        raw: BinaryIO = (
            stack.enter_context(Path(source).open("rb"))
            if isinstance(source, str | Path)
            else source
        )
        magic = raw.read(2)
        raw.seek(0)
        inner: BinaryIO = raw
        if magic == b"\x1f\x8b":
            inner = gzip.GzipFile(fileobj=raw)  # type: ignore[assignment]
        stream = io.BufferedReader(_Capped(inner, max_unpacked), 1 << 16)
        try:
            tar = stack.enter_context(tarfile.open(fileobj=stream, mode="r|"))
            yield from _members(tar)
        except ArchiveTooLarge:
            yield (
                ARCHIVE_PATH,
                None,
                f"archive unpacks to more than {max_unpacked >> 20} MB: the rest was not read",
            )
        except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
            yield ARCHIVE_PATH, None, f"archive unreadable past this point ({type(exc).__name__})"


def _members(tar: tarfile.TarFile) -> Iterator[Entry]:
    for count, member in enumerate(tar, 1):
        tar.members = []  # type: ignore[attr-defined]  # tarfile keeps every header it has read: a 100k-member list otherwise
        if count > MAX_MEMBERS:
            yield ARCHIVE_PATH, None, f"more than {MAX_MEMBERS} entries: the rest was not read"
            return
        every = tuple(p for p in member.name.split("/") if p and p != ".")
        parts = every[1:]
        if not parts or member.isdir():
            continue
        path = "/".join(parts)
        reason = _member_reason(member, every, parts)
        if reason is not None:
            yield path[:MAX_PATH_CHARS], None, reason
        else:
            handle = tar.extractfile(member)
            yield path, handle.read() if handle else b"", None


def _member_reason(
    member: tarfile.TarInfo, every: tuple[str, ...], parts: tuple[str, ...]
) -> str | None:
    """Why an archive member is not read, or None."""
    if member.name.startswith("/") or ".." in every:
        return "unsafe path in archive"
    if _SKIP_DIRS.intersection(parts[:-1]) or _VCS_DIRS.intersection(parts[:-1]):
        return "build output or tool cache directory"
    if len(member.name) > MAX_PATH_CHARS:
        return _TOO_LONG
    if len(parts) - 1 > MAX_DEPTH:
        return _too_deep()
    if not member.isfile():
        return "not a regular file"
    if member.size > MAX_FILE_BYTES:
        return f"larger than {MAX_FILE_BYTES // 1024} KB"
    return None
