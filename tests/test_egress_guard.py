"""The last guard before egress: model requests and GitHub bodies that hold a secret never leave.

Each test makes redaction miss upstream on purpose (a request built from raw text, or the run's
redaction switched off) and shows the guard catching it at the client, before the transport
sees a byte.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
from collections.abc import Iterator

import httpx
import pytest

from bot.config import Settings
from bot.errors import EgressBlocked, PublishBlocked
from bot.github.client import GitHubApp, Installation
from bot.model.client import ModelRequest, OpenAICompatibleClient, WorkersAIClient
from bot.redact import guard
from bot.redact.run import RunRedaction, Values
from bot.review.plan import plan_diff
from bot.review.prompts import PRContext, RepoContext
from tests import secret_values as sv
from tests.emulators.server import LiveServer
from tests.fakes.github import FakeGitHub, Pull

TOKEN = sv.checksummed(random.Random(41), "gh" + "p_")
PASSWORD = "Xk9pQ2vLm7" + "Wq"  # found only by name (password = "..."): not a provider format


class Recorder:
    """A transport that records what would have been sent and answers like Workers AI."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.bodies.append(request.content)
        body = json.loads(request.content)
        if "requests" in body:
            result = {"status": "queued", "request_id": "r1"}
        else:
            message = {"role": "assistant", "content": '{"findings": []}'}
            result = {"choices": [{"message": message}], "usage": {}}
        return httpx.Response(200, json={"result": result, "success": True, "errors": []})


def _request(ref: str, text: str) -> ModelRequest:
    return ModelRequest(
        ref, ({"role": "system", "content": "p"}, {"role": "user", "content": text})
    )


def _client(recorder: Recorder) -> WorkersAIClient:
    return WorkersAIClient(
        "acct", "tok", "@cf/m", "http://x", transport=httpx.MockTransport(recorder)
    )


def test_a_batch_with_one_leaking_request_sends_nothing_and_names_it() -> None:
    recorder = Recorder()
    requests = [_request("unit-1", "x = 1"), _request("unit-2", f"y = '{TOKEN}'"),
                _request("unit-3", "z = 3")]  # fmt: skip
    with pytest.raises(EgressBlocked) as caught:
        _client(recorder).submit_batch(requests, affinity="a")
    assert caught.value.references == ("unit-2",)
    assert caught.value.kinds == ("github-token",)
    assert caught.value.reason == "egress_blocked" and not caught.value.retryable
    assert recorder.bodies == []  # checked request by request before anything was sent
    assert TOKEN not in str(caught.value)


def test_a_clean_batch_goes_through() -> None:
    recorder = Recorder()
    assert _client(recorder).submit_batch([_request("u", "x = 1")], affinity="a") == "r1"
    assert len(recorder.bodies) == 1


def test_a_token_at_the_start_of_a_line_is_caught_despite_json_escaping() -> None:
    # In the raw JSON the token follows the "n" of a \n escape, which hides its word boundary.
    recorder = Recorder()
    with pytest.raises(EgressBlocked):
        _client(recorder).run(_request("u", f"first line\n{TOKEN}"), affinity="a")
    assert recorder.bodies == []


def test_the_openai_compatible_client_is_guarded_too() -> None:
    recorder = Recorder()
    client = OpenAICompatibleClient(
        "http://x/v1", "k", "m", transport=httpx.MockTransport(recorder)
    )
    key = "AK" + "IA" + sv.pick(random.Random(2), sv.BASE32, 16)
    with pytest.raises(EgressBlocked) as caught:
        client.run(_request("unit-9", f"key {key}"), affinity="a")
    assert caught.value.references == ("unit-9",) and recorder.bodies == []


def test_run_values_are_blocked_only_while_the_run_guards() -> None:
    recorder = Recorder()
    client = _client(recorder)
    request = _request("u", f"assert p == '{PASSWORD}'")
    secrets = RunRedaction.detect(texts={"ctx": f'password = "{PASSWORD}"'})
    with secrets.guard(), pytest.raises(EgressBlocked):
        client.run(request, affinity="a")
    assert recorder.bodies == []
    client.run(request, affinity="a")  # outside the run the guard knows no values
    assert len(recorder.bodies) == 1


def test_encoded_forms_of_a_run_value_are_blocked() -> None:
    values = Values([("generic-secret", PASSWORD)])
    encoded = base64.b64encode(PASSWORD.encode()).decode()
    with guard.guarding(values):
        assert guard.check(json.dumps({"m": f"blob {encoded}"}).encode()) == "generic-secret"
        assert guard.check(json.dumps({"m": "nothing here"}).encode()) is None


def test_a_detector_miss_upstream_is_caught_at_egress(monkeypatch: pytest.MonkeyPatch) -> None:
    """Redaction switched off entirely: the plan sends raw text, the guard still stops it."""

    def no_redaction(**kw: object) -> RunRedaction:
        run = RunRedaction(Values())
        run.files = list(kw["files"])  # type: ignore[call-overload]
        run.title, run.body = str(kw["title"]), str(kw["body"])
        run.texts = dict(kw["texts"])  # type: ignore[call-overload]
        return run

    monkeypatch.setattr(RunRedaction, "detect", staticmethod(no_redaction))
    diff = (
        "diff --git a/app.py b/app.py\n--- a/app.py\n+++ b/app.py\n@@ -1 +1,2 @@\n x = 1\n"
        f"+GITHUB = '{TOKEN}'\n"
    )
    plan = plan_diff(diff, repo=RepoContext(), pr=PRContext(title="t", body="b"))
    assert TOKEN in json.dumps([list(r.messages) for r in plan.requests])  # the miss is real
    recorder = Recorder()
    with pytest.raises(EgressBlocked) as caught:
        _client(recorder).submit_batch(list(plan.requests), affinity="a")
    assert set(caught.value.references) == {r.external_reference for r in plan.requests}
    assert recorder.bodies == []


# --- GitHub ----------------------------------------------------------------------------------


@pytest.fixture
def gh(app_key: tuple[str, str]) -> Iterator[tuple[FakeGitHub, Installation]]:
    fake = FakeGitHub("77", app_key[1])
    fake.add_repo("octo/shop", 5)
    fake.add_pull("octo/shop", Pull(3, "a" * 40, "", title="t", body="b"))
    with LiveServer(fake.app) as server:
        settings = Settings.from_env(
            {"GITHUB_APP_ID": "77", "GITHUB_PRIVATE_KEY": app_key[0], "GITHUB_API_URL": server.url}
        )
        yield fake, GitHubApp(settings).installation(5)


def test_a_comment_holding_a_secret_is_never_posted(gh: tuple[FakeGitHub, Installation]) -> None:
    fake, inst = gh
    with pytest.raises(PublishBlocked) as caught:
        inst.post_comment("octo/shop", 3, f"found it: {TOKEN}")
    assert caught.value.kind == "github-token" and TOKEN not in str(caught.value)
    assert fake.calls("POST", r"/comments$") == []
    inst.post_comment("octo/shop", 3, "found it: [REDACTED:github-token]")
    assert len(fake.calls("POST", r"/comments$")) == 1


def test_sarif_is_checked_before_compression(gh: tuple[FakeGitHub, Installation]) -> None:
    fake, inst = gh
    sarif = {"version": "2.1.0", "runs": [{"results": [{"message": {"text": TOKEN}}]}]}
    payload = base64.b64encode(gzip.compress(json.dumps(sarif).encode())).decode()
    with pytest.raises(PublishBlocked):
        inst._json("POST", "/repos/octo/shop/code-scanning/sarifs", body={"sarif": payload})
    assert fake.calls("POST", r"/code-scanning/sarifs$") == []
