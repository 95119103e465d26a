"""Emulators of the two llama.cpp servers people run, each with its real request and answer shapes.

``create_llama_cpp_python()`` — ``python -m llama_cpp.server`` (llama-cpp-python, FastAPI):
  - ``response_format.type`` must be ``text`` or ``json_object`` (``json_object`` may carry a
    ``schema``, Anyscale style); ``json_schema`` fails request validation, which its
    ``RouteErrorHandler`` turns into HTTP **500** ``{"error": {"message", "type":
    "internal_server_error", "param": null, "code": null}}`` (llama_cpp/server/errors.py).
  - ``usage`` is ``prompt_tokens``/``completion_tokens``/``total_tokens`` only: no cached count.
  - a prompt past the context window is 400 ``context_length_exceeded``; with ``--api_key`` a
    wrong bearer is FastAPI's 401 ``{"detail": "Invalid API key"}``; an unknown ``model`` is
    served by the default model.

``create_llama_server()`` — llama.cpp's own ``llama-server`` (tools/server/README.md):
  - ``response_format`` ``json_object`` (optionally with ``schema``) and ``json_schema`` (with
    ``json_schema.schema`` or ``schema``) both constrain the output.
  - the answer carries ``timings`` (``cache_n`` prompt tokens reused from the slot's cache,
    ``prompt_n`` processed, ``predicted_n``); ``usage.prompt_tokens_details.cached_tokens`` only
    when ``usage_details=True`` (newer builds).
  - errors are ``{"error": {"code", "message", "type"}}``: 400 ``exceed_context_size_error``,
    401 ``authentication_error`` with ``--api-key``, 503 ``unavailable_error`` while loading.

Both answer with ``tests.emulators.fake_model`` (or a given script) and count tokens with the
emulator tokenizer; ``fail_next(status, message)`` injects one error in the server's own shape.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.emulators.fake_model import Script, review
from tests.emulators.prefix_cache import render_chat, tokenize


@dataclass
class EngineState:
    """What one engine emulator remembers, and the knobs tests turn."""

    kind: str  # llama-cpp-python | llama-server
    model: str
    n_ctx: int
    api_key: str | None
    script: Script
    usage_details: bool = False
    loading: bool = False
    requests: list[dict[str, Any]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    faults: list[tuple[int, str]] = field(default_factory=list)
    slot: list[str] = field(default_factory=list)  # llama-server: tokens of the last prompt

    def fail_next(self, status: int, message: str, times: int = 1) -> None:
        """The next ``times`` chat requests fail with ``status`` and ``message``."""
        self.faults.extend([(status, message)] * times)

    def formats(self) -> list[str | None]:
        """The ``response_format.type`` of every request received (None: none sent)."""
        out: list[str | None] = []
        for body in self.requests:
            fmt = body.get("response_format") if isinstance(body, Mapping) else None
            out.append(fmt.get("type") if isinstance(fmt, Mapping) else None)
        return out


@dataclass
class EngineApp:
    """The ASGI app and its state."""

    app: Starlette
    state: EngineState


def _completion(state: EngineState, body: Mapping[str, Any], cached: int) -> dict[str, Any]:
    messages = body["messages"]
    prompt = tokenize(render_chat(messages))
    content = state.script(messages, body)
    pieces = tokenize(content)
    limit = body.get("max_tokens") or 4096
    finish = "stop"
    if len(pieces) > limit:
        pieces, finish = pieces[:limit], "length"
        content = "".join(pieces)
    usage: dict[str, Any] = {
        "prompt_tokens": len(prompt),
        "completion_tokens": len(pieces),
        "total_tokens": len(prompt) + len(pieces),
    }
    if state.usage_details:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return {
        "id": f"chatcmpl-{uuid.uuid4()}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": state.model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": None,
                "finish_reason": finish,
            }
        ],
        "usage": usage,
    }


def _common_prefix(a: list[str], b: list[str]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


async def _body(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        return None


# --- llama-cpp-python ----------------------------------------------------------------------------


def _lcp_error(status: int, message: str, code: str | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status == 400 else "internal_server_error"
    error = {"message": message, "type": kind, "param": None, "code": code}
    return JSONResponse({"error": error}, status_code=status)


def _lcp_validation(body: Any) -> str | None:
    """The pydantic validation message llama-cpp-python's server would raise, or None."""
    if not isinstance(body, Mapping) or not isinstance(body.get("messages"), list):
        return "1 validation error: {'type': 'missing', 'loc': ('body', 'messages')}"
    fmt = body.get("response_format")
    if fmt is not None and (
        not isinstance(fmt, Mapping) or fmt.get("type") not in ("text", "json_object")
    ):
        got = fmt.get("type") if isinstance(fmt, Mapping) else fmt
        return (
            "1 validation error: {'type': 'literal_error', 'loc': ('body', 'response_format', "
            f"'type'), 'msg': \"Input should be 'text' or 'json_object'\", 'input': {got!r}}}"
        )
    return None


def create_llama_cpp_python(
    *, model: str = "gemma-3-270m", n_ctx: int = 32768, api_key: str | None = None,
    script: Script | None = None,
) -> EngineApp:  # fmt: skip
    """An emulator of ``python -m llama_cpp.server`` serving one model."""
    state = EngineState("llama-cpp-python", model, n_ctx, api_key, script or review)

    async def chat(request: Request) -> Response:
        body = await _body(request)
        state.requests.append(body if isinstance(body, dict) else {})
        response = _lcp_chat(state, request, body)
        state.statuses.append(response.status_code)
        return response

    async def models(request: Request) -> Response:
        data = [{"id": state.model, "object": "model", "owned_by": "me", "permissions": []}]
        return JSONResponse({"object": "list", "data": data})

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/v1/models", models, methods=["GET"]),
        ]
    )
    return EngineApp(app, state)


def _lcp_chat(state: EngineState, request: Request, body: Any) -> Response:
    if state.api_key is not None and request.headers.get("authorization") != (
        f"Bearer {state.api_key}"
    ):
        return JSONResponse({"detail": "Invalid API key"}, status_code=401)
    problem = _lcp_validation(body)
    if problem:
        return _lcp_error(500, problem)
    if state.faults:
        status, message = state.faults.pop(0)
        return _lcp_error(status, message)
    prompt = len(tokenize(render_chat(body["messages"])))
    wanted = prompt + (body.get("max_tokens") or 16)
    if wanted > state.n_ctx:
        max_tokens = body.get("max_tokens") or 16
        message = (
            f"This model's maximum context length is {state.n_ctx} tokens. However, you "
            f"requested {wanted} tokens ({prompt} in the messages, {max_tokens} in the "
            "completion). Please reduce the length of the messages or completion."
        )
        return _lcp_error(400, message, "context_length_exceeded")
    return JSONResponse(_completion(state, body, 0))


# --- llama-server --------------------------------------------------------------------------------


def _ls_error(status: int, message: str, kind: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"code": status, "message": message, "type": kind}}, status_code=status
    )


def _ls_format_problem(fmt: Any) -> str | None:
    if fmt is None:
        return None
    if not isinstance(fmt, Mapping) or fmt.get("type") not in (
        "text",
        "json_object",
        "json_schema",
    ):
        return 'response_format type must be one of "text", "json_object" or "json_schema"'
    if fmt["type"] == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else fmt.get("schema")
        if not isinstance(schema, Mapping):
            return "json_schema: a schema object is required"
    return None


def create_llama_server(
    *, model: str = "gemma-3-270m-q4_k_m.gguf", n_ctx: int = 32768, api_key: str | None = None,
    script: Script | None = None, usage_details: bool = False,
) -> EngineApp:  # fmt: skip
    """An emulator of llama.cpp's ``llama-server`` with one slot and its prompt cache."""
    state = EngineState("llama-server", model, n_ctx, api_key, script or review, usage_details)

    async def chat(request: Request) -> Response:
        body = await _body(request)
        state.requests.append(body if isinstance(body, dict) else {})
        response = _ls_chat(state, request, body)
        state.statuses.append(response.status_code)
        return response

    async def health(request: Request) -> Response:
        if state.loading:
            return _ls_error(503, "Loading model", "unavailable_error")
        return JSONResponse({"status": "ok"})

    app = Starlette(
        routes=[
            Route("/v1/chat/completions", chat, methods=["POST"]),
            Route("/chat/completions", chat, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
        ]
    )
    return EngineApp(app, state)


def _ls_chat(state: EngineState, request: Request, body: Any) -> Response:
    if state.api_key is not None and request.headers.get("authorization") != (
        f"Bearer {state.api_key}"
    ):
        return _ls_error(401, "Invalid API Key", "authentication_error")
    if state.loading:
        return _ls_error(503, "Loading model", "unavailable_error")
    if not isinstance(body, Mapping) or not isinstance(body.get("messages"), list):
        return _ls_error(400, "'messages' is required", "invalid_request_error")
    problem = _ls_format_problem(body.get("response_format"))
    if problem:
        return _ls_error(400, problem, "invalid_request_error")
    if state.faults:
        status, message = state.faults.pop(0)
        return _ls_error(
            status, message, "server_error" if status >= 500 else "invalid_request_error"
        )
    tokens = tokenize(render_chat(body["messages"]))
    if len(tokens) > state.n_ctx:
        return JSONResponse(
            {
                "error": {
                    "code": 400,
                    "message": "the request exceeds the available context size, try increasing it",
                    "type": "exceed_context_size_error",
                    "n_prompt_tokens": len(tokens),
                    "n_ctx": state.n_ctx,
                }
            },
            status_code=400,
        )
    cached = _common_prefix(state.slot, tokens)
    cached = min(cached, len(tokens) - 1)  # the last prompt token is always evaluated
    state.slot = tokens
    out = _completion(state, body, cached)
    predicted = out["usage"]["completion_tokens"]
    out["timings"] = {
        "cache_n": cached,
        "prompt_n": len(tokens) - cached,
        "prompt_ms": 1.0,
        "prompt_per_token_ms": 0.01,
        "prompt_per_second": 100000.0,
        "predicted_n": predicted,
        "predicted_ms": 1.0,
        "predicted_per_token_ms": 0.01,
        "predicted_per_second": 100000.0,
    }
    return JSONResponse(out)
