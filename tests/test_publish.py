"""What to post, decided from plain values: caps, thresholds, placement, fixes, the gate."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bot.findings import Finding
from bot.repo_config import RepoConfig
from bot.report.publish import (
    Posted,
    PostedComment,
    open_marker,
    parse_open,
    plan_publish,
    review_comment,
)
from bot.review import outcome as outcomes
from bot.review.plan import plan_diff
from bot.review.prompts import RepoContext

ROOT = Path(__file__).resolve().parent.parent
PLAN = plan_diff((ROOT / "examples" / "vulnerable.diff").read_bytes(), repo=RepoContext())
HEAD = "f" * 40


def finding(line: int, fp: str, **changes: object) -> Finding:
    base = Finding(
        path="shop/app.py",
        line=line,
        severity="high",
        cwe="CWE-78",
        title="t",
        description="d",
        exploit_scenario="e",
        recommendation="r",
        confidence=0.9,
        evidence="x",
        fingerprint=fp,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def result(*findings: Finding) -> object:
    empty = outcomes.assemble(PLAN, [], model=None, analyzers_only=True)
    return dataclasses.replace(empty, findings=findings)


def test_inline_comments_are_capped_and_the_rest_goes_to_the_summary() -> None:
    many = [finding(line, f"{line:016x}") for line in range(20, 40)]
    plan = plan_publish(
        HEAD, result(*many), PLAN.files, RepoConfig(max_inline_comments=5), Posted()
    )
    assert len(plan.review_comments) == 5 and len(plan.summary_only) == 15
    assert plan.post_review and all(c["side"] == "RIGHT" for c in plan.review_comments)
    assert "Not commented inline" in plan.summary


def test_lines_outside_the_diff_and_bad_start_lines() -> None:
    outside = finding(12, "a" * 16)  # line 12 of shop/app.py is not in a hunk
    assert review_comment(outside, PLAN.files) is None
    across = finding(30, "b" * 16, start_line=3)  # start in another hunk: dropped, line kept
    comment = review_comment(across, PLAN.files)
    assert comment is not None and "start_line" not in comment
    inside = finding(30, "c" * 16, start_line=28)
    assert review_comment(inside, PLAN.files)["start_line"] == 28  # type: ignore[index]
    off = finding(30, "d" * 16, on_diff=False)
    assert review_comment(off, PLAN.files) is None


def test_threshold_keeps_low_findings_out_of_inline_comments() -> None:
    low = finding(30, "e" * 16, severity="low")
    plan = plan_publish(
        HEAD, result(low), PLAN.files, RepoConfig(comment_threshold="medium"), Posted()
    )
    assert plan.review_comments == () and plan.summary_only == (low,) and not plan.post_review


def test_open_findings_are_not_reposted_and_gone_ones_are_fixed() -> None:
    still, gone = finding(30, "1" * 16), finding(31, "2" * 16)
    posted = Posted(
        reviewed_heads=frozenset({"0" * 40}),
        comments=(
            PostedComment(10, still.fingerprint, still.path),
            PostedComment(11, gone.fingerprint, gone.path),
            PostedComment(12, "3" * 16, "x.py", fixed_reply=True),
        ),
        summary_id=5,
        summary_open=frozenset({still.fingerprint, gone.fingerprint, "4" * 16}),
    )
    plan = plan_publish(HEAD, result(still), PLAN.files, RepoConfig(), posted)
    assert plan.review_comments == () and not plan.post_review
    assert [c.id for c in plan.fixed] == [11]  # 12 was answered already
    assert plan.fixed_elsewhere == ("4" * 16,)  # an off-diff finding from the last summary
    assert "Fixed since the last review" in plan.summary
    assert parse_open(plan.summary) == {still.fingerprint}


def test_one_review_per_head() -> None:
    posted = Posted(reviewed_heads=frozenset({HEAD}))
    plan = plan_publish(HEAD, result(finding(30, "5" * 16)), PLAN.files, RepoConfig(), posted)
    assert plan.review_comments and not plan.post_review


def test_the_gate_and_annotations() -> None:
    high, low = finding(30, "6" * 16), finding(31, "7" * 16, severity="low")
    assert (
        plan_publish(HEAD, result(high, low), PLAN.files, RepoConfig(), Posted()).conclusion
        == "failure"
    )
    relaxed = RepoConfig(fail_on="critical")
    plan = plan_publish(HEAD, result(high, low), PLAN.files, relaxed, Posted())
    assert plan.conclusion == "success"
    assert [a["annotation_level"] for a in plan.annotations] == ["failure", "notice"]


def test_open_marker_round_trip() -> None:
    assert parse_open(open_marker(["b" * 16, "a" * 16, "a" * 16])) == {"a" * 16, "b" * 16}
    assert parse_open("no marker here") == frozenset()


def test_the_summary_stays_under_githubs_comment_limit_and_says_what_it_cut() -> None:
    from bot.diff import Skip
    from bot.findings import Coverage
    from bot.report.publish import MAX_SUMMARY_CHARS, OPEN_MARKER

    many = [finding(20, f"{i:016x}", path=f"pkg/mod{i}.py") for i in range(400)]
    skipped = tuple(Skip(f"assets/generated/file_{i:05}.min.js", "minified") for i in range(1500))
    big = dataclasses.replace(result(*many), coverage=Coverage(skipped=skipped))  # type: ignore[type-var]
    plan = plan_publish(HEAD, big, PLAN.files, RepoConfig(max_inline_comments=0), Posted())
    assert len(plan.summary) < MAX_SUMMARY_CHARS <= 65_536
    assert "more lines not shown" in plan.summary
    assert plan.summary.rstrip().endswith("-->")  # the hidden markers survive the cut
    assert OPEN_MARKER.search(plan.summary)
