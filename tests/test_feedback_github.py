"""Dismissals read from GitHub (bot.github.client) against the fake: replies in finding threads
and commands, across pushes."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from bot import diff as diffmod
from bot.config import Settings
from bot.findings import ReviewResult, place_findings
from bot.github.client import GitHubApp, Installation
from bot.github.routing import router
from bot.github.webhooks import Delivery
from bot.jobs import MergedJob
from bot.repo_config import RepoConfig
from bot.review import feedback
from bot.review import outcome as outcomes
from bot.review.outcomes import FeedbackStore
from bot.review.plan import plan_files
from bot.review.prompts import RepoContext
from tests.emulators.server import LiveServer
from tests.fakes.github import FakeGitHub, Pull
from workers.driver import Runtime
from workers.feedback import record_merge

ROOT = Path(__file__).resolve().parent.parent
DIFF = (ROOT / "examples" / "vulnerable.diff").read_text()
REPO = "octo/shop"
HEADS = ("a" * 40, "b" * 40, "c" * 40)
MODEL_FINDING = {
    "path": "shop/app.py",
    "severity": "high",
    "cwe": "CWE-502",
    "title": "yaml.load of the request body",
    "description": "d",
    "exploit_scenario": "e",
    "recommendation": "r",
    "confidence": 0.9,
}


@pytest.fixture
def gh(app_key: tuple[str, str]) -> Iterator[tuple[FakeGitHub, Installation, str]]:
    fake = FakeGitHub("77", app_key[1])
    fake.add_repo(REPO, 5)
    fake.add_pull(REPO, Pull(3, HEADS[0], DIFF, title="t", body="b"))
    with LiveServer(fake.app) as server:
        settings = Settings.from_env(
            {"GITHUB_APP_ID": "77", "GITHUB_PRIVATE_KEY": app_key[0], "GITHUB_API_URL": server.url}
        )
        yield fake, GitHubApp(settings).installation(5), server.url


def review(
    inst: Installation, head: str, dismissed: tuple[feedback.Dismissal, ...]
) -> ReviewResult:
    """One review of the PR at ``head``: analyzer findings, dismissed ones dropped, published."""
    plan = plan_files(diffmod.parse_diff(DIFF).files, repo=RepoContext(repo=REPO))  # no bandit
    result = outcomes.assemble(plan, [], model=None, analyzers_only=True)  # the committed key
    unit = plan.units[0]
    yaml_load = {**MODEL_FINDING, "line": 30, "evidence": "catalog = yaml.load(request.data)"}
    placed, _ = place_findings([yaml_load], unit, plan.files)
    kept, _ = feedback.apply([*result.findings, *placed], dismissed)
    result = dataclasses.replace(result, findings=kept)
    inst.publish_review(
        REPO,
        3,
        head,
        result,
        RepoConfig(),
        check_run_id=None,
        files=plan.files,
        dismissed=dismissed,
    )
    return result


def finding_comments(fake: FakeGitHub) -> dict[str, int]:
    """fingerprint → id of the bot's comment carrying it."""
    out = {}
    for c in fake.review_comments:
        if c["in_reply_to_id"] is None and "secreview:finding fp=" in c["body"]:
            out[c["body"].split("fp=")[1].split(" ")[0]] = c["id"]
    return out


def test_replies_carry_the_rest_shape(gh: tuple[FakeGitHub, Installation, str]) -> None:
    fake, inst, url = gh
    review(inst, HEADS[0], ())
    root = next(iter(finding_comments(fake).values()))
    fake.reply_as(root, "alice", "False positive", association="OWNER")
    token = inst.app.token(5)
    listed = httpx.get(
        f"{url}/repos/{REPO}/pulls/3/comments", headers={"Authorization": f"token {token}"}
    ).json()
    top = next(c for c in listed if c["id"] == root)
    answer = next(c for c in listed if c.get("in_reply_to_id") == root)
    assert "in_reply_to_id" not in top  # GitHub omits it on a thread's first comment
    assert top["user"]["type"] == "Bot" and top["author_association"] == "NONE"
    assert answer["user"] == {"login": "alice", "type": "User"}
    assert answer["author_association"] == "OWNER" and answer["created_at"].endswith("Z")
    assert answer["path"] == top["path"]


def test_a_dismissed_fingerprint_stays_dismissed_across_pushes(
    gh: tuple[FakeGitHub, Installation, str],
) -> None:
    fake, inst, _ = gh
    first = review(inst, HEADS[0], inst.dismissals(REPO, 3))
    threads = finding_comments(fake)
    assert len(threads) == 2
    rejected, other = sorted(threads)[:2]
    fake.reply_as(threads[rejected], "alice", "Won't fix: test credentials.", "MEMBER")
    fake.reply_as(threads[other], "mallory", "false positive", "CONTRIBUTOR")  # no write access
    fake.reply_as(threads[other], "bob", "Is this a false positive?", "OWNER")  # a question
    for head in HEADS[1:]:
        fake.push(REPO, 3, head, DIFF)
        dismissed = inst.dismissals(REPO, 3)
        assert [(d.fingerprint, d.by, d.how) for d in dismissed] == [(rejected, "alice", "reply")]
        assert dismissed[0].path == next(
            f.path for f in first.findings if f.fingerprint == rejected
        )
        result = review(inst, head, dismissed)
        assert rejected not in {f.fingerprint for f in result.findings}
        assert other in {f.fingerprint for f in result.findings}
    summary = next(c["body"] for c in fake.issue_comments if "secreview:summary" in c["body"])
    assert "head=" + HEADS[-1] in summary


def test_an_ignore_command_from_write_access_dismisses(
    gh: tuple[FakeGitHub, Installation, str],
) -> None:
    fake, inst, _ = gh
    review(inst, HEADS[0], ())
    fp = sorted(finding_comments(fake))[0]
    fake.comment_as(REPO, 3, "mallory", f"/secreview ignore {fp} not mine", "NONE")
    assert inst.dismissals(REPO, 3) == ()
    fake.comment_as(REPO, 3, "erin", f"/secreview ignore {fp} fixture data", "COLLABORATOR")
    (d,) = inst.dismissals(REPO, 3)
    assert (d.fingerprint, d.by, d.how) == (fp, "erin", "command")


# --- a merged pull request: every finding meets its fate ------------------------------------------


def closed(merged: bool) -> Delivery:
    return Delivery(
        "pull_request",
        "d-1",
        {
            "action": "closed",
            "installation": {"id": 5},
            "repository": {"full_name": REPO},
            "pull_request": {"number": 3, "merged": merged},
        },
    )


def test_only_a_merge_is_routed() -> None:
    assert router.route(closed(False)).jobs == ()
    (job,) = router.route(closed(True)).jobs
    assert job == MergedJob(5, REPO, 3, "d-1")
    assert job.kwargs() == {"installation_id": 5, "repo": REPO, "pr": 3, "delivery_id": "d-1"}


def test_a_merge_records_each_findings_fate_once(
    gh: tuple[FakeGitHub, Installation, str], redis_url: str
) -> None:
    fake, inst, _ = gh
    review(inst, HEADS[0], ())
    threads = finding_comments(fake)
    rejected, kept = sorted(threads)
    fake.reply_as(threads[rejected], "alice", "false positive", "OWNER")
    fake.react(threads[kept], "+1")
    client = redis.Redis.from_url(redis_url)
    svc = Runtime(
        settings=Settings.from_env({}),
        redis=client,
        github=lambda _installation: inst,
        schedule=lambda *_step: None,
    )
    (job,) = router.route(closed(True)).jobs
    assert isinstance(job, MergedJob)
    assert record_merge(job, svc) == "merged: 2 findings, 3 outcomes recorded"
    assert record_merge(job, svc) == "merged: 2 findings, 0 outcomes recorded"  # redelivered
    tally = FeedbackStore(client).tally(REPO)
    assert tally.posted == 2
    assert [tally.count(o) for o in ("dismissed", "open_at_merge", "thumbs_up", "fixed")] == [
        1,
        1,
        1,
        0,
    ]
    client.close()


def test_previous_findings_are_the_open_threads_as_the_model_will_see_them(
    gh: tuple[FakeGitHub, Installation, str],
) -> None:
    fake, inst, _ = gh
    first = review(inst, HEADS[0], ())
    seen = {p.fingerprint: p for p in inst.review_feedback(REPO, 3).previous}
    assert seen.keys() == {f.fingerprint for f in first.findings}
    for f in first.findings:
        p = seen[f.fingerprint]
        assert (p.path, p.line, p.cwe, p.title) == (f.path, f.line, f.cwe, f.title)
    # the yaml finding goes away at the next head: its thread is answered "Fixed in" and drops out
    yaml_fp = next(f.fingerprint for f in first.findings if f.cwe == "CWE-502")
    fake.push(REPO, 3, HEADS[1], DIFF)
    review(inst, HEADS[1], (feedback.Dismissal(yaml_fp, "x", "", "reply", "y"),))
    assert yaml_fp in {p.fingerprint for p in inst.review_feedback(REPO, 3).previous}
    plan = plan_files(diffmod.parse_diff(DIFF).files, repo=RepoContext(repo=REPO))  # no bandit
    gone = outcomes.assemble(
        plan, [], model=None, analyzers_only=True
    )  # the yaml finding is not reported any more
    inst.publish_review(
        REPO,
        3,
        HEADS[2],
        gone,
        RepoConfig(),
        check_run_id=None,
        files=plan.files,
    )
    assert yaml_fp not in {p.fingerprint for p in inst.review_feedback(REPO, 3).previous}
