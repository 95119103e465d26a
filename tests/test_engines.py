"""The OpenAI-compatible backend against the engines people run: llama-cpp-python's server and
llama.cpp's llama-server (emulated on loopback with their real shapes), and a whole CLI review
through each of them."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bot.cli import main
from bot.config import Settings
from bot.errors import ModelError, ModelTimeout
from bot.model import client as llm
from bot.model.client import ModelRequest, OpenAICompatibleClient, Usage, create_backend
from bot.review import prompts
from tests.emulators.llama_cpp import EngineApp, create_llama_cpp_python, create_llama_server
from tests.emulators.server import LiveServer

ROOT = Path(__file__).resolve().parent.parent
DIFF = ROOT / "examples" / "vulnerable.diff"
SYSTEM = "You review diffs for security vulnerabilities and answer in JSON. " * 20


def request(ref: str = "unit-1", text: str = "review this") -> ModelRequest:
    return ModelRequest(
        ref, ({"role": "system", "content": SYSTEM}, {"role": "user", "content": text})
    )


@pytest.fixture(autouse=True)
def _fresh_discovery() -> Iterator[None]:
    llm.forget_formats()
    yield
    llm.forget_formats()


def serve(engine: EngineApp) -> Iterator[tuple[EngineApp, str]]:
    with LiveServer(engine.app) as server:
        yield engine, server.url + "/v1"


@pytest.fixture
def lcp() -> Iterator[tuple[EngineApp, str]]:
    yield from serve(create_llama_cpp_python())


@pytest.fixture
def lls() -> Iterator[tuple[EngineApp, str]]:
    yield from serve(create_llama_server())


def client(base: str, sleeps: list[float], **kw: object) -> OpenAICompatibleClient:
    return OpenAICompatibleClient(
        base, None, "local", response_format=prompts.response_format(), sleep=sleeps.append, **kw
    )


# --- llama-cpp-python ------------------------------------------------------------------------


def test_llama_cpp_python_refuses_json_schema_with_500(lcp: tuple[EngineApp, str]) -> None:
    _, base = lcp
    body = {
        "messages": [{"role": "user", "content": "x"}],
        "response_format": prompts.response_format(),
    }
    answer = httpx.post(base + "/chat/completions", json=body)
    assert answer.status_code == 500
    error = answer.json()["error"]
    assert error["type"] == "internal_server_error" and "json_object" in error["message"]


def test_falls_back_to_json_object_with_schema_and_remembers(lcp: tuple[EngineApp, str]) -> None:
    engine, base = lcp
    sleeps: list[float] = []
    first = client(base, sleeps).run(request(), affinity="")
    assert first.error is None and json.loads(first.content or "") == {"findings": []}
    assert engine.state.formats() == ["json_schema", "json_object"]
    sent = engine.state.requests[-1]["response_format"]
    assert sent["schema"] == prompts.response_format()["json_schema"]["schema"]
    assert sleeps == []  # a refused format is not a passing fault: no backoff, no retry
    assert llm.accepted_format(base) == "json_object"
    assert first.attempts == 2  # the refused json_schema request and the answered one
    # A new client (a new review, a verify pass) for the same server goes straight there.
    client(base, sleeps).run(request("unit-2"), affinity="")
    assert engine.state.formats()[-1] == "json_object" and len(engine.state.requests) == 3


def test_usage_without_any_cached_count(lcp: tuple[EngineApp, str]) -> None:
    _, base = lcp
    result = client(base, []).run(request(), affinity="")
    assert result.usage.prompt_tokens > 100 and result.usage.cached_tokens == 0
    assert result.usage.completion_tokens > 0


def test_prompt_alone_when_no_response_format_is_taken(lcp: tuple[EngineApp, str]) -> None:
    engine, base = lcp
    engine.state.fail_next(500, "grammar support is not compiled in")  # json_object refused too
    result = client(base, []).run(request(), affinity="")
    assert result.error is None
    assert engine.state.formats() == ["json_schema", "json_object", None]
    assert llm.accepted_format(base) == "prompt"
    assert result.attempts == 3
    # With no response_format the schema rides at the end of the last message, after the
    # stable prefix; the system message is untouched.
    sent = engine.state.requests[-1]["messages"]
    assert sent[0]["content"] == SYSTEM
    assert sent[-1]["content"].startswith("review this")
    assert '"findings"' in sent[-1]["content"] and "JSON Schema" in sent[-1]["content"]
    assert '"findings"' not in engine.state.requests[0]["messages"][-1]["content"]


def test_deterministic_errors_are_not_retried(lcp: tuple[EngineApp, str]) -> None:
    engine, base = lcp
    sleeps: list[float] = []
    c = client(base, sleeps)
    c.run(request(), affinity="")  # discovery done
    before = len(engine.state.requests)
    engine.state.fail_next(500, "llama_decode returned -3", times=3)
    with pytest.raises(ModelError, match="llama_decode returned -3"):
        c.run(request(), affinity="")
    # The same 5xx body twice is the server's answer: one retry, not a ten-minute ladder.
    assert len(engine.state.requests) - before == 2 and len(sleeps) == 1
    engine.state.faults.clear()
    huge = request(text="word " * 40_000)
    with pytest.raises(ModelError, match="maximum context length") as caught:
        c.run(huge, affinity="")
    assert caught.value.status == 400 and not caught.value.retryable


def test_api_key_is_sent(tmp_path: Path) -> None:
    engine = create_llama_cpp_python(api_key="sk-local")
    with LiveServer(engine.app) as server:
        keyless = OpenAICompatibleClient(server.url + "/v1", None, "m")
        with pytest.raises(ModelError) as caught:
            keyless.run(request(), affinity="")
        assert caught.value.reason == "model_auth"
        keyed = OpenAICompatibleClient(server.url + "/v1", "sk-local", "m")
        assert keyed.run(request(), affinity="").error is None


# --- llama-server ----------------------------------------------------------------------------


def test_llama_server_takes_json_schema_and_reports_cache_in_timings(
    lls: tuple[EngineApp, str],
) -> None:
    engine, base = lls
    c = client(base, [])
    first = c.run(request("unit-1", "first unit"), affinity="")
    second = c.run(request("unit-2", "second unit"), affinity="")
    assert engine.state.formats() == ["json_schema", "json_schema"]
    assert llm.accepted_format(base) == "json_schema"
    assert first.usage.cached_tokens == 0
    # The shared system prompt is reused from the slot: llama-server says so in timings.cache_n.
    assert 100 < second.usage.cached_tokens < second.usage.prompt_tokens


def test_llama_server_usage_details_when_the_build_has_them() -> None:
    engine = create_llama_server(usage_details=True)
    with LiveServer(engine.app) as server:
        c = client(server.url + "/v1", [])
        c.run(request("a"), affinity="")
        assert c.run(request("b"), affinity="").usage.cached_tokens > 100


def test_llama_server_loading_is_retried_then_reported(lls: tuple[EngineApp, str]) -> None:
    engine, base = lls
    engine.state.loading = True
    sleeps: list[float] = []
    with pytest.raises(ModelError, match="Loading model"):
        client(base, sleeps).run(request(), affinity="")
    assert len(sleeps) == 1  # 503 with the same body twice: the engine is not ready


def test_usage_shapes_seen_in_the_wild() -> None:
    parse = llm.parse_completion
    openai = {"usage": {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 4}}}
    assert parse(openai)[1] == Usage(10, 4, 0)
    deepseek = {
        "usage": {"prompt_tokens": 10, "prompt_cache_hit_tokens": 6, "completion_tokens": 2}
    }
    assert parse(deepseek)[1] == Usage(10, 6, 2)
    timings = {"usage": {"prompt_tokens": 10, "completion_tokens": 3}, "timings": {"cache_n": 7}}
    assert parse(timings)[1] == Usage(10, 7, 3)
    only_timings = {"timings": {"cache_n": 7, "prompt_n": 3, "predicted_n": 5}}
    assert parse(only_timings)[1] == Usage(10, 7, 5)
    native = {"content": "x", "tokens_cached": 9, "usage": {"prompt_tokens": 12}}
    assert parse(native)[1] == Usage(12, 9, 0)
    assert parse({"usage": {"prompt_tokens": 10, "completion_tokens": 1}})[1] == Usage(10, 0, 1)
    assert parse({"usage": None})[1] == Usage()


# --- timeouts --------------------------------------------------------------------------------


def test_model_timeout_is_configurable(lls: tuple[EngineApp, str]) -> None:
    engine, base = lls

    def slow(messages: object, body: object) -> str:
        time.sleep(1.5)
        return '{"findings": []}'

    engine.state.script = slow
    settings = Settings.from_env({"OPENAI_BASE_URL": base, "SECREVIEW_MODEL_TIMEOUT": "0.3"})
    backend = create_backend(settings, max_retries=0)
    started = time.monotonic()
    with pytest.raises(ModelTimeout):
        backend.run(request(), affinity="")
    assert time.monotonic() - started < 1.4
    patient = create_backend(
        Settings.from_env({"OPENAI_BASE_URL": base, "SECREVIEW_MODEL_TIMEOUT": "5"})
    )
    assert patient.run(request(), affinity="").error is None


# --- a whole review through each engine ------------------------------------------------------


@pytest.mark.parametrize(
    "make", [create_llama_cpp_python, create_llama_server], ids=["llama-cpp-python", "llama-server"]
)
def test_cli_review_through_each_engine(
    make: object, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    engine: EngineApp = make()  # type: ignore[operator]
    with LiveServer(engine.app) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url + "/v1")
        monkeypatch.setenv("SECREVIEW_MODEL", "local-gguf")
        status = main(
            ["review", "--diff", str(DIFF), "--format", "json", "--quiet", "--fail-on", "high"]
        )
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert status == 1, out.err  # the example's SQL injection is high
    assert report["model"] == "local-gguf" and not report["failed_units"]
    assert {f["cwe"] for f in report["findings"] if f["source"] == "model"} >= {"CWE-89"}
    assert report["stats"]["prompt_tokens"] > 0
    assert all(s == 200 for s in engine.state.statuses[1:])
    # Every request the server saw is counted: a refused response_format included.
    assert report["stats"]["requests"] == len(engine.state.statuses)
