"""bot.github.client against the fake GitHub: auth, diffs, config, publishing, limits."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.config import Settings
from bot.errors import ConfigError, GitHubError, RateLimited
from bot.findings import Finding
from bot.github.client import GitHubApp, Installation
from bot.repo_config import RepoConfig
from bot.review import outcome as outcomes
from bot.review.plan import plan_diff
from bot.review.prompts import RepoContext
from tests.emulators.server import LiveServer
from tests.fakes.github import FakeGitHub, Pull

ROOT = Path(__file__).resolve().parent.parent
DIFF = (ROOT / "examples" / "vulnerable.diff").read_text()
REPO = "octo/shop"
HEAD = "a" * 40


@pytest.fixture
def gh(app_key: tuple[str, str]) -> Iterator[tuple[FakeGitHub, Installation]]:
    fake = FakeGitHub("77", app_key[1], base_path="/api/v3")  # GitHub Enterprise style
    fake.add_repo(REPO, 5)
    fake.add_pull(REPO, Pull(3, HEAD, DIFF, title="t", body="b"))
    with LiveServer(fake.app) as server:
        settings = Settings.from_env(
            {
                "GITHUB_APP_ID": "77",
                "GITHUB_PRIVATE_KEY": app_key[0],
                "GITHUB_API_URL": server.url + "/api/v3",
            }
        )
        yield fake, GitHubApp(settings).installation(5)


def test_token_is_minted_once_and_reused(gh: tuple[FakeGitHub, Installation]) -> None:
    fake, inst = gh
    pr = inst.pull_request(REPO, 3)
    inst.pull_request(REPO, 3)
    assert pr.head_sha == HEAD and pr.base_ref == "main" and not pr.is_fork
    assert len(fake.calls("POST", r"/access_tokens$")) == 1


def test_diff_falls_back_to_paged_files_past_the_limits(
    gh: tuple[FakeGitHub, Installation],
) -> None:
    fake, inst = gh
    many = "".join(
        f"diff --git a/f{i}.py b/f{i}.py\n--- a/f{i}.py\n+++ b/f{i}.py\n"
        f"@@ -1 +1,2 @@\n x = 1\n+y = {i}\n"
        for i in range(320)
    )
    fake.push(REPO, 3, "b" * 40, many)
    change = inst.pull_diff(REPO, 3)
    assert change.text is None and len(change.files) == 320
    assert change.files[0].hunks and fake.calls("GET", r"/files$")
    assert any(r.status == 406 for r in fake.requests)


def test_config_comes_from_the_base_branch_only(gh: tuple[FakeGitHub, Installation]) -> None:
    fake, inst = gh
    fake.set_file(REPO, "main", ".github/secreview.yml", b"fail_on: critical\n")
    fake.set_file(REPO, "feature", ".github/secreview.yml", b"fail_on: none\n")
    assert inst.repo_config(REPO, "main").fail_on == "critical"
    fake.set_file(REPO, "main", ".github/secreview.yml", b"bogus_key: 1\n")
    with pytest.raises(ConfigError):
        inst.repo_config(REPO, "main")
    fake.repos[REPO].files.clear()
    assert inst.repo_config(REPO, "main") == RepoConfig()


def test_publishing_twice_posts_once(gh: tuple[FakeGitHub, Installation]) -> None:
    fake, inst = gh
    plan = plan_diff(DIFF, repo=RepoContext(repo=REPO))
    result = outcomes.assemble(
        plan, [], model=None, analyzers_only=True
    )  # the secrets finding, on the diff
    assert result.findings
    pr = inst.pull_request(REPO, 3)
    check = inst.start_check(REPO, HEAD)
    assert inst.start_check(REPO, HEAD) == check  # reused, not a second run
    for _ in range(2):
        inst.publish_review(
            REPO, pr.number, HEAD, result, RepoConfig(), check_run_id=check, files=plan.files
        )
    assert len(fake.reviews) == 1
    assert len([c for c in fake.issue_comments if "secreview:summary" in c["body"]]) == 1
    assert len(fake.check_runs) == 1 and fake.check_runs[0]["conclusion"] == "failure"
    assert len(fake.review_comments) == len(result.findings)


def test_annotations_go_in_batches_of_fifty(gh: tuple[FakeGitHub, Installation]) -> None:
    fake, inst = gh
    check = inst.start_check(REPO, HEAD)
    notes = [
        {
            "path": "a.py",
            "start_line": i,
            "end_line": i,
            "annotation_level": "warning",
            "message": "m",
            "title": "t",
        }
        for i in range(1, 121)
    ]
    inst.finish_check(REPO, check, "success", "t", "s", notes)
    run = fake.check_runs[0]
    assert len(run["annotations"]) == 120 and run["updates"] == 3 and run["status"] == "completed"


def test_a_rejected_review_keeps_the_other_comments(gh: tuple[FakeGitHub, Installation]) -> None:
    fake, inst = gh
    plan = plan_diff(DIFF, repo=RepoContext(repo=REPO))
    result = outcomes.assemble(plan, [], model=None, analyzers_only=True)
    # GitHub moved on: the PR's diff no longer holds one of the lines, so the review is refused.
    fake.repos[REPO].pulls[3].diff = DIFF.split("diff --git a/shop/db.py")[0]
    bad = Finding(
        path="shop/db.py",
        line=16,
        severity="high",
        cwe="CWE-89",
        title="SQLi",
        description="d",
        exploit_scenario="e",
        recommendation="r",
        confidence=0.9,
        evidence="query = f",
        fingerprint="ab" * 8,
    )
    import dataclasses

    result = dataclasses.replace(result, findings=(*result.findings, bad))
    outcome = inst.publish_review(
        REPO,
        3,
        HEAD,
        result,
        RepoConfig(),
        check_run_id=None,
        files=plan.files,
    )
    assert outcome.review_posted
    assert any(r.status == 422 for r in fake.requests)
    placed = {(c["path"], c["line"]) for c in fake.review_comments}
    assert ("shop/app.py", 41) in placed and ("shop/db.py", 16) not in placed


def test_rate_limits_become_retry_after(gh: tuple[FakeGitHub, Installation]) -> None:
    fake, inst = gh
    inst.pull_request(REPO, 3)  # token minted
    fake.fail_next(r"/pulls/3$", 429, {"retry-after": "42"})
    with pytest.raises(RateLimited) as err:
        inst.pull_request(REPO, 3)
    assert err.value.retry_after == 42
    import time

    fake.fail_next(
        r"/pulls/3$",
        403,
        {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(int(time.time()) + 120)},
    )
    with pytest.raises(RateLimited) as err:
        inst.pull_request(REPO, 3)
    assert 100 <= err.value.retry_after <= 121


def test_errors_are_typed(gh: tuple[FakeGitHub, Installation]) -> None:
    _, inst = gh
    with pytest.raises(GitHubError) as err:
        inst.pull_request(REPO, 404)
    assert err.value.reason == "github_404"


def test_sarif_upload_is_gzipped_base64(gh: tuple[FakeGitHub, Installation]) -> None:
    fake, inst = gh
    sarif = {"version": "2.1.0", "runs": []}
    inst.upload_sarif(REPO, HEAD, "refs/heads/main", sarif)
    (upload,) = fake.sarifs
    assert json.loads(gzip.decompress(base64.b64decode(upload["sarif"]))) == sarif
    assert upload["commit_sha"] == HEAD and upload["ref"] == "refs/heads/main"


def test_tarball_and_refs(gh: tuple[FakeGitHub, Installation]) -> None:
    fake, inst = gh
    fake.set_file(REPO, "main", "app.py", b"print('hi')\n")
    import io
    import tarfile

    data = io.BytesIO()
    assert inst.download_tarball(REPO, "main", data) == len(data.getvalue()) > 0
    with tarfile.open(fileobj=io.BytesIO(data.getvalue())) as tar:
        assert [m.name.split("/", 1)[1] for m in tar.getmembers()] == ["app.py"]
    with pytest.raises(GitHubError, match="larger than") as info:
        inst.download_tarball(REPO, "main", io.BytesIO(), max_bytes=10)
    assert info.value.reason == "tarball_too_large"
    assert len(inst.resolve_ref(REPO, "main")) == 40
