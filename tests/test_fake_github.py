"""The fake GitHub rejects what GitHub rejects, so the adapter's tests mean something."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from tests.emulators.server import LiveServer
from tests.fakes.github import FakeGitHub, Pull

DIFF = (Path(__file__).resolve().parent.parent / "examples" / "vulnerable.diff").read_text()
REPO = "octo/shop"


@pytest.fixture
def api(app_key: tuple[str, str]) -> Iterator[tuple[FakeGitHub, httpx.Client, str]]:
    fake = FakeGitHub("99", app_key[1])
    fake.add_repo(REPO, 1)
    fake.add_pull(REPO, Pull(7, "a" * 40, DIFF))
    with LiveServer(fake.app) as server, httpx.Client(base_url=server.url) as client:
        now = int(time.time())
        token_jwt = jwt.encode(
            {"iat": now - 60, "exp": now + 540, "iss": "99"}, app_key[0], algorithm="RS256"
        )
        answer = client.post(
            "/app/installations/1/access_tokens", headers={"Authorization": f"Bearer {token_jwt}"}
        )
        assert answer.status_code == 201
        yield fake, client, answer.json()["token"]


def review(client: httpx.Client, token: str, comments: list[dict[str, object]]) -> httpx.Response:
    return client.post(
        f"/repos/{REPO}/pulls/7/reviews",
        headers={"Authorization": f"token {token}"},
        json={"commit_id": "a" * 40, "event": "COMMENT", "body": "b", "comments": comments},
    )


def test_app_jwt_is_checked(
    api: tuple[FakeGitHub, httpx.Client, str], app_key: tuple[str, str]
) -> None:
    _, client, _ = api
    now = int(time.time())
    too_long = jwt.encode(
        {"iat": now, "exp": now + 3600, "iss": "99"}, app_key[0], algorithm="RS256"
    )
    assert (
        client.post(
            "/app/installations/1/access_tokens", headers={"Authorization": f"Bearer {too_long}"}
        ).status_code
        == 401
    )
    assert (
        client.post(
            "/app/installations/1/access_tokens", headers={"Authorization": "Bearer not-a-jwt"}
        ).status_code
        == 401
    )


def test_api_calls_need_an_installation_token(api: tuple[FakeGitHub, httpx.Client, str]) -> None:
    _, client, token = api
    assert client.get(f"/repos/{REPO}/pulls/7").status_code == 401
    assert (
        client.get(f"/repos/{REPO}/pulls/7", headers={"Authorization": "token nope"}).status_code
        == 401
    )
    assert (
        client.get(
            f"/repos/{REPO}/pulls/7", headers={"Authorization": f"token {token}"}
        ).status_code
        == 200
    )


def test_review_comments_must_sit_in_one_hunk(api: tuple[FakeGitHub, httpx.Client, str]) -> None:
    fake, client, token = api
    ok = {"path": "shop/db.py", "line": 16, "side": "RIGHT", "body": "x"}
    assert review(client, token, [ok]).status_code == 200
    outside = {**ok, "path": "shop/app.py", "line": 12}  # between two hunks
    across = {**ok, "path": "shop/app.py", "line": 30, "start_line": 3}  # start in hunk 1
    left_missing = {**ok, "side": "LEFT", "line": 200}
    for bad in (outside, across, left_missing, {**ok, "path": "nope.py"}):
        answer = review(client, token, [ok, bad])
        assert answer.status_code == 422, bad  # one bad comment fails the whole review
    assert len(fake.reviews) == 1


def test_at_most_fifty_annotations_per_request(api: tuple[FakeGitHub, httpx.Client, str]) -> None:
    _, client, token = api
    notes = [
        {
            "path": "a.py",
            "start_line": 1,
            "end_line": 1,
            "annotation_level": "warning",
            "message": "m",
        }
    ] * 51
    answer = client.post(
        f"/repos/{REPO}/check-runs",
        headers={"Authorization": f"token {token}"},
        json={
            "name": "secreview",
            "head_sha": "a" * 40,
            "output": {"title": "t", "summary": "s", "annotations": notes},
        },
    )
    assert answer.status_code == 422


def test_big_diffs_are_refused_as_406(api: tuple[FakeGitHub, httpx.Client, str]) -> None:
    fake, client, token = api
    huge = "".join(
        f"diff --git a/f{i} b/f{i}\n--- a/f{i}\n+++ b/f{i}\n@@ -1 +1 @@\n-a\n+b\n"
        for i in range(301)
    )
    fake.push(REPO, 7, "b" * 40, huge)
    answer = client.get(
        f"/repos/{REPO}/pulls/7",
        headers={"Authorization": f"token {token}", "Accept": "application/vnd.github.diff"},
    )
    assert answer.status_code == 406
    files = client.get(
        f"/repos/{REPO}/pulls/7/files",
        params={"per_page": 100, "page": 4},
        headers={"Authorization": f"token {token}"},
    )
    assert files.status_code == 200 and len(files.json()) == 1
