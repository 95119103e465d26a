"""bot.diff.parse: parsing real git and GitHub diffs, commentable lines, filters, review units."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.diff import (
    ChangedFile,
    DiffLine,
    FilterRules,
    Hunk,
    ParsedDiff,
    ReviewUnit,
    filter_files,
    line_map,
    parse_diff,
    parse_file_patch,
    render_hunk,
    render_segment,
    render_unit_diff,
    segment_header,
    split_units,
    unquote_path,
)
from bot.diff import split as diff_split
from bot.diff.split import is_migration
from bot.errors import ConfigError, DiffError
from bot.tokens import estimate_tokens

DATA = Path(__file__).parent / "data" / "diffs"
LONG_SOURCE = "".join(f"value_{i} = compute({i})\n" for i in range(1, 41))
SRC_30 = "".join(f"line {i} of the copied source\n" for i in range(1, 31))


# --- a real repository -----------------------------------------------------------------------


def _git(repo: Path, *args: str) -> bytes:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(repo),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "LC_ALL": "C",
    }
    base = ["git", "-c", "core.autocrlf=false", "-c", "user.name=T", "-c", "user.email=t@example"]
    return subprocess.run([*base, *args], cwd=repo, env=env, check=True, capture_output=True).stdout


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository with one commit and, staged on top, one change of every kind."""
    root = tmp_path_factory.mktemp("repo")
    _git(root, "init", "-q")
    files: dict[str, bytes] = {
        "keep.py": LONG_SOURCE.encode(),
        "old_name.py": b"print('moved as is')\n",
        "edit_me.py": b"".join(b"step %d\n" % i for i in range(1, 11)),
        "gone.py": b"def check():\n    return True\n",
        "run.sh": b"#!/bin/sh\necho hi\n",
        "logo.png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        "crlf.txt": b"first\r\nsecond\r\nthird\r\n",
        "latin1.txt": b"caf\xe9\n",
        "nonl.txt": b"no newline",
        "dir with space/file name.txt": b"x\n",
        "café.py": b"y = 1\n",
        'quote"tab\t.txt': b"q\n",
        "src.py": SRC_30.encode(),
    }
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)
    _git(root, "add", "-A")
    _git(root, "commit", "-qm", "base")

    lines = LONG_SOURCE.splitlines(keepends=True)
    lines[2] = "value_3 = compute(3) + 1\n"
    lines[34:36] = ["value_35 = compute(35)  # changed\n"]
    (root / "keep.py").write_text("".join(lines))
    _git(root, "mv", "old_name.py", "new_name.py")
    _git(root, "mv", "edit_me.py", "edited.py")
    (root / "edited.py").write_bytes(
        (root / "edited.py").read_bytes().replace(b"step 5", b"STEP 5")
    )
    _git(root, "rm", "-q", "gone.py")
    (root / "run.sh").chmod(0o755)
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01")
    (root / "crlf.txt").write_bytes(b"first\r\nsecond changed\r\nthird\r\n")
    (root / "latin1.txt").write_bytes(b"caf\xe9 cr\xe8me\n")
    (root / "nonl.txt").write_bytes(b"still no newline")
    (root / "dir with space/file name.txt").write_bytes(b"x2\n")
    (root / "café.py").write_bytes(b"y = 2\n")
    (root / 'quote"tab\t.txt').write_bytes(b"q2\n")
    (root / "copy.py").write_text(SRC_30 + "appended\n")
    (root / "added.py").write_text("import os\nos.system(input())\n")
    (root / "blob.bin").write_bytes(b"\x00\x01\x02\x03")
    _git(root, "add", "-A")
    return root


def _diff(repo: Path, *options: str) -> bytes:
    return _git(repo, "diff", "--cached", *options)


@pytest.fixture(scope="module")
def parsed(repo: Path) -> dict[str, ChangedFile]:
    """The staged change as ``git diff -M -C --find-copies-harder`` shows it, by path."""
    diff = parse_diff(_diff(repo, "-M", "-C", "--find-copies-harder"))
    return {f.path: f for f in diff.files}


def _texts(file: ChangedFile) -> list[tuple[str, int | None, int | None, str]]:
    return [(ln.kind, ln.old_lineno, ln.new_lineno, ln.text) for h in file.hunks for ln in h.lines]


# --- parsing -----------------------------------------------------------------------------------


def test_every_status_from_git(parsed: dict[str, ChangedFile]) -> None:
    assert parsed["added.py"].status == "added"
    assert parsed["added.py"].old_path is None
    assert parsed["keep.py"].status == "modified"
    assert parsed["gone.py"].status == "deleted"
    assert _texts(parsed["gone.py"])[0] == ("delete", 1, None, "def check():")
    assert (parsed["new_name.py"].status, parsed["new_name.py"].old_path) == (
        "renamed",
        "old_name.py",
    )
    assert parsed["new_name.py"].hunks == ()
    assert (parsed["edited.py"].status, parsed["edited.py"].old_path) == ("renamed", "edit_me.py")
    assert ("add", None, 5, "STEP 5") in _texts(parsed["edited.py"])
    assert (parsed["copy.py"].status, parsed["copy.py"].old_path) == ("copied", "src.py")
    assert _texts(parsed["copy.py"])[-1] == ("add", None, 31, "appended")
    assert "old_name.py" not in parsed and "edit_me.py" not in parsed


def test_hunks_and_line_numbers(parsed: dict[str, ChangedFile]) -> None:
    keep = parsed["keep.py"]
    assert [h.index for h in keep.hunks] == [0, 1]
    first = keep.hunks[0]
    assert (first.old_start, first.new_start) == (1, 1)
    assert ("delete", 3, None, "value_3 = compute(3)") in _texts(keep)
    assert ("add", None, 3, "value_3 = compute(3) + 1") in _texts(keep)
    assert ("context", 2, 2, "value_2 = compute(2)") in _texts(keep)
    assert ("add", None, 35, "value_35 = compute(35)  # changed") in _texts(keep)
    assert keep.added == 2 and keep.deleted == 3


def test_binary_files_without_and_with_binary_patch(repo: Path) -> None:
    for options in ((), ("--binary",)):
        files = {f.path: f for f in parse_diff(_diff(repo, *options)).files}
        assert files["logo.png"].is_binary and files["logo.png"].hunks == ()
        assert files["logo.png"].status == "modified"
        assert files["blob.bin"].is_binary and files["blob.bin"].status == "added"
        assert not files["added.py"].is_binary
    assert b"GIT binary patch" in _diff(repo, "--binary")


def test_mode_only_change(parsed: dict[str, ChangedFile]) -> None:
    run = parsed["run.sh"]
    assert (run.old_mode, run.new_mode, run.hunks, run.status) == (
        "100644",
        "100755",
        (),
        "modified",
    )


def test_no_newline_marker_is_not_a_line(parsed: dict[str, ChangedFile]) -> None:
    assert _texts(parsed["nonl.txt"]) == [
        ("delete", 1, None, "no newline"),
        ("add", None, 1, "still no newline"),
    ]


def test_crlf_file_lines_lose_only_the_carriage_return(parsed: dict[str, ChangedFile]) -> None:
    assert _texts(parsed["crlf.txt"]) == [
        ("context", 1, 1, "first"),
        ("delete", 2, None, "second"),
        ("add", None, 2, "second changed"),
        ("context", 3, 3, "third"),
    ]


def test_diff_saved_with_crlf_endings_parses_the_same() -> None:
    text = (DATA / "github_pr_mixed.diff").read_text()
    assert parse_diff(text.replace("\n", "\r\n").encode()) == parse_diff(text)


def test_non_utf8_bytes_are_replaced_not_fatal(repo: Path) -> None:
    raw = _diff(repo, "--", "latin1.txt")
    assert b"\xe9" in raw
    (file,) = parse_diff(raw).files
    assert _texts(file)[1] == ("add", None, 1, "caf\ufffd cr\ufffdme")


@pytest.mark.parametrize("quotepath", ["true", "false"])
def test_paths_with_spaces_quotes_tabs_and_unicode(repo: Path, quotepath: str) -> None:
    raw = _git(repo, "-c", f"core.quotepath={quotepath}", "diff", "--cached")
    paths = {f.path for f in parse_diff(raw).files}
    assert {"dir with space/file name.txt", "café.py", 'quote"tab\t.txt'} <= paths
    if quotepath == "true":
        assert b'"a/caf\\303\\251.py"' in raw


def test_empty_diff_has_no_files() -> None:
    for empty in ("", b"", "\n\n  \n"):
        assert parse_diff(empty) == ParsedDiff(())


@pytest.mark.parametrize(
    "text",
    [
        "hello, this is just some prose\nwith two lines\n",
        json.dumps({"findings": [], "diff": "none"}, indent=2),
        "@@ nothing like a hunk\n",
    ],
)
def test_not_a_diff_raises(text: str) -> None:
    with pytest.raises(DiffError, match="not a unified diff"):
        parse_diff(text)


def test_malformed_hunk_raises_without_echoing_content() -> None:
    text = "--- a/x.py\n+++ b/x.py\n@@ -1,5 +1,5 @@\n-API_KEY = 'sk-live-1234'\n+x\n"
    with pytest.raises(DiffError, match="malformed diff") as info:
        parse_diff(text)
    assert "sk-live" not in str(info.value)
    with pytest.raises(DiffError, match="malformed"):
        parse_diff("--- a/x\n+++ b/x\n@@ -1 +1 @@\n-a\n+b\n!garbage inside\n@@ -3 +3 @@\n?\n")


def test_plain_unified_diff_without_git_header() -> None:
    text = "--- a/x.c\t2024-01-01\n+++ b/x.c\t2024-01-02\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"
    (file,) = parse_diff(text).files
    assert (file.path, file.status) == ("x.c", "modified")
    assert _texts(file)[2] == ("add", None, 2, "c")


def test_blank_context_line_without_leading_space() -> None:
    text = "--- a/x\n+++ b/x\n@@ -1,3 +1,3 @@\n a\n\n-b\n+c\n"
    (file,) = parse_diff(text).files
    assert _texts(file) == [
        ("context", 1, 1, "a"),
        ("context", 2, 2, ""),
        ("delete", 3, None, "b"),
        ("add", None, 3, "c"),
    ]


def test_parsed_lines_equal_constructed_ones(parsed: dict[str, ChangedFile]) -> None:
    # the parser fills DiffLine slots directly; the values must be indistinguishable
    for line in parsed["keep.py"].hunks[0].lines:
        twin = DiffLine(line.kind, line.old_lineno, line.new_lineno, line.text)
        assert line == twin and hash(line) == hash(twin) and repr(line) == repr(twin)


def test_github_fixture() -> None:
    files = {f.path: f for f in parse_diff((DATA / "github_pr_mixed.diff").read_bytes()).files}
    assert list(files) == [
        "app/auth.py",
        "app/new_feature.py",
        "docs/new.md",
        "lib/helpers.py",
        "legacy/check.py",
        "static/logo.png",
        "scripts/deploy.sh",
        "package-lock.json",
    ]
    auth = files["app/auth.py"]
    assert [h.section for h in auth.hunks] == ["def login(request):", "def logout(request):"]
    assert (auth.hunks[1].new_start, auth.hunks[1].new_length) == (42, 5)
    assert ("add", None, 43, "    pass") in _texts(auth)
    assert _texts(auth)[-1] == ("context", 45, 46, "")
    assert files["docs/new.md"].old_path == "docs/old.md"
    assert files["lib/helpers.py"].status == "renamed"
    assert files["static/logo.png"].is_binary
    assert files["package-lock.json"].hunks[0].lines[-1].text == "}"


def test_github_quoted_paths_fixture() -> None:
    paths = [f.path for f in parse_diff((DATA / "github_quoted_paths.diff").read_text()).files]
    assert paths == ["docs/café menu.md", "src/my file.py", 'tab\there "q".txt']


def test_parse_file_patch_from_pulls_files() -> None:
    patch = "@@ -1,2 +1,3 @@ def f():\n a\n-b\n+c\n+d\n\\ No newline at end of file"
    file = parse_file_patch("src/x y.py", patch, status="renamed", old_path="src/old.py")
    assert (file.path, file.old_path, file.status) == ("src/x y.py", "src/old.py", "renamed")
    assert _texts(file) == [
        ("context", 1, 1, "a"),
        ("delete", 2, None, "b"),
        ("add", None, 2, "c"),
        ("add", None, 3, "d"),
    ]
    assert parse_file_patch("gone.py", "@@ -1 +0,0 @@\n-x", status="removed").status == "deleted"
    assert parse_file_patch("img.png", "", status="added").hunks == ()
    with pytest.raises(DiffError):
        parse_file_patch("x.py", "@@ -1,4 +1,4 @@\n a\n")


def test_unquote_path() -> None:
    assert unquote_path('"a/caf\\303\\251.txt"') == "a/café.txt"
    assert unquote_path('"x\\ty\\"z\\\\"') == 'x\ty"z\\'
    assert unquote_path("plain name.txt") == "plain name.txt"
    assert unquote_path('"bad \\377 byte"') == "bad \ufffd byte"


_FRAGMENTS = st.sampled_from(
    [
        "diff --git a/x.py b/x.py",
        "diff --git a/x b/y",
        '"diff --git "a/q\\303" "b/q"',
        "--- a/x.py",
        "+++ b/x.py",
        "--- /dev/null",
        "+++ /dev/null",
        "@@ -1,2 +1,2 @@",
        "@@ -1 +1 @@ def f():",
        "@@ -0,0 +1,99999 @@",
        "@@ -1," + "9" * 5000 + " +1 @@",
        "new file mode 100644",
        "deleted file mode 100644",
        "old mode 100644",
        "new mode 100755",
        "rename from a",
        "copy to b",
        "index 123abc..456def 100644",
        "Binary files a/x and b/x differ",
        "GIT binary patch",
        "\\ No newline at end of file",
        "+added",
        "-removed",
        " context",
        "",
    ]
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(_FRAGMENTS, st.text(max_size=30)), max_size=25), st.booleans())
def test_parse_either_succeeds_or_raises_diff_error(lines: list[str], crlf: bool) -> None:
    text = ("\r\n" if crlf else "\n").join(lines)
    try:
        result = parse_diff(text)
    except DiffError:
        return
    assert all(isinstance(f, ChangedFile) and f.path for f in result.files)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=200))
def test_parse_arbitrary_bytes(data: bytes) -> None:
    with contextlib.suppress(DiffError):
        parse_diff(data)


# --- commentable lines ---------------------------------------------------------------------------


def test_line_map(parsed: dict[str, ChangedFile]) -> None:
    lines = line_map(parsed["keep.py"])
    assert lines.right[3] == 0 and lines.right[1] == 0  # added, context
    assert lines.right[35] == 1
    assert lines.left == {3: 0, 35: 1, 36: 1}
    assert lines.hunk_of(20) is None
    assert lines.can_comment(3)
    assert lines.can_comment(3, "LEFT")
    assert not lines.can_comment(20)
    assert lines.can_comment(4, start_line=1)
    assert not lines.can_comment(35, start_line=3)  # start_line in another hunk
    assert not lines.can_comment(3, start_line=5)  # start_line after line
    assert lines.can_comment(36, start_line=33)  # context lines around the same change
    assert not lines.can_comment(35, "LEFT", start_line=3)


def test_line_map_of_new_and_deleted_files(parsed: dict[str, ChangedFile]) -> None:
    assert line_map(parsed["added.py"]).right == {1: 0, 2: 0}
    assert line_map(parsed["gone.py"]).left == {1: 0, 2: 0}
    assert line_map(parsed["gone.py"]).right == {}


# --- filters -------------------------------------------------------------------------------------


def _file(path: str, added: list[str] | None = None, **changes: Any) -> ChangedFile:
    """A modified file whose one hunk adds ``added`` at the top; ``changes`` override fields."""
    lines = tuple(DiffLine("add", None, i, t) for i, t in enumerate(added or ["x = 1"], 1))
    hunk = Hunk(0, 0, 0, 1, len(lines), "", lines)
    return dataclasses.replace(ChangedFile(path, None, "modified", (hunk,)), **changes)


def _reason(file: ChangedFile, rules: FilterRules | None = None) -> str | None:
    kept, skipped = filter_files([file], rules or FilterRules())
    assert len(kept) + len(skipped) == 1
    return skipped[0].reason if skipped else None


def test_structural_reasons_on_real_diff(parsed: dict[str, ChangedFile]) -> None:
    kept, skipped = filter_files(parsed.values())
    reasons = {s.path: s.reason for s in skipped}
    assert reasons == {
        "gone.py": "file deleted",
        "logo.png": "binary file",
        "blob.bin": "binary file",
        "new_name.py": "renamed without changes",
        "run.sh": "mode change only",
    }
    assert [f.path for f in kept] == [p for p in parsed if p not in reasons]


@pytest.mark.parametrize(
    ("file", "reason"),
    [
        (_file("a/b.py", is_binary=True, hunks=()), "binary file"),
        (_file("a/b.py", status="deleted"), "file deleted"),
        (_file("a/b.py", hunks=(), old_mode="100644", new_mode="100755"), "mode change only"),
        (_file("a/b.py", hunks=(), status="copied", old_path="a/c.py"), "copied without changes"),
        (_file("a/empty.py", hunks=(), status="added"), "empty file"),
        (_file("libs/sub", new_mode="160000", old_mode="160000"), "submodule"),
        (_file("web/package-lock.json"), "lockfile"),
        (_file("go.sum"), "lockfile"),
        (_file("uv.lock"), "lockfile"),
        (_file("vendor/github.com/x/y.go"), "vendored"),
        (_file("web/node_modules/left-pad/index.js"), "vendored"),
        (_file("third_party/zlib/inflate.c"), "vendored"),
        (_file("static/app.min.js"), "minified"),
        (_file("static/site.min.css"), "minified"),
        (_file("static/bundle.js", ["var a=1;" * 100]), "minified"),
        (_file("static/app.js.map"), "source map"),
        (_file("api/user_pb2.py"), "generated file"),
        (_file("api/user.pb.go"), "generated file"),
        (
            _file("gen/client.py", ["# Code generated by openapi-gen. DO NOT EDIT."]),
            "generated file",
        ),
        (_file("gen/schema.ts", ["/**", " * @generated", " */"]), "generated file"),
    ],
)
def test_filter_reasons(file: ChangedFile, reason: str) -> None:
    assert _reason(file) == reason


def test_plain_files_are_kept() -> None:
    for path in ("app/views.py", "vendored_notes.md", "src/map.py", "roadmap.txt", "static/app.js"):
        assert _reason(_file(path)) is None
    marker_too_late = ["x = 1"] * 12 + ["# Code generated by hand. DO NOT EDIT."]
    assert _reason(_file("app/late.py", marker_too_late)) is None
    assert _reason(_file("static/app.js", ["var a=1;" * 100, "eval(location.hash)"])) is None


def test_default_excludes_can_be_turned_off() -> None:
    rules = FilterRules(default_excludes=False)
    assert _reason(_file("package-lock.json"), rules) is None
    assert _reason(_file("vendor/x.go"), rules) is None
    assert _reason(_file("x.py", status="deleted"), rules) == "file deleted"


def test_config_globs() -> None:
    rules = FilterRules(include=("src/**", "*.sql"), exclude=("**/tests/**", "src/legacy/"))
    assert _reason(_file("src/app/views.py"), rules) is None
    assert _reason(_file("db/schema.sql"), rules) is None
    assert _reason(_file("docs/index.md"), rules) == "not included by config"
    assert _reason(_file("src/app/tests/test_views.py"), rules) == "excluded by config"
    assert _reason(_file("src/legacy/old.py"), rules) == "excluded by config"
    negated = FilterRules(exclude=("docs/**", "!docs/security.md"))
    assert _reason(_file("docs/a.md"), negated) == "excluded by config"
    assert _reason(_file("docs/security.md"), negated) is None


@pytest.mark.parametrize(
    "path",
    [
        "shop/migrations/0001_initial.py",
        "db/migrate/20240101_add_users.rb",
        "alembic/versions/3f2a_add_index.py",
        "prisma/migrations/20240101/migration.sql",
        "src/main/resources/db/migration/V1__init.sql",
    ],
)
def test_migrations_are_never_dropped_by_default_filters(path: str) -> None:
    assert is_migration(path)
    django = ["# Generated by Django 5.0 on 2024-01-01", "# @generated DO NOT EDIT"]
    assert _reason(_file(path, django)) is None
    assert _reason(_file(path, django), FilterRules(exclude=(path,))) == ("excluded by config")


def test_not_migrations() -> None:
    assert not is_migration("app/migrations.py")
    assert not is_migration("docs/versions/1.0.md")


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("*.py", ["a.py", "x/y/a.py"], ["a.pyc", "a.py.txt"]),
        ("src/*.py", ["src/a.py"], ["src/x/a.py", "lib/src/a.py"]),
        ("**/test_*.py", ["test_a.py", "x/y/test_a.py"], ["x/atest_a.py"]),
        ("docs/**", ["docs/a.md", "docs/x/y.md"], ["docs", "mydocs/a.md"]),
        ("a/**/b.txt", ["a/b.txt", "a/x/b.txt", "a/x/y/b.txt"], ["a/xb.txt", "c/a/b.txt"]),
        ("build", ["build", "build/x.js", "web/build/x.js"], ["builder/x.js"]),
        ("/build", ["build/x.js"], ["web/build/x.js"]),
        ("tmp/", ["tmp/x", "a/tmp/x"], ["tmp"]),
        ("file?.txt", ["file1.txt"], ["file12.txt", "file/.txt"]),
        ("[ab]*.c", ["a.c", "bz.c"], ["c.c"]),
        ("[!ab]*.c", ["c.c"], ["a.c"]),
        ("a+b(c).py", ["a+b(c).py"], ["aab(c).py"]),
        ("**", ["anything/at/all"], []),
    ],
)
def test_globs(pattern: str, matches: list[str], misses: list[str]) -> None:
    match = diff_split.compile_globs((pattern,))
    assert [p for p in matches if not match(p)] == []
    assert [p for p in misses if match(p)] == []


def test_invalid_glob_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="invalid glob"):
        filter_files([_file("a.py")], FilterRules(exclude=("[z-a]",)))


# --- review units --------------------------------------------------------------------------------


def _numbered(path: str, count: int, start: int = 1, width: int = 30) -> ChangedFile:
    """A new file of ``count`` lines, each ``width`` characters."""
    lines = tuple(
        DiffLine("add", None, i, f"{path}:{i}".ljust(width, "x"))
        for i in range(start, start + count)
    )
    hunk = Hunk(0, 0, 0, start, count, "", lines)
    return ChangedFile(path=path, old_path=None, status="added", hunks=(hunk,))


def _multi_hunk(path: str, hunks: int, lines_each: int) -> ChangedFile:
    out = []
    for k in range(hunks):
        start = 1 + k * 100
        lines = tuple(DiffLine("add", None, start + i, f"h{k} line {i}") for i in range(lines_each))
        out.append(Hunk(k, start, 0, start, lines_each, f"def f{k}():", lines))
    return ChangedFile(path=path, old_path=None, status="modified", hunks=tuple(out))


def _check_budget(units: tuple[ReviewUnit, ...], budget: int) -> None:
    for unit in units:
        text = render_unit_diff(unit)
        assert text == "\n".join(render_segment(s) for s in unit.segments)  # cache is exact
        assert unit.tokens == estimate_tokens(text) <= budget


def test_small_files_share_one_unit_in_order() -> None:
    files = [_numbered(f"f{i}.py", 3) for i in range(4)]
    result = split_units(files, 2000)
    assert [u.id for u in result.units] == ["unit-1"]
    assert result.units[0].paths == ("f0.py", "f1.py", "f2.py", "f3.py")
    assert result.skipped == ()
    text = render_unit_diff(result.units[0])
    assert text.startswith("### f0.py (added)\n@@ -0,0 +1,3 @@\n     1 + f0.py:1")
    assert "\n\n### f1.py (added)\n" in text
    _check_budget(result.units, 2000)


def test_units_respect_budget_and_keep_files_whole() -> None:
    files = [_numbered(f"f{i}.py", 40) for i in range(10)]  # ~1600 chars each
    result = split_units(files, 1000)  # ~3300 chars: two files per unit
    _check_budget(result.units, 1000)
    assert [u.paths for u in result.units][:2] == [("f0.py", "f1.py"), ("f2.py", "f3.py")]
    assert sum(len(u.segments) for u in result.units) == 10
    assert all(s.part is None for u in result.units for s in u.segments)


def test_file_bigger_than_a_unit_is_cut_between_hunks() -> None:
    big = _multi_hunk("big.py", hunks=12, lines_each=20)
    result = split_units([_numbered("small.py", 2), big], 600)
    _check_budget(result.units, 600)
    assert result.units[0].paths == ("small.py",)  # big.py starts on a fresh unit
    big_segments = [s for u in result.units for s in u.segments if s.path == "big.py"]
    assert len(big_segments) > 1
    assert [h for s in big_segments for h in s.hunks] == list(big.hunks)  # all, in order
    assert all(s.part is None for s in big_segments)


def test_huge_hunk_is_split_into_parts() -> None:
    huge = _numbered("huge.py", 600, width=60)
    result = split_units([huge, _numbered("after.py", 2)], 1500)
    _check_budget(result.units, 1500)
    parts = [s for u in result.units for s in u.segments if s.path == "huge.py"]
    total = len(parts)
    assert total > 3
    assert [s.part for s in parts] == [(k, total) for k in range(1, total + 1)]
    assert [ln for s in parts for ln in s.hunks[0].lines] == list(huge.hunks[0].lines)
    for k, segment in enumerate(parts, 1):
        assert render_segment(segment).startswith(
            f"### huge.py (added, part {k}/{total})\n@@ -0,0 +1,600 @@\n"
        )
    assert result.units[-1].paths[-1] == "after.py"
    assert result.skipped == ()


def test_line_longer_than_a_unit_is_truncated_and_reported() -> None:
    file = _numbered("data.py", 3, width=20)
    long_line = DiffLine("add", None, 2, "A" * 5000)
    hunk = file.hunks[0]
    file = ChangedFile(
        "data.py",
        None,
        "added",
        (Hunk(0, 0, 0, 1, 3, "", (hunk.lines[0], long_line, hunk.lines[2])),),
    )
    result = split_units([file], 300)
    _check_budget(result.units, 300)
    shown = [ln.text for u in result.units for s in u.segments for ln in s.hunks[0].lines]
    assert any(t.endswith("[... 5000 characters, truncated]") for t in shown)
    assert [s.reason for s in result.skipped] == ["line 2 truncated to fit the unit budget"]


def test_pure_deletion_hunks_are_kept(parsed: dict[str, ChangedFile]) -> None:
    only_deletes = ChangedFile(
        "auth.py",
        None,
        "modified",
        (Hunk(0, 10, 2, 9, 0, "", (DiffLine("delete", 10, None, "    require_login()"),)),),
    )
    (unit,) = split_units([only_deletes], 1000).units
    assert "       -     require_login()" in render_unit_diff(unit)


def test_max_units_records_what_is_left_out() -> None:
    files = [_numbered(f"f{i}.py", 40) for i in range(6)] + [_multi_hunk("big.py", 12, 20)]
    full = split_units(files, 1000)
    limited = split_units(files, 1000, max_units=2)
    assert limited.units == full.units[:2]
    left_out = {p for u in full.units[2:] for p in u.paths}
    assert {s.path for s in limited.skipped} == left_out
    assert all(s.reason == "unit limit reached (max 2 units)" for s in limited.skipped)
    partial = split_units([_multi_hunk("big.py", 12, 20)], 600, max_units=1)
    assert [s.reason for s in partial.skipped] == [
        "unit limit reached (max 1 units); partly reviewed"
    ]
    assert split_units(files, 1000, max_units=0).units == ()


def test_split_is_deterministic(parsed: dict[str, ChangedFile]) -> None:
    kept, _ = filter_files(parsed.values())
    first = split_units(kept, 300)
    assert first == split_units(list(kept), 300)
    assert [u.id for u in first.units] == [f"unit-{i}" for i in range(1, len(first.units) + 1)]
    _check_budget(first.units, 300)
    reviewed = [p for u in first.units for p in u.paths]
    assert set(reviewed) == {f.path for f in kept}


def test_files_without_hunks_are_reported_by_split() -> None:
    mode_only = ChangedFile("run.sh", None, "modified", (), old_mode="100644", new_mode="100755")
    result = split_units([mode_only], 1000)
    assert result.units == ()
    assert [(s.path, s.reason) for s in result.skipped] == [("run.sh", "mode change only")]


def test_budget_too_small_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="budget"):
        split_units([_numbered("a.py", 1)], 10)


def test_segment_header() -> None:
    assert segment_header("a/b.py", "renamed") == "### a/b.py (renamed)"
    assert segment_header("a.py", "added", (2, 5)) == "### a.py (added, part 2/5)"
    assert segment_header("evil\n### b.py", "added") == "### evil\\n### b.py (added)"


def test_unit_text_cache_never_goes_stale() -> None:
    (unit,) = split_units([_numbered("a.py", 3)], 1000).units
    other = dataclasses.replace(
        unit, segments=split_units([_numbered("b.py", 3)], 1000).units[0].segments
    )
    assert "### b.py (added)" in render_unit_diff(other)
    assert "a.py" not in render_unit_diff(other)


def test_render_hunk_format_is_unchanged() -> None:
    hunk = Hunk(
        0,
        3,
        2,
        3,
        2,
        "def f():",
        (
            DiffLine("context", 3, 3, "a"),
            DiffLine("delete", 4, None, "b"),
            DiffLine("add", None, 4, "c"),
        ),
    )
    assert render_hunk(hunk) == "@@ -3,2 +3,2 @@ def f():\n     3   a\n       - b\n     4 + c\n"
    wide = Hunk(0, 1234567, 1, 1234567, 1, "", (DiffLine("add", None, 1234567, "x"),))
    assert render_hunk(wide) == "@@ -1234567,1 +1234567,1 @@\n1234567 + x\n"
    assert render_hunk(hunk, hunk.lines[2:]) == "@@ -3,2 +3,2 @@ def f():\n     4 + c\n"


def test_parse_filter_split_on_github_fixture() -> None:
    parsed_diff = parse_diff((DATA / "github_pr_mixed.diff").read_bytes())
    kept, skipped = filter_files(parsed_diff.files)
    assert [f.path for f in kept] == ["app/auth.py", "app/new_feature.py", "lib/helpers.py"]
    assert [(s.path, s.reason) for s in skipped] == [
        ("docs/new.md", "renamed without changes"),
        ("legacy/check.py", "file deleted"),
        ("static/logo.png", "binary file"),
        ("scripts/deploy.sh", "mode change only"),
        ("package-lock.json", "lockfile"),
    ]
    (unit,) = split_units(kept, 4000).units
    text = render_unit_diff(unit)
    assert "### lib/helpers.py (renamed)" in text
    assert "    43 +     pass" in text
