"""The installed App under test, and the invariant every fault trial must end in.

``AppStack`` runs ``secreview serve`` and ``secreview worker`` as real processes on a real Redis
(the shared test database, or a private ``redis-server`` a trial may restart), with the fake
GitHub and the Workers AI emulator on loopback. ``assert_invariant`` is the one checker of what a
finished review must look like on GitHub and in the broker (issue 9 part 5).
"""

from __future__ import annotations

import contextlib
import json
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

from bot.github.webhooks import signature
from tests.emulators.server import LiveServer
from tests.emulators.workers_ai import EmulatorApp, create_emulator
from tests.fakes.github import FakeGitHub, Pull
from tests.procs import SECREVIEW, Proc, RedisServer, free_port, wait_for, wait_http

SECRET = "faults-webhook-secret"
APP_ID = "4321"
REPO = "octo/shop"
INSTALLATION = 42
PR = 7
HEAD = "a" * 40
CHECK_NAME = "secreview"

# Settings that keep trials fast (production defaults in brackets): hard task limit [300 s; soft
# 80 %], sweeper interval [30 s], first poll [5 s], model deadline [1800 s] — 60 s here, so it
# outlasts the re-drive of a killed step (a lapsed 30 s run lease plus a sweep). The visibility
# timeout is left to its default, which the one run derives from the task time limit.
FAST_ENV = {
    "SECREVIEW_TASK_TIME_LIMIT": "10",
    "SECREVIEW_SWEEP_INTERVAL": "1",
    "SECREVIEW_FIRST_POLL": "0.3",
    "SECREVIEW_MODEL_DEADLINE": "60",
}


@dataclass(frozen=True, slots=True)
class Planted:
    """A vulnerability planted in the pull request, and who is expected to find it."""

    path: str
    line: int
    finder: str  # "model" or "analyzer" (found without the model)


# A path traversal only the model reports, and an AWS key the secrets detector reports.
MODEL_FINDING = Planted("app/files.py", 7, "model")
SECRET_FINDING = Planted("app/settings.py", 3, "analyzer")
PLANTED = (MODEL_FINDING, SECRET_FINDING)
PR_DIFF = """\
diff --git a/app/files.py b/app/files.py
new file mode 100644
index 0000000..1111111
--- /dev/null
+++ b/app/files.py
@@ -0,0 +1,7 @@
+\"\"\"Downloads.\"\"\"
+
+from flask import request, send_file
+
+
+def download():
+    return send_file(request.args["name"])
diff --git a/app/settings.py b/app/settings.py
new file mode 100644
index 0000000..2222222
--- /dev/null
+++ b/app/settings.py
@@ -0,0 +1,3 @@
+\"\"\"Deployment settings.\"\"\"
+
+AWS_ACCESS_KEY_ID = "AKIAQ4NSBXY2ZLT7KW3P"
"""
# The summary must say the model part is missing when the model never answered.
INCOMPLETE = re.compile(
    r"(?i)review incomplete|no model review|did not (?:answer|review)"
    r"|not reviewed by the model: *[1-9]|failed units?: *[1-9]|units? failed"
)
LOCK_KEYS = re.compile(rb"lock|lease", re.IGNORECASE)
KOMBU_OWN = frozenset({b"unacked_mutex"})  # kombu's short-lived restore mutex, not ours


def post_webhook(
    url: str, event: str, payload: Mapping[str, Any], secret: str, delivery: str | None = None
) -> httpx.Response:
    """Sign ``payload`` with ``secret`` and POST it to the receiver at ``url`` as GitHub does."""
    body = json.dumps(payload).encode()
    headers = {
        "x-github-event": event,
        "x-github-delivery": delivery or str(uuid.uuid4()),
        "x-hub-signature-256": signature(secret, body),
        "content-type": "application/json",
    }
    return httpx.post(url + "/api/github/webhooks", content=body, headers=headers, timeout=15)


def pr_event(
    action: str, head: str, *, repo: str = REPO, pr: int = PR, inst: int = INSTALLATION
) -> dict[str, Any]:
    """A ``pull_request`` webhook payload."""
    return {
        "action": action,
        "number": pr,
        "pull_request": {"number": pr, "head": {"sha": head}, "draft": False},
        "repository": {"full_name": repo},
        "installation": {"id": inst},
    }


@dataclass
class AppStack:
    """Receiver, workers, fakes and Redis for one trial; ``close()`` stops everything it started."""

    tmp: Path
    app_key: tuple[str, str]
    redis_url: str
    redis_server: RedisServer | None = None
    env: dict[str, str] = field(default_factory=dict)
    concurrency: int = 2
    github: FakeGitHub = field(init=False)
    model: EmulatorApp = field(init=False)
    url: str = field(init=False, default="")
    web: Proc | None = field(init=False, default=None)
    workers: list[Proc] = field(init=False, default_factory=list)
    _servers: list[LiveServer] = field(init=False, default_factory=list)
    _worker_count: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        private, public = self.app_key
        self.github = FakeGitHub(APP_ID, public)
        self.model = create_emulator(account_id="acct", api_token="tok")
        self.model.state.polls_until_done = 1
        self._private = private

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self, workers: int = 1) -> AppStack:
        """Serve the fakes, start the receiver and ``workers`` worker processes."""
        gh = LiveServer(self.github.app)
        ai = LiveServer(self.model.app)
        for server in (gh, ai):
            server.start()
            self._servers.append(server)
        port = free_port()
        self.env = {
            "GITHUB_APP_ID": APP_ID,
            "GITHUB_PRIVATE_KEY": self._private,
            "GITHUB_WEBHOOK_SECRET": SECRET,
            "GITHUB_API_URL": gh.url,
            "CLOUDFLARE_ACCOUNT_ID": "acct",
            "CLOUDFLARE_API_TOKEN": "tok",
            "WORKERS_AI_BASE_URL": ai.url + "/client/v4",
            "REDIS_URL": self.redis_url,
            "LOG_LEVEL": "INFO",
            **self.env,
        }
        self.url = f"http://127.0.0.1:{port}"
        argv = [*SECREVIEW, "serve", "--port", str(port)]
        self.web = Proc(argv, self.env, self.tmp / "web.log").start()
        wait_http(self.url + "/healthz", proc=self.web)
        for _ in range(workers):
            self.start_worker()
        return self

    def start_worker(self) -> Proc:
        """One more ``secreview worker`` process (prefork, as shipped)."""
        self._worker_count += 1
        argv = [
            *SECREVIEW,
            "worker",
            "--concurrency",
            str(self.concurrency),
            "--loglevel",
            "INFO",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
        ]
        log = self.tmp / f"worker-{self._worker_count}.log"
        proc = Proc(argv, self.env, log).start()
        self.workers.append(proc)
        return proc

    def kill_workers(self) -> None:
        """kill -9 every worker process group (no cleanup, no acks: a crash)."""
        for proc in self.workers:
            proc.kill()
        self.workers = []

    def restart_workers(self, count: int = 1) -> None:
        """Crash every worker, then start ``count`` fresh ones (as an orchestrator would)."""
        self.kill_workers()
        for _ in range(count):
            self.start_worker()

    def close(self) -> None:
        """Release held requests and stop every process and server this stack started."""
        self.github.inject.release_all()
        self.model.state.inject.release_all()
        for proc in [*self.workers, *([self.web] if self.web else [])]:
            proc.stop()
        for server in self._servers:
            server.stop()

    # --- driving -----------------------------------------------------------------------------

    def open_pull(
        self,
        repo: str = REPO,
        pr: int = PR,
        head: str = HEAD,
        diff: str = PR_DIFF,
        inst: int = INSTALLATION,
    ) -> None:
        """Install the App on ``repo`` (base config ``fail_on: high``) and open ``pr``."""
        if repo not in self.github.repos:
            self.github.add_repo(repo, inst)
            self.github.set_file(repo, "main", ".github/secreview.yml", b"fail_on: high\n")
        self.github.add_pull(repo, Pull(pr, head, diff, title="Downloads", body="Adds downloads."))

    def deliver(
        self, event: str, payload: Mapping[str, Any], delivery: str | None = None
    ) -> httpx.Response:
        """Sign and POST one webhook as GitHub does."""
        return post_webhook(self.url, event, payload, SECRET, delivery)

    def last_activity(self) -> float:
        """Wall time of the latest request either fake received (0 if none)."""
        stamps = [r.at for r in self.github.requests[-1:]] + [
            r.at for r in self.model.state.requests[-1:]
        ]
        return max(stamps, default=0.0)

    def checks(self, head: str, repo: str = REPO) -> list[dict[str, Any]]:
        """The App's check runs on ``head``."""
        return [
            c
            for c in self.github.check_runs
            if c["head_sha"] == head and c["_repo"] == repo and c["name"] == CHECK_NAME
        ]

    def wait_published(
        self,
        head: str = HEAD,
        *,
        repo: str = REPO,
        since: float | None = None,
        timeout: float = 90,
        idle: float = 45,
    ) -> float:
        """Seconds from ``since`` until the check on ``head`` completed.

        Fails early when neither fake has seen a request for ``idle`` seconds: with the trial
        settings (10 s task limit, 1 s sweeps, a 30 s run lease) that is a review nobody drives.
        """
        start = time.time() if since is None else since
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(c["status"] == "completed" for c in self.checks(head, repo)):
                return time.time() - start
            quiet = time.time() - max(self.last_activity(), start)
            if quiet > idle:
                raise AssertionError(
                    f"stuck: no request to GitHub or the model for {quiet:.0f} s\n{self.logs()}"
                )
            time.sleep(0.1)
        raise AssertionError(
            f"the check on {head[:7]} did not complete in {timeout:.0f} s\n{self.logs()}"
        )

    def logs(self, tail: int = 3000) -> str:
        """The end of every process log (for failure messages)."""
        procs = [*([self.web] if self.web else []), *self.workers]
        return "\n".join(f"--- {p.log_path.name}\n{p.log()[-tail:]}" for p in procs)

    def redis(self) -> redis.Redis:
        """A client on the stack's Redis."""
        return redis.Redis.from_url(self.redis_url, socket_timeout=5)


# --- the invariant -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Expect:
    """What a trial's final head must show: which planted findings, and how the model fared."""

    head: str = HEAD
    repo: str = REPO
    pr: int = PR
    model_answered: bool = True  # False: the summary says so, analyzer findings still gate
    reviews_refused: bool = False  # GitHub answers 422 to every review: findings in the summary
    planted: tuple[Planted, ...] = PLANTED


def _finding_comments(github: FakeGitHub, repo: str, pr: int) -> list[dict[str, Any]]:
    return [
        c
        for c in github.review_comments
        if c["_repo"] == repo
        and c["_n"] == pr
        and c["in_reply_to_id"] is None
        and "secreview:finding" in c["body"]
    ]


def github_problems(stack: AppStack, expect: Expect) -> list[str]:
    """Everything wrong with what the App left on GitHub for ``expect``'s pull request."""
    gh = stack.github
    out: list[str] = []
    reviews = [
        r
        for r in gh.reviews
        if r["_repo"] == expect.repo and r["_n"] == expect.pr and r["commit_id"] == expect.head
    ]
    wanted_reviews = 0 if expect.reviews_refused else 1
    if len(reviews) != wanted_reviews:
        out.append(f"{len(reviews)} reviews on the head, expected {wanted_reviews}")
    summaries = [
        c
        for c in gh.issue_comments
        if c["_repo"] == expect.repo and c["_n"] == expect.pr and "secreview:summary" in c["body"]
    ]
    if len(summaries) != 1:
        out.append(f"{len(summaries)} summary comments, expected 1")
    summary = summaries[-1]["body"] if summaries else ""
    if summaries and f"head={expect.head}" not in summary:
        out.append("the summary is not about the final head")
    checks = stack.checks(expect.head, expect.repo)
    if len(checks) != 1 or checks[0]["status"] != "completed":
        states = [c["status"] for c in checks]
        out.append(f"check runs on the head: {states}, expected exactly one, completed")
    open_checks = [
        c for c in gh.check_runs if c["_repo"] == expect.repo and c["status"] != "completed"
    ]
    if open_checks:
        heads = sorted({c["head_sha"][:7] for c in open_checks})
        out.append(f"{len(open_checks)} check runs left {open_checks[0]['status']} on {heads}")
    comments = _finding_comments(gh, expect.repo, expect.pr)
    fps = [
        m.group(1) for c in comments if (m := re.search(r"secreview:finding fp=(\w+)", c["body"]))
    ]
    dupes = sorted({fp for fp in fps if fps.count(fp) > 1})
    if dupes:
        out.append(f"duplicate finding comments: {dupes}")
    where = {(c["path"], c["line"]) for c in comments}
    for planted in expect.planted:
        found = planted.finder == "analyzer" or expect.model_answered
        if expect.reviews_refused:
            posted = f"{planted.path}:{planted.line}" in summary
            place = "in the summary"
        else:
            posted = (planted.path, planted.line) in where
            place = "inline"
        if found and not posted:
            out.append(
                f"planted {planted.finder} finding {planted.path}:{planted.line} not posted {place}"
            )
        if not found and posted:
            out.append(f"{planted.path}:{planted.line} posted although the model never answered")
    if not expect.model_answered and summaries and not INCOMPLETE.search(summary):
        out.append("the model never answered but the summary does not say so")
    if expect.model_answered and (said := INCOMPLETE.search(summary)):
        out.append(f"the model answered but the summary says {said.group(0)!r}")
    gating = any(p.finder == "analyzer" for p in expect.planted)
    if (
        checks
        and checks[0]["status"] == "completed"
        and gating
        and checks[0]["conclusion"] != "failure"
    ):
        out.append(
            f"check concluded {checks[0]['conclusion']!r} although a committed AWS key was found"
        )
    if "AKIAQ4NSBXY2ZLT7KW3P" in json.dumps([gh.issue_comments, gh.review_comments, gh.check_runs]):
        out.append("the planted AWS key was echoed on GitHub")
    return out


def broker_problems(client: redis.Redis) -> list[str]:
    """Messages still queued or unacked, and lock or lease keys left behind."""
    out: list[str] = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        if kind == b"list" and client.llen(key):
            out.append(f"{client.llen(key)} messages queued on {key.decode()}")
        elif key in (b"unacked", b"unacked_index") and (
            client.hlen(key) if kind == b"hash" else client.zcard(key)
        ):
            out.append(f"messages unacked ({key.decode()})")
        elif key not in KOMBU_OWN and LOCK_KEYS.search(key):
            out.append(f"lock/lease key left: {key.decode()}")
    return out


def process_problems(stack: AppStack) -> list[str]:
    """Dead processes and an unready receiver."""
    out = [
        f"{p.log_path.name} exited ({p.proc.returncode if p.proc else '?'})"
        for p in stack.workers
        if not p.alive()
    ]
    if not stack.workers:
        out.append("no worker running")
    if stack.web is None or not stack.web.alive():
        out.append("the receiver exited")
    ready: int | str
    try:
        ready = httpx.get(stack.url + "/readyz", timeout=5).status_code
    except httpx.HTTPError as exc:
        ready = f"unreachable ({exc})"
    if ready != 200:
        out.append(f"/readyz answered {ready}")
    return out


def assert_invariant(
    stack: AppStack, expects: Iterable[Expect] | None = None, settle: float = 20.0
) -> None:
    """The end state of every trial: each final head published exactly once as expected, the
    broker drained (nothing queued or unacked, no lock or lease key), workers and receiver alive
    and ready. Waits up to ``settle`` seconds for the broker to drain (a sweep may be in flight).
    """
    problems: list[str] = []
    for expect in expects or [Expect()]:
        problems += github_problems(stack, expect)
    client = stack.redis()
    with contextlib.suppress(AssertionError):  # reported below, with the details
        wait_for(lambda: not broker_problems(client), settle, "the broker to drain", every=0.25)
    problems += broker_problems(client)
    client.close()
    problems += process_problems(stack)
    if problems:
        raise AssertionError("invariant broken:\n- " + "\n- ".join(problems) + "\n" + stack.logs())
