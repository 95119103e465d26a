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


# --- a memo: a push re-analyzes only the files it changed -------------------------------------


class DictMemo:
    """A memo in a dict (the stores themselves are tested against a real Redis and disk)."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.reads = 0

    def get_many(self, keys: object) -> dict[str, bytes]:
        self.reads += 1
        return {k: self.data[k] for k in keys if k in self.data}  # type: ignore[attr-defined]

    def put_many(self, items: dict[str, bytes]) -> None:
        self.data.update(items)


def _two_files(second_line: str) -> bytes:
    return (
        b"diff --git a/a.py b/a.py\n--- /dev/null\n+++ b/a.py\n@@ -0,0 +1,2 @@\n"
        b"+import subprocess\n+subprocess.call(cmd, shell=True)\n"
        b"diff --git a/b.py b/b.py\n--- /dev/null\n+++ b/b.py\n@@ -0,0 +1,2 @@\n"
        b"+import pickle\n+" + second_line.encode() + b"\n"
    )


def test_a_memo_reanalyzes_only_changed_files_with_the_same_findings(
    bandit_runs: list[str],
) -> None:
    memo = DictMemo()
    seen = bandit_runs
    first = analyzers.analyze(parse_diff(_two_files("x = pickle.loads(blob)")).files, None, memo)
    assert sorted(seen) == ["a.py", "b.py"] and len(memo.data) == 2
    assert {(f.path, f.rule) for f in first.findings} == {("a.py", "B602"), ("b.py", "B301")}

    seen.clear()
    again = analyzers.analyze(parse_diff(_two_files("x = pickle.loads(blob)")).files, None, memo)
    assert seen == [] and again == first  # nothing analyzed, the same findings, in order

    seen.clear()
    pushed = analyzers.analyze(parse_diff(_two_files("y = pickle.loads(data)")).files, None, memo)
    assert seen == ["b.py"]  # only the file the push changed
    assert [(f.path, f.line, f.evidence) for f in pushed.findings if f.path == "b.py"] == [
        ("b.py", 2, "y = pickle.loads(data)")
    ]
    without = analyzers.analyze(parse_diff(_two_files("y = pickle.loads(data)")).files)
    assert pushed == without  # a memo never changes an answer


def test_the_memo_key_follows_the_checkout_file_and_the_path(tmp_path: Path) -> None:
    (file,) = parse_diff(_two_files("x = 1")[: _two_files("x = 1").index(b"diff --git a/b")]).files
    base = analyzers.memo_key(file, None)
    assert analyzers.memo_key(file, None) == base
    assert (
        analyzers.memo_key(file, b"import subprocess\nsubprocess.call(cmd, shell=True)\n") != base
    )
    moved = parse_diff(
        b"diff --git a/c.py b/c.py\n--- /dev/null\n+++ b/c.py\n@@ -0,0 +1,2 @@\n"
        b"+import subprocess\n+subprocess.call(cmd, shell=True)\n"
    ).files[0]
    assert analyzers.memo_key(moved, None) != base


def test_a_broken_or_failing_memo_is_a_miss_never_a_failure(bandit_runs: list[str]) -> None:
    files = parse_diff(_two_files("x = pickle.loads(blob)")).files
    expected = analyzers.analyze(files)

    class Junk(DictMemo):
        def get_many(self, keys: object) -> dict[str, bytes]:
            return {k: b"{not json" for k in keys}  # type: ignore[attr-defined]

    class Down(DictMemo):
        def get_many(self, keys: object) -> dict[str, bytes]:
            raise ConnectionError("memo store is down")

        def put_many(self, items: dict[str, bytes]) -> None:
            raise ConnectionError("memo store is down")

    for memo in (Junk(), Down()):
        bandit_runs.clear()
        assert analyzers.analyze(files, None, memo) == expected
        assert sorted(bandit_runs) == ["a.py", "b.py"]


def test_memo_stores_round_trip_on_disk_and_in_redis(tmp_path: Path, redis_url: str) -> None:
    import redis

    from bot.review.results import FileBlobs, RedisBlobs

    client = redis.Redis.from_url(redis_url)
    try:
        for store in (FileBlobs(tmp_path / "analyses"), RedisBlobs(client, ttl_s=60)):
            assert store.get_many(["ab" * 32]) == {}
            store.put_many({"ab" * 32: b'{"findings":[]}', "cd" * 32: b"x"})
            assert store.get_many(["ab" * 32, "cd" * 32, "ef" * 32]) == {
                "ab" * 32: b'{"findings":[]}',
                "cd" * 32: b"x",
            }
        assert 0 < client.ttl("secreview:analysis:" + "ab" * 32) <= 60
    finally:
        client.close()


def test_the_local_cache_forgets_what_was_not_used_for_30_days(tmp_path: Path) -> None:
    import os
    import time

    from bot.review.results import FileBlobs, prune_cache

    now = time.time()
    month = 31 * 24 * 3600
    blobs = FileBlobs(tmp_path / "analyses")
    blobs.put_many({"aa" * 32: b"old, read today", "bb" * 32: b"old", "cc" * 32: b"new"})
    for key in ("aa" * 32, "bb" * 32):
        path = tmp_path / "analyses" / key[:2] / key
        os.utime(path, (now - month, now - month))
    (tmp_path / "runs").mkdir()
    stale_run = tmp_path / "runs" / "review-x.json"
    stale_run.write_text("{}")
    os.utime(stale_run, (now - month, now - month))
    assert blobs.get_many(["aa" * 32]) == {"aa" * 32: b"old, read today"}  # a read keeps it
    assert prune_cache(tmp_path, now=now) == 2
    assert set(blobs.get_many(["aa" * 32, "bb" * 32, "cc" * 32])) == {"aa" * 32, "cc" * 32}
    assert not stale_run.exists()
    # At most once a day: a file gone stale since is left to the next day's pass.
    blobs.put_many({"dd" * 32: b"x"})
    os.utime(tmp_path / "analyses" / "dd" / ("dd" * 32), (now - month, now - month))
    assert prune_cache(tmp_path, now=now + 3600) == 0
    assert prune_cache(tmp_path, now=now + 25 * 3600) == 1
