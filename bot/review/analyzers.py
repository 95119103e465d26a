"""Deterministic analyzers that run before the model and without one: bandit on Python files.

Secrets are found by ``bot.redact`` while it redacts (one detector, one place). Bandit parses
source into an AST and never runs it; it is driven in memory, one file at a time, so nothing from
the reviewed repository is written to disk or imported.
"""

from __future__ import annotations

import ast
import io
import logging
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from bot.diff import ChangedFile, Hunk
from bot.findings import Finding, Severity
from bot.redact.redactor import redact_text

log = logging.getLogger("secreview.analyzers")

MAX_FILE_BYTES = 1_000_000
_SEVERITY: dict[str, Severity] = {"HIGH": "high", "MEDIUM": "medium", "LOW": "low"}
_CONFIDENCE = {"HIGH": 0.9, "MEDIUM": 0.7, "LOW": 0.4}
# Bandit checks that are noise for a security review posted on pull requests.
_SKIP_TESTS = frozenset({"B101"})  # assert used: only matters under python -O
_PASSWORD_TESTS = frozenset({"B105", "B106", "B107"})  # their messages quote the password
_STRING = re.compile(r"""(['"])(?:\\.|(?!\1).)*\1""")


def is_python(path: str) -> bool:
    """Whether bandit can analyze ``path``."""
    return path.endswith((".py", ".pyw"))


def bandit_source(path: str, source: bytes) -> list[Finding]:
    """Bandit's findings in one Python file's source (never executed)."""
    if len(source) > MAX_FILE_BYTES:
        return []
    # Bandit logs parse problems at ERROR (a file that does not parse is simply not analyzed),
    # and its plugin loader an ERROR for optional formatters it cannot import.
    logging.getLogger("bandit").setLevel(logging.CRITICAL)
    logging.getLogger("stevedore").setLevel(logging.CRITICAL)
    with warnings.catch_warnings():  # stevedore's deprecation notice, on bandit's behalf
        warnings.simplefilter("ignore", DeprecationWarning)
        from bandit.core import config as b_config
        from bandit.core import manager as b_manager

        mgr = b_manager.BanditManager(b_config.BanditConfig(), "file", quiet=True)
    files = [path]
    mgr.files_list = list(files)
    mgr._parse_file(path, io.BytesIO(source), files)
    lines = source.decode("utf-8", errors="replace").splitlines()
    out = []
    for issue in mgr.get_issue_list():
        if issue.test_id in _SKIP_TESTS:
            continue
        out.append(_finding(path, issue, lines))
    return out


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
    """Bandit findings on the added lines of a diff's Python files.

    ``read(path)`` may supply the whole new file (a local checkout) so bandit sees complete
    statements; it is used only when it agrees with every line the diff shows.
    """
    out: list[Finding] = []
    for file in files:
        if not is_python(file.path) or file.status == "deleted" or file.is_binary:
            continue
        changed = _changed_lines(file)
        found: dict[tuple[int, str | None], Finding] = {}
        for source in _sources(file, read):
            for f in bandit_source(file.path, source):
                if f.line in changed:
                    found.setdefault((f.line, f.rule), f)
        out.extend(found.values())
    return out


def _sources(file: ChangedFile, read: Callable[[str], bytes | None] | None) -> list[bytes]:
    """What to give bandit: the whole file if the checkout has it, else what parses of the diff."""
    whole = _whole_file(file, read)
    if whole is not None:
        return [whole]
    joined = new_side_source(file)
    if _parses(joined):
        return [joined]
    imports = _imports(file)
    return [s for s in (_hunk_source(h, imports) for h in file.hunks) if s is not None]


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
    except (SyntaxError, ValueError):
        return False
    return True


def _hunk_source(hunk: Hunk, imports: Sequence[str]) -> bytes | None:
    """One hunk's new side at its real line numbers, minus leading lines cut from their block.

    A hunk often starts inside a function whose ``def`` is out of view; dropping the first few
    (context) lines until the rest parses keeps the added code analyzable.
    """
    shown = [(ln.new_lineno, ln.text) for ln in hunk.lines if ln.new_lineno is not None]
    for drop in range(min(len(shown), 12)):
        rest = shown[drop:]
        if not rest:
            return None
        first = rest[0][0]
        head = list(imports[: first - 1]) if len(imports) < first else []
        head += [""] * (first - 1 - len(head))
        text = "\n".join([*head, *(t for _, t in rest)]) + "\n"
        if _parses(text.encode()):
            return text.encode()
    return None


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
