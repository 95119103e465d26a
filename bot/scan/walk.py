"""Full-repository scans, reading side: walk a local tree or a tarball's bytes.

Nothing in the scanned tree is executed or imported; symbolic links are not followed and archive
members that would escape are refused. Planning (ranking, budget, packing) is ``bot.scan_plan``;
its names are re-exported here.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from bot.diff.split import glob_to_regex
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
    "COMPLETION_TOKENS_GUESS",
    "MAX_FILE_BYTES",
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


class _GitIgnore:
    """Nested .gitignore files with git's semantics, by ``diff.glob_to_regex``.

    A pattern with a ``/`` is anchored at its .gitignore's directory, one without matches at
    any depth below it, a trailing ``/`` matches directories only, ``!`` re-includes, and the
    last matching pattern wins (a deeper .gitignore is read later, so it wins over its parents).
    """

    def __init__(self) -> None:
        self.rules: list[tuple[str, re.Pattern[str], bool]] = []  # (dir, regex, negated)

    def add(self, directory: str, text: str) -> None:
        """Read the .gitignore found in ``directory`` ("" for the root)."""
        for raw in text.splitlines():
            line = raw.rstrip()
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            pattern = line[1:] if negated else line
            with contextlib.suppress(re.error):
                self.rules.append((directory, re.compile(glob_to_regex(pattern)), negated))

    def ignored(self, path: str, is_dir: bool = False) -> bool:
        """Whether ``path`` (relative to the tree's root) is ignored."""
        verdict = False
        for directory, regex, negated in self.rules:
            if directory and not path.startswith(directory + "/"):
                continue
            rel = path[len(directory) + 1 :] if directory else path
            if regex.fullmatch(rel + "/" if is_dir else rel):
                verdict = not negated
        return verdict


def walk_tree(root: Path) -> Iterator[Entry]:
    """``(path, content, skip reason)`` for every file under ``root``; symlinks not followed."""
    base = root.resolve()
    ignore = _GitIgnore()
    for current, dirs, files in os.walk(base, followlinks=False):
        rel_dir = os.path.relpath(current, base).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir
        if ".gitignore" in files:
            with contextlib.suppress(OSError):
                ignore.add(rel_dir, (Path(current) / ".gitignore").read_text("utf-8", "replace"))
        kept = []
        for name in sorted(dirs):
            path = f"{rel_dir}/{name}".lstrip("/")
            if name in _VCS_DIRS or ignore.ignored(path, is_dir=True):
                continue
            if name in _SKIP_DIRS:
                yield f"{path}/", None, "build output or tool cache directory"
            elif (Path(current) / name).is_symlink():  # os.walk would not enter it; say so
                yield path, None, "symbolic link"
            else:
                kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            path = f"{rel_dir}/{name}".lstrip("/")
            full = Path(current) / name
            if ignore.ignored(path):
                continue  # ignored by .gitignore: not part of the repository
            if full.is_symlink():
                yield path, None, "symbolic link"
            else:
                yield path, *_read(full)


def _read(full: Path) -> tuple[bytes | None, str | None]:
    try:
        if full.stat().st_size > MAX_FILE_BYTES:
            return None, f"larger than {MAX_FILE_BYTES // 1024} KB"
        return full.read_bytes(), None
    except OSError as exc:
        return None, f"unreadable ({exc.strerror})"


def walk_tarball(data: bytes) -> Iterator[Entry]:
    """``(path, content, skip reason)`` for a GitHub tarball (its top directory stripped)."""
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        for member in tar:
            every = PurePosixPath(member.name).parts
            parts = every[1:]
            if not parts or member.isdir():
                continue
            path = "/".join(parts)
            if member.name.startswith("/") or ".." in every:
                yield path, None, "unsafe path in archive"
            elif _SKIP_DIRS.intersection(parts[:-1]) or _VCS_DIRS.intersection(parts[:-1]):
                yield path, None, "build output or tool cache directory"
            elif not member.isfile():
                yield path, None, "not a regular file"
            elif member.size > MAX_FILE_BYTES:
                yield path, None, f"larger than {MAX_FILE_BYTES // 1024} KB"
            else:
                handle = tar.extractfile(member)
                yield path, handle.read() if handle else b"", None
