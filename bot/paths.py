"""What a path is for: test code, examples, documentation or prose.

One decision for every part that asks: the review policy's exclusion of findings "only in tests,
examples or documentation", the scan's skip of such files, the pull-request router's "only
documentation changed", the scan's ranking, and the secrets report's lower severity for
credentials in fixtures. Paths are written by outsiders, so the patterns are RE2: time linear in
the path's length, whatever it holds.
"""

from __future__ import annotations

from bot.redact.linear import compile as _rx

# Directories of test code and its data. ``tests/`` anywhere; the singular ``test/`` and
# ``spec/`` only at the top of the tree or of a Maven source set (``core/src/test/java``): deeper
# down they name library code as often as not (``django/test/``, Ansible's ``plugins/test/``),
# and taking library code for tests would leave it unreviewed.
_TEST_DIR = _rx(
    r"(?i)(^|/)([a-z0-9]+[_-])*tests/|(^|/)[a-z0-9]+[_-]test/|^(test|specs?)/|(^|/)src/test/|"
    r"(^|/)(__tests__|__mocks__|__snapshots__|mocks|testdata|test_?data|fixtures?|e2e)/"
)
# Test files by name: test_x.py, x_test.go, x.spec.ts, x.test.js, x_spec.rb, conftest.py
# (not arg_spec.py: outside Ruby, ``_spec`` names specifications).
_TEST_FILE = _rx(
    r"(?i)(^|/)test_[^/]*$|_test\.\w+$|_spec\.rb$|\.(spec|test)\.\w+$|(^|/)conftest\.py$"
)
_EXAMPLE_DIR = _rx(r"(?i)(^|/)(examples?|samples?)/")
_DOCS_DIR = _rx(r"(?i)(^|/)(docs?|documentation)/")

_PROSE_SUFFIXES = (".md", ".markdown", ".rst", ".adoc", ".txt")
_PROSE_NAMES = frozenset(
    {
        "readme",
        "license",
        "licence",
        "copying",
        "notice",
        "authors",
        "contributors",
        "codeowners",
        "changelog",
        "changes",
        "history",
        "news",
        "install",
        "pkg-info",
    }
)
# LICENSE-MIT, LICENSE.python, COPYING.LESSER: licence texts under another suffix.
_LICENCE = _rx(r"^(licen[cs]e|copying)[.-][a-z0-9-]+$")
_CODE_SUFFIX = _rx(r"\.(py|js|ts|rb|go|java|php|rs|c|h|sh|pl|cs|kt|swift)$")
# Text files that are code or dependency manifests, not prose.
_TEXT_BUT_NOT_PROSE = _rx(r"^(requirements|constraints)[^/]*\.txt$|^cmakelists\.txt$")


def is_test(path: str) -> bool:
    """Test code, fixtures and test data."""
    return _TEST_DIR.test(path) or _TEST_FILE.test(path)


def is_prose(path: str) -> bool:
    """Text for people: Markdown, reStructuredText, AsciiDoc, plain text, licences and credits
    (``requirements.txt`` and ``CMakeLists.txt`` are not prose)."""
    name = path.rsplit("/", 1)[-1].lower()
    if _TEXT_BUT_NOT_PROSE.test(name):
        return False
    if name.endswith(_PROSE_SUFFIXES) or name in _PROSE_NAMES:
        return True
    return _LICENCE.test(name) and not _CODE_SUFFIX.test(name)


def off_target(path: str) -> str | None:
    """``"test code"``, ``"example code"`` or ``"documentation"`` for a file whose findings the
    review policy does not report (tests, examples, documentation); None for anything else."""
    if is_prose(path) or _DOCS_DIR.test(path):
        return "documentation"
    if is_test(path):
        return "test code"
    if _EXAMPLE_DIR.test(path):
        return "example code"
    return None
