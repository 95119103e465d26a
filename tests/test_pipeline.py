"""The review pipeline in-process (no Celery): risk routing, budgets, supersession, suppressions
— against the fake GitHub and the Workers AI emulator on loopback, with the real Redis."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from bot.config import Settings
from bot.github.client import GitHubApp
from bot.jobs import ReviewJob
from bot.model.client import Usage, create_backend
from bot.review import budget, risk, verify
from tests.emulators.server import LiveServer
from tests.emulators.workers_ai import EmulatorApp, create_emulator
from tests.fakes.github import FakeGitHub, Pull
from workers import pipeline

ROOT = Path(__file__).resolve().parent.parent
DIFF = (ROOT / "examples" / "vulnerable.diff").read_text()
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
    svc: pipeline.Services


@pytest.fixture
def world(redis_url: str, app_key: tuple[str, str]) -> Iterator[World]:
    fake = FakeGitHub("66", app_key[1])
    fake.add_repo(REPO, 3)
    model = create_emulator(account_id="acct", api_token="tok")
    model.state.polls_until_done = 0
    with LiveServer(fake.app) as gh, LiveServer(model.app) as ai:
        env = {
            "GITHUB_APP_ID": "66",
            "GITHUB_PRIVATE_KEY": app_key[0],
            "GITHUB_API_URL": gh.url,
            "CLOUDFLARE_ACCOUNT_ID": "acct",
            "CLOUDFLARE_API_TOKEN": "tok",
            "WORKERS_AI_BASE_URL": ai.url + "/client/v4",
            "REDIS_URL": redis_url,
            "SECREVIEW_DAILY_TOKENS_REPO": "50000",
        }
        settings = Settings.from_env(env)
        svc = pipeline.Services(
            settings,
            redis.Redis.from_url(redis_url),
            GitHubApp(settings).installation,
            lambda: create_backend(settings),
            verify_backend=lambda: create_backend(
                settings, response_format=verify.response_format()
            ),
        )
        yield World(fake, model, svc)


def review(world: World, head: str = HEAD) -> str:
    step, target = pipeline.review_pull_request(ReviewJob(3, REPO, 7, head, "d-1"), world.svc)
    for _ in range(10):
        if step.poll_in is None or target is None:
            return step.outcome
        step = pipeline.poll_model_job(target, world.svc, step.token)
    raise AssertionError("the review did not finish")


def submits(world: World) -> int:
    return len([r for r in world.model.state.requests if r.kind == "submit"])


def test_a_docs_only_change_costs_no_model_call(world: World) -> None:
    world.github.add_pull(REPO, Pull(7, HEAD, DOCS))
    assert review(world).startswith("published")
    assert submits(world) == 0
    (summary,) = world.github.issue_comments
    assert "No model review: only documentation" in summary["body"]
    assert world.github.check_runs[0]["conclusion"] == "success"


def test_an_exhausted_budget_skips_the_model_with_a_neutral_check(world: World) -> None:
    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    budget.charge(world.svc.redis, 3, REPO, Usage(49_000, 0, 500))
    assert review(world).startswith("published")
    assert submits(world) == 0
    (summary,) = world.github.issue_comments
    assert "daily budget of 50,000 tokens is spent" in summary["body"]
    assert world.github.check_runs[0]["conclusion"] == "neutral"
    # The analyzers still ran: the live key is reported.
    assert "CWE-798" in summary["body"]


def test_reviews_are_charged_to_the_budget(world: World) -> None:
    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    assert review(world).startswith("published") and submits(world) == 1
    today = dt.datetime.now(dt.UTC).date().isoformat()
    spent = int(world.svc.redis.get(f"secreview:budget:{today}:repo:{REPO}") or 0)
    assert spent > 1000


def test_an_older_head_is_never_published(world: World) -> None:
    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    step, target = pipeline.review_pull_request(ReviewJob(3, REPO, 7, HEAD, "d-1"), world.svc)
    assert target is not None and step.poll_in is not None
    world.github.push(REPO, 7, "e" * 40, DIFF)  # a newer push lands while the model works
    assert pipeline.poll_model_job(target, world.svc, step.token).outcome.startswith("superseded")
    assert world.github.reviews == [] and world.github.check_runs[0]["conclusion"] == "neutral"
    # A job for the old head arriving late is dropped before any work.
    late, _ = pipeline.review_pull_request(ReviewJob(3, REPO, 7, HEAD, "d-2"), world.svc)
    assert late.outcome.startswith("superseded")


def test_suppressions_from_the_base_branch(world: World) -> None:
    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    assert review(world).startswith("published")
    fingerprints = [c["body"].split("fp=")[1].split(" ")[0] for c in world.github.review_comments]
    world.svc.redis.flushdb()
    world.github.reviews.clear()
    world.github.review_comments.clear()
    world.github.issue_comments.clear()
    yml = f"ignore:\n  - fingerprint: {fingerprints[0]}\n    reason: test fixture\n".encode()
    world.github.set_file(REPO, "main", ".github/secreview.yml", yml)
    assert review(world).startswith("published")
    posted = [c["body"] for c in world.github.review_comments]
    assert not any(fingerprints[0] in b for b in posted)
    assert "suppressed" in world.github.issue_comments[0]["body"]


def test_risk_routing_rules() -> None:
    assert not risk.route(["README.md", "docs/logo.png", "poetry.lock"]).needs_model
    assert risk.route(["README.md", "app/views.py"]).needs_model
    sensitive = risk.route(["docs/x.md", ".github/workflows/ci.yml"])
    assert sensitive.needs_model and sensitive.sensitive == (".github/workflows/ci.yml",)


def test_the_second_look_drops_a_refuted_finding_before_posting(world: World) -> None:
    from tests.test_verify import answer_verdicts

    state = world.model.reset(script=answer_verdicts({"CWE-89"}))
    state.polls_until_done = 0
    world.github.set_file(REPO, "main", ".github/secreview.yml", b"verify: true\n")
    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    assert review(world).startswith("published")
    posted = " ".join(c["body"] for c in world.github.review_comments)
    assert "CWE-89" not in posted and "CWE-798" in posted
    summary = world.github.issue_comments[0]["body"]
    assert "Second look" in summary and "refuted by the verification pass" in summary
    submits = [r for r in world.model.state.requests if r.kind == "submit"]
    assert len(submits) == 2  # the review, then one verification batch


def test_a_spent_model_quota_is_said_on_the_pr_not_left_spinning(world: World) -> None:
    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    world.model.state.fail_next("quota", times=5, on=("submit",))
    assert review(world).startswith("published")
    (check,) = world.github.check_runs
    assert check["status"] == "completed" and check["conclusion"] == "neutral"
    summary = world.github.issue_comments[0]["body"]
    assert "Workers AI refused the request (model_quota" in summary
    assert "CWE-798" in summary  # the analyzers' findings are still posted


def test_capacity_on_submit_raises_for_the_task_to_retry_and_the_retry_resumes(
    world: World,
) -> None:
    from bot.errors import ModelCapacity

    world.svc.backend = lambda: create_backend(world.svc.settings, max_retries=0)
    world.github.add_pull(REPO, Pull(7, HEAD, DIFF))
    world.model.state.fail_next("capacity", times=1, on=("submit",))
    with pytest.raises(ModelCapacity):
        pipeline.review_pull_request(ReviewJob(3, REPO, 7, HEAD, "d-1"), world.svc)
    assert review(world).startswith("published")  # the task's retry
    assert len(world.github.check_runs) == 1 and len(world.github.reviews) == 1
