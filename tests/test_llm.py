"""bot.model.client vs the Workers AI emulator served on loopback: shapes, batches, errors, cost."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator

import httpx
import pytest

from bot.config import Settings
from bot.errors import (
    ConfigError,
    ModelCapacity,
    ModelError,
    ModelQuotaExceeded,
    ModelTimeout,
    ModelUnavailable,
    PayloadTooLarge,
)
from bot.model import client as llm
from bot.model.client import (
    MAX_BATCH_BYTES,
    ModelRequest,
    OpenAICompatibleClient,
    Usage,
    WorkersAIClient,
    batch_payload_size,
    cost_usd,
    create_backend,
    price_known,
    request_body,
)
from bot.model.errors import errors_of, map_error
from bot.review import prompts
from tests.emulators.fake_model import scripted
from tests.emulators.server import LiveServer
from tests.emulators.workers_ai import EmulatorApp, create_emulator

TOKEN = "cf-test-token-4f1d9a2b7c"
ACCOUNT = "0123abcd"
MODEL = "@cf/moonshotai/kimi-k2.6"
SECRET_PROMPT = "PROMPT-BODY-must-not-leak"
FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "findings", "schema": {"type": "object"}, "strict": True},
}
POLICY = "You review diffs for security vulnerabilities. Report only real issues. " * 30


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[EmulatorApp, str]]:
    emulator = create_emulator(account_id=ACCOUNT, api_token=TOKEN)
    with LiveServer(emulator.app) as server:
        yield emulator, server.url + "/client/v4"


@pytest.fixture
def emu(live: tuple[EmulatorApp, str]) -> EmulatorApp:
    live[0].reset(script=None)
    return live[0]


@pytest.fixture
def base(live: tuple[EmulatorApp, str]) -> str:
    return live[1]


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def client(emu: EmulatorApp, base: str, sleeps: list[float]) -> Iterator[WorkersAIClient]:
    with WorkersAIClient(
        ACCOUNT, TOKEN, MODEL, base, response_format=FORMAT, sleep=sleeps.append
    ) as c:
        yield c


def request(ref: str = "unit-1", unit: str = "") -> ModelRequest:
    user = f"{SECRET_PROMPT}\n{unit or ref}"
    return ModelRequest(
        ref, ({"role": "system", "content": POLICY}, {"role": "user", "content": user})
    )


def assert_clean(exc: BaseException) -> None:
    """No token and no prompt text in an exception message, ever."""
    assert TOKEN not in str(exc) and SECRET_PROMPT not in str(exc)
    assert POLICY[:40] not in str(exc)


# --- pure helpers ------------------------------------------------------------------------------


def test_request_body_shape() -> None:
    req = ModelRequest("u", ({"role": "user", "content": "hi"},), max_tokens=100, temperature=0.1)
    assert request_body(req, FORMAT) == {
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 100,
        "temperature": 0.1,
        "response_format": FORMAT,
    }


def test_cost_uses_the_cached_rate_for_cached_tokens() -> None:
    usage = Usage(prompt_tokens=1_000_000, cached_tokens=400_000, completion_tokens=100_000)
    assert cost_usd(MODEL, usage) == pytest.approx(0.6 * 0.95 + 0.4 * 0.16 + 0.1 * 4.00)
    assert cost_usd("@cf/moonshotai/kimi-k2.5", usage) == pytest.approx(0.36 + 0.04 + 0.3)
    assert cost_usd("@cf/moonshotai/kimi-k2.7-code", usage) == pytest.approx(
        0.57 + 0.4 * 0.19 + 0.4
    )
    assert cost_usd(MODEL, Usage()) == 0.0


def test_unknown_model_price() -> None:
    assert price_known(MODEL) and not price_known("@cf/acme/unknown")
    assert cost_usd("@cf/acme/unknown", Usage(1000, 0, 1000)) == 0.0


def test_usage_adds_up() -> None:
    assert Usage(1, 2, 3) + Usage(10, 20, 30) == Usage(11, 22, 33)


def test_parse_usage_without_cached_details() -> None:
    assert llm.parse_usage({"prompt_tokens": 7, "completion_tokens": 2}) == Usage(7, 0, 2)
    assert llm.parse_usage(None) == Usage()


def test_map_error_scrubs_the_token() -> None:
    exc = map_error(400, [(None, f"bad header Bearer {TOKEN}")], service="x", secret=TOKEN)
    assert TOKEN not in str(exc) and "[redacted]" in str(exc)


def test_errors_of_reads_both_error_shapes() -> None:
    envelope = {"success": False, "errors": [{"code": 3040, "message": "busy"}]}
    assert errors_of(envelope) == [(3040, "busy")]
    assert errors_of({"error": {"message": "slow down", "code": "3040"}}) == [(3040, "slow down")]
    assert errors_of({"error": "boom"}) == [(None, "boom")]
    assert errors_of("not a mapping") == []


def test_map_error_prefers_known_codes_over_status() -> None:
    exc = map_error(429, [(9999, "other"), (3036, "quota")], service="x")
    assert isinstance(exc, ModelQuotaExceeded) and exc.code == 3036
    assert isinstance(map_error(429, [], service="x"), ModelCapacity)
    assert map_error(502, [], service="x").retryable
    assert not map_error(400, [(5006, "bad input")], service="x").retryable


# --- sync run ----------------------------------------------------------------------------------


def test_run_returns_content_and_usage(emu: EmulatorApp, client: WorkersAIClient) -> None:
    emu.state.script = scripted({"unit-1": '{"findings": []}'})
    result = client.run(request(), affinity="sr-abc")
    assert result.external_reference == "unit-1" and result.error is None
    assert result.content == '{"findings": []}'
    served = emu.state.served[-1]
    assert result.usage == Usage(served.prompt_tokens, 0, served.completion_tokens)
    assert result.usage.prompt_tokens > 300


def test_run_sends_the_real_request_shape(emu: EmulatorApp, client: WorkersAIClient) -> None:
    client.run(request(), affinity="sr-abc")
    rec = emu.state.requests[-1]
    assert rec.path == f"/client/v4/accounts/{ACCOUNT}/ai/run/{MODEL}"  # slashes kept literal
    assert rec.headers["authorization"] == f"Bearer {TOKEN}"
    assert rec.headers["x-session-affinity"] == "sr-abc"
    assert rec.headers["content-type"] == "application/json"
    assert set(rec.body) == {"messages", "max_tokens", "temperature", "response_format"}
    assert rec.body["response_format"] == FORMAT


def test_second_request_with_the_same_prefix_reports_cached_tokens(
    client: WorkersAIClient,
) -> None:
    first = client.run(request("unit-1"), affinity="sr-abc")
    second = client.run(request("unit-2"), affinity="sr-abc")
    assert first.usage.cached_tokens == 0
    assert second.usage.cached_tokens > 0.9 * len(POLICY.split()) * 2  # words + spaces
    assert second.usage.cached_tokens % 16 == 0


def test_run_finds_real_issues_with_the_default_model(client: WorkersAIClient) -> None:
    unit = "### app/db.py (modified)\n@@ -1,1 +1,2 @@\n     1   import os\n     2 + DEBUG = True\n"
    result = client.run(request("u", unit), affinity="k")
    findings = json.loads(result.content or "")["findings"]
    assert [(f["path"], f["line"], f["cwe"]) for f in findings] == [("app/db.py", 2, "CWE-489")]


def test_empty_content_is_an_error_result(emu: EmulatorApp, client: WorkersAIClient) -> None:
    emu.state.script = scripted({"unit-1": ""})
    result = client.run(request(), affinity="k")
    assert result.content is None and (result.error or "").startswith("empty_response")


# --- retries and error mapping -----------------------------------------------------------------


def test_capacity_is_retried_then_succeeds(
    emu: EmulatorApp, client: WorkersAIClient, sleeps: list[float]
) -> None:
    emu.state.fail_next("capacity", times=2)
    assert client.run(request(), affinity="k").content is not None
    assert emu.state.counters["run"] == 3 and len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 1.0 and 1.0 <= sleeps[1] <= 2.0  # exponential, jittered


def test_capacity_exhausted_raises_model_capacity(
    emu: EmulatorApp, client: WorkersAIClient, sleeps: list[float]
) -> None:
    emu.state.fail_next("capacity", times=10)
    with pytest.raises(ModelCapacity) as caught:
        client.run(request(), affinity="k")
    assert caught.value.code == 3040 and caught.value.status == 429
    assert caught.value.retryable and caught.value.reason == "model_capacity"
    assert emu.state.counters["run"] == 5 and len(sleeps) == 4
    assert_clean(caught.value)


def test_daily_quota_is_never_retried(
    emu: EmulatorApp, client: WorkersAIClient, sleeps: list[float]
) -> None:
    emu.state.fail_next("quota", times=3)
    with pytest.raises(ModelQuotaExceeded) as caught:
        client.run(request(), affinity="k")
    assert caught.value.code == 3036 and caught.value.reason == "model_quota"
    assert emu.state.counters["run"] == 1 and sleeps == []
    assert_clean(caught.value)


def test_model_timeout_3007_is_retried_then_raised(
    emu: EmulatorApp, base: str, sleeps: list[float]
) -> None:
    emu.state.fail_next("timeout", times=3)
    c = WorkersAIClient(ACCOUNT, TOKEN, MODEL, base, max_retries=2, sleep=sleeps.append)
    with pytest.raises(ModelTimeout) as caught:
        c.run(request(), affinity="k")
    assert caught.value.code == 3007 and caught.value.status == 408
    assert emu.state.counters["run"] == 3 and len(sleeps) == 2
    assert_clean(caught.value)


def test_transport_read_timeout_becomes_model_timeout(
    emu: EmulatorApp, base: str, sleeps: list[float]
) -> None:
    emu.state.slow_seconds = 0.5
    c = WorkersAIClient(
        ACCOUNT, TOKEN, MODEL, base, timeout=httpx.Timeout(0.1), max_retries=1, sleep=sleeps.append
    )
    with pytest.raises(ModelTimeout) as caught:
        c.run(request(), affinity="k")
    assert len(sleeps) == 1 and caught.value.retryable
    assert_clean(caught.value)


def test_connection_refused_is_retried_then_a_transport_error(sleeps: list[float]) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = WorkersAIClient(ACCOUNT, TOKEN, MODEL, f"http://127.0.0.1:{port}", sleep=sleeps.append)
    with pytest.raises(ModelError) as caught:
        c.run(request(), affinity="k")
    assert caught.value.reason == "model_transport" and len(sleeps) == 4
    assert_clean(caught.value)


def test_non_json_502_is_retried_then_a_clear_error(
    emu: EmulatorApp, client: WorkersAIClient, sleeps: list[float]
) -> None:
    emu.state.fail_next("html_502")
    assert client.run(request(), affinity="k").content is not None
    emu.state.fail_next("html_502", times=5)
    with pytest.raises(ModelError) as caught:
        client.run(request(), affinity="k")
    assert caught.value.status == 502 and "non-JSON" in str(caught.value)
    assert "<html>" not in str(caught.value)
    assert_clean(caught.value)


def test_remote_413_is_payload_too_large(emu: EmulatorApp, client: WorkersAIClient) -> None:
    emu.state.fail_next("too_large")
    with pytest.raises(PayloadTooLarge) as caught:
        client.run(request(), affinity="k")
    assert caught.value.code == 3006 and emu.state.counters["run"] == 1
    huge = request("big", "x" * (MAX_BATCH_BYTES + 10))
    with pytest.raises(PayloadTooLarge) as caught:
        client.run(huge, affinity="k")  # the emulator's own 10 MB check
    assert caught.value.status == 413
    assert_clean(caught.value)


def test_unknown_model_is_model_unavailable(emu: EmulatorApp, base: str) -> None:
    c = WorkersAIClient(ACCOUNT, TOKEN, "@cf/acme/does-not-exist", base)
    with pytest.raises(ModelUnavailable) as caught:
        c.run(request(), affinity="k")
    assert caught.value.code == 5007 and caught.value.reason == "model_unavailable"
    assert emu.state.counters["run"] == 1


def test_plan_required_is_model_unavailable(emu: EmulatorApp, client: WorkersAIClient) -> None:
    emu.state.fail_next("plan_required")
    with pytest.raises(ModelUnavailable) as caught:
        client.run(request(), affinity="k")
    assert caught.value.reason == "model_plan_required" and caught.value.status == 403


@pytest.mark.parametrize(("token", "account"), [("wrong-token", ACCOUNT), (TOKEN, "other")])
def test_bad_credentials_are_model_auth(
    emu: EmulatorApp, base: str, sleeps: list[float], token: str, account: str
) -> None:
    c = WorkersAIClient(account, token, MODEL, base, sleep=sleeps.append)
    with pytest.raises(ModelError) as caught:
        c.run(request(), affinity="k")
    assert caught.value.reason == "model_auth" and caught.value.status == 401
    assert not caught.value.retryable and sleeps == []
    assert token not in str(caught.value)
    assert_clean(caught.value)


def test_nothing_secret_is_logged(
    emu: EmulatorApp, client: WorkersAIClient, caplog: pytest.LogCaptureFixture
) -> None:
    emu.state.fail_next("capacity")
    with caplog.at_level(logging.DEBUG, logger="bot.model.client"):
        client.run(request(), affinity="k")
        client.poll_batch(client.submit_batch([request()], affinity="k"), ["unit-1"], affinity="k")
    assert caplog.records  # the retry was logged...
    assert TOKEN not in caplog.text and SECRET_PROMPT not in caplog.text  # ...without secrets


# --- async batch -------------------------------------------------------------------------------


def poll_until_done(client: WorkersAIClient, request_id: str, refs: list[str]) -> llm.BatchStatus:
    for _ in range(10):
        status = client.poll_batch(request_id, refs, affinity="k")
        if status.done:
            return status
    raise AssertionError("batch never finished")


def test_batch_results_are_matched_by_reference(emu: EmulatorApp, client: WorkersAIClient) -> None:
    emu.state.script = scripted(lambda m, req: f"content of {req['external_reference']}")
    emu.state.polls_until_done = 2
    refs = [f"unit-{i}" for i in range(8)]
    request_id = client.submit_batch([request(r) for r in refs], affinity="sr-batch")
    first = client.poll_batch(request_id, refs, affinity="sr-batch")
    assert (first.status, first.done, first.results) == ("queued", False, ())
    assert client.poll_batch(request_id, refs, affinity="sr-batch").status == "running"
    done = client.poll_batch(request_id, refs, affinity="sr-batch")
    assert done.done and done.request_id == request_id
    assert [r.external_reference for r in done.results] == refs
    assert [r.content for r in done.results] == [f"content of {r}" for r in refs]
    assert done.usage == sum((r.usage for r in done.results), Usage())
    assert done.usage.cached_tokens > 0  # the batch shares one prefix on one replica


def test_batch_wire_format(emu: EmulatorApp, client: WorkersAIClient) -> None:
    reqs = [request("a"), request("b")]
    request_id = client.submit_batch(reqs, affinity="sr-batch")
    client.poll_batch(request_id, ["a", "b"], affinity="sr-batch")
    submit, poll = emu.state.requests[-2:]
    assert (submit.kind, poll.kind) == ("submit", "poll")
    assert [item["external_reference"] for item in submit.body["requests"]] == ["a", "b"]
    assert submit.body["requests"][0]["response_format"] == FORMAT
    assert submit.size == batch_payload_size(reqs, FORMAT)  # the guard measures what is sent
    assert poll.body == {"request_id": request_id}
    assert submit.headers["x-session-affinity"] == "sr-batch"


def test_failed_missing_and_unreferenced_responses(
    emu: EmulatorApp, client: WorkersAIClient
) -> None:
    emu.state.polls_until_done = 0
    emu.state.script = scripted(lambda m, req: f"ok {req['external_reference']}")
    emu.state.override("fail", error=(3040, "Capacity temporarily exceeded"))
    emu.state.override("gone", missing=True)
    emu.state.override("anon", null_reference=True)
    emu.state.override("junk", content="{not json")
    refs = ["ok", "fail", "gone", "anon", "junk"]
    done = poll_until_done(
        client, client.submit_batch([request(r) for r in refs], affinity="k"), refs
    )
    by_ref = {r.external_reference: r for r in done.results}
    assert [r.external_reference for r in done.results] == refs  # none dropped
    assert by_ref["ok"].content == "ok ok"
    assert by_ref["fail"].content is None
    assert (by_ref["fail"].error or "").startswith("model_capacity:")
    assert by_ref["gone"].content is None and by_ref["gone"].error == "missing_response"
    assert by_ref["anon"].content == "ok anon"  # matched by id when the reference is null
    assert by_ref["junk"].content == "{not json" and by_ref["junk"].error is None


def test_batch_poll_can_stay_running(emu: EmulatorApp, client: WorkersAIClient) -> None:
    emu.state.never_finish = True
    request_id = client.submit_batch([request()], affinity="k")
    assert {client.poll_batch(request_id, ["unit-1"], affinity="k").status for _ in range(3)} == {
        "running"
    }


def test_batch_submit_retries_capacity(
    emu: EmulatorApp, client: WorkersAIClient, sleeps: list[float]
) -> None:
    emu.state.fail_next("capacity", on=("submit",))
    assert client.submit_batch([request()], affinity="k")
    assert emu.state.counters["submit"] == 2 and len(sleeps) == 1


def test_batch_submit_quota_is_not_retried(emu: EmulatorApp, client: WorkersAIClient) -> None:
    emu.state.fail_next("quota", on=("submit",))
    with pytest.raises(ModelQuotaExceeded):
        client.submit_batch([request()], affinity="k")
    assert emu.state.counters["submit"] == 1


def test_oversized_batch_is_refused_before_sending(
    emu: EmulatorApp, client: WorkersAIClient
) -> None:
    reqs = [request(f"u{i}", "y" * 3_000_000) for i in range(4)]
    assert batch_payload_size(reqs, FORMAT) > MAX_BATCH_BYTES
    assert batch_payload_size(reqs[:3], FORMAT) < MAX_BATCH_BYTES
    with pytest.raises(PayloadTooLarge) as caught:
        client.submit_batch(reqs, affinity="k")
    assert emu.state.counters["submit"] == 0
    assert_clean(caught.value)
    assert client.submit_batch(reqs[:3], affinity="k")  # split: accepted


def test_unknown_batch_id_is_an_error(client: WorkersAIClient) -> None:
    with pytest.raises(ModelError) as caught:
        client.poll_batch("no-such-id", ["a"], affinity="k")
    assert caught.value.status == 404


# --- OpenAI-compatible backend -----------------------------------------------------------------


@pytest.fixture
def openai_client(emu: EmulatorApp, base: str, sleeps: list[float]) -> OpenAICompatibleClient:
    return OpenAICompatibleClient(
        f"{base}/accounts/{ACCOUNT}/ai/v1",
        TOKEN,
        MODEL,
        response_format=FORMAT,
        sleep=sleeps.append,
    )


def test_openai_compatible_run(emu: EmulatorApp, openai_client: OpenAICompatibleClient) -> None:
    emu.state.script = scripted({"unit-": '{"findings": []}'})
    first = openai_client.run(request("unit-1"), affinity="sr-o")
    second = openai_client.run(request("unit-2"), affinity="sr-o")
    assert first.content == second.content == '{"findings": []}'
    assert second.usage.cached_tokens > 0 and second.usage.prompt_tokens > 300
    rec = emu.state.requests[-1]
    assert rec.kind == "openai" and rec.body["model"] == MODEL
    assert rec.body["response_format"] == FORMAT
    assert rec.headers["authorization"] == f"Bearer {TOKEN}"
    assert rec.headers["x-session-affinity"] == "sr-o"


def test_openai_compatible_has_no_batch(openai_client: OpenAICompatibleClient) -> None:
    assert openai_client.supports_batch is False
    with pytest.raises(ModelError, match="batch not supported"):
        openai_client.submit_batch([request()], affinity="k")
    with pytest.raises(ModelError, match="batch not supported"):
        openai_client.poll_batch("id", ["a"], affinity="k")


def test_openai_compatible_errors(
    emu: EmulatorApp, openai_client: OpenAICompatibleClient, base: str, sleeps: list[float]
) -> None:
    emu.state.fail_next("capacity", on=("openai",))
    assert openai_client.run(request(), affinity="k").content is not None
    assert len(sleeps) == 1
    emu.state.fail_next("quota", on=("openai",))
    with pytest.raises(ModelQuotaExceeded):
        openai_client.run(request(), affinity="k")
    unknown = OpenAICompatibleClient(f"{base}/accounts/{ACCOUNT}/ai/v1", TOKEN, "gpt-x")
    with pytest.raises(ModelUnavailable):
        unknown.run(request(), affinity="k")


def test_openai_compatible_without_key_sends_no_authorization(emu: EmulatorApp, base: str) -> None:
    keyless = OpenAICompatibleClient(f"{base}/accounts/{ACCOUNT}/ai/v1", None, MODEL)
    with pytest.raises(ModelError) as caught:
        keyless.run(request(), affinity="k")
    assert caught.value.reason == "model_auth"
    assert "authorization" not in emu.state.requests[-1].headers


# --- create_backend ----------------------------------------------------------------------------


def test_create_backend_workers_ai(emu: EmulatorApp, base: str) -> None:
    settings = Settings(
        llm_backend="workers-ai",
        cloudflare_account_id=ACCOUNT,
        cloudflare_api_token=TOKEN,
        workers_ai_base_url=base,
    )
    backend = create_backend(settings, response_format=FORMAT)
    assert isinstance(backend, WorkersAIClient) and backend.supports_batch
    assert backend.model == settings.model
    assert backend.run(request(), affinity="k").content is not None
    other = create_backend(settings, model="@cf/moonshotai/kimi-k2.7-code", response_format=FORMAT)
    other.run(request(), affinity="k")
    assert emu.state.requests[-1].model == "@cf/moonshotai/kimi-k2.7-code"


def test_create_backend_openai(emu: EmulatorApp, base: str) -> None:
    settings = Settings(
        llm_backend="openai",
        openai_base_url=f"{base}/accounts/{ACCOUNT}/ai/v1",
        openai_api_key=TOKEN,
    )
    backend = create_backend(settings, response_format=FORMAT)
    assert isinstance(backend, OpenAICompatibleClient) and not backend.supports_batch
    assert backend.run(request(), affinity="k").content is not None


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        (Settings(), "no model configured"),
        (Settings(llm_backend="workers-ai", cloudflare_account_id="a"), "CLOUDFLARE_API_TOKEN"),
        (Settings(llm_backend="openai"), "OPENAI_BASE_URL"),
    ],
)
def test_create_backend_without_credentials(settings: Settings, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        create_backend(settings, response_format=FORMAT)


def test_create_backend_sends_the_findings_schema_by_default(emu: EmulatorApp, base: str) -> None:
    settings = Settings(
        llm_backend="workers-ai",
        cloudflare_account_id=ACCOUNT,
        cloudflare_api_token=TOKEN,
        workers_ai_base_url=base,
    )
    backend = create_backend(settings)
    assert backend.run(request(), affinity="k").error is None  # the emulator accepted it
    assert emu.state.requests[-1].body["response_format"] == prompts.response_format()


def test_create_backend_from_environment(base: str) -> None:
    env = {
        "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
        "CLOUDFLARE_API_TOKEN": TOKEN,
        "WORKERS_AI_BASE_URL": base,
        "SECREVIEW_MODEL": "@cf/moonshotai/kimi-k2.5",
    }
    backend = create_backend(Settings.from_env(env), response_format=FORMAT)
    result = backend.run(request(), affinity="k")
    assert result.content is not None
    assert cost_usd(backend.model, result.usage) > 0
