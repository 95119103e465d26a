"""Bandit as an in-memory analyzer: real diffs, findings only on added lines, never executed."""

from __future__ import annotations

from pathlib import Path

from bot.diff import parse_diff
from bot.review import analyzers

ROOT = Path(__file__).resolve().parent.parent
DIFF = (ROOT / "examples" / "vulnerable.diff").read_bytes()


def test_bandit_reports_shell_injection_with_cwe_and_rule() -> None:
    src = b"import subprocess\n\ndef run(cmd):\n    return subprocess.call(cmd, shell=True)\n"
    (finding,) = [f for f in analyzers.bandit_source("tools/run.py", src) if f.rule == "B602"]
    assert finding.line == 4 and finding.cwe == "CWE-78" and finding.severity == "high"
    assert (
        finding.source == "bandit" and finding.evidence == "return subprocess.call(cmd, shell=True)"
    )


def test_source_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    src = f"open({str(marker)!r}, 'w').write('x')\nimport os\nos.system('id')\n".encode()
    analyzers.bandit_source("evil.py", src)
    assert not marker.exists()


def test_unparseable_source_gives_nothing() -> None:
    assert analyzers.bandit_source("broken.py", b"def (:\n") == []


def test_diff_findings_only_on_added_lines_with_hunks_cut_mid_block() -> None:
    files = parse_diff(DIFF).files
    found = {(f.path, f.line, f.rule) for f in analyzers.review_findings(files)}
    # yaml.load is found although its import is in another hunk; shell=True and verify=False too.
    assert ("shop/app.py", 30, "B506") in found
    assert ("shop/app.py", 37, "B602") in found
    assert ("shop/app.py", 36, "B501") in found
    added = {
        (fl.path, ln.new_lineno)
        for fl in files
        for h in fl.hunks
        for ln in h.lines
        if ln.kind == "add"
    }
    assert all((p, line) in added for p, line, _ in found)


def test_a_matching_checkout_file_is_used_and_a_stale_one_ignored(tmp_path: Path) -> None:
    diff = (
        b"diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n@@ -1,2 +1,3 @@\n import pickle\n"
        b"+data = pickle.loads(blob)\n x = 1\n"
    )
    (tmp_path / "m.py").write_text("import pickle\ndata = pickle.loads(blob)\nx = 1\n")
    files = parse_diff(diff).files
    with_checkout = analyzers.review_findings(files, analyzers.local_reader(tmp_path))
    assert [(f.line, f.rule) for f in with_checkout] == [(2, "B301")]
    (tmp_path / "m.py").write_text("something else entirely\n")
    stale = analyzers.review_findings(files, analyzers.local_reader(tmp_path))
    assert [(f.line, f.rule) for f in stale] == [(2, "B301")]  # from the diff text instead


def test_reader_refuses_paths_outside_the_checkout(tmp_path: Path) -> None:
    (tmp_path / "inside.py").write_text("x = 1\n")
    read = analyzers.local_reader(tmp_path)
    assert read("inside.py") == b"x = 1\n"
    assert read("../etc/passwd") is None and read("/etc/passwd") is None


def test_non_python_and_deleted_files_are_skipped() -> None:
    diff = (
        b"diff --git a/x.js b/x.js\n--- a/x.js\n+++ b/x.js\n@@ -0,0 +1 @@\n+eval(input)\n"
        b"diff --git a/old.py b/old.py\ndeleted file mode 100644\n--- a/old.py\n+++ /dev/null\n"
        b"@@ -1 +0,0 @@\n-import os; os.system('x')\n"
    )
    assert analyzers.review_findings(parse_diff(diff).files) == []


def test_a_file_bandit_cannot_parse_is_reported_not_reviewed() -> None:
    findings, reason = analyzers.bandit_file("py2.py", b"print 'hello'\nexec 'x'\n")
    assert findings == [] and reason == "bandit: not analyzed (syntax error at line 1)"
    assert analyzers.bandit_file("nul.py", b"x = 1\0\n")[1] is not None
    diff = (
        b"diff --git a/p.py b/p.py\n--- a/p.py\n+++ b/p.py\n@@ -1,2 +1,3 @@\n print 'a'\n"
        b"+print 'b'\n print 'c'\n"
    )
    analysis = analyzers.analyze(parse_diff(diff).files)
    assert analysis.findings == ()
    assert [(s.path, s.reason[:27]) for s in analysis.skipped] == [
        ("p.py", "bandit: hunk 1 not analyzed")
    ]


def test_with_a_checkout_only_the_changed_top_level_blocks_are_analyzed(tmp_path: Path) -> None:
    body = [
        "import subprocess",
        "",
        "def old(cmd):",
        "    return subprocess.call(cmd, shell=True)",  # unchanged: not reported
        *[f"X{i} = {i}" for i in range(40)],
        "def new(cmd):",
        "    '''Runs",
        "cmd'''",  # a column-0 line inside a string: the cut must not break it
        "    return subprocess.call(cmd, shell=True)",
    ]
    (tmp_path / "m.py").write_text("\n".join(body) + "\n")
    diff = (
        b"diff --git a/m.py b/m.py\n--- a/m.py\n+++ b/m.py\n@@ -46,2 +46,3 @@\n"
        b"     '''Runs\n cmd'''\n+    return subprocess.call(cmd, shell=True)\n"
    )
    analysis = analyzers.analyze(parse_diff(diff).files, analyzers.local_reader(tmp_path))
    assert [(f.line, f.rule) for f in analysis.findings] == [(48, "B602")]
    assert analysis.skipped == ()


def test_changed_blocks_keep_line_numbers_and_imports() -> None:
    src = b"import os\n\ndef a():\n    pass\n\ndef b():\n    os.system('x')\n\nY = 1\n"
    blocks = analyzers._changed_blocks(src * 3, {7})
    assert blocks is not None
    lines = blocks.decode().split("\n")
    assert lines[0] == "import os" and lines[6] == "    os.system('x')"
    assert lines[2] == "" and lines[9] == "import os" and lines[15] == ""


def test_nosec_is_honoured_without_tokenizing() -> None:
    src = b"import subprocess\nsubprocess.call(c, shell=True)  # nosec B602\n"
    assert [f for f in analyzers.bandit_source("n.py", src) if f.rule == "B602"] == []
