"""The webhook receiver on the real Redis: signatures, limits, routing, dedupe, 503, metrics."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from bot import jobs
from bot.config import Settings
from bot.errors import ConfigError, InvalidSignature
from bot.github.webhooks import signature, verify_signature
from bot.web import create_app

SECRET = "It's a Secret to Everybody"
URL = "/api/github/webhooks"


def test_signature_matches_githubs_documented_vector() -> None:
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert signature(SECRET, b"Hello, World!") == expected
    verify_signature(SECRET, b"Hello, World!", expected)
    with pytest.raises(InvalidSignature):
        verify_signature(SECRET, b"Hello, World?", expected)


def pr_payload(action: str = "opened", number: int = 7, head: str = "a" * 40) -> dict[str, Any]:
    return {
        "action": action,
        "number": number,
        "pull_request": {"number": number, "head": {"sha": head}, "draft": False},
        "repository": {"full_name": "octo/shop"},
        "installation": {"id": 42},
    }


def comment_payload(body: str, association: str = "MEMBER", on_pr: bool = True) -> dict[str, Any]:
    issue: dict[str, Any] = {"number": 7}
    if on_pr:
        issue["pull_request"] = {"url": "https://api.github.com/repos/octo/shop/pulls/7"}
    return {
        "action": "created",
        "issue": issue,
        "comment": {
            "id": 99,
            "body": body,
            "author_association": association,
            "user": {"login": "alice", "type": "User"},
        },
        "repository": {"full_name": "octo/shop"},
        "installation": {"id": 42},
    }


@pytest.fixture
def env(redis_url: str) -> Iterator[tuple[TestClient, redis.Redis]]:
    settings = Settings.from_env(
        {"GITHUB_WEBHOOK_SECRET": SECRET, "REDIS_URL": redis_url, "GITHUB_APP_ID": "1234"}
    )
    client = redis.Redis.from_url(redis_url)
    with TestClient(create_app(settings)) as http:
        yield http, client
    client.close()


def post(
    http: TestClient,
    event: str,
    payload: Any,
    *,
    delivery: str | None = None,
    secret: str = SECRET,
    raw: bytes | None = None,
    **headers: str,
) -> Any:
    body = raw if raw is not None else json.dumps(payload).encode()
    h = {
        "x-github-event": event,
        "x-github-delivery": delivery or str(uuid.uuid4()),
        "x-hub-signature-256": signature(secret, body),
        "content-type": "application/json",
    }
    h.update(headers)
    return http.post(URL, content=body, headers=h)


def queued(client: redis.Redis, queue: str) -> list[dict[str, Any]]:
    out = []
    for raw in client.lrange(queue, 0, -1):
        message = json.loads(raw)
        args, kwargs, _ = json.loads(base64.b64decode(message["body"]))
        out.append({"task": message["headers"]["task"], "kwargs": kwargs, "args": args})
    return out


def test_pull_request_opened_is_queued_as_a_review(env: tuple[TestClient, redis.Redis]) -> None:
    http, client = env
    response = post(http, "pull_request", pr_payload(), delivery="d-1")
    assert response.status_code == 202
    assert response.json() == {"queued": [jobs.TASK_REVIEW], "duplicate": False}
    (message,) = queued(client, jobs.QUEUE_REVIEWS)
    assert message["task"] == jobs.TASK_REVIEW and message["args"] == []
    assert message["kwargs"] == {
        "installation_id": 42,
        "repo": "octo/shop",
        "pr": 7,
        "head_sha": "a" * 40,
        "delivery_id": "d-1",
        "trigger": "opened",
    }


def test_a_redelivery_is_acknowledged_and_not_queued_twice(
    env: tuple[TestClient, redis.Redis],
) -> None:
    http, client = env
    assert post(http, "pull_request", pr_payload(), delivery="same").status_code == 202
    again = post(http, "pull_request", pr_payload(), delivery="same")
    assert again.status_code == 202 and again.json()["duplicate"] is True
    assert len(queued(client, jobs.QUEUE_REVIEWS)) == 1
    assert client.ttl("secreview:delivery:same") > 6 * 24 * 3600


@pytest.mark.parametrize("header", [None, "sha256=" + "0" * 64, "sha1=abc", ""])
def test_bad_or_missing_signature_is_401_and_queues_nothing(
    env: tuple[TestClient, redis.Redis], header: str | None
) -> None:
    http, client = env
    body = json.dumps(pr_payload()).encode()
    headers = {"x-github-event": "pull_request", "x-github-delivery": "d-x"}
    if header is not None:
        headers["x-hub-signature-256"] = header
    response = http.post(URL, content=body, headers=headers)
    assert response.status_code == 401 and response.json()["error"]
    assert client.keys("*") == []


def test_a_body_signed_with_another_secret_is_refused(env: tuple[TestClient, redis.Redis]) -> None:
    http, client = env
    assert post(http, "pull_request", pr_payload(), secret="guess").status_code == 401
    assert client.keys("*") == []


def test_oversized_bodies_are_413(env: tuple[TestClient, redis.Redis]) -> None:
    http, _ = env
    declared = http.post(URL, content=b"{}", headers={"content-length": str(26 * 1024 * 1024)})
    assert declared.status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(27):
            yield b" " * (1024 * 1024)

    streamed = http.post(URL, content=chunks())
    assert streamed.status_code == 413


def test_malformed_deliveries_are_400(env: tuple[TestClient, redis.Redis]) -> None:
    http, client = env
    assert post(http, "pull_request", None, raw=b"{not json").status_code == 400
    assert post(http, "pull_request", None, raw=b"[1, 2]").status_code == 400
    body = json.dumps(pr_payload()).encode()
    no_event = http.post(
        URL,
        content=body,
        headers={"x-hub-signature-256": signature(SECRET, body), "x-github-delivery": "d"},
    )
    assert no_event.status_code == 400 and "X-GitHub-Event" in no_event.json()["error"]
    assert client.keys("*") == []


def test_ping_is_answered(env: tuple[TestClient, redis.Redis]) -> None:
    http, _ = env
    response = post(http, "ping", {"zen": "Design for failure.", "hook_id": 1})
    assert response.status_code == 200 and response.json()["zen"] == "Design for failure."


@pytest.mark.parametrize(
    ("event", "payload"),
    [
        ("pull_request", pr_payload("closed")),
        ("pull_request", pr_payload("labeled")),
        ("push", {"ref": "refs/heads/main"}),
        (
            "installation",
            {"action": "created", "installation": {"id": 1, "account": {"login": "o"}}},
        ),
        ("issue_comment", comment_payload("looks good to me")),
    ],
)
def test_events_without_work_are_204(
    env: tuple[TestClient, redis.Redis], event: str, payload: dict[str, Any]
) -> None:
    http, client = env
    assert post(http, event, payload).status_code == 204
    assert client.keys("secreview.*") == []


def test_review_command_from_a_member(env: tuple[TestClient, redis.Redis]) -> None:
    http, client = env
    assert post(http, "issue_comment", comment_payload("/secreview review")).status_code == 202
    (message,) = queued(client, jobs.QUEUE_REVIEWS)
    assert message["kwargs"]["trigger"] == "command" and message["kwargs"]["head_sha"] == ""


def test_scan_command_on_an_issue(env: tuple[TestClient, redis.Redis]) -> None:
    http, client = env
    payload = comment_payload("please\n/secreview scan", association="OWNER", on_pr=False)
    assert post(http, "issue_comment", payload).status_code == 202
    (message,) = queued(client, jobs.QUEUE_SCANS)
    assert message["kwargs"]["pr"] is None and message["kwargs"]["requested_by"] == "alice"


@pytest.mark.parametrize("association", ["CONTRIBUTOR", "NONE", "FIRST_TIME_CONTRIBUTOR"])
def test_commands_from_users_without_write_access_get_a_refusal(
    env: tuple[TestClient, redis.Redis], association: str
) -> None:
    http, client = env
    assert (
        post(http, "issue_comment", comment_payload("/secreview review", association)).status_code
        == 202
    )
    assert queued(client, jobs.QUEUE_REVIEWS) == []
    (message,) = queued(client, jobs.QUEUE_COMMANDS)
    assert message["kwargs"]["authorized"] is False


def test_check_run_rerequested_reviews_each_pull_request(
    env: tuple[TestClient, redis.Redis],
) -> None:
    http, client = env
    payload = {
        "action": "rerequested",
        "repository": {"full_name": "octo/shop"},
        "installation": {"id": 42},
        "check_run": {
            "head_sha": "b" * 40,
            "app": {"id": 1234},
            "pull_requests": [{"number": 7}, {"number": 8}],
        },
    }
    assert post(http, "check_run", payload).status_code == 202
    assert sorted(m["kwargs"]["pr"] for m in queued(client, jobs.QUEUE_REVIEWS)) == [7, 8]
    other = {**payload, "check_run": {**payload["check_run"], "app": {"id": 999}}}
    assert post(http, "check_run", other).status_code == 204


def test_health_ready_and_metrics(env: tuple[TestClient, redis.Redis]) -> None:
    http, client = env
    post(http, "pull_request", pr_payload())
    post(http, "pull_request", pr_payload(), secret="wrong")
    client.hincrbyfloat("secreview:metrics", 'secreview_reviews_total{outcome="published"}', 2)
    assert http.get("/healthz").status_code == 200
    assert http.get("/readyz").status_code == 200
    text = http.get("/metrics").text
    assert 'secreview_webhooks_total{outcome="queued"} 1' in text
    assert 'secreview_webhooks_total{outcome="bad_signature"} 1' in text
    assert 'secreview_reviews_total{outcome="published"} 2' in text
    assert "secreview_webhook_seconds_count 2" in text


def test_redis_unreachable_is_503_and_not_ready() -> None:
    settings = Settings.from_env(
        {"GITHUB_WEBHOOK_SECRET": SECRET, "REDIS_URL": "redis://127.0.0.1:1/0"}
    )
    with TestClient(create_app(settings)) as http:
        assert post(http, "pull_request", pr_payload()).status_code == 503
        assert http.get("/readyz").status_code == 503
        assert http.get("/healthz").status_code == 200


def test_no_secret_no_receiver() -> None:
    with pytest.raises(ConfigError, match="GITHUB_WEBHOOK_SECRET"):
        create_app(Settings.from_env({}))


@hsettings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    body=st.binary(max_size=2000),
    event=st.text(max_size=30),
    delivery=st.text(max_size=120),
    sign=st.booleans(),
)
def test_fuzzed_deliveries_never_500(
    redis_url: str, body: bytes, event: str, delivery: str, sign: bool
) -> None:
    settings = Settings.from_env({"GITHUB_WEBHOOK_SECRET": SECRET, "REDIS_URL": redis_url})
    client = redis.Redis.from_url(redis_url)
    with TestClient(create_app(settings)) as http:
        headers = {
            "x-github-event": event.encode("ascii", "ignore").decode().strip() or "x",
            "x-github-delivery": delivery.encode("ascii", "ignore").decode().strip() or "d",
        }
        if sign:
            headers["x-hub-signature-256"] = signature(SECRET, body)
        response = http.post(URL, content=body, headers=headers)
        assert response.status_code < 500
        if not sign:
            assert response.status_code == 401
            assert client.keys("secreview.*") == []
    client.close()
