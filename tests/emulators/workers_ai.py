"""An emulator of the Cloudflare Workers AI REST API with simulated prefix caching.

Routes (under ``/client/v4/accounts/{account}/ai``):
  ``POST /run/{model}``                    sync run, Cloudflare envelope around a chat.completion
  ``POST /run/{model}?queueRequest=true``  async batch: ``{"requests": [...]}`` submits,
                                           ``{"request_id": ...}`` polls
  ``POST /v1/chat/completions``            OpenAI-compatible: plain chat.completion, OpenAI errors

Prefix caching is simulated per replica by ``tests.emulators.prefix_cache`` (see there). Routing:
``x-session-affinity`` → replica ``sha256(key) % replicas`` (stable across processes, unlike
``hash()``); no header → a replica drawn from the seeded RNG, so unkeyed traffic spreads out.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from tests.emulators.fake_model import Script, review
from tests.emulators.prefix_cache import Replica, block_hashes, render_chat, tokenize
from tests.fakes.hold import Hold, Then, take

MAX_PAYLOAD_BYTES = 10_000_000
KNOWN_MODELS = frozenset(
    {
        "@cf/moonshotai/kimi-k2.5",
        "@cf/moonshotai/kimi-k2.6",
        "@cf/moonshotai/kimi-k2.7-code",
        "@cf/openai/gpt-oss-120b",
        "@cf/meta/llama-3.3-70b-instruct-fp8-fast",
        "@cf/qwen/qwen2.5-coder-32b-instruct",
    }
)
# name → (HTTP status, Workers AI code, message) of the faults ``fail_next`` can inject.
FAULTS: Mapping[str, tuple[int, int, str]] = {
    "capacity": (429, 3040, "Capacity temporarily exceeded, please try again."),
    "quota": (429, 3036, "You have used up your daily free allocation of 10,000 neurons."),
    "timeout": (408, 3007, "Request timeout"),
    "too_large": (413, 3006, "Request is too large"),
    "plan_required": (403, 5035, "This model requires a Workers Paid plan"),
    "server_error": (500, 3043, "Internal server error"),
    # Cloudflare's edge answers a broken origin with an HTML page, not JSON.
    "html_502": (502, 0, "<html><body><h1>502 Bad Gateway</h1></body></html>"),
}
ROLES = frozenset({"system", "user", "assistant", "tool"})


@dataclass
class Override:
    """What the emulator answers for one external reference instead of the script."""

    content: str | None = None
    error: tuple[int, str] | None = None
    missing: bool = False
    null_reference: bool = False


@dataclass
class Recorded:
    """One request the emulator received."""

    kind: str  # run | submit | poll | openai
    path: str
    model: str
    headers: dict[str, str]
    body: Any
    size: int = 0
    status: int = 200
    at: float = field(default_factory=time.time)  # when it arrived


@dataclass
class Served:
    """One completion the emulator produced (for cache accounting in tests and benchmarks)."""

    affinity: str | None
    replica: int
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    reference: str | None = None


@dataclass
class Batch:
    """A queued async batch."""

    request_id: str
    model: str
    requests: list[dict[str, Any]]
    affinity: str | None
    polls_until_done: int
    polls: int = 0
    done: dict[str, Any] | None = None
    ready_at: float = 0.0  # monotonic time before which polls say "running" (latency injection)


@dataclass
class EmulatorState:
    """Everything the emulator remembers, and the knobs tests turn."""

    account_id: str
    api_token: str
    block_tokens: int
    replicas: list[Replica]
    script: Script
    rng: random.Random
    requests: list[Recorded] = field(default_factory=list)
    served: list[Served] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)
    faults: deque[tuple[str, frozenset[str]]] = field(default_factory=deque)
    overrides: dict[str, Override] = field(default_factory=dict)
    batches: dict[str, Batch] = field(default_factory=dict)
    slow_seconds: float = 0.0
    polls_until_done: int = 1
    shuffle_responses: bool = True
    never_finish: bool = False
    inject: ModelFaults = field(default_factory=lambda: ModelFaults())  # issue 9 part 5
    # Secret values no request may carry (``flag_values``); each hit is recorded in ``leaks``.
    forbidden: dict[str, str] = field(default_factory=dict)
    leaks: list[tuple[str, str]] = field(default_factory=list)

    def user_text(self, since: int = 0) -> str:
        """The user messages of every batch submitted after the first ``since`` requests: what
        the model was shown of the changes themselves."""
        return "".join(
            m["content"]
            for r in self.requests[since:]
            if r.kind == "submit"
            for q in r.body["requests"]
            for m in q["messages"]
            if m["role"] == "user"
        )

    def flag_values(self, values: Mapping[str, str]) -> None:
        """Record in ``leaks`` every request whose raw body holds one of ``values`` (name →
        value), as written or JSON-escaped: what a model must never be sent."""
        self.forbidden.update(values)

    def check_leaks(self, kind: str, raw: bytes) -> None:
        """Add a ``(request kind, value name)`` to ``leaks`` for each flagged value in ``raw``."""
        if not self.forbidden:
            return
        text = raw.decode("utf-8", "replace")
        for name, value in self.forbidden.items():
            escaped = json.dumps(value)[1:-1]
            if value in text or escaped in text:
                self.leaks.append((kind, name))

    # model → fault name: every request for that model fails so (an outage of one model)
    model_faults: dict[str, str] = field(default_factory=dict)

    def fail_next(
        self, fault: str, times: int = 1, on: Sequence[str] = ("run", "submit", "poll", "openai")
    ) -> None:
        """The next ``times`` requests of the kinds ``on`` fail with ``fault`` (see FAULTS)."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {sorted(FAULTS)}")
        self.faults.extend([(fault, frozenset(on))] * times)

    def override(self, reference: str, **kwargs: Any) -> None:
        """Answer ``reference`` with fixed ``content``, an ``error=(code, message)``,
        ``missing=True`` (no response at all) or ``null_reference=True``."""
        self.overrides[reference] = Override(**kwargs)

    def replica_for(self, affinity: str | None) -> int:
        """The replica a request with this affinity header lands on."""
        if affinity:
            return int.from_bytes(hashlib.sha256(affinity.encode()).digest()[:8]) % len(
                self.replicas
            )
        return self.rng.randrange(len(self.replicas))

    def fail_model(self, model: str, fault: str) -> None:
        """Every request for ``model`` fails with ``fault`` from now on (see FAULTS)."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; one of {sorted(FAULTS)}")
        self.model_faults[model] = fault

    def take_fault(self, kind: str, model: str = "") -> tuple[int, int, str] | None:
        """Pop the first pending fault that applies to ``kind`` (or the model's standing one)."""
        standing = self.model_faults.get(model)
        if standing is not None and kind != "poll":
            self.counters[f"fault_{standing}"] += 1
            return FAULTS[standing]
        for i, (name, kinds) in enumerate(self.faults):
            if kind in kinds:
                del self.faults[i]
                self.counters[f"fault_{name}"] += 1
                return FAULTS[name]
        return None

    @property
    def cached_tokens(self) -> int:
        """Cached prompt tokens over every completion served."""
        return sum(s.cached_tokens for s in self.served)

    @property
    def prompt_tokens(self) -> int:
        """Prompt tokens over every completion served."""
        return sum(s.prompt_tokens for s in self.served)


@dataclass
class EmulatorApp:
    """The ASGI app and its state; ``reset()`` starts over with the same settings."""

    app: Starlette
    state: EmulatorState
    settings: dict[str, Any]

    def reset(self, **changes: Any) -> EmulatorState:
        """A fresh state (empty caches, records, faults) behind the same app; ``changes``
        override ``create_emulator`` settings (replicas, block_tokens, script...) from now on."""
        self.settings.update(changes)
        self.state = _new_state(**self.settings)
        return self.state


def _new_state(
    *,
    replicas: int,
    cache_blocks_per_replica: int,
    block_tokens: int,
    script: Script | None,
    seed: int,
    account_id: str,
    api_token: str,
) -> EmulatorState:
    return EmulatorState(
        account_id=account_id,
        api_token=api_token,
        block_tokens=block_tokens,
        replicas=[Replica(cache_blocks_per_replica) for _ in range(replicas)],
        script=script or review,
        rng=random.Random(seed),
    )


# --- request validation and completion ---------------------------------------------------------


def input_problem(body: Any) -> str | None:
    """Why a chat input would be rejected by the real API, or None."""
    if not isinstance(body, Mapping):
        return "input must be a JSON object"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "required properties at '/' are 'messages'"
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or m.get("role") not in ROLES:
            return f"'/messages/{i}/role' must be one of {sorted(ROLES)}"
        if not isinstance(m.get("content"), str):
            return f"'/messages/{i}/content' must be a string"
    max_tokens = body.get("max_tokens", 1)
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return "'/max_tokens' must be a positive integer"
    fmt = body.get("response_format")
    return None if fmt is None else _format_problem(fmt)


def _format_problem(fmt: Any) -> str | None:
    if not isinstance(fmt, Mapping) or fmt.get("type") not in ("json_schema", "json_object"):
        return "'/response_format/type' must be 'json_schema' or 'json_object'"
    if fmt["type"] == "json_object":
        return None
    spec = fmt.get("json_schema")
    if not isinstance(spec, Mapping):
        return "'/response_format/json_schema' is required for type json_schema"
    if not isinstance(spec.get("name"), str) or not isinstance(spec.get("schema"), Mapping):
        return "'/response_format/json_schema' needs 'name' (string) and 'schema' (object)"
    if "strict" in spec and not isinstance(spec["strict"], bool):
        return "'/response_format/json_schema/strict' must be a boolean"
    return None


def complete(
    state: EmulatorState,
    model: str,
    body: Mapping[str, Any],
    affinity: str | None,
    reference: str | None = None,
) -> dict[str, Any]:
    """One chat.completion with cache accounting on the routed replica."""
    messages = body["messages"]
    tokens = tokenize(render_chat(messages))
    replica = state.replica_for(affinity)
    hits = state.replicas[replica].serve(block_hashes(tokens, state.block_tokens))
    override = state.overrides.get(reference) if reference else None
    if override is not None and override.content is not None:
        content = override.content
    else:
        content = state.script(messages, body)
    if reference is not None:  # fault injection: malformed answers to batch units
        content = state.inject.answer(content)
    pieces = tokenize(content)
    finish = "stop"
    if len(pieces) > body.get("max_tokens", 4096):
        pieces, finish = pieces[: body["max_tokens"]], "length"
        content = "".join(pieces)
    usage = {
        "prompt_tokens": len(tokens),
        "completion_tokens": len(pieces),
        "total_tokens": len(tokens) + len(pieces),
        "prompt_tokens_details": {"cached_tokens": hits * state.block_tokens},
    }
    state.served.append(
        Served(affinity, replica, len(tokens), hits * state.block_tokens, len(pieces), reference)
    )
    return {
        "id": f"chatcmpl-{uuid.UUID(int=state.rng.getrandbits(128)).hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": finish,
            }
        ],
        "usage": usage,
    }


# --- responses ---------------------------------------------------------------------------------


def envelope(result: Any) -> JSONResponse:
    """A successful Cloudflare v4 envelope."""
    return JSONResponse({"result": result, "success": True, "errors": [], "messages": []})


def cf_error(status: int, code: int, message: str) -> JSONResponse:
    """A failed Cloudflare v4 envelope."""
    body = {"result": None, "success": False, "errors": [{"code": code, "message": message}]}
    return JSONResponse({**body, "messages": []}, status_code=status)


def openai_error(status: int, code: int, message: str) -> JSONResponse:
    """An OpenAI-style error body (the shape of the ``/ai/v1`` endpoints)."""
    kind = "authentication_error" if status == 401 else "invalid_request_error"
    if status >= 429:
        kind = "server_error" if status >= 500 else "rate_limit_error"
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": code}},
        status_code=status,
    )


def _batch_response(
    state: EmulatorState, batch: Batch, index: int, item: Mapping[str, Any]
) -> dict[str, Any] | None:
    ref = item.get("external_reference")
    ref = ref if isinstance(ref, str) else None
    override = state.overrides.get(ref) if ref else None
    if override is not None and override.missing:
        return None
    reported = None if override is not None and override.null_reference else ref
    if override is not None and override.error is not None:
        code, message = override.error
        return {
            "id": index,
            "result": None,
            "success": False,
            "errors": [{"code": code, "message": message}],
            "external_reference": reported,
        }
    result = complete(state, batch.model, item, batch.affinity, ref)
    return {"id": index, "result": result, "success": True, "external_reference": reported}


def finish_batch(state: EmulatorState, batch: Batch) -> dict[str, Any]:
    """Run every request of ``batch`` once and keep the done result for later polls."""
    if batch.done is None:
        responses = [
            r
            for i, item in enumerate(batch.requests)
            if (r := _batch_response(state, batch, i, item)) is not None
        ]
        if state.shuffle_responses and len(responses) > 1:
            order = list(responses)
            state.rng.shuffle(responses)
            if responses == order:  # a shuffle that changed nothing would test nothing
                responses.reverse()
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        for r in responses:
            for key in usage:
                usage[key] += (r["result"] or {}).get("usage", {}).get(key, 0)
        batch.done = {"responses": responses, "usage": usage}
    return batch.done


def _fault_response(
    fault: tuple[int, int, str], shape: Callable[[int, int, str], JSONResponse]
) -> Response:
    status, code, message = fault
    if not code:
        return HTMLResponse(message, status_code=status)
    return shape(status, code, message)


# --- handlers ----------------------------------------------------------------------------------


def _authorized(state: EmulatorState, request: Request) -> bool:
    return request.headers.get("authorization") == f"Bearer {state.api_token}"


async def _read_json(request: Request) -> tuple[bytes, Any]:
    raw = await request.body()
    try:
        return raw, json.loads(raw)
    except ValueError:
        return raw, None


def create_emulator(
    *,
    replicas: int = 4,
    cache_blocks_per_replica: int = 4096,
    block_tokens: int = 16,
    script: Script | None = None,
    seed: int = 0,
    account_id: str = "acct",
    api_token: str = "token",
) -> EmulatorApp:
    """A fresh emulator; ``script(messages, request_json) -> content`` plays the model."""
    settings: dict[str, Any] = {
        "replicas": replicas,
        "cache_blocks_per_replica": cache_blocks_per_replica,
        "block_tokens": block_tokens,
        "script": script,
        "seed": seed,
        "account_id": account_id,
        "api_token": api_token,
    }
    emulator: EmulatorApp

    def record(kind: str, request: Request, model: str, raw: bytes, body: Any) -> Recorded:
        rec = Recorded(kind, request.url.path, model, dict(request.headers), body, len(raw))
        emulator.state.requests.append(rec)
        emulator.state.counters[kind] += 1
        emulator.state.check_leaks(kind, raw)
        return rec

    async def run(request: Request) -> Response:
        state = emulator.state
        model = request.path_params["model"]
        raw, body = await _read_json(request)
        queued = request.query_params.get("queueRequest", "").lower() == "true"
        kind = "run"
        if queued and isinstance(body, Mapping):
            kind = "poll" if "request_id" in body else "submit"
        rec = record(kind, request, model, raw, body)
        held = await state.inject.held(kind)  # fault injection: hold / drop this request
        response = held or await _run(state, request, kind, model, raw, body)
        rec.status = response.status_code
        return response

    async def chat_completions(request: Request) -> Response:
        state = emulator.state
        raw, body = await _read_json(request)
        model = body.get("model", "") if isinstance(body, Mapping) else ""
        rec = record("openai", request, str(model), raw, body)
        response = await _openai(state, request, raw, body)
        rec.status = response.status_code
        return response

    base = "/client/v4/accounts/{account}/ai"
    app = Starlette(
        routes=[
            Route(base + "/run/{model:path}", run, methods=["POST"]),
            Route(base + "/v1/chat/completions", chat_completions, methods=["POST"]),
        ]
    )
    emulator = EmulatorApp(app, _new_state(**settings), settings)
    return emulator


async def _run(
    state: EmulatorState, request: Request, kind: str, model: str, raw: bytes, body: Any
) -> Response:
    if not _authorized(state, request) or request.path_params["account"] != state.account_id:
        return cf_error(401, 10000, "Authentication error")
    if len(raw) > MAX_PAYLOAD_BYTES:
        return cf_error(413, 3006, "Request is too large")
    if body is None:
        return cf_error(400, 5006, "Invalid JSON in request body")
    if model not in KNOWN_MODELS:
        return cf_error(400, 5007, f"No such model {model} or task")
    fault = state.take_fault(kind, model)
    if fault is not None:
        return _fault_response(fault, cf_error)
    if kind == "submit":
        return _submit(state, request, model, body)
    if kind == "poll":
        return _poll(state, body)
    problem = input_problem(body)
    if problem:
        return cf_error(400, 5006, f"Error: {problem}")
    if state.slow_seconds:
        await asyncio.sleep(state.slow_seconds)
    affinity = request.headers.get("x-session-affinity")
    return envelope(complete(state, model, body, affinity))


def _submit(state: EmulatorState, request: Request, model: str, body: Any) -> Response:
    items = body.get("requests")
    if not isinstance(items, list) or not items:
        return cf_error(400, 5006, "Error: '/requests' must be a non-empty array")
    for i, item in enumerate(items):
        problem = input_problem(item)
        if problem:
            return cf_error(400, 5006, f"Error: /requests/{i}: {problem}")
    if state.inject.refuse_submit(state.rng):
        state.counters["fault_capacity"] += 1
        return _fault_response(FAULTS["capacity"], cf_error)
    request_id = str(uuid.UUID(int=state.rng.getrandbits(128), version=4))
    affinity = request.headers.get("x-session-affinity")
    state.batches[request_id] = Batch(request_id, model, items, affinity, state.polls_until_done)
    state.batches[request_id].ready_at = state.inject.ready_at(state.rng)
    return envelope({"status": "queued", "request_id": request_id, "model": model})


def _poll(state: EmulatorState, body: Any) -> Response:
    batch = state.batches.get(str(body.get("request_id")))
    if batch is None:
        return cf_error(404, 5006, "Error: unknown request_id")
    batch.polls += 1
    slow = time.monotonic() < batch.ready_at  # fault injection: answers take this long
    if state.never_finish or slow or batch.polls <= batch.polls_until_done:
        status = "queued" if batch.polls == 1 and not state.never_finish else "running"
        return envelope({"status": status, "request_id": batch.request_id, "model": batch.model})
    return envelope(finish_batch(state, batch))


async def _openai(state: EmulatorState, request: Request, raw: bytes, body: Any) -> Response:
    if not _authorized(state, request) or request.path_params["account"] != state.account_id:
        return openai_error(401, 10000, "Authentication error")
    if len(raw) > MAX_PAYLOAD_BYTES:
        return openai_error(413, 3006, "Request is too large")
    if not isinstance(body, Mapping):
        return openai_error(400, 5006, "Invalid JSON in request body")
    model = body.get("model")
    if model not in KNOWN_MODELS:
        return openai_error(400, 5007, f"No such model {model}")
    fault = state.take_fault("openai", str(model))
    if fault is not None:
        return _fault_response(fault, openai_error)
    problem = input_problem(body)
    if problem:
        return openai_error(400, 5006, problem)
    if state.slow_seconds:
        await asyncio.sleep(state.slow_seconds)
    return JSONResponse(
        complete(state, str(model), body, request.headers.get("x-session-affinity"))
    )


# --- fault injection (issue 9 part 5) ------------------------------------------------------------
GARBAGE = '{"findings": [{"path": "shop/db.py", "line": '  # cut off mid-object: invalid JSON


@dataclass
class ModelFaults:
    """Faults a test turns on ``EmulatorState.inject`` (all off by default).

    ``hold(kind)`` holds the next request of a kind (``submit``, ``poll``, ``run``);
    ``garbage_answers`` makes the next N answers to batch units malformed JSON (probes and sync
    runs are not counted); ``latency`` draws, per batch,
    the seconds from submit until its answers are ready (polls say ``running`` until then);
    ``capacity_rate`` refuses that fraction of submits with 3040 (429).
    """

    holds: list[Hold] = field(default_factory=list)
    garbage_answers: int = 0
    latency: tuple[float, float] | None = None
    capacity_rate: float = 0.0
    drawn: list[float] = field(default_factory=list)  # the latencies given to batches so far

    def hold(self, kind: str, then: Then = "process") -> Hold:
        """Hold the next request of ``kind`` until released."""
        hold = Hold("*", f"^{kind}$", then)
        self.holds.append(hold)
        return hold

    def release_all(self) -> None:
        """Release every hold (teardown)."""
        for hold in self.holds:
            hold.release()

    async def held(self, kind: str) -> Response | None:
        """Wait while a request of ``kind`` is held; a dropped one answers 502 from the edge."""
        hold = take(self.holds, "*", kind)
        if hold is None:
            return None
        await hold.block()
        return _fault_response(FAULTS["html_502"], cf_error) if hold.then == "drop" else None

    def answer(self, content: str) -> str:
        """``content``, or malformed JSON while ``garbage_answers`` lasts."""
        if self.garbage_answers <= 0:
            return content
        self.garbage_answers -= 1
        return GARBAGE

    def refuse_submit(self, rng: random.Random) -> bool:
        """Whether this submit is out of capacity (drawn at ``capacity_rate``)."""
        return self.capacity_rate > 0 and rng.random() < self.capacity_rate

    def ready_at(self, rng: random.Random) -> float:
        """The monotonic time a new batch's answers are ready."""
        if self.latency is None:
            return 0.0
        delay = rng.uniform(*self.latency)
        self.drawn.append(delay)
        return time.monotonic() + delay


# --- fault injection ends -------------------------------------------------------------------------
