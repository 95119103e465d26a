"""The Workers AI emulator itself: cache accounting, routing, batches, errors, the fake model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest

from bot import diff
from bot.diff import DiffLine, Hunk, render_hunk
from bot.review import prompts
from tests.emulators import fake_model
from tests.emulators.prefix_cache import block_hashes, render_chat, tokenize
from tests.emulators.server import LiveServer, serve
from tests.emulators.workers_ai import EmulatorApp, create_emulator

MODEL = "@cf/moonshotai/kimi-k2.6"
RUN = f"/client/v4/accounts/acct/ai/run/{MODEL}"
OPENAI = "/client/v4/accounts/acct/ai/v1/chat/completions"
AUTH = {"authorization": "Bearer token"}
SYSTEM = "You are a security reviewer. " * 40
DEFAULTS: dict[str, Any] = {"replicas": 4, "cache_blocks_per_replica": 4096, "block_tokens": 16}
FORMAT = {"type": "json_schema", "json_schema": {"name": "findings", "schema": {}, "strict": True}}


def messages(user: str, system: str = SYSTEM) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def body(user: str = "review this", **extra: Any) -> dict[str, Any]:
    return {"messages": messages(user), "max_tokens": 512, **extra}


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[EmulatorApp, str]]:
    emulator = create_emulator()
    with LiveServer(emulator.app) as server:
        yield emulator, server.url


@pytest.fixture
def emu(live: tuple[EmulatorApp, str]) -> EmulatorApp:
    live[0].reset(**DEFAULTS)
    return live[0]


@pytest.fixture
def http(live: tuple[EmulatorApp, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live[1], timeout=30) as client:
        yield client


def run(http: httpx.Client, payload: Any, affinity: str | None = None, **kw: Any) -> httpx.Response:
    headers = dict(AUTH, **({"x-session-affinity": affinity} if affinity else {}))
    return http.post(RUN, json=payload, headers=headers, **kw)


def cached(response: httpx.Response) -> int:
    return int(response.json()["result"]["usage"]["prompt_tokens_details"]["cached_tokens"])


def shared_prefix_tokens(a: str, b: str) -> int:
    ta, tb = tokenize(render_chat(messages(a))), tokenize(render_chat(messages(b)))
    n = 0
    while n < min(len(ta), len(tb)) and ta[n] == tb[n]:
        n += 1
    return n


# --- tokenizer and cache ------------------------------------------------------------------------


def test_tokenizer_splits_words_punctuation_and_whitespace() -> None:
    assert tokenize("a.b(c)  d\n") == ["a", ".", "b", "(", "c", ")", "  ", "d", "\n"]
    assert render_chat(messages("u", "s")) == "<|system|>\ns\n<|user|>\nu\n"


def test_block_hashes_chain_on_the_whole_prefix() -> None:
    tokens = [str(i) for i in range(40)]
    same = block_hashes(tokens, 16)
    assert len(same) == 2  # the trailing partial block is never cached
    changed = block_hashes(["x", *tokens[1:]], 16)
    assert changed[1] != same[1]  # block 2 is identical but sits behind another prefix


def test_same_prefix_and_affinity_is_cached_to_the_block_boundary(http: httpx.Client) -> None:
    first = run(http, body("first unit"), "sr-a")
    second = run(http, body("second unit"), "sr-a")
    assert first.status_code == 200 and cached(first) == 0
    expected = shared_prefix_tokens("first unit", "second unit") // 16 * 16
    assert expected > 200
    assert cached(second) == expected
    usage = second.json()["result"]["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_identical_request_is_cached_up_to_its_last_full_block(http: httpx.Client) -> None:
    run(http, body("same"), "sr-a")
    again = run(http, body("same"), "sr-a")
    prompt = again.json()["result"]["usage"]["prompt_tokens"]
    assert cached(again) == prompt // 16 * 16


def test_affinity_keys_on_other_replicas_miss(emu: EmulatorApp, http: httpx.Client) -> None:
    keys = [f"sr-{i}" for i in range(50)]
    home = emu.state.replica_for("sr-a")
    other = next(k for k in keys if emu.state.replica_for(k) != home)
    sibling = next(k for k in keys if emu.state.replica_for(k) == home and k != "sr-a")
    run(http, body("one"), "sr-a")
    assert cached(run(http, body("two"), other)) == 0
    assert cached(run(http, body("three"), sibling)) > 0  # same replica, same cache


def test_no_affinity_spreads_over_replicas(emu: EmulatorApp, http: httpx.Client) -> None:
    for i in range(12):
        run(http, body(f"unit {i}"))
    assert len({s.replica for s in emu.state.served}) > 1
    without_key = emu.state.cached_tokens
    emu.reset()
    for i in range(12):
        run(http, body(f"unit {i}"), "sr-a")
    assert len({s.replica for s in emu.state.served}) == 1
    assert emu.state.cached_tokens > without_key


def chat(word: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": word * 24}]


def full_blocks(msgs: list[dict[str, str]], size: int) -> int:
    return len(tokenize(render_chat(msgs))) // size


def test_lru_evicts_the_oldest_blocks(emu: EmulatorApp, http: httpx.Client) -> None:
    # 8-token blocks: the first block already differs ("<|user|>\n" + the first word).
    emu.reset(replicas=1, cache_blocks_per_replica=10, block_tokens=8)
    a, b = chat("alpha "), chat("beta ")
    assert full_blocks(a, 8) == full_blocks(b, 8) == 6
    run(http, {"messages": a})
    assert cached(run(http, {"messages": a})) == 48  # still resident
    run(http, {"messages": b})  # 12 blocks > 10: a's two oldest blocks go
    assert cached(run(http, {"messages": a})) == 0
    assert len(emu.state.replicas[0].blocks) == 10


def test_lru_touch_keeps_recent_prefixes(emu: EmulatorApp, http: httpx.Client) -> None:
    emu.reset(replicas=1, cache_blocks_per_replica=14, block_tokens=8)
    a, b, c = chat("alpha "), chat("beta "), chat("gamma ")
    run(http, {"messages": a})
    run(http, {"messages": b})
    run(http, {"messages": a})  # touched: b is now the oldest
    run(http, {"messages": c})
    assert cached(run(http, {"messages": a})) == 48
    assert cached(run(http, {"messages": b})) == 0


# --- sync run, validation and errors ------------------------------------------------------------


def test_run_returns_an_envelope_around_a_chat_completion(http: httpx.Client) -> None:
    response = run(http, body(response_format=FORMAT))
    data = response.json()
    assert data["success"] is True and data["errors"] == [] and data["messages"] == []
    result = data["result"]
    assert result["object"] == "chat.completion" and result["model"] == MODEL
    assert result["choices"][0]["message"]["role"] == "assistant"
    assert json.loads(result["choices"][0]["message"]["content"]) == {"findings": []}


def test_max_tokens_truncates_with_finish_reason_length(http: httpx.Client) -> None:
    unit = "### a.py (added)\n     1 + DEBUG = True\n"
    result = run(http, {"messages": messages(unit), "max_tokens": 5}).json()["result"]
    assert result["choices"][0]["finish_reason"] == "length"
    assert result["usage"]["completion_tokens"] == 5


@pytest.mark.parametrize(
    "headers", [{}, {"authorization": "Bearer wrong"}, {"authorization": "token"}]
)
def test_bad_credentials_get_401_code_10000(http: httpx.Client, headers: dict[str, str]) -> None:
    response = http.post(RUN, json=body(), headers=headers)
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == 10000
    assert response.json()["success"] is False


def test_other_account_is_refused(http: httpx.Client) -> None:
    response = http.post(RUN.replace("acct", "other"), json=body(), headers=AUTH)
    assert response.status_code == 401


def test_unknown_model_is_5007(http: httpx.Client) -> None:
    response = http.post(RUN.replace(MODEL, "@cf/acme/nope"), json=body(), headers=AUTH)
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == 5007


@pytest.mark.parametrize(
    "payload",
    [
        {"prompt": "hi"},
        {"messages": []},
        {"messages": [{"role": "wizard", "content": "x"}]},
        {"messages": [{"role": "user", "content": 3}]},
        body(response_format={"type": "xml"}),
        body(response_format={"type": "json_schema", "json_schema": {"schema": {}}}),
        body(response_format={"type": "json_schema"}),
        body(max_tokens=0),
    ],
)
def test_invalid_inputs_are_400(http: httpx.Client, payload: dict[str, Any]) -> None:
    response = run(http, payload)
    assert response.status_code == 400 and response.json()["success"] is False


def test_json_object_format_is_accepted(http: httpx.Client) -> None:
    assert run(http, body(response_format={"type": "json_object"})).status_code == 200


def test_payload_over_10_mb_is_413_code_3006(http: httpx.Client) -> None:
    response = run(http, body("x" * 10_000_001))
    assert response.status_code == 413 and response.json()["errors"][0]["code"] == 3006


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        ("capacity", 429, 3040),
        ("quota", 429, 3036),
        ("timeout", 408, 3007),
        ("plan_required", 403, 5035),
        ("server_error", 500, 3043),
    ],
)
def test_injected_faults(
    emu: EmulatorApp, http: httpx.Client, fault: str, status: int, code: int
) -> None:
    emu.state.fail_next(fault, times=2)
    for _ in range(2):
        response = run(http, body())
        assert response.status_code == status
        assert response.json()["errors"][0]["code"] == code
    assert run(http, body()).status_code == 200
    assert emu.state.counters[f"fault_{fault}"] == 2


def test_faults_can_target_request_kinds(emu: EmulatorApp, http: httpx.Client) -> None:
    emu.state.fail_next("capacity", on=("submit",))
    assert run(http, body()).status_code == 200
    submit = http.post(
        RUN, params={"queueRequest": "true"}, json={"requests": [body()]}, headers=AUTH
    )
    assert submit.status_code == 429


def test_html_502_is_not_json(emu: EmulatorApp, http: httpx.Client) -> None:
    emu.state.fail_next("html_502")
    response = run(http, body())
    assert response.status_code == 502 and response.headers["content-type"].startswith("text/html")


def test_requests_are_recorded(emu: EmulatorApp, http: httpx.Client) -> None:
    run(http, body("recorded"), "sr-rec")
    rec = emu.state.requests[-1]
    assert rec.kind == "run" and rec.model == MODEL and rec.status == 200
    assert rec.headers["x-session-affinity"] == "sr-rec"
    assert rec.body["messages"][1]["content"] == "recorded" and rec.size > 0
    assert emu.state.counters["run"] == 1


# --- async batch --------------------------------------------------------------------------------


def submit(http: httpx.Client, items: list[dict[str, Any]], affinity: str = "sr-b") -> str:
    response = http.post(
        RUN,
        params={"queueRequest": "true"},
        json={"requests": items},
        headers={**AUTH, "x-session-affinity": affinity},
    )
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert result["status"] == "queued" and result["model"] == MODEL
    return str(result["request_id"])


def poll(http: httpx.Client, request_id: str) -> dict[str, Any]:
    response = http.post(
        RUN, params={"queueRequest": "true"}, json={"request_id": request_id}, headers=AUTH
    )
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["result"]
    return result


def test_batch_lifecycle_with_shuffled_responses(emu: EmulatorApp, http: httpx.Client) -> None:
    emu.state.script = fake_model.scripted(lambda m, req: f"answer:{req['external_reference']}")
    emu.state.polls_until_done = 2
    refs = [f"unit-{i}" for i in range(6)]
    request_id = submit(http, [{**body(r), "external_reference": r} for r in refs])
    assert poll(http, request_id)["status"] == "queued"
    assert poll(http, request_id)["status"] == "running"
    done = poll(http, request_id)
    responses = done["responses"]
    assert [r["external_reference"] for r in responses] != refs  # shuffled
    assert sorted(r["id"] for r in responses) == list(range(6))
    for r in responses:
        assert r["success"] is True
        assert r["external_reference"] == refs[r["id"]]
        content = r["result"]["choices"][0]["message"]["content"]
        assert content == f"answer:{refs[r['id']]}"
    total = sum(r["result"]["usage"]["prompt_tokens"] for r in responses)
    assert done["usage"]["prompt_tokens"] == total
    assert poll(http, request_id) == done  # later polls return the same result
    assert sum(s.cached_tokens for s in emu.state.served) > 0  # shared prefix within the batch


def test_batch_order_kept_when_shuffle_is_off(emu: EmulatorApp, http: httpx.Client) -> None:
    emu.state.shuffle_responses = False
    emu.state.polls_until_done = 0
    refs = ["a", "b", "c"]
    done = poll(http, submit(http, [{**body(r), "external_reference": r} for r in refs]))
    assert [r["external_reference"] for r in done["responses"]] == refs


def test_batch_overrides(emu: EmulatorApp, http: httpx.Client) -> None:
    emu.state.polls_until_done = 0
    emu.state.override("bad", content="{not json")
    emu.state.override("fail", error=(3040, "Capacity temporarily exceeded"))
    emu.state.override("gone", missing=True)
    emu.state.override("anon", null_reference=True)
    refs = ["ok", "bad", "fail", "gone", "anon"]
    done = poll(http, submit(http, [{**body(r), "external_reference": r} for r in refs]))
    by_id = {r["id"]: r for r in done["responses"]}
    assert sorted(by_id) == [0, 1, 2, 4]
    assert by_id[1]["result"]["choices"][0]["message"]["content"] == "{not json"
    assert by_id[2]["success"] is False and by_id[2]["errors"][0]["code"] == 3040
    assert by_id[4]["external_reference"] is None and by_id[4]["success"] is True


def test_batch_never_finishes_when_told(emu: EmulatorApp, http: httpx.Client) -> None:
    emu.state.never_finish = True
    request_id = submit(http, [body()])
    assert {poll(http, request_id)["status"] for _ in range(5)} == {"running"}


def test_batch_validation_and_unknown_id(http: httpx.Client) -> None:
    bad = http.post(
        RUN, params={"queueRequest": "true"}, json={"requests": [{"x": 1}]}, headers=AUTH
    )
    assert bad.status_code == 400
    empty = http.post(RUN, params={"queueRequest": "true"}, json={"requests": []}, headers=AUTH)
    assert empty.status_code == 400
    unknown = http.post(
        RUN, params={"queueRequest": "true"}, json={"request_id": "nope"}, headers=AUTH
    )
    assert unknown.status_code == 404


# --- OpenAI-compatible endpoint -----------------------------------------------------------------


def test_openai_endpoint_returns_a_plain_completion(emu: EmulatorApp, http: httpx.Client) -> None:
    payload = {"model": MODEL, **body(response_format=FORMAT)}
    data = http.post(OPENAI, json=payload, headers=AUTH).json()
    assert data["object"] == "chat.completion" and "success" not in data
    again = http.post(OPENAI, json=payload, headers={**AUTH, "x-session-affinity": "k"}).json()
    assert again["usage"]["prompt_tokens"] == data["usage"]["prompt_tokens"]


def test_openai_endpoint_errors_use_the_openai_shape(emu: EmulatorApp, http: httpx.Client) -> None:
    unauthorized = http.post(OPENAI, json={"model": MODEL, **body()})
    assert unauthorized.status_code == 401 and "error" in unauthorized.json()
    unknown = http.post(OPENAI, json={"model": "gpt-4", **body()}, headers=AUTH)
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == 5007
    emu.state.fail_next("quota", on=("openai",))
    quota = http.post(OPENAI, json={"model": MODEL, **body()}, headers=AUTH)
    assert quota.status_code == 429 and quota.json()["error"]["code"] == 3036


# --- the fake model -----------------------------------------------------------------------------


def unit(path: str, *added: str, removed: str = "password = md5(x)") -> str:
    lines = [
        DiffLine("context", 9, 10, "def handler(request):"),
        DiffLine("delete", 10, None, removed),
    ]
    lines += [DiffLine("add", None, 11 + i, text) for i, text in enumerate(added)]
    hunk = Hunk(0, 9, 2, 10, 1 + len(added), "", tuple(lines))
    return f"### {path} (modified)\n{render_hunk(hunk)}"


VULNERABLE = {
    "CWE-89": "cur.execute(f\"SELECT * FROM users WHERE name = '{name}'\")",
    "CWE-78": "subprocess.run(cmd, shell=True)",
    "CWE-502": "data = yaml.load(body, Loader=yaml.Loader)",
    "CWE-95": "result = eval(request.args['expr'])",
    "CWE-295": "requests.get('https://api.example.com', verify=False)",
    "CWE-327": "digest = hashlib.md5(password.encode()).hexdigest()",
    "CWE-22": "return open(os.path.join(BASE, request.args['name'])).read()",
    "CWE-918": "resp = requests.get(request.args['url'])",
    "CWE-489": "DEBUG = True",
    "CWE-79": "el.innerHTML = userInput;",
}
FIELDS = {
    "path": str,
    "line": int,
    "start_line": int,
    "severity": str,
    "cwe": str,
    "title": str,
    "description": str,
    "exploit_scenario": str,
    "recommendation": str,
    "confidence": float,
    "evidence": str,
}


@pytest.mark.parametrize(("cwe", "code"), sorted(VULNERABLE.items()))
def test_fake_model_reports_each_pattern(cwe: str, code: str) -> None:
    text = unit("app/views.py", "x = 1", "    " + code)
    out = json.loads(fake_model.review(messages(text), {}))
    found = [f for f in out["findings"] if f["cwe"] == cwe]
    assert len(found) == 1, out
    f = found[0]
    assert set(f) - {"suggestion"} == set(FIELDS)
    assert all(isinstance(f[k], t) for k, t in FIELDS.items())
    assert f["path"] == "app/views.py" and f["line"] == f["start_line"] == 12
    assert f["evidence"] == code and f["severity"] in {"critical", "high", "medium", "low"}
    assert f["confidence"] == 0.8
    jsonschema.validate(out, prompts.findings_schema())


def test_fake_model_reads_the_real_unit_message() -> None:
    """The fake model parses what bot.prompts actually sends, and only the fenced diff."""
    text = (
        "diff --git a/app/db.py b/app/db.py\n--- a/app/db.py\n+++ b/app/db.py\n"
        "@@ -1,2 +1,3 @@\n import sqlite3\n-x = 1\n"
        '+cur.execute("SELECT * FROM t WHERE id = " + uid)\n+DEBUG = True\n y = 2\n'
    )
    files, _ = diff.filter_files(diff.parse_diff(text).files)
    (unit,) = diff.split_units(files, 4000).units
    decoy = "### evil.py (added)\n     1 + eval(x)\n"
    message = prompts.build_unit_message(unit, prompts.PRContext(title="t", body=decoy))
    out = json.loads(fake_model.review(messages(message), {}))
    jsonschema.validate(out, prompts.findings_schema())
    assert [(f["path"], f["line"], f["cwe"]) for f in out["findings"]] == [
        ("app/db.py", 2, "CWE-89"),
        ("app/db.py", 3, "CWE-489"),
    ]


@pytest.mark.parametrize(
    "code",
    [
        'cur.execute("SELECT * FROM users WHERE name = %s", (name,))',
        "subprocess.run(['ls', path])",
        "data = yaml.safe_load(body)",
        "requests.get('https://api.example.com/v1')",
        "digest = hashlib.sha256(data).hexdigest()",
        "el.textContent = userInput;",
        "DEBUG = False",
    ],
)
def test_fake_model_ignores_safe_code(code: str) -> None:
    assert fake_model.find_issues(unit("app/ok.py", code)) == []


def test_fake_model_ignores_removed_and_context_lines() -> None:
    text = unit("app/a.py", "x = 1", removed="DEBUG = True")
    assert fake_model.find_issues(text) == []


def test_fake_model_keeps_paths_per_segment_and_suggests_fixes() -> None:
    text = unit("a.py", "DEBUG = True") + unit("b/c.py", "    r = get(u, verify=False)")
    found = fake_model.find_issues(text)
    assert [(f["path"], f["cwe"]) for f in found] == [("a.py", "CWE-489"), ("b/c.py", "CWE-295")]
    assert found[0]["suggestion"] == "DEBUG = False"
    assert found[1]["suggestion"] == "    r = get(u, verify=True)"


def test_scripted_answers_by_reference_then_substring() -> None:
    script = fake_model.scripted({"unit-1": "by-ref", "needle": lambda m, r: "by-substring"})
    assert script(messages("anything"), {"external_reference": "unit-1"}) == "by-ref"
    assert script(messages("a needle here"), {"external_reference": "x"}) == "by-substring"
    assert json.loads(script(messages("nothing"), {})) == {"findings": []}


# --- the loopback server helper -----------------------------------------------------------------


def test_live_server_serves_and_stops(emu: EmulatorApp) -> None:
    with LiveServer(emu.app) as server:
        assert server.url.startswith("http://127.0.0.1:")
        response = httpx.post(server.url + RUN, json=body(), headers=AUTH)
        assert response.status_code == 200
        port = server.port
    with pytest.raises(httpx.ConnectError):
        httpx.post(f"http://127.0.0.1:{port}{RUN}", json=body(), headers=AUTH, timeout=2)


def test_serve_returns_a_started_server_on_a_free_port(emu: EmulatorApp) -> None:
    first, second = serve(emu.app), serve(emu.app)
    try:
        assert first.port != second.port
        assert httpx.post(second.url + RUN, json=body(), headers=AUTH).status_code == 200
    finally:
        first.stop()
        second.stop()
