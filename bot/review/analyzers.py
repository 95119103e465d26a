"""Deterministic analyzers that run before the model and without one: bandit on Python files.

Secrets are found by ``bot.redact`` while it redacts (one detector, one place). Bandit parses
source into an AST and never runs it; it is driven in memory, one file at a time, so nothing from
the reviewed repository is written to disk or imported.

A file's analysis depends only on its path, its diff's lines, the file the checkout holds (when
one is read) and the versions of bandit and of this module: with a ``Memo`` (the App's Redis,
the CLI's cache directory) a push re-analyzes only the files it changed, and a review whose
files were all analyzed before never loads bandit at all.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import io
import logging
import re
import textwrap
import warnings
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import msgspec

from bot.diff import ChangedFile, Hunk, Skip
from bot.findings import Finding, Severity
from bot.redact.redactor import redact_text

log = logging.getLogger("secreview.analyzers")

MAX_FILE_BYTES = 1_000_000
_SEVERITY: dict[str, Severity] = {"HIGH": "high", "MEDIUM": "medium", "LOW": "low"}
_CONFIDENCE = {"HIGH": 0.9, "MEDIUM": 0.7, "LOW": 0.4}
# Bandit checks that are noise for a security review posted on pull requests.
# Tests whose hits say "consider the implications" rather than point at a flaw, and would be
# posted on every import or safe call: B101 assert (only matters under python -O); B401-B413
# imports of subprocess, pickle, xml... (the dangerous calls have their own tests: B301, B602,
# B314 ...); B603 subprocess without a shell and B607 a partial executable path.
_SKIP_TESTS = frozenset({"B101", *(f"B4{n:02}" for n in range(1, 14)), "B603", "B607"})
_PASSWORD_TESTS = frozenset({"B105", "B106", "B107"})  # their messages quote the password
_STRING = re.compile(r"""(['"])(?:\\.|(?!\1).)*\1""")


# Bumped whenever what this module makes of bandit's output changes (skipped tests, placement,
# redaction of messages): a memoized analysis made under another version is never reused.
ANALYZER_VERSION = "1"


class Memo(Protocol):
    """Where analyses are kept between runs: opaque values under content keys."""

    def get_many(self, keys: Collection[str]) -> Mapping[str, bytes]: ...

    def put_many(self, items: Mapping[str, bytes]) -> None: ...


class _Stored(msgspec.Struct, frozen=True):
    findings: tuple[Finding, ...] = ()
    reasons: tuple[str, ...] = ()


_ENCODE = msgspec.json.Encoder()
_DECODE = msgspec.json.Decoder(_Stored)


@functools.cache
def _versions() -> bytes:
    """What besides the input decides an analysis: the analyzer and the package versions."""
    from importlib import metadata  # on first use: only a run that analyzes needs it

    found = []
    for dist in ("bandit", "secreview"):
        try:
            found.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            found.append(f"{dist} ?")
    skipped = ",".join(sorted(_SKIP_TESTS))
    return f"analyzers {ANALYZER_VERSION}; {'; '.join(found)}; skip {skipped}".encode()


def memo_key(file: ChangedFile, whole: bytes | None) -> str:
    """The key of one file's analysis: a digest of everything it depends on."""
    digest = hashlib.sha256(_versions())
    digest.update(b"\0path\0" + file.path.encode("utf-8", errors="surrogatepass"))
    digest.update(b"\0file\0" + (hashlib.sha256(whole).digest() if whole is not None else b"-"))
    for hunk in file.hunks:
        digest.update(b"\0hunk\0")
        for ln in hunk.lines:
            if ln.new_lineno is not None:
                row = f"{ln.kind}\t{ln.new_lineno}\t{ln.text}\n"
                digest.update(row.encode("utf-8", errors="surrogatepass"))
    return digest.hexdigest()


def _recall(memo: Memo | None, keys: Collection[str]) -> dict[str, _Stored]:
    """The stored analyses among ``keys``; a store that fails or holds junk is a miss."""
    if memo is None or not keys:
        return {}
    try:
        raws = memo.get_many(keys)
    except Exception:  # a cache is never a reason for a review to fail
        log.warning("analysis memo unavailable: analyzing every file", exc_info=True)
        return {}
    out = {}
    for key, raw in raws.items():
        try:
            out[key] = _DECODE.decode(raw)
        except msgspec.DecodeError:
            continue
    return out


def _keep(memo: Memo | None, fresh: Mapping[str, _Stored]) -> None:
    if memo is None or not fresh:
        return
    try:
        memo.put_many({key: _ENCODE.encode(value) for key, value in fresh.items()})
    except Exception:  # the analysis is done; only its reuse is lost
        log.warning("analysis memo unavailable: results not kept", exc_info=True)


Progress = Callable[[int, "int | None"], None]  # (files done, files in all, if known)


def _memoized(
    memo: Memo | None,
    jobs: Sequence[tuple[str, Callable[[], _Stored]]],
    progress: Progress | None = None,
) -> list[_Stored]:
    """Each job's analysis, in order: the stored one under its key, else computed once (and
    kept). Without ``memo`` every job is computed. ``progress`` hears of each job done."""
    stored = _recall(memo, {key for key, _ in jobs})
    fresh: dict[str, _Stored] = {}
    out = []
    for key, compute in jobs:
        done = stored.get(key) or fresh.get(key)
        if done is None:
            done = compute()
            if memo is not None:
                fresh[key] = done
        out.append(done)
        if progress is not None:
            progress(len(out), len(jobs))
    _keep(memo, fresh)
    return out


def _bandit_stored(path: str, source: bytes) -> _Stored:
    findings, reason = bandit_file(path, source)
    return _Stored(tuple(findings), (reason,) if reason else ())


def is_python(path: str) -> bool:
    """Whether bandit can analyze ``path``."""
    return path.endswith((".py", ".pyw"))


@dataclass(frozen=True, slots=True)
class Analysis:
    """What the analyzers found, and the files (or parts) they could not analyze, with why."""

    findings: tuple[Finding, ...] = ()
    skipped: tuple[Skip, ...] = ()


@functools.cache
def _manager() -> Any:
    """One BanditManager per process: loading bandit's plugins costs more than analyzing a file."""
    # Bandit logs parse problems at ERROR (we report them ourselves), and its plugin loader an
    # ERROR for optional formatters it cannot import.
    logging.getLogger("bandit").setLevel(logging.CRITICAL)
    logging.getLogger("stevedore").setLevel(logging.CRITICAL)
    with warnings.catch_warnings():  # stevedore's deprecation notice, on bandit's behalf
        warnings.simplefilter("ignore", DeprecationWarning)
        from bandit.core import config as b_config
        from bandit.core import manager as b_manager
        from bandit.core import node_visitor  # noqa: F401 (imported here, warnings silenced)

        # B101 (assert) is noise for a security review; B613 (trojan source) is what the
        # injection detector already reports for every file type, and it tokenizes the file.
        profile = {"include": set(), "exclude": set(_SKIP_TESTS | {"B613"})}
        return b_manager.BanditManager(b_config.BanditConfig(), "file", quiet=True, profile=profile)


def _nosec_lines(text: str) -> dict[int, set[str]]:
    """Bandit's ``# nosec`` markers, found without tokenizing the whole file (the slow part)."""
    if "nosec" not in text:
        return {}
    from bandit.core.manager import _parse_nosec_comment

    found: dict[int, set[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        at = line.find("#")
        if at >= 0 and "nosec" in line[at:]:
            tests = _parse_nosec_comment(line[at:])
            if tests is not None:
                found[number] = tests
    return found


def bandit_file(path: str, source: bytes) -> tuple[list[Finding], str | None]:
    """Bandit's findings in one Python file's source (never executed), and why it was not
    analyzed (None when it was): too large, or a syntax error bandit cannot parse."""
    if len(source) > MAX_FILE_BYTES:
        return [], f"bandit: not analyzed (larger than {MAX_FILE_BYTES // 1000} KB)"
    mgr = _manager()
    from bandit.core import node_visitor

    text = source.decode("utf-8", errors="replace")
    mgr.metrics.begin(path)
    visitor = node_visitor.BanditNodeVisitor(
        path, io.BytesIO(source), mgr.b_ma, mgr.b_ts, False, _nosec_lines(text), mgr.metrics
    )
    try:
        visitor.process(source)
    except (SyntaxError, ValueError) as exc:  # ValueError: NUL bytes in the source
        line = getattr(exc, "lineno", None)
        where = f" at line {line}" if line else ""
        return [], f"bandit: not analyzed (syntax error{where})"
    except RecursionError:
        return [], "bandit: not analyzed (nested too deeply)"
    lines = text.splitlines()
    findings = [
        _finding(path, issue, lines)
        for issue in visitor.tester.results
        if issue.test_id not in _SKIP_TESTS
    ]
    return findings, None


def bandit_source(path: str, source: bytes) -> list[Finding]:
    """Bandit's findings in one Python file's source (never executed); [] if it does not parse."""
    return bandit_file(path, source)[0]


def _finding(path: str, issue: object, lines: Sequence[str]) -> Finding:
    lineno = int(getattr(issue, "lineno", 1) or 1)
    cwe = getattr(getattr(issue, "cwe", None), "id", 0) or 0
    test_id = str(getattr(issue, "test_id", ""))
    # Bandit quotes what it found ("Possible hardcoded password: '...'"): a secret it saw must
    # not leave through its message or the evidence, any more than through a prompt.
    text = redact_text(str(getattr(issue, "text", "")).strip()).text
    raw = lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""
    evidence = redact_text(raw).text
    if test_id in _PASSWORD_TESTS:
        text = "Possible hard-coded password"
        evidence = _STRING.sub("'[REDACTED:password]'", evidence)
    return Finding(
        path=path,
        line=lineno,
        severity=_SEVERITY.get(str(getattr(issue, "severity", "")), "low"),
        cwe=f"CWE-{cwe}" if cwe else "CWE-710",
        title=f"{text.rstrip('.')} ({test_id})",
        description=f"bandit {test_id} ({getattr(issue, 'test', '')}): {text}",
        exploit_scenario="Reported by a static rule; see the recommendation.",
        recommendation=f"See https://bandit.readthedocs.io/en/latest/ for {test_id}.",
        confidence=_CONFIDENCE.get(str(getattr(issue, "confidence", "")), 0.5),
        evidence=evidence,
        source="bandit",
        rule=test_id,
    )


def new_side_source(file: ChangedFile) -> bytes:
    """The new-side text a diff shows of ``file``, each line at its real line number.

    Lines the diff does not show are blank, so bandit's line numbers match the new file; a
    statement cut by a hunk boundary may not parse, and that file is then not analyzed.
    """
    shown = {
        ln.new_lineno: ln.text for h in file.hunks for ln in h.lines if ln.new_lineno is not None
    }
    if not shown:
        return b""
    last = max(shown)
    return "\n".join(shown.get(i, "") for i in range(1, last + 1)).encode() + b"\n"


def _changed_lines(file: ChangedFile) -> set[int]:
    return {
        ln.new_lineno
        for h in file.hunks
        for ln in h.lines
        if ln.kind == "add" and ln.new_lineno is not None
    }


def review_findings(
    files: Iterable[ChangedFile], read: Callable[[str], bytes | None] | None = None
) -> list[Finding]:
    """Bandit findings on the added lines of a diff's Python files (see :func:`analyze`)."""
    return list(analyze(files, read).findings)


def analyze(
    files: Iterable[ChangedFile],
    read: Callable[[str], bytes | None] | None = None,
    memo: Memo | None = None,
) -> Analysis:
    """Bandit on what a diff changed in its Python files: once per file, in process.

    ``read(path)`` may supply the whole new file (a local checkout); it is used only when it
    agrees with every line the diff shows, and then bandit sees the file's top-level
    statements that hold a changed line (plus its imports), not the whole file. Without it,
    the diff's own lines, or each hunk that parses alone. What bandit could not parse is
    reported as not analyzed. With ``memo``, a file analyzed before with the same inputs is not
    analyzed again.
    """
    paths: list[str] = []
    jobs: list[tuple[str, Callable[[], _Stored]]] = []
    for file in files:
        if not is_python(file.path) or file.status == "deleted" or file.is_binary:
            continue
        changed = _changed_lines(file)
        if not changed:
            continue
        whole = _whole_file(file, read)
        paths.append(file.path)
        key = memo_key(file, whole) if memo is not None else ""
        jobs.append((key, functools.partial(_file_stored, file, changed, whole)))
    return _analysis(paths, _memoized(memo, jobs))


def _file_stored(file: ChangedFile, changed: set[int], whole: bytes | None) -> _Stored:
    results, reasons = _analyze_file(file, changed, whole)
    return _Stored(tuple(results), tuple(reasons))


def _analysis(paths: Sequence[str], done: Sequence[_Stored]) -> Analysis:
    """The findings and the not-analyzed parts of each path's analysis, in order."""
    found = [f for d in done for f in d.findings]
    skipped = [
        Skip(path, reason) for path, d in zip(paths, done, strict=True) for reason in d.reasons
    ]
    return Analysis(tuple(found), tuple(skipped))


def source_key(path: str, source: bytes) -> str:
    """The key of a whole file's analysis (a scan's): its path and content, and the versions."""
    digest = hashlib.sha256(_versions())
    digest.update(b"\0source\0" + path.encode("utf-8", errors="surrogatepass") + b"\0")
    digest.update(hashlib.sha256(source).digest())
    return digest.hexdigest()


def analyze_sources(
    sources: Iterable[tuple[str, str]], memo: Memo | None = None, progress: Progress | None = None
) -> Analysis:
    """Bandit over whole files of a scan (``(path, text)``), once each, in process; with
    ``memo``, a file whose path and content were analyzed before is not analyzed again;
    ``progress`` hears of each Python file done."""
    paths: list[str] = []
    jobs: list[tuple[str, Callable[[], _Stored]]] = []
    for path, text in sources:
        if is_python(path):
            data = text.encode("utf-8", errors="replace")
            paths.append(path)
            key = source_key(path, data) if memo is not None else ""
            jobs.append((key, functools.partial(_bandit_stored, path, data)))
    return _analysis(paths, _memoized(memo, jobs, progress))


def bandit_kept(path: str, source: bytes, memo: Memo | None) -> tuple[list[Finding], str | None]:
    """:func:`bandit_file` of one whole file, through ``memo`` (a scan that streams its files)."""
    if memo is None:
        return bandit_file(path, source)
    key = source_key(path, source)
    (done,) = _memoized(memo, [(key, functools.partial(_bandit_stored, path, source))])
    return list(done.findings), (done.reasons[0] if done.reasons else None)


def _analyze_file(
    file: ChangedFile, changed: set[int], whole: bytes | None
) -> tuple[list[Finding], list[str]]:
    """One file's findings on its changed lines, and why parts of it were not analyzed
    (``whole``: the new file as the checkout holds it, when it agrees with the diff)."""
    if whole is not None:
        blocks = _changed_blocks(whole, _code_lines(file) or changed)
        if blocks is not None:
            findings, reason = bandit_file(file.path, blocks)
            if reason is None:
                return _on(findings, changed), []
        findings, reason = bandit_file(file.path, whole)
        return _on(findings, changed), [reason] if reason else []
    joined = new_side_source(file)
    findings, reason = bandit_file(file.path, joined)
    if reason is None:
        return _on(findings, changed), []
    imports = _imports(file)
    out: list[Finding] = []
    reasons = []
    for hunk in file.hunks:
        if not any(ln.kind == "add" for ln in hunk.lines):
            continue
        source = _hunk_source(hunk, imports)
        if source is None:
            reasons.append(
                f"bandit: hunk {hunk.index + 1} not analyzed (does not parse without the rest "
                "of the file)"
            )
            continue
        out += bandit_file(file.path, source)[0]
    return _on(out, changed), reasons


def _code_lines(file: ChangedFile) -> set[int]:
    """Added lines that hold code (not blank, not only a comment): what selects the blocks."""
    return {
        ln.new_lineno
        for h in file.hunks
        for ln in h.lines
        if ln.kind == "add"
        and ln.new_lineno is not None
        and ln.text.strip()
        and not ln.text.lstrip().startswith("#")
    }


def _on(findings: Iterable[Finding], changed: set[int]) -> list[Finding]:
    """Findings on changed lines, one per line and rule."""
    kept: dict[tuple[int, str | None], Finding] = {}
    for f in findings:
        if f.line in changed:
            kept.setdefault((f.line, f.rule), f)
    return list(kept.values())


def _changed_blocks(source: bytes, changed: set[int]) -> bytes | None:
    """The file with only its imports and the top-level statements holding a changed line,
    every line at its own number (the rest blank); None when that is most of the file anyway.

    A top-level statement starts at a line with no indentation; its block runs to the next
    such line. If the cut lands inside a multi-line string, bandit's parse fails and the whole
    file is analyzed instead.
    """
    lines = source.decode("utf-8", errors="replace").split("\n")
    starts = [
        i
        for i, ln in enumerate(lines)
        if ln and not ln[0].isspace() and not ln.startswith(("#", ")", "]", "}"))
    ]
    if not starts:
        return None
    keep = bytearray(len(lines))
    for i in starts:
        if lines[i].startswith(("import ", "from ")):
            keep[i] = 1
    bounds = [*starts, len(lines)]
    for k in range(len(starts)):
        first, last = bounds[k], bounds[k + 1]
        if any(first < n <= last for n in changed):  # line numbers are 1-based
            keep[first:last] = b"\x01" * (last - first)
    for i in range(starts[0]):  # a module docstring or comments before the first statement
        keep[i] = 1
    if sum(keep) > len(lines) * 0.8:
        return None
    out = [ln if keep[i] else "" for i, ln in enumerate(lines)]
    return "\n".join(out).encode("utf-8")


def _imports(file: ChangedFile) -> list[str]:
    """Top-level import lines the diff shows (bandit resolves calls like ``yaml.load`` by them)."""
    return [
        ln.text
        for h in file.hunks
        for ln in h.lines
        if ln.new_lineno is not None and ln.text.startswith(("import ", "from "))
    ]


def _parses(source: bytes) -> bool:
    try:
        ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        return False
    return True


def _hunk_source(hunk: Hunk, imports: Sequence[str]) -> bytes | None:
    """One hunk's new side at its real line numbers, minus leading lines cut from their block.

    A hunk often starts inside a function whose ``def`` is out of view: its lines are dedented
    (line numbers, which is all a finding keeps, do not move), and leading lines are dropped
    until the rest parses — a few tries at most, each parse linear in the hunk.
    """
    shown = [(ln.new_lineno, ln.text) for ln in hunk.lines if ln.new_lineno is not None]
    if not shown:
        return None
    numbers = [n for n, _ in shown]
    lines = textwrap.dedent("\n".join(t for _, t in shown)).split("\n")  # once per hunk
    for drop in range(min(len(shown), _HUNK_TRIES)):
        first = numbers[drop]
        head = list(imports[: first - 1]) if len(imports) < first else []
        body = "\n".join(lines[drop:])
        text = "".join(f"{h}\n" for h in head) + "\n" * (first - 1 - len(head)) + body + "\n"
        if _parses(text.encode()):
            return text.encode()
    return None


_HUNK_TRIES = 4


def _whole_file(file: ChangedFile, read: Callable[[str], bytes | None] | None) -> bytes | None:
    if read is None:
        return None
    data = read(file.path)
    if data is None:
        return None
    lines = data.decode("utf-8", errors="replace").splitlines()
    for h in file.hunks:
        for ln in h.lines:
            if ln.new_lineno is None:
                continue
            if ln.new_lineno > len(lines) or lines[ln.new_lineno - 1].rstrip() != ln.text.rstrip():
                return None
    return data


def local_reader(root: Path) -> Callable[[str], bytes | None]:
    """Read files of a local checkout, refusing paths that leave it."""
    base = root.resolve()

    def read(path: str) -> bytes | None:
        target = (base / path).resolve()
        if base not in target.parents or not target.is_file():
            return None
        try:
            return target.read_bytes()
        except OSError:
            return None

    return read
