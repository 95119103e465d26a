"""The App's driver in-process (no Celery): runs started by jobs, stepped until done, swept when
a step is lost — against the fake GitHub and the Workers AI emulator on loopback, with the real
Redis. Scheduled steps are collected and run by the test, as Celery would."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from bot.config import Settings
from bot.github.client import GitHubApp
from bot.jobs import ReviewJob, ScanJob
from bot.model.client import Usage
from bot.review import budget
from bot.review.store import LEASE_PREFIX
from tests.emulators.server import LiveServer
from tests.emulators.workers_ai import EmulatorApp, create_emulator
from tests.fakes.github import FakeGitHub, Pull
from workers import driver
from workers.app import baseline_key, baseline_notes

ROOT = Path(__file__).resolve().parent.parent
DIFF = (ROOT / "examples" / "vulnerable.diff").read_text()
VULN = ROOT / "tests" / "data" / "vulnproject"
DOCS = (
    "diff --git a/README.md b/README.md\n--- a/README.md\n+++ b/README.md\n"
    "@@ -1 +1,2 @@\n # Shop\n+Run `make demo`.\n"
)
REPO = "octo/shop"
HEAD = "d" * 40


@dataclass
class World:
    github: FakeGitHub
    model: EmulatorApp
    rt: driver.Runtime
    steps: list[tuple[str, str, float, str]] = field(default_factory=list)
    offset: float = 0.0  # how far the world's clock has been moved ahead of its start
    start: float = field(default_factory=time.time)

    def now(self) -> float:
        """The world's clock stands still but for countdowns: a slow machine reaching a poll's
        due time during a step would otherwise change which steps get scheduled."""
        return self.start + self.offset

    def settle(self, limit: int = 30) -> list[str]:
        """Run every scheduled step (and what it schedules) until nothing is left; a countdown
        moves the world's clock instead of sleeping."""
        outcomes = []
        for _ in range(limit):
            if not self.steps:
                return outcomes
            key, token, countdown, _queue = self.steps.pop(0)
            self.offset += countdown
            outcomes.append(driver.drive(key, token, self.rt))
        raise AssertionError(f"the run did not settle: {outcomes[-5:]}")

    def review(self, head: str = HEAD, trigger: str = "opened") -> str:
        first = driver.start_review(ReviewJob(3, REPO, 7, head, "d-1", trigger), self.rt)  # type: ignore[arg-type]
        rest = self.settle()
        return (rest or [first])[-1]


def make_world(redis_url: str, app_key: tuple[str, str], **env: str) -> Iterator[World]:
    fake = FakeGitHub("66", app_key[1])
    fake.add_repo(REPO, 3)
    model = create_emulator(account_id="acct", api_token="tok")
    model.state.polls_until_done = 0
    with LiveServer(fake.app) as gh, LiveServer(model.app) as ai:
        settings = Settings.from_env(
            {
                "GITHUB_APP_ID": "66",
                "GITHUB_PRIVATE_KEY": app_key[0],
                "GITHUB_API_URL": gh.url,
                "CLOUDFLARE_ACCOUNT_ID": "acct",
                "CLOUDFLARE_API_TOKEN": "tok",
                "WORKERS_AI_BASE_URL": ai.url + "/client/v4",
                "REDIS_URL": redis_url,
                "SECREVIEW_DAILY_TOKENS_REPO": "50000",
                "SECREVIEW_FIRST_POLL": "0.01",
                **env,
            }
        )
        steps: list[tuple[str, str, float, str]] = []
        rt = driver.Runtime(
            settings=settings,
            redis=redis.Redis.from_url(redis_url),
            github=GitHubApp(settings).installation,
            schedule=lambda *step: steps.append(step),
        )
        world = World(fake, model, rt, steps)
        rt.clock = world.now  # type: ignore[method-assign]
        yield world


@pytest.fixture
def world(redis_url: str, app_key: tuple[str, str]) -> Iterator[World]:
    yield from make_world(redis_url, app_key)


def submits(world: World) -> int:
    return len([r for r in world.model.state.requests if r.kind == "submit"])


def check(world: World, name: str = "secreview") -> dict[str, Any]:
    (run,) = [c for c in world.github.check_runs if c["name"] == name]
    return run


def test_a_review_lands_once_with_bandit_and_the_model(world: World) -> None:
    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    assert world.review().startswith("published")
    assert submits(world) == 1
    (summary,) = world.github.issue_comments
    body = summary["body"]
    assert "CWE-798" in body and "CWE-89" in body
    # bandit runs in the App as in the CLI (its shell=True hit corroborates the model's finding)
    assert "(B506)" in body
    assert check(world)["status"] == "completed" and check(world)["conclusion"] == "failure"
    # A redelivered job for the same head changes nothing.
    assert world.review().startswith("already")
    assert len(world.github.reviews) == 1 and len(world.github.check_runs) == 1


def test_a_docs_only_change_costs_no_model_call(world: World) -> None:
    world.github.add_pull(REPO, Pull(7, HEAD, DOCS))
    assert world.review().startswith("published")
    assert submits(world) == 0
    (summary,) = world.github.issue_comments
    assert "No model review: only documentation" in summary["body"]
    assert check(world)["conclusion"] == "success"


def test_an_exhausted_budget_skips_the_model_with_a_neutral_check(world: World) -> None:
    world.github.add_pull(REPO, Pull(7, HEAD, DOCS.replace("README.md", "app.py")))
    budget.charge(world.rt.redis, 3, REPO, Usage(49_990, 0, 5))
    assert world.review().startswith("published")
    assert submits(world) == 0
    (summary,) = world.github.issue_comments
    assert "daily budget of 50,000 tokens is spent" in summary["body"]
    assert check(world)["conclusion"] == "neutral"


def test_a_committed_secret_fails_the_check_even_when_the_budget_skips_the_model(
    world: World,
) -> None:
    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    budget.charge(world.rt.redis, 3, REPO, Usage(49_990, 0, 5))
    assert world.review().startswith("published")
    assert "CWE-798" in world.github.issue_comments[0]["body"]
    assert check(world)["conclusion"] == "failure"  # fail closed on what was found


def test_reviews_are_charged_once_after_publishing(world: World) -> None:
    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    # The first summary POST fails: publishing is retried, the budget charged once.
    world.github.fail_next(r"/issues/7/comments$", 502, {})
    assert world.review().startswith("published")
    today = dt.datetime.now(dt.UTC).date().isoformat()
    spent = int(world.rt.redis.get(f"secreview:budget:{today}:repo:{REPO}") or 0)
    served = world.model.state.prompt_tokens + sum(
        s.completion_tokens for s in world.model.state.served
    )
    assert spent == served > 1000


def test_an_older_head_is_never_published(world: World) -> None:
    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    driver.start_review(ReviewJob(3, REPO, 7, HEAD, "d-1"), world.rt)
    world.github.push(REPO, 7, "e" * 40, DIFF)  # a newer push lands while the model works
    outcomes = world.settle()
    assert outcomes[-1].startswith("superseded")
    assert world.github.reviews == [] and check(world)["conclusion"] == "neutral"
    # A job for the old head arriving late is dropped before any work.
    late = driver.start_review(ReviewJob(3, REPO, 7, HEAD, "d-2"), world.rt)
    assert late.startswith("already")


def test_a_job_for_a_stale_head_plans_nothing(world: World) -> None:
    world.github.add_pull(REPO, Pull(7, "e" * 40, DIFF))
    assert driver.start_review(ReviewJob(3, REPO, 7, HEAD, "d-1"), world.rt).startswith(
        "superseded"
    )
    assert world.github.check_runs == [] and submits(world) == 0


def test_suppressions_from_the_base_branch(world: World) -> None:
    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    assert world.review().startswith("published")
    fingerprints = [c["body"].split("fp=")[1].split(" ")[0] for c in world.github.review_comments]
    world.rt.redis.flushdb()
    world.github.reviews.clear()
    world.github.review_comments.clear()
    world.github.issue_comments.clear()
    yml = f"ignore:\n  - fingerprint: '{fingerprints[0]}'\n    reason: test fixture\n".encode()
    world.github.set_file(REPO, "main", ".github/secreview.yml", yml)
    assert world.review().startswith("published")
    posted = [c["body"] for c in world.github.review_comments]
    assert not any(fingerprints[0] in b for b in posted)
    assert "suppressed" in world.github.issue_comments[0]["body"]


def test_the_second_look_drops_a_refuted_finding_before_posting(world: World) -> None:
    from tests.test_verify import answer_verdicts

    state = world.model.reset(script=answer_verdicts({"CWE-918"}))
    state.polls_until_done = 0
    world.github.set_file(REPO, "main", ".github/secreview.yml", b"verify: true\n")
    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    assert world.review().startswith("published")
    posted = " ".join(c["body"] for c in world.github.review_comments)
    assert "CWE-918" not in posted and "CWE-798" in posted
    summary = world.github.issue_comments[0]["body"]
    assert "Second look" in summary and "refuted by the verification pass" in summary
    assert submits(world) == 2  # the review, then one verification batch


def test_a_spent_model_quota_is_said_on_the_pr_not_left_spinning(world: World) -> None:
    world.github.add_pull(REPO, Pull(7, HEAD, DOCS.replace("README.md", "app.py")))
    world.model.state.fail_model("@cf/moonshotai/kimi-k2.6", "quota")
    assert world.review().startswith("published")
    run = check(world)
    assert run["status"] == "completed" and run["conclusion"] == "neutral"
    summary = world.github.issue_comments[0]["body"]
    assert "model_quota" in summary and "app.py" in summary


def test_capacity_on_submit_is_retried_later_and_lands_once(world: World) -> None:
    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    world.model.state.fail_next("capacity", times=1, on=("submit",))
    assert world.review().startswith("published")
    assert submits(world) == 2
    assert len(world.github.check_runs) == 1 and len(world.github.reviews) == 1


def test_a_worker_without_a_model_still_ends_the_check(
    redis_url: str, app_key: tuple[str, str]
) -> None:
    for world in make_world(redis_url, app_key, CLOUDFLARE_ACCOUNT_ID="", CLOUDFLARE_API_TOKEN=""):
        world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
        assert world.review().startswith("published")
        assert check(world)["status"] == "completed"
        summary = world.github.issue_comments[0]["body"]
        assert "the worker has no model configured" in summary
        assert "CWE-798" in summary  # the analyzers' findings are posted


def test_planning_that_fails_on_hostile_input_ends_with_a_failure_summary(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*_a: object, **_k: object) -> None:
        raise UnicodeEncodeError("utf-8", "\udc80", 0, 1, "surrogates not allowed")

    monkeypatch.setattr("workers.app.plan_diff", explode)
    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    assert world.review().startswith("published")
    assert check(world)["status"] == "completed" and check(world)["conclusion"] == "failure"
    assert "planning failed: UnicodeEncodeError" in world.github.issue_comments[0]["body"]


def test_an_invalid_config_fails_the_check_and_says_why(world: World) -> None:
    world.github.set_file(REPO, "main", ".github/secreview.yml", b"fail_on: sometimes\n")
    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    assert world.review().startswith("published")
    assert check(world)["conclusion"] == "failure"
    assert "Invalid .github/secreview.yml" in world.github.issue_comments[0]["body"]
    assert submits(world) == 0


def test_a_lost_step_is_re_driven_by_the_sweeper(world: World) -> None:
    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    driver.start_review(ReviewJob(3, REPO, 7, HEAD, "d-1"), world.rt)
    assert world.steps
    world.steps.clear()  # the scheduled message is lost (Redis restarted, worker killed ...)
    assert driver.sweep(world.rt, grace_s=0.0) == 0  # not overdue yet: due in the future
    world.offset += 3600
    assert driver.sweep(world.rt, grace_s=0.0) == 1
    assert world.settle()[-1].startswith("published")
    assert len(world.github.reviews) == 1
    assert driver.sweep(world.rt, grace_s=0.0) == 0  # done runs leave the due index


def test_a_step_with_an_old_token_or_a_held_lease_does_nothing(world: World) -> None:
    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    driver.start_review(ReviewJob(3, REPO, 7, HEAD, "d-1"), world.rt)
    key, token, _, _ = world.steps[0]
    assert driver.drive(key, "old-token", world.rt) == "a newer step owns this run"
    world.rt.redis.set(LEASE_PREFIX + key, "someone", ex=30)
    assert driver.drive(key, token, world.rt) == "another worker holds this run"
    world.rt.redis.delete(LEASE_PREFIX + key)
    assert world.settle()[-1].startswith("published")
    assert not world.rt.redis.keys(LEASE_PREFIX + "*")


def test_github_calls_per_review_stay_few(world: World) -> None:
    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    inst = world.rt.github(3)
    inst.app.token(3)  # the installation token is minted once an hour
    inst.org_config_text("octo")  # and the owner's shared config read every few minutes
    world.github.requests.clear()
    assert world.review().startswith("published")
    calls = [(r.method, r.path) for r in world.github.requests]
    # PR, config, diff, check run, review, summary, check completed, PR head before posting
    assert len(calls) <= 8, calls


# --- scans --------------------------------------------------------------------------------------


@pytest.fixture
def scan_world(redis_url: str, app_key: tuple[str, str]) -> Iterator[World]:
    for world in make_world(redis_url, app_key, SECREVIEW_UNIT_TOKENS="800"):
        repo = "octo/vuln"
        world.github.add_repo(repo, 9)
        for path in VULN.rglob("*"):
            if path.is_file():
                world.github.set_file(
                    repo, "main", path.relative_to(VULN).as_posix(), path.read_bytes()
                )
        world.github.add_pull(repo, Pull(4, "c" * 40, "", title="anything"))
        yield world


def test_scan_requested_in_a_pull_request(scan_world: World) -> None:
    from tests.test_render import assert_valid_sarif

    world, repo = scan_world, "octo/vuln"
    job = ScanJob(9, repo, "", "d-1", "alice", pr=4)
    driver.start_scan(job, world.rt)
    assert world.settle()[-1].startswith("published")
    assert driver.start_scan(job, world.rt).startswith("already")  # a redelivered job
    run = check(world, "secreview scan")
    assert run["status"] == "completed" and run["conclusion"] == "failure"
    assert {a["path"] for a in run["annotations"]} >= {"app/views.py"}
    (upload,) = world.github.sarifs
    assert upload["ref"] == "refs/heads/main" and len(upload["commit_sha"]) == 40
    sarif = json.loads(gzip.decompress(base64.b64decode(upload["sarif"])))
    assert_valid_sarif(sarif)
    (reply,) = [c for c in world.github.issue_comments if "Full scan" in c["body"]]
    assert "@alice" in reply["body"]
    baseline = {b.decode() for b in world.rt.redis.smembers(baseline_key(repo))}
    found = {r["partialFingerprints"].popitem()[1] for r in sarif["runs"][0]["results"]}
    assert baseline and baseline == found


def test_capacity_while_submitting_a_scan_is_retried(scan_world: World) -> None:
    world = scan_world
    world.model.state.fail_next("capacity", times=1, on=("submit",))
    driver.start_scan(ScanJob(9, "octo/vuln", "", "d-1", "alice", pr=4), world.rt)
    assert world.settle()[-1].startswith("published")
    assert len([c for c in world.github.check_runs if c["name"] == "secreview scan"]) == 1


def test_baseline_notes_name_findings_that_predate_the_pr(world: World) -> None:
    from bot.findings import Finding

    def finding(fp: str) -> Finding:
        return Finding(
            path="a.py",
            line=1,
            severity="high",
            cwe="CWE-89",
            title="SQL injection",
            description="d",
            exploit_scenario="e",
            recommendation="r",
            confidence=0.9,
            evidence="x",
            fingerprint=fp,
        )

    old, new = finding("a" * 16), finding("b" * 16)
    world.rt.redis.sadd(baseline_key(REPO), old.fingerprint)
    notes = baseline_notes(world.rt.redis, REPO, [old, new])
    assert len(notes) == 1 and old.fingerprint in notes[0]


# --- re-reviews (issue 10): results reused, dismissals honoured, the conversation continued --


def submitted_text(world: World, since: int = 0) -> str:
    """Everything sent in batch submissions after the first ``since`` requests."""
    return json.dumps([r.body for r in world.model.state.requests[since:] if r.kind == "submit"])


PUSHED = DIFF.replace(
    "+def search_products(conn, term, order):", "+def search_products(conn, term, order, limit=50):"
)


def test_a_push_that_changes_one_file_sends_only_that_file(
    world: World, bandit_runs: list[str]
) -> None:
    analyzed = bandit_runs
    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    assert world.review().startswith("published")
    assert {"shop/app.py", "shop/db.py"} <= set(analyzed)
    assert world.rt.redis.keys("secreview:analysis:*")  # the analyses are kept in Redis
    first = {f["body"].split("fp=")[1][:16] for f in world.github.review_comments}
    seen = len(world.model.state.requests)
    analyzed.clear()
    world.github.push(REPO, 7, "e" * 40, PUSHED)
    assert world.review("e" * 40, "synchronize").startswith("published")
    assert set(analyzed) == {"shop/db.py"}  # bandit ran again on the changed file only
    sent = submitted_text(world, seen)
    # The diff segments sent: the changed file's only (the PR's file list still names both).
    assert "### shop/db.py (modified" in sent and "### shop/app.py (modified" not in sent
    summary = world.github.issue_comments[0]["body"]
    assert "Unchanged since an earlier review" in summary and "`shop/app.py`" in summary
    # Nothing of the unchanged file was lost or posted twice.
    again = [f["body"].split("fp=")[1][:16] for f in world.github.review_comments]
    assert first <= set(again) and len(again) == len(set(again))


def test_a_push_that_changes_nothing_sends_nothing(world: World) -> None:
    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    assert world.review().startswith("published")
    seen = submits(world)
    world.github.push(REPO, 7, "e" * 40, DIFF)  # a rebase: new head, same change
    assert world.review("e" * 40, "synchronize").startswith("published")
    assert submits(world) == seen
    assert "CWE-89" in world.github.issue_comments[0]["body"]  # the reused result is reported


def test_a_dismissed_finding_stays_dismissed_across_pushes(world: World) -> None:
    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    assert world.review().startswith("published")
    sql = next(c for c in world.github.review_comments if "CWE-89" in c["body"])
    fingerprint = sql["body"].split("fp=")[1][:16]
    world.github.reply_as(sql["id"], "alice", "False positive: term is validated upstream", "OWNER")
    world.github.push(REPO, 7, "e" * 40, PUSHED)  # the flagged file changes again
    assert world.review("e" * 40, "synchronize").startswith("published")
    summary = world.github.issue_comments[0]["body"]
    assert "@alice" in summary and fingerprint in summary
    open_marker = summary.split("secreview:open")[1]
    assert fingerprint not in open_marker
    posted = [c for c in world.github.review_comments if fingerprint in c["body"]]
    assert len(posted) == 1 and not any(
        c["body"].startswith("Fixed in") for c in world.github.review_comments
    )
    # The model was shown its earlier finding, so it continues it rather than rediscovering it.
    assert fingerprint in submitted_text(world, 1)


def test_a_reply_from_someone_without_write_access_dismisses_nothing(world: World) -> None:
    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    assert world.review().startswith("published")
    sql = next(c for c in world.github.review_comments if "CWE-89" in c["body"])
    world.github.reply_as(sql["id"], "mallory", "false positive", "NONE")
    world.github.push(REPO, 7, "e" * 40, PUSHED)
    assert world.review("e" * 40, "synchronize").startswith("published")
    summary = world.github.issue_comments[0]["body"]
    assert "CWE-89" in summary and "@mallory" not in summary


def test_the_sweeper_drops_what_a_dead_worker_left_unacked_and_only_that(world: World) -> None:
    from bot import jobs
    from bot.queue import celery_message

    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    assert world.review().startswith("published")
    key = driver.review_key(REPO, 7, HEAD)
    old = time.time() - 60

    def unacked(tag: str, job: Any = None, message: str | None = None) -> None:
        raw = message or celery_message(job)
        envelope = json.loads(raw)
        world.rt.redis.hset(driver.UNACKED, tag, json.dumps([envelope, "", "q"]))
        world.rt.redis.zadd(driver.UNACKED_INDEX, {tag: old})

    step = json.loads(celery_message(ReviewJob(3, REPO, 7, HEAD, "x")))
    body = base64.b64encode(json.dumps([[], {"key": key, "token": "gone"}, {}]).encode())
    step["body"], step["headers"]["task"] = body.decode(), jobs.TASK_STEP
    unacked("stale-step", message=json.dumps(step))
    unacked("started-job", ReviewJob(3, REPO, 7, HEAD, "d-1"))
    unacked("unstarted-job", ReviewJob(3, REPO, 8, "f" * 40, "d-9"))  # no run: must come back
    unacked("garbage", message='{"not": "a message"}')
    world.rt.redis.zadd(driver.UNACKED_INDEX, {"fresh": time.time()})
    assert driver.sweep_unacked(world.rt) == 2
    left = {k.decode() for k in world.rt.redis.hkeys(driver.UNACKED)}
    assert left == {"unstarted-job", "garbage"}


ARGS_LINE = (
    '+    rows = db.search_products(db.connect(), request.args["q"], '
    'request.args.get("order", "id"))'
)


def test_a_push_sends_only_the_lines_it_changed_and_keeps_the_findings_elsewhere(
    world: World,
) -> None:
    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    assert world.review().startswith("published")
    earlier = {
        c["body"].split("fp=")[1][:16]: c["line"]
        for c in world.github.review_comments
        if c["path"] == "shop/app.py" and "fp=" in c["body"]
    }
    assert len(earlier) >= 2
    seen = len(world.model.state.requests)
    pushed = DIFF.replace(ARGS_LINE, ARGS_LINE.replace('"order", "id"', '"order", "name"'))
    assert pushed != DIFF
    world.github.push(REPO, 7, "e" * 40, pushed)
    assert world.review("e" * 40, "synchronize").startswith("published")
    sent = world.model.state.user_text(seen)
    # Only the changed line, its neighbours and the line opening its function are sent again.
    assert "### shop/app.py (modified, changes since the last review)" in sent
    assert 'request.args.get("order", "name")' in sent and "def search():" in sent
    assert "yaml.load(request.data)" not in sent and "verify=False" not in sent
    # The findings on lines the push did not touch stay open, inline, with their fingerprints,
    # without asking the model (they are not even listed to it); none is reported fixed.
    summary = world.github.issue_comments[0]["body"]
    open_marker = summary.split("secreview:open")[1]
    kept = [fp for fp in earlier if fp in open_marker]
    assert len(kept) >= 2
    assert not any(c["body"].startswith("Fixed in") for c in world.github.review_comments)
    assert not any(fp in sent for fp in kept)
