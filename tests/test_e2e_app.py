"""The App end to end: ``secreview serve`` + a real Celery worker on the real Redis, the Workers AI
emulator and the fake GitHub, all on loopback.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from bot import jobs
from bot.github.webhooks import signature
from tests.appstack import post_webhook
from tests.emulators.server import LiveServer
from tests.emulators.workers_ai import EmulatorApp, create_emulator
from tests.fakes.github import FakeGitHub, Pull
from tests.procs import SECREVIEW, Proc, RedisServer, free_port, wait_for, wait_http

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parent.parent
SECRET = "e2e-webhook-secret"
APP_ID = "1234"
REPO = "octo/shop"
INSTALLATION = 42
HEAD1 = "1" * 40
HEAD2 = "2" * 40
DIFF1 = (ROOT / "examples" / "vulnerable.diff").read_text()
SQLI = (
    '+    query = f"SELECT id, name, price FROM products '
    """WHERE name LIKE '%{term}%' ORDER BY {order}\""""
)
SAFE = """+    query = "SELECT id, name, price FROM products WHERE name LIKE ? ORDER BY id\""""
DIFF2 = DIFF1.replace(SQLI, SAFE)


@dataclass
class Stack:
    github: FakeGitHub
    model: EmulatorApp
    redis: redis.Redis
    env: dict[str, str]
    url: str
    tmp: Path
    worker: Proc

    def deliver(
        self, event: str, payload: dict[str, Any], delivery: str | None = None, secret: str = SECRET
    ) -> httpx.Response:
        return post_webhook(self.url, event, payload, secret, delivery)

    def new_worker(self) -> Proc:
        self.worker = start_worker(self.env, self.tmp)
        return self.worker

    def checks(self, head: str) -> list[dict[str, Any]]:
        return [c for c in self.github.check_runs if c["head_sha"] == head]


def start_worker(env: dict[str, str], tmp: Path) -> Proc:
    argv = [
        *SECREVIEW,
        "worker",
        "--pool",
        "solo",
        "--loglevel",
        "INFO",
        "--without-heartbeat",
        "--without-mingle",
        "--without-gossip",
    ]
    return Proc(argv, env, tmp / "worker.log").start()


def pr_event(action: str, head: str) -> dict[str, Any]:
    return {
        "action": action,
        "number": 7,
        "pull_request": {"number": 7, "head": {"sha": head}, "draft": False},
        "repository": {"full_name": REPO},
        "installation": {"id": INSTALLATION},
    }


@pytest.fixture
def stack(redis_url: str, tmp_path: Path, app_key: tuple[str, str]) -> Iterator[Stack]:
    private, public = app_key
    fake = FakeGitHub(APP_ID, public)
    fake.add_repo(REPO, INSTALLATION)
    fake.set_file(REPO, "main", ".github/secreview.yml", b"fail_on: high\n")
    fake.add_pull(
        REPO,
        Pull(7, HEAD1, DIFF1, title="Search, import and thumbnails", body="Adds product search."),
    )
    model = create_emulator(account_id="acct", api_token="tok")
    model.state.polls_until_done = 1
    with LiveServer(fake.app) as gh, LiveServer(model.app) as ai:
        port = free_port()
        env = {
            "GITHUB_APP_ID": APP_ID,
            "GITHUB_PRIVATE_KEY": private,
            "GITHUB_WEBHOOK_SECRET": SECRET,
            "GITHUB_API_URL": gh.url,
            "CLOUDFLARE_ACCOUNT_ID": "acct",
            "CLOUDFLARE_API_TOKEN": "tok",
            "WORKERS_AI_BASE_URL": ai.url + "/client/v4",
            "REDIS_URL": redis_url,
            "SECREVIEW_VISIBILITY_TIMEOUT": "4",
            "SECREVIEW_FIRST_POLL": "0.5",
            "LOG_LEVEL": "INFO",
        }
        web = Proc([*SECREVIEW, "serve", "--port", str(port)], env, tmp_path / "web.log").start()
        stack = Stack(
            fake,
            model,
            redis.Redis.from_url(redis_url),
            env,
            f"http://127.0.0.1:{port}",
            tmp_path,
            start_worker(env, tmp_path),
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", proc=web)
            yield stack
        finally:
            web.stop()
            stack.worker.stop()  # the current one: a test may have replaced it


def wait_published(stack: Stack, head: str, timeout: float = 90) -> dict[str, Any]:
    def done() -> bool:
        return any(c["status"] == "completed" for c in stack.checks(head))

    try:
        wait_for(done, timeout, f"the check run of {head[:7]} to complete", every=0.2)
    except AssertionError:
        raise AssertionError(stack.worker.log()[-4000:]) from None
    return next(c for c in stack.checks(head) if c["status"] == "completed")


def finding_comments(stack: Stack) -> list[dict[str, Any]]:
    return [
        c
        for c in stack.github.review_comments
        if "secreview:finding" in c["body"] and c["in_reply_to_id"] is None
    ]


def test_pull_request_review_lands_once_and_fixes_are_marked(stack: Stack) -> None:
    assert stack.deliver("pull_request", pr_event("opened", HEAD1), "delivery-1").status_code == 202
    check = wait_published(stack, HEAD1)

    # One review, its inline comments on lines of the diff, one summary, one check run.
    assert len(stack.github.reviews) == 1
    comments = finding_comments(stack)
    where = {(c["path"], c["line"]) for c in comments}
    assert ("shop/db.py", 16) in where  # the model's SQL injection, re-anchored on the f-string
    assert ("shop/app.py", 41) in where  # the live Stripe key, from the secrets analyzer
    summaries = [c for c in stack.github.issue_comments if "secreview:summary" in c["body"]]
    assert len(summaries) == 1 and f"head={HEAD1}" in summaries[0]["body"]
    assert "sk_live_" not in json.dumps(stack.github.issue_comments + stack.github.review_comments)
    assert check["conclusion"] == "failure" and len(stack.checks(HEAD1)) == 1
    assert check["annotations"]
    submits = [r for r in stack.model.state.requests if r.kind == "submit"]
    assert len(submits) == 1 and submits[0].headers.get("x-session-affinity", "").startswith("sr-")

    # The same delivery again, and the same task re-run, change nothing.
    again = stack.deliver("pull_request", pr_event("opened", HEAD1), "delivery-1")
    assert again.status_code == 202 and again.json()["duplicate"] is True
    from bot.queue import celery_message

    job = jobs.ReviewJob(INSTALLATION, REPO, 7, HEAD1, "delivery-1", "opened")
    stack.redis.lpush(jobs.QUEUE_REVIEWS, celery_message(job))
    wait_for(lambda: "already reviewed" in stack.worker.log(), 30, "the re-run to finish")
    assert len(stack.github.reviews) == 1
    assert len(finding_comments(stack)) == len(comments)
    assert len([c for c in stack.github.issue_comments if "secreview:summary" in c["body"]]) == 1
    assert len(stack.checks(HEAD1)) == 1
    assert len([r for r in stack.model.state.requests if r.kind == "submit"]) == 1

    # Reviewers react to the comments; the next review counts it into per-repo figures.
    stack.github.react(comments[0]["id"], "+1")
    stack.github.react(comments[1]["id"], "-1")
    stack.github.react(comments[1]["id"], "-1")

    # A push that removes the vulnerable line: that thread is answered "Fixed in", once.
    stack.github.push(REPO, 7, HEAD2, DIFF2)
    assert stack.deliver("pull_request", pr_event("synchronize", HEAD2)).status_code == 202
    wait_published(stack, HEAD2)
    sqli = next(c for c in comments if c["path"] == "shop/db.py")
    replies = [c for c in stack.github.review_comments if c["in_reply_to_id"] == sqli["id"]]
    assert [r["body"].split(".")[0] for r in replies] == [f"Fixed in {HEAD2}"]
    # Findings still open are not reposted; the summary is the same comment, edited.
    assert len(finding_comments(stack)) == len(comments)
    summaries = [c for c in stack.github.issue_comments if "secreview:summary" in c["body"]]
    assert len(summaries) == 1 and summaries[0]["edits"] >= 1
    assert (
        f"head={HEAD2}" in summaries[0]["body"]
        and "Fixed since the last review" in summaries[0]["body"]
    )

    metrics = httpx.get(stack.url + "/metrics").text
    assert 'secreview_finding_reactions{reaction="+1",repo="octo/shop"} 1' in metrics
    assert 'secreview_finding_reactions{reaction="-1",repo="octo/shop"} 2' in metrics
    assert 'secreview_reviews_total{repo="octo/shop"} 2' in metrics

    # A bad signature: 401 and nothing queued.
    before = stack.redis.keys("secreview:delivery:*")
    bad = stack.deliver("pull_request", pr_event("opened", HEAD2), "delivery-bad", secret="nope")
    assert bad.status_code == 401
    assert stack.redis.keys("secreview:delivery:*") == before
    assert stack.redis.llen(jobs.QUEUE_REVIEWS) == 0


def test_a_worker_killed_mid_review_still_ends_in_exactly_one_review(stack: Stack) -> None:
    stack.model.state.polls_until_done = 6  # keep the batch running while the worker dies
    assert stack.deliver("pull_request", pr_event("opened", HEAD1)).status_code == 202
    wait_for(
        lambda: any(r.kind == "submit" for r in stack.model.state.requests),
        60,
        "the batch to be submitted",
    )
    wait_for(lambda: any(r.kind == "poll" for r in stack.model.state.requests), 60, "a first poll")
    stack.worker.kill()
    polls = len([r for r in stack.model.state.requests if r.kind == "poll"])
    stack.new_worker()
    check = wait_published(stack, HEAD1, timeout=120)
    assert check["conclusion"] == "failure"
    assert len(stack.github.reviews) == 1
    assert len([c for c in stack.github.issue_comments if "secreview:summary" in c["body"]]) == 1
    assert len(stack.checks(HEAD1)) == 1
    # The new worker picked up the polls; the batch was paid for once.
    assert len([r for r in stack.model.state.requests if r.kind == "poll"]) > polls
    assert len([r for r in stack.model.state.requests if r.kind == "submit"]) == 1


def test_redis_stopped_is_503(tmp_path: Path) -> None:
    if not RedisServer.available():
        pytest.skip("redis-server is not installed")
    server = RedisServer(tmp_path).start()
    port = free_port()
    env = {"GITHUB_WEBHOOK_SECRET": SECRET, "REDIS_URL": server.url}
    with Proc([*SECREVIEW, "serve", "--port", str(port)], env, tmp_path / "web.log") as web:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/healthz", proc=web)
        body = json.dumps(pr_event("opened", HEAD1)).encode()

        def post(delivery: str) -> int:
            headers = {
                "x-github-event": "pull_request",
                "x-github-delivery": delivery,
                "x-hub-signature-256": signature(SECRET, body),
            }
            return httpx.post(
                url + "/api/github/webhooks", content=body, headers=headers
            ).status_code

        assert post("before") == 202
        assert httpx.get(url + "/readyz").status_code == 200
        # `secreview replay` signs a saved delivery the same way GitHub does.
        saved = tmp_path / "pull_request.json"
        saved.write_bytes(body)
        replay = subprocess.run(
            [
                *SECREVIEW,
                "replay",
                str(saved),
                "--event",
                "pull_request",
                "--url",
                url + "/api/github/webhooks",
            ],
            env={**os.environ, "GITHUB_WEBHOOK_SECRET": SECRET},
            capture_output=True,
            timeout=60,
        )
        assert replay.returncode == 0 and replay.stdout.startswith(b"202"), replay.stderr
        server.stop()
        assert post("after") == 503
        assert httpx.get(url + "/readyz").status_code == 503
