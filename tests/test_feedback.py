"""Dismissals from thread replies and commands (bot/review/feedback.py), and continuity
(bot/review/continuity.py): what reviewers rejected stays rejected, what persists keeps its id."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bot import diff as diffmod
from bot.findings import Finding
from bot.github.commands import WRITE_ASSOCIATIONS
from bot.review import continuity, feedback, prompts
from bot.review.feedback import Comment, Dismissal
from bot.review.prompts import PreviousFinding

FP = "1a2b3c4d5e6f7a8b"
OTHER = "9f8e7d6c5b4a3921"
THREADS = {101: FP, 202: OTHER}


def reply(body: str, *, to: int = 101, association: str = "MEMBER", **kw: Any) -> Comment:
    fields: dict[str, Any] = {
        "id": kw.pop("id", 500),
        "body": body,
        "author": kw.pop("author", "alice"),
        "association": association,
        "created_at": kw.pop("at", "2026-11-02T10:00:00Z"),
        "in_reply_to": to,
    }
    return Comment(**fields, **kw)


def test_write_access_is_the_commands_rule() -> None:
    assert feedback.WRITE_ACCESS == WRITE_ASSOCIATIONS


@pytest.mark.parametrize(
    "body",
    [
        "False positive: the id comes from our own table.",
        "false-positive",
        "Won't fix, internal tool.",
        "won’t fix",
        "wontfix",
        "This is not a bug, the value is a constant.",
        "Not exploitable: behind the VPN.",
        "It's by design.",
        "/secreview ignore",
        "/secreview ignore test fixture only",
        f"thanks\n/secreview ignore {FP} fixture",
    ],
)
def test_rejections_are_recognised(body: str) -> None:
    assert feedback.rejection(body) is not None


@pytest.mark.parametrize(
    "body",
    [
        "Good catch, fixing it now.",
        "This is not a false positive, I'll fix it.",
        "Isn't a false positive, sadly.",
        "No false positive here: fixed in the next commit.",
        "Is this a false positive?",
        "> False positive? Not sure.\nI checked: it is real.",
        "```\n# won't fix\n```\nFixing.",
        "We will fix it.",
    ],
)
def test_other_replies_are_not_rejections(body: str) -> None:
    assert feedback.rejection(body) is None


def test_a_rejecting_reply_from_write_access_dismisses_its_thread() -> None:
    (d,) = feedback.dismissals(THREADS, [reply("False positive.")], paths={FP: "app/db.py"})
    assert d == Dismissal(
        FP, "alice", "2026-11-02T10:00:00Z", "reply", "false positive", "app/db.py"
    )


@pytest.mark.parametrize("association", ["CONTRIBUTOR", "FIRST_TIME_CONTRIBUTOR", "NONE", ""])
def test_replies_without_write_access_dismiss_nothing(association: str) -> None:
    assert feedback.dismissals(THREADS, [reply("won't fix", association=association)]) == ()


def test_bots_replies_and_strays_dismiss_nothing() -> None:
    replies = [
        reply("False positive", bot=True, association="OWNER"),
        reply("False positive", to=999),  # not one of the bot's finding threads
        Comment(7, "False positive", "alice", "OWNER", "2026-11-02T10:00:00Z"),  # top level
        reply(f"/secreview ignore {OTHER} wrong thread"),  # names another finding
    ]
    assert feedback.dismissals(THREADS, replies) == ()


def test_the_earliest_decision_wins_and_each_fingerprint_once() -> None:
    later = reply("won't fix", author="bob", at="2026-11-03T09:00:00Z", id=2)
    first = reply("False positive", author="carol", at="2026-11-01T09:00:00Z", id=3)
    other = reply("by design", to=202, author="dave", association="OWNER", id=4)
    dismissed = feedback.dismissals(THREADS, [later, first, other])
    assert [(d.fingerprint, d.by) for d in dismissed] == [(FP, "carol"), (OTHER, "dave")]


def test_an_ignore_command_in_the_conversation_dismisses_the_fingerprint_it_names() -> None:
    commands = [
        Comment(9, f"/secreview ignore {OTHER} test fixture", "erin", "OWNER", "2026-11-04T00:00Z"),
        Comment(10, f"/secreview ignore {FP} mine", "mallory", "NONE", "2026-11-04T00:00Z"),
    ]
    (d,) = feedback.dismissals(THREADS, [], commands)
    assert (d.fingerprint, d.by, d.how) == (OTHER, "erin", "command")


def finding(fp: str, path: str = "app/db.py") -> Finding:
    return Finding(
        path, 3, "high", "CWE-89", "t", "d", "e", "r", 0.9, "ev", fingerprint=fp, unit="unit-1"
    )


def test_dismissed_findings_are_not_raised_again() -> None:
    dismissed = feedback.dismissals(THREADS, [reply("False positive")])
    kept, gone = feedback.apply([finding(FP), finding(OTHER)], dismissed)
    assert [f.fingerprint for f in kept] == [OTHER]
    assert [f.fingerprint for f in gone] == [FP]


# --- continuity ----------------------------------------------------------------------------------

DIFF = """\
diff --git a/app/db.py b/app/db.py
--- a/app/db.py
+++ b/app/db.py
@@ -1,2 +1,4 @@
 import sqlite3
+def find(name):
+    return db.execute("SELECT * FROM users WHERE name='%s'" % name)
 pass
"""
EVIDENCE = "return db.execute(\"SELECT * FROM users WHERE name='%s'\" % name)"


def unit_and_files() -> tuple[diffmod.ReviewUnit, dict[str, diffmod.ChangedFile]]:
    parsed = diffmod.parse_diff(DIFF)
    (unit,) = diffmod.split_units(parsed.files, 4000).units
    return unit, {f.path: f for f in parsed.files}


def raw(**overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "path": "app/db.py",
        "line": 3,
        "severity": "high",
        "cwe": "CWE-89",
        "title": "SQL built with % formatting",
        "description": "d",
        "exploit_scenario": "e",
        "recommendation": "r",
        "confidence": 0.9,
        "evidence": EVIDENCE,
    }
    item.update(overrides)
    return item


PREVIOUS = (
    PreviousFinding(FP, "app/db.py", 7, "CWE-89", "SQL injection in find()"),
    PreviousFinding(OTHER, "app/db.py", 9, "CWE-78", "Shell injection"),
)


def test_a_continued_finding_keeps_its_fingerprint_whatever_its_words() -> None:
    unit, files = unit_and_files()
    (plain,), _ = continuity.place([raw()], unit, files, PREVIOUS)
    assert plain.fingerprint != FP  # reworded evidence would make it a new finding
    (kept,), _ = continuity.place([raw(fingerprint=FP)], unit, files, PREVIOUS)
    assert kept.fingerprint == FP
    assert kept.line == 3 and kept.evidence == plain.evidence  # where it is now


@pytest.mark.parametrize(
    "claim",
    [
        {"fingerprint": OTHER},  # another CWE
        {"fingerprint": "0000000000000000"},  # never shown
        {"fingerprint": FP, "path": "app/other.py"},  # another file: not placed at all
    ],
)
def test_claims_cannot_move_a_fingerprint(claim: dict[str, Any]) -> None:
    unit, files = unit_and_files()
    placed, _ = continuity.place([raw(**claim)], unit, files, PREVIOUS)
    assert FP not in {f.fingerprint for f in placed} and OTHER not in {
        f.fingerprint for f in placed
    }


def test_one_fingerprint_continues_one_finding() -> None:
    unit, files = unit_and_files()
    placed, _ = continuity.place(
        [raw(fingerprint=FP), raw(fingerprint=FP, line=2, evidence="def find(name):")],
        unit,
        files,
        PREVIOUS,
    )
    assert [f.fingerprint == FP for f in placed] == [True, False]


def test_claims_and_fates() -> None:
    answer = json.dumps(
        {"findings": [], "persisting": [FP], "fixed": [OTHER, FP, "0000000000000000"]}
    )
    claims = continuity.claims(answer, PREVIOUS)
    assert claims == continuity.Claims(persisting=(FP,), fixed=(OTHER,))  # never both
    assert continuity.claims("```json\n" + answer + "\n```", PREVIOUS) == claims
    assert continuity.claims("not json", PREVIOUS) == continuity.Claims()
    assert continuity.claims('{"findings": [], "fixed": "x"}', PREVIOUS) == continuity.Claims()
    assert continuity.fates(PREVIOUS, [], [OTHER], [FP]) == {FP: "persists", OTHER: "fixed"}
    assert continuity.fates(PREVIOUS, [FP], []) == {FP: "persists", OTHER: "unknown"}


def test_persisting_findings_are_carried_as_stored() -> None:
    stored = [finding(FP), finding(OTHER)]
    assert continuity.carry(stored, [FP, "0000000000000000"]) == (stored[0],)


def test_previous_findings_from_stored_findings() -> None:
    (p,) = continuity.from_findings([finding(FP)])
    assert p == PreviousFinding(FP, "app/db.py", 3, "CWE-89", "t")


def test_previous_findings_for_a_unit_are_those_of_its_files() -> None:
    unit, _ = unit_and_files()
    elsewhere = PreviousFinding("abcdefabcdefabcd", "web/view.js", 1, "CWE-79", "XSS")
    assert continuity.previous_for(unit, [*reversed(PREVIOUS), elsewhere]) == PREVIOUS


def test_a_continued_and_dismissed_finding_stays_dismissed() -> None:
    unit, files = unit_and_files()
    placed, _ = continuity.place([raw(fingerprint=FP, title="Reworded")], unit, files, PREVIOUS)
    dismissed = feedback.dismissals(THREADS, [reply("won't fix")])
    kept, gone = feedback.apply(placed, dismissed)
    assert kept == () and [f.title for f in gone] == ["Reworded"]


# --- the summary ---------------------------------------------------------------------------------


def test_a_dismissed_finding_is_neither_open_nor_fixed_and_the_summary_says_by_whom() -> None:
    from bot.findings import ReviewResult
    from bot.repo_config import RepoConfig
    from bot.report.publish import Posted, PostedComment, plan_publish

    posted = Posted(
        comments=(PostedComment(101, FP, "app/db.py"), PostedComment(202, OTHER, "app/db.py")),
        summary_open=frozenset({FP, OTHER, "abcdefabcdefabcd"}),
    )
    dismissed = feedback.dismissals(
        {101: FP},
        [reply("False positive"), reply("/secreview ignore <b>x</b>", author="eve]](x)", id=9)],
        [Comment(3, "/secreview ignore abcdefabcdefabcd fixture", "bob", "OWNER", "2026-11-05")],
        paths={FP: "app/db.py"},
    )
    plan = plan_publish(
        "f" * 40, ReviewResult(findings=()), {}, RepoConfig(), posted, (), dismissed
    )
    assert [c.fingerprint for c in plan.fixed] == [OTHER]  # fixed; the dismissed one is not
    assert plan.fixed_elsewhere == ()
    assert "### Dismissed by reviewers" in plan.summary
    assert f'- `{FP}` in `app/db.py`: dismissed by @alice ("false positive", 2026-11-02)' in (
        plan.summary
    )
    assert "- `abcdefabcdefabcd`: dismissed by @bob (`/secreview ignore`, 2026-11-05)" in (
        plan.summary
    )
    assert "<b>" not in plan.summary and "fixture" not in plan.summary


def test_the_emulated_model_follows_the_re_review_contract() -> None:
    from tests.emulators.fake_model import review

    unit, files = unit_and_files()
    moved = PreviousFinding(FP, "app/db.py", 7, "CWE-89", "SQL injection in find()")
    gone = PreviousFinding(OTHER, "app/db.py", 9, "CWE-78", "Shell injection")
    message = prompts.build_unit_message(unit, previous=[moved, gone])
    answer = review([{"role": "user", "content": message}], {})
    data = json.loads(answer)
    assert [f.get("fingerprint") for f in data["findings"]] == [FP]  # moved: line 7 → 3
    assert continuity.claims(answer, [moved, gone]) == continuity.Claims((), (OTHER,))
    stayed = PreviousFinding(FP, "app/db.py", 3, "CWE-89", "SQL injection in find()")
    message = prompts.build_unit_message(unit, previous=[stayed])
    answer = review([{"role": "user", "content": message}], {})
    assert json.loads(answer) == {"findings": [], "persisting": [FP]}
    placed, _ = continuity.place(json.loads(answer)["findings"], unit, files, [stayed])
    assert placed == []
