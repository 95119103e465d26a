"""Suppressions from a real .github/secreview.yml applied to a real review's findings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bot import diff as diffmod
from bot.findings import ReviewResult
from bot.repo_config import RepoConfig, parse_repo_config
from bot.review import outcome as outcomes
from bot.review import suppress
from bot.review.finalize import finalize
from bot.review.plan import plan_files
from bot.review.prompts import RepoContext

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"  # split so no scanner flags this file
EXTRA = (
    "diff --git a/shop/ci.py b/shop/ci.py\n--- a/shop/ci.py\n+++ b/shop/ci.py\n"
    f'@@ -1,1 +1,2 @@\n x = 1\n+TOKEN = "{TOKEN}"\n'
)
DIFF = (ROOT / "examples" / "vulnerable.diff").read_bytes() + EXTRA.encode()
TODAY = dt.date(2026, 6, 1)


@pytest.fixture(scope="module")
def result() -> ReviewResult:
    files = diffmod.parse_diff(DIFF).files  # the secrets analyzer alone: no bandit here
    plan = plan_files(files, repo=RepoContext(repo="octo/shop"))
    found = outcomes.assemble(plan, [], model=None, analyzers_only=True)
    assert len(found.findings) == 2, "two committed keys, found by the secrets analyzer"
    return found


def config(yml: str) -> RepoConfig:
    return parse_repo_config(yml)


def test_no_suppressions_changes_nothing(result: ReviewResult) -> None:
    out, done = suppress.apply(result, RepoConfig(), today=TODAY)
    assert out == result and done.notes() == []


def test_ignore_hides_for_good(result: ReviewResult) -> None:
    fp = result.findings[0].fingerprint
    out, done = suppress.apply(
        result, config(f"ignore:\n  - fingerprint: {fp}\n    reason: fixture key\n"), today=TODAY
    )
    assert fp not in {f.fingerprint for f in out.findings}
    assert len(out.findings) == len(result.findings) - 1
    (note,) = done.notes()
    assert note == f"`{fp}` ({result.findings[0].title}) suppressed: fixture key"
    # The same decision as the run's finalize step makes.
    final = finalize(result, config(f"ignore:\n  - fingerprint: {fp}\n"))
    assert final.result.findings == out.findings


def test_accept_risk_until_its_date_then_reported_again(result: ReviewResult) -> None:
    fp = result.findings[0].fingerprint
    yml = (
        f"accept_risk:\n  - fingerprint: {fp}\n    reason: vendor fix due\n    until: 2026-06-30\n"
    )
    hidden, done = suppress.apply(result, config(yml), today=TODAY)
    assert fp not in {f.fingerprint for f in hidden.findings}
    assert done.expired == () and done.expiring == ()
    assert done.notes() == [
        f"`{fp}` ({result.findings[0].title}) suppressed until 2026-06-30: vendor fix due"
    ]
    last_day, _ = suppress.apply(result, config(yml), today=dt.date(2026, 6, 30))
    assert fp not in {f.fingerprint for f in last_day.findings}
    back, done = suppress.apply(result, config(yml), today=dt.date(2026, 7, 1))
    assert back.findings == result.findings
    assert done.hidden == ()
    assert done.notes() == [
        f"`{fp}` ({result.findings[0].title}): the accepted risk expired on 2026-06-30, "
        "so it is reported again"
    ]


def test_an_acceptance_about_to_expire_is_announced(result: ReviewResult) -> None:
    fp = result.findings[1].fingerprint
    yml = f"accept_risk:\n  - fingerprint: {fp}\n    until: 2026-06-10\n"
    out, done = suppress.apply(result, config(yml), today=TODAY)
    assert fp not in {f.fingerprint for f in out.findings}
    assert [f.fingerprint for f, _ in done.expiring] == [fp]
    assert done.notes()[-1].endswith("expires on 2026-06-10; renew it or fix the finding")
    assert "no reason" in done.notes()[0]


def test_ignore_outlasts_an_expired_acceptance(result: ReviewResult) -> None:
    fp = result.findings[0].fingerprint
    yml = (
        f"ignore:\n  - fingerprint: {fp}\n    reason: false positive\n"
        f"accept_risk:\n  - fingerprint: {fp}\n    until: 2026-01-01\n"
    )
    out, done = suppress.apply(result, config(yml), today=TODAY)
    assert fp not in {f.fingerprint for f in out.findings}
    assert done.expired == () and done.expiring == ()
    assert done.hidden[0][1].until is None


def test_unknown_fingerprints_touch_nothing(result: ReviewResult) -> None:
    yml = "ignore:\n  - fingerprint: 'ffffffffffffffff'\n"
    out, done = suppress.apply(result, config(yml), today=TODAY)
    assert out.findings == result.findings and done.notes() == []
