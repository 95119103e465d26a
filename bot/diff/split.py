"""Choosing what the model reviews: default and config file filters, token-budgeted review units.

Re-exported by ``bot.diff`` (``filter_files``, ``split_units``); import from there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

import re2

from bot.diff.globs import compile_globs
from bot.diff.parse import (
    ChangedFile,
    DiffLine,
    FilterRules,
    Hunk,
    ReviewUnit,
    Skip,
    SplitResult,
    UnitSegment,
    is_submodule,
    render_hunk,
    segment_header,
)
from bot.errors import ConfigError
from bot.tokens import estimate_chars, estimate_tokens

# --- default filters -----------------------------------------------------------------------------

# fmt: off
LOCKFILES = frozenset(
    {
        "package-lock.json", "npm-shrinkwrap.json", "yarn.lock", "pnpm-lock.yaml", "bun.lockb",
        "deno.lock", "poetry.lock", "Pipfile.lock", "pdm.lock", "uv.lock", "Cargo.lock",
        "go.sum", "composer.lock", "Gemfile.lock", "Podfile.lock", "Package.resolved",
        "packages.lock.json", "paket.lock", "mix.lock", "pubspec.lock", "flake.lock",
        "gradle.lockfile", "conan.lock", "shard.lock", "cabal.project.freeze",
    }
)
VENDOR_DIRS = frozenset(
    {"vendor", "vendors", "_vendor", "_vendored", "vendored", "third_party", "third-party",
     "thirdparty", "node_modules", "bower_components", "jspm_packages", "site-packages", "Pods",
     "Carthage"}
)
MIGRATION_DIRS = frozenset({"migrations", "migration", "migrate"})
_MINIFIED_SUFFIXES = (".min.js", ".min.mjs", ".min.css", "-min.js")
_MINIFIABLE_SUFFIXES = (".js", ".mjs", ".cjs", ".css")
_GENERATED_SUFFIXES = (
    "_pb2.py", "_pb2.pyi", "_pb2_grpc.py", ".pb.go", ".pb.gw.go", "_grpc.pb.go", ".pb.cc",
    ".pb.h", "_pb.js", "_pb.d.ts", "_grpc_pb.js", ".pb.swift", ".g.dart", ".freezed.dart",
    ".designer.cs", ".g.cs",
)
# fmt: on
_MARKER_LINES = 10  # a generated-code marker sits at the top of the file
_MARKER_CHARS = 300  # of a line, searched for a marker
_BUNDLE_LINES = 60  # ansible's _BUNDLED_METADATA sits below a license header
_MINIFIED_LINE = 500  # characters; hand-written code lines are a few dozen
# Planning caps: past them a file is data, minified or an attack on the pipeline, not code to
# review; it is skipped with the reason before anything else (redaction, prompts) reads it.
MAX_LINE_CHARS = 10_000
MAX_FILE_CHARS = 1_000_000  # new-side text of one file in the diff
MAX_PATH_CHARS = 4096
_CONTROL = re2.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")  # a tab is allowed
_BUNDLED_MARKER = "_BUNDLED_METADATA"  # ansible's convention for a bundled third-party package


def is_migration(path: str) -> bool:
    """Whether ``path`` is a database migration (Django, Rails, Alembic, Flyway, Prisma...)."""
    dirs = path.lower().split("/")[:-1]
    if MIGRATION_DIRS.intersection(dirs):
        return True
    return "versions" in dirs and any("alembic" in d for d in dirs)


def default_skip_reason(file: ChangedFile) -> str | None:
    """Why the default filters drop ``file`` (lockfile, vendored, ...), or None to keep it."""
    parts = file.path.split("/")
    name = parts[-1]
    if name in LOCKFILES:
        return "lockfile"
    if VENDOR_DIRS.intersection(parts[:-1]):
        return "vendored"
    if name.endswith(_MINIFIED_SUFFIXES) or _looks_minified(file):
        return "minified"
    if name.endswith(".map"):
        return "source map"
    if name.endswith(_GENERATED_SUFFIXES) or name.startswith("zz_generated."):
        return "generated file"
    if any(p.endswith((".egg-info", ".dist-info")) for p in parts[:-1]):
        return "generated file"  # package metadata written by the build
    if _has_generated_marker(file):
        return "generated file"
    if _has_vendored_marker(file):
        return "vendored"
    return None


def _has_vendored_marker(file: ChangedFile) -> bool:
    for hunk in file.hunks:
        for ln in hunk.lines:
            if ln.new_lineno is not None and ln.new_lineno > _MARKER_LINES:
                return False
            if ln.new_lineno is not None and is_vendored_marker(ln.text):
                return True
    return False


def _looks_minified(file: ChangedFile) -> bool:
    """A JS/CSS file whose every non-empty added line is very long (bundler output)."""
    if not file.path.endswith(_MINIFIABLE_SUFFIXES):
        return False
    added = [ln.text for h in file.hunks for ln in h.lines if ln.kind == "add" and ln.text]
    return bool(added) and all(len(t) > _MINIFIED_LINE for t in added)


def _has_generated_marker(file: ChangedFile) -> bool:
    """A "Code generated ... DO NOT EDIT" / "@generated" marker in the file's first lines."""
    for hunk in file.hunks:
        if hunk.new_start > _MARKER_LINES:
            break
        for ln in hunk.lines:
            if ln.new_lineno is None:
                continue
            if ln.new_lineno > _MARKER_LINES:
                return False
            if is_generated_marker(ln.text):
                return True
    return False


def is_generated_marker(line: str) -> bool:
    """A top-of-file line saying the file is generated."""
    text = line[:_MARKER_CHARS].lower()  # a marker is a short comment; a huge line is not one
    if "@generated" in text or "<auto-generated" in text or "generated by cython" in text:
        return True
    return "generated" in text and "do not edit" in text


def is_vendored_marker(line: str) -> bool:
    """A top-of-file comment saying the file is vendored from upstream."""
    text = line[:_MARKER_CHARS].lstrip().lower()
    return text.startswith(("#", "//", "/*", "*")) and "vendored" in text and "upstream" in text


def _bundle_dir(file: ChangedFile) -> str | None:
    """The package directory a bundled-package marker (``_BUNDLED_METADATA``) declares, if any."""
    if not file.path.endswith("/__init__.py"):
        return None
    for hunk in file.hunks:
        for ln in hunk.lines:
            if ln.new_lineno is not None and ln.new_lineno > _BUNDLE_LINES:
                return None
            if ln.new_lineno is not None and ln.text.startswith(_BUNDLED_MARKER):
                return file.path.rsplit("/", 1)[0] + "/"
    return None


def unsafe_path_reason(path: str) -> str | None:
    """Why a path from a diff or an archive cannot be reviewed as it is, or None."""
    if len(path) > MAX_PATH_CHARS:
        return f"path longer than {MAX_PATH_CHARS} characters"
    if _CONTROL.search(path):
        return "path with control characters (newline, escape...)"
    if path.startswith("/") or ".." in path.split("/"):
        return "unsafe path (leaves the repository)"
    return None


def size_skip_reason(file: ChangedFile) -> str | None:
    """Why ``file`` is over a planning cap (a line or the whole file too long), or None."""
    total = 0
    for hunk in file.hunks:
        for ln in hunk.lines:
            if ln.new_lineno is None:
                continue
            size = len(ln.text)
            if size > MAX_LINE_CHARS:
                return f"line {ln.new_lineno} is longer than {MAX_LINE_CHARS} characters"
            total += size + 1
    if total > MAX_FILE_CHARS:
        return f"more than {MAX_FILE_CHARS // 1_000_000} MB of text in the diff"
    return None


def shown_path(path: str) -> str:
    """A path as coverage lists it: control characters escaped, cut to MAX_PATH_CHARS."""
    if not path.isprintable():
        path = path.encode("unicode_escape").decode("ascii")
    return path[:MAX_PATH_CHARS]


def structural_skip_reason(file: ChangedFile) -> str | None:
    """Why ``file`` has nothing to review (binary, deleted, mode only...), or None."""
    if file.is_binary:
        return "binary file"
    if file.status == "deleted":
        return "file deleted"
    if is_submodule(file):
        return "submodule"
    if file.hunks:
        return None
    if file.old_mode and file.new_mode and file.old_mode != file.new_mode:
        return "mode change only"
    if file.status in ("renamed", "copied"):
        return f"{file.status} without changes"
    return "empty file" if file.status == "added" else "no changes"


_DEFAULT_RULES = FilterRules()


def filter_files(
    files: Iterable[ChangedFile], rules: FilterRules = _DEFAULT_RULES
) -> tuple[list[ChangedFile], list[Skip]]:
    """Files to review, and the rest with a reason, in diff order.

    Order of decisions: nothing to review (binary, deleted, submodule, mode change only, no
    content change); then the config's ``exclude`` and ``include`` globs; then, unless
    ``rules.default_excludes`` is off, the default filters (lockfile, vendored, minified, source
    map, generated file). Database migrations (:func:`is_migration`) are never dropped by the
    default filters, even when they carry a "generated" marker as Django's do; an explicit config
    exclude still applies to them.
    """
    include = compile_globs(tuple(rules.include)) if rules.include else None
    exclude = compile_globs(tuple(rules.exclude))
    kept: list[ChangedFile] = []
    skipped: list[Skip] = []
    for file in files:
        reason = structural_skip_reason(file) or unsafe_path_reason(file.path)
        if reason is None and exclude(file.path):
            reason = "excluded by config"
        if reason is None and include is not None and not include(file.path):
            reason = "not included by config"
        if reason is None and rules.default_excludes and not is_migration(file.path):
            reason = default_skip_reason(file)
        reason = reason or size_skip_reason(file)
        if reason is None:
            kept.append(file)
        else:
            skipped.append(Skip(shown_path(file.path), reason))
    if rules.default_excludes:
        kept, bundled = _without_bundles(kept)
        skipped += bundled
    return kept, skipped


def _without_bundles(files: list[ChangedFile]) -> tuple[list[ChangedFile], list[Skip]]:
    """Files under a package that declares itself bundled from upstream are vendored too."""
    bundles = tuple(d for d in map(_bundle_dir, files) if d is not None)
    if not bundles:
        return files, []
    kept = [f for f in files if not f.path.startswith(bundles)]
    return kept, [Skip(f.path, "vendored") for f in files if f.path.startswith(bundles)]


# --- review units --------------------------------------------------------------------------------

MIN_BUDGET_TOKENS = 200
_MIN_LINE_ROOM = 80  # characters left for diff lines after the headers of one part
_Piece = tuple[UnitSegment, str]


@dataclass(slots=True)
class _Packer:
    """Greedy, in-order packing of rendered segments into units of at most ``limit`` chars."""

    limit: int
    units: list[list[_Piece]] = field(default_factory=list)
    current: list[_Piece] = field(default_factory=list)
    size: int = 0  # characters of "\n".join(texts of current)

    def add(self, segment: UnitSegment, text: str) -> None:
        if self.current and self.size + 1 + len(text) > self.limit:
            self.flush()
        self.size += len(text) + (1 if self.current else 0)
        self.current.append((segment, text))

    def flush(self) -> None:
        if self.current:
            self.units.append(self.current)
            self.current, self.size = [], 0


def split_units(
    files: Sequence[ChangedFile], budget_tokens: int, max_units: int | None = None
) -> SplitResult:
    """Pack files' hunks into review units of at most ``budget_tokens`` estimated tokens.

    A unit's size is ``estimate_tokens(render_unit_diff(unit))``. Files stay whole and in diff
    order when they fit (several small files share a unit); a file too big for one unit is cut
    between hunks, and a hunk too big for one unit into parts at line boundaries (``part=(k, n)``,
    each part under the original @@ header). A single line longer than a unit is truncated.
    Units past ``max_units`` are not produced. Everything left out is listed in ``skipped``.
    """
    if budget_tokens < MIN_BUDGET_TOKENS:
        raise ConfigError(f"unit token budget {budget_tokens} is below {MIN_BUDGET_TOKENS}")
    packer = _Packer(_char_limit(budget_tokens))
    skipped: list[Skip] = []
    for file in files:
        if not file.hunks:
            skipped.append(Skip(file.path, structural_skip_reason(file) or "no changes"))
            continue
        pieces = list(_file_pieces(file, packer.limit, skipped))
        if len(pieces) > 1:
            packer.flush()  # a file that needs several units starts on a fresh one
        for segment, text in pieces:
            packer.add(segment, text)
    packer.flush()
    units = packer.units
    if max_units is not None and len(units) > max(max_units, 0):
        skipped += _limit_skips(units, max(max_units, 0))
        units = units[: max(max_units, 0)]
    return SplitResult(
        units=tuple(_unit(k, pieces) for k, pieces in enumerate(units, 1)),
        skipped=tuple(skipped),
    )


def _unit(number: int, pieces: list[_Piece]) -> ReviewUnit:
    text = "\n".join(t for _, t in pieces)  # what render_unit_diff(unit) would produce
    unit = ReviewUnit(f"unit-{number}", tuple(s for s, _ in pieces), estimate_tokens(text))
    object.__setattr__(unit, "_text", text)  # the frozen dataclass's derived-field idiom
    return unit


def _char_limit(budget_tokens: int) -> int:
    """The longest text whose token estimate stays within ``budget_tokens``."""
    chars = estimate_chars(budget_tokens)
    while chars > 0 and estimate_tokens("x" * chars) > budget_tokens:
        chars -= 1
    while estimate_tokens("x" * (chars + 1)) <= budget_tokens:
        chars += 1
    return chars


def _limit_skips(units: list[list[_Piece]], max_units: int) -> list[Skip]:
    """One Skip per file that has content in the units past ``max_units``."""
    reviewed = {s.path for pieces in units[:max_units] for s, _ in pieces}
    dropped = dict.fromkeys(s.path for pieces in units[max_units:] for s, _ in pieces)
    reason = f"unit limit reached (max {max_units} units)"
    return [Skip(p, f"{reason}; partly reviewed" if p in reviewed else reason) for p in dropped]


def _file_pieces(file: ChangedFile, limit: int, skipped: list[Skip]) -> Iterator[_Piece]:
    """Segments of one file: the whole file, or runs of hunks, or parts of a huge hunk."""
    header = segment_header(file.path, file.status, narrowed=file.narrowed)
    texts = [render_hunk(h) for h in file.hunks]
    if len(header) + 1 + sum(map(len, texts)) <= limit:
        segment = UnitSegment(file.path, file.status, file.hunks, narrowed=file.narrowed)
        yield segment, header + "\n" + "".join(texts)
        return
    run: list[int] = []
    size = len(header) + 1
    for i, text in enumerate(texts):
        if run and size + len(text) > limit:
            yield _run_piece(file, header, run, texts)
            run, size = [], len(header) + 1
        if size + len(text) <= limit:
            run.append(i)
            size += len(text)
        else:
            yield from _hunk_parts(file, file.hunks[i], limit, skipped)
    if run:
        yield _run_piece(file, header, run, texts)


def _run_piece(file: ChangedFile, header: str, run: list[int], texts: list[str]) -> _Piece:
    hunks = tuple(file.hunks[i] for i in run)
    segment = UnitSegment(file.path, file.status, hunks, narrowed=file.narrowed)
    return segment, header + "\n" + "".join(texts[i] for i in run)


def _line_size(ln: DiffLine) -> int:
    """Characters ``render_hunk`` spends on ``ln``, newline included."""
    number = 0 if ln.new_lineno is None else len(str(ln.new_lineno))
    return max(6, number) + 4 + len(ln.text)


def _hunk_parts(file: ChangedFile, hunk: Hunk, limit: int, skipped: list[Skip]) -> list[_Piece]:
    """A hunk too big for one unit, cut at line boundaries into parts that each fit."""
    widest = (len(hunk.lines), len(hunk.lines))
    widest_header = segment_header(file.path, file.status, widest, file.narrowed)
    fixed = len(widest_header) + 1 + len(render_hunk(hunk, ()))
    room = limit - fixed
    if room < _MIN_LINE_ROOM:
        skipped.append(Skip(file.path, f"hunk {hunk.index + 1}: path too long for the unit budget"))
        return []
    slices: list[list[DiffLine]] = [[]]
    size = 0
    for ln in hunk.lines:
        cost = _line_size(ln)
        if cost > room:
            ln = _truncate(ln, cost - room, file.path, skipped)
            cost = _line_size(ln)
        if slices[-1] and size + cost > room:
            slices.append([])
            size = 0
        slices[-1].append(ln)
        size += cost
    total = len(slices)
    pieces: list[_Piece] = []
    for k, lines in enumerate(slices, 1):
        part = dataclasses.replace(hunk, lines=tuple(lines))
        segment = UnitSegment(
            file.path, file.status, (part,), part=(k, total), narrowed=file.narrowed
        )
        header = segment_header(file.path, file.status, (k, total), file.narrowed)
        pieces.append((segment, f"{header}\n{render_hunk(part)}"))
    return pieces


def _truncate(ln: DiffLine, excess: int, path: str, skipped: list[Skip]) -> DiffLine:
    """``ln`` shortened by at least ``excess`` characters, with a visible marker; recorded."""
    marker = f" [... {len(ln.text)} characters, truncated]"
    keep = max(0, len(ln.text) - excess - len(marker))
    where = (
        f"line {ln.new_lineno}" if ln.new_lineno is not None else f"removed line {ln.old_lineno}"
    )
    skipped.append(Skip(path, f"{where} truncated to fit the unit budget"))
    return DiffLine(ln.kind, ln.old_lineno, ln.new_lineno, ln.text[:keep] + marker)
