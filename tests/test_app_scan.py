"""A full scan through the App path: fake GitHub tarball → Workers AI emulator → check run,
SARIF upload, reply and baseline in the real Redis."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from bot.config import Settings
from bot.github.client import GitHubApp
from bot.jobs import ScanJob
from bot.model.client import create_backend
from tests.emulators.server import LiveServer
from tests.emulators.workers_ai import EmulatorApp, create_emulator
from tests.fakes.github import FakeGitHub, Pull
from tests.test_render import assert_valid_sarif
from workers.pipeline import Services
from workers.scan import baseline_key, baseline_notes, poll_scan, scan_repository

ROOT = Path(__file__).resolve().parent.parent
VULN = ROOT / "tests" / "data" / "vulnproject"
REPO = "octo/vuln"


@pytest.fixture
def services(
    redis_url: str, app_key: tuple[str, str]
) -> Iterator[tuple[FakeGitHub, Services, EmulatorApp]]:
    fake = FakeGitHub("55", app_key[1])
    fake.add_repo(REPO, 9)
    for path in VULN.rglob("*"):
        if path.is_file():
            fake.set_file(REPO, "main", path.relative_to(VULN).as_posix(), path.read_bytes())
    fake.add_pull(REPO, Pull(4, "c" * 40, "", title="anything"))
    model = create_emulator(account_id="acct", api_token="tok")
    model.state.polls_until_done = 0
    with LiveServer(fake.app) as gh, LiveServer(model.app) as ai:
        settings = Settings.from_env(
            {
                "GITHUB_APP_ID": "55",
                "GITHUB_PRIVATE_KEY": app_key[0],
                "GITHUB_API_URL": gh.url,
                "CLOUDFLARE_ACCOUNT_ID": "acct",
                "CLOUDFLARE_API_TOKEN": "tok",
                "WORKERS_AI_BASE_URL": ai.url + "/client/v4",
                "REDIS_URL": redis_url,
                "SECREVIEW_UNIT_TOKENS": "800",
            }
        )
        svc = Services(
            settings,
            redis.Redis.from_url(redis_url),
            GitHubApp(settings).installation,
            lambda: create_backend(settings),
        )
        yield fake, svc, model


def test_scan_requested_in_a_pull_request(
    services: tuple[FakeGitHub, Services, EmulatorApp],
) -> None:
    fake, svc, _ = services
    job = ScanJob(9, REPO, "", "d-1", "alice", pr=4)
    outcome, key = scan_repository(job, svc)
    assert outcome.startswith("submitted") and key is not None
    # Starting again (a redelivered task) submits nothing new.
    assert scan_repository(job, svc) == ("resumed", key)
    polls = 0
    again = True
    while again:
        outcome, again = poll_scan(key, svc)
        polls += 1
        assert polls < 10
    assert outcome.startswith("published")
    assert poll_scan(key, svc) == ("nothing to poll", False)
    (check,) = [c for c in fake.check_runs if c["name"] == "secreview scan"]
    assert check["status"] == "completed" and check["conclusion"] == "failure"
    assert {a["path"] for a in check["annotations"]} == {"app/views.py"}
    (upload,) = fake.sarifs
    assert upload["ref"] == "refs/heads/main" and len(upload["commit_sha"]) == 40
    sarif = json.loads(gzip.decompress(base64.b64decode(upload["sarif"])))
    assert_valid_sarif(sarif)
    assert any(
        r["ruleId"].startswith("CWE-89") or "89" in r["ruleId"] for r in sarif["runs"][0]["results"]
    )
    (reply,) = [c for c in fake.issue_comments if "Full scan" in c["body"]]
    assert "@alice" in reply["body"]
    baseline = {b.decode() for b in svc.redis.smembers(baseline_key(REPO))}
    findings = {r["partialFingerprints"].popitem()[1] for r in sarif["runs"][0]["results"]}
    assert baseline and baseline == findings


def test_baseline_notes_name_findings_that_predate_the_pr(
    services: tuple[FakeGitHub, Services, EmulatorApp],
) -> None:
    _, svc, _ = services
    from bot.findings import Finding

    old = Finding(
        path="app/views.py",
        line=19,
        severity="high",
        cwe="CWE-89",
        title="SQL injection",
        description="d",
        exploit_scenario="e",
        recommendation="r",
        confidence=0.9,
        evidence="x",
        fingerprint="aa" * 8,
    )
    new = Finding(
        path="app/new.py",
        line=3,
        severity="high",
        cwe="CWE-78",
        title="Command injection",
        description="d",
        exploit_scenario="e",
        recommendation="r",
        confidence=0.9,
        evidence="y",
        fingerprint="bb" * 8,
    )
    svc.redis.sadd(baseline_key(REPO), old.fingerprint)
    notes = baseline_notes(svc.redis, REPO, [old, new])
    assert len(notes) == 1 and "already existed" in notes[0] and old.fingerprint in notes[0]


def test_capacity_while_submitting_a_scan_is_retried_by_the_task(
    services: tuple[FakeGitHub, Services, EmulatorApp],
) -> None:
    from bot.errors import ModelCapacity

    fake, svc, model = services
    svc.backend = lambda: create_backend(svc.settings, max_retries=0)
    job = ScanJob(9, REPO, "", "d-2", "alice", pr=None, upload_sarif=False)
    model.state.fail_next("capacity", times=1, on=("submit",))
    with pytest.raises(ModelCapacity):
        scan_repository(job, svc)
    outcome, key = scan_repository(job, svc)  # the task's retry
    assert outcome.startswith("submitted") and key is not None
    again = True
    while again:
        outcome, again = poll_scan(key, svc)
    assert outcome.startswith("published")
    assert [c["name"] for c in fake.check_runs] == ["secreview scan"]  # reused, not doubled
