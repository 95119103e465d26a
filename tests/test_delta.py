"""A re-review is sent what changed since the last review (bot/diff/delta.py), on real diffs."""

from __future__ import annotations

import difflib
import random

from bot.diff import ChangedFile, parse_diff, render_hunk
from bot.diff.delta import changed_since, differences, new_side
from bot.findings import Finding
from bot.repo_config import RepoConfig
from bot.review import continuity
from bot.review.finalize import verification_candidates
from tests.test_findings import finding

MODULE = [
    "import subprocess",
    "",
    "",
    *[
        line
        for n in range(12)
        for line in (
            f"def task_{n}(request):",
            f"    name = request.args['name_{n}']",
            "    if name:",
            f"        log.info('task {n} %s', name)",
            f"        return run_{n}(name)",
            "    return None",
            "",
            "",
        )
    ],
]


def new_file(lines: list[str], path: str = "jobs.py") -> ChangedFile:
    """A real ``git diff`` of a new file holding ``lines``."""
    body = "".join(f"+{ln}\n" for ln in lines)
    text = (
        f"diff --git a/{path} b/{path}\nnew file mode 100644\n--- /dev/null\n+++ b/{path}\n"
        f"@@ -0,0 +1,{len(lines)} @@\n{body}"
    )
    return parse_diff(text).files[0]


def modified(base: list[str], head: list[str], path: str = "jobs.py") -> ChangedFile:
    """A real unified diff (3 lines of context) of ``base`` → ``head``."""
    body = "".join(
        f"{ln}\n"
        for ln in difflib.unified_diff(base, head, f"a/{path}", f"b/{path}", lineterm="", n=3)
    )
    return parse_diff(f"diff --git a/{path} b/{path}\n{body}").files[0]


def shown(file: ChangedFile) -> dict[int, str]:
    return {ln.new_lineno: ln.text for h in file.hunks for ln in h.lines if ln.new_lineno}


def test_a_one_line_push_sends_that_line_its_neighbours_and_its_function() -> None:
    first = new_file(MODULE)
    pushed = list(MODULE)
    at = pushed.index("        log.info('task 7 %s', name)")
    pushed[at] = "        subprocess.call('echo ' + name, shell=True)"
    narrowed = changed_since(new_file(pushed), new_side(first))
    assert narrowed is not None and narrowed.narrowed
    lines = shown(narrowed)
    number = at + 1
    # The changed line, one line each side, and the lines opening its blocks (def, if).
    assert lines[number] == pushed[at]
    assert set(lines) == {number - 2, number - 1, number, number + 1, number - 3}
    assert lines[number - 3] == "def task_7(request):" and lines[number - 1] == "    if name:"
    assert "task_6" not in "".join(lines.values())
    # Hunk headers count what they hold; line numbers are the file's own.
    for hunk in narrowed.hunks:
        assert hunk.new_length == sum(1 for ln in hunk.lines if ln.new_lineno is not None)
        assert render_hunk(hunk).startswith(f"@@ -0,0 +{hunk.new_start},{hunk.new_length} @@")


def test_nothing_changed_or_most_of_it_changed_sends_the_whole_patch() -> None:
    first = new_file(MODULE)
    assert changed_since(first, new_side(first)) is None  # e.g. the base moved, or hints did
    rewritten = [f"{ln}  # v2" if ln.strip() else ln for ln in MODULE]
    assert changed_since(new_file(rewritten), new_side(first)) is None
    assert changed_since(first, ()) is None  # never reviewed


def test_lines_the_last_review_saw_that_are_gone_are_shown_where_they_were() -> None:
    first = new_file(MODULE)
    pushed = [ln for ln in MODULE if ln != "        log.info('task 4 %s', name)"]
    narrowed = changed_since(new_file(pushed), new_side(first))
    assert narrowed is not None
    around = pushed.index("        return run_4(name)") + 1
    assert around in shown(narrowed) and "task_9" not in "".join(shown(narrowed).values())


def test_a_modified_file_push_sends_its_change_and_not_the_base_lines_around_it() -> None:
    base = [f"line {n}" for n in range(200)]
    head = list(base)
    head[20], head[150] = "changed 20", "changed 150"
    first = modified(base, head)
    # The push changes a base line far from both hunks and reverts line 150 to the base.
    pushed = list(head)
    pushed[90], pushed[150] = "changed 90", "line 150"
    narrowed = changed_since(modified(base, pushed), new_side(first))
    assert narrowed is not None
    lines = shown(narrowed)
    assert lines[91] == "changed 90"
    assert 21 not in lines  # the change the last review saw is not sent again
    assert 151 not in lines  # reverted: no longer part of the change at all
    # The base lines the new hunk shows around line 91 beyond one line each side are not.
    assert 88 not in lines and 94 not in lines


def test_differences_rebuild_the_new_side_on_random_edits() -> None:
    rng = random.Random(7)
    for _ in range(400):
        a = [rng.choice(("x", "y", "", "}", "return")) + str(rng.randint(0, 3)) for _ in range(80)]
        b = list(a)
        for _ in range(rng.randint(0, 8)):
            roll = rng.random()
            if roll < 0.3 and b:
                del b[rng.randrange(len(b))]
            elif roll < 0.6:
                b.insert(rng.randrange(len(b) + 1), f"new {rng.random()}")
            elif b:
                b[rng.randrange(len(b))] = "changed"
        rebuilt, i = [], 0
        for i1, i2, j1, j2 in differences(a, b):
            rebuilt += a[i:i1] + b[j1:j2]
            i = i2
        assert rebuilt + a[i:] == b


def test_hostile_sides_stay_bounded_and_err_on_the_side_of_sending() -> None:
    # 20,000 identical lines on both sides with one change in the middle: no line anchors the
    # rest, so the stretch is reported changed whole (the file is sent whole), not compared
    # line by line (quadratic).
    a = ["}"] * 20_000
    b = [*a[:10_000], "os.system(cmd)", *a[10_000:]]
    assert differences(a, b) == [(10_000, 10_000, 10_000, 10_001)]
    c = ["x"] * 20_000
    d = ["y", *c[1:-1], "y"]
    (whole,) = differences(c, d)
    assert whole == (0, 20_000, 0, 20_000)


def _finding(fp: str, line: int, evidence: str) -> Finding:
    return finding(
        path="jobs.py",
        line=line,
        severity="high",
        cwe="CWE-78",
        title="OS command injection",
        confidence=0.9,
        evidence=evidence,
        fingerprint=fp,
    )


def test_earlier_findings_outside_the_sent_lines_are_placed_again_on_the_whole_patch() -> None:
    first = new_file(MODULE)
    pushed = ["# header comment", *MODULE]  # every line moves down by one
    pushed[pushed.index("        log.info('task 9 %s', name)")] = "        log.warning('x')"
    now = new_file(pushed)
    at = MODULE.index("        return run_2(name)") + 1
    earlier = _finding("a" * 16, at, "        return run_2(name)")
    placed = continuity.reanchor(earlier, continuity.whole_file_unit(now), {now.path: now})
    assert placed is not None and placed.line == at + 1 and placed.fingerprint == "a" * 16
    assert placed.on_diff
    assert changed_since(now, new_side(first)) is not None


def test_settled_findings_are_not_sent_to_the_second_look_again() -> None:
    from bot.findings import Coverage, ReviewResult

    kept, fresh = _finding("a" * 16, 5, "x"), _finding("b" * 16, 9, "y")
    result = ReviewResult(findings=(kept, fresh), coverage=Coverage())
    checked = verification_candidates(result, RepoConfig(), (), settled={"a" * 16})
    assert [f.fingerprint for f in checked] == ["b" * 16]


def test_a_revert_inside_a_hunk_is_shown_with_the_base_line_back() -> None:
    base = [f"line {n}" for n in range(100)]
    head = list(base)
    head[20], head[22] = "changed 20", "changed 22"
    pushed = list(head)
    pushed[22] = "line 22"  # the push takes one of the two changes back
    narrowed = changed_since(modified(base, pushed), new_side(modified(base, head)))
    assert narrowed is not None
    assert shown(narrowed)[23] == "line 22"  # the base's line, where the change was


def test_no_line_a_push_added_is_ever_left_out() -> None:
    """Fuzzed pushes over repetitive code: every added line whose text the last review never saw
    is in the narrowed patch (or the whole patch is sent)."""
    rng = random.Random(11)
    vocabulary = ["}", "", "    return None", "    x = f(y)", "        pass", "def g():"]
    for _ in range(300):
        old = [rng.choice(vocabulary) for _ in range(rng.randint(5, 120))]
        new = list(old)
        for _ in range(rng.randint(1, 6)):
            roll = rng.random()
            if roll < 0.4:
                new.insert(rng.randrange(len(new) + 1), f"    os.system(cmd_{rng.randint(0, 9)})")
            elif roll < 0.7 and new:
                new[rng.randrange(len(new))] = rng.choice(vocabulary)
            elif new:
                del new[rng.randrange(len(new))]
        if not new:
            continue
        narrowed = changed_since(new_file(new), new_side(new_file(old)))
        if narrowed is None:
            continue
        visible = shown(narrowed)
        for number, text in enumerate(new, 1):
            if text not in old:
                assert visible.get(number) == text, (old, new, number)
