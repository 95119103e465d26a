"""Model clients: Workers AI (sync run, async batch, poll) and OpenAI-compatible; usage and cost."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Self

import httpx

from bot.config import DEFAULT_WORKERS_AI_BASE_URL, Settings
from bot.errors import EgressBlocked, ModelError, ModelTimeout, PayloadTooLarge
from bot.model.errors import batch_error, errors_of, map_error, scrub
from bot.model.values import (
    MAX_BATCH_BYTES,
    PRICES,
    BatchStatus,
    ModelBackend,
    ModelRequest,
    ModelResult,
    Price,
    Usage,
    _batch_payload,
    _dumps,
    batch_payload_size,
    cost_usd,
    price_known,
    request_body,
)
from bot.redact import guard

__all__ = [
    "MAX_BATCH_BYTES",
    "PRICES",
    "BatchStatus",
    "ModelBackend",
    "ModelRequest",
    "ModelResult",
    "Price",
    "Usage",
    "batch_payload_size",
    "cost_usd",
    "price_known",
    "request_body",
]

log = logging.getLogger(__name__)

# httpx's 5 s default is far too short for a model that may think for a minute.
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=120.0, write=30.0, pool=10.0)
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 30.0
PENDING_STATUSES = frozenset({"queued", "running"})
_RNG = random.Random()
os.register_at_fork(after_in_child=_RNG.seed)  # forked workers must not retry in lockstep
FormatMode = Literal["json_schema", "json_object", "prompt"]


def parse_usage(raw: Any, completion: Mapping[str, Any] | None = None) -> Usage:
    """A chat.completion ``usage``, with cached tokens from whichever shape the server uses.

    ``usage.prompt_tokens_details.cached_tokens`` (OpenAI, Workers AI, newer llama-server),
    ``usage.prompt_cache_hit_tokens`` (DeepSeek-style gateways), llama-server's ``timings``
    (``cache_n`` reused, ``prompt_n`` processed) and llama.cpp's ``tokens_cached`` beside the
    usage in ``completion``; none of them (llama-cpp-python) means 0 cached.
    """
    usage = raw if isinstance(raw, Mapping) else {}
    outer = completion if isinstance(completion, Mapping) else {}
    raw_timings = outer.get("timings")
    timings: Mapping[str, Any] = raw_timings if isinstance(raw_timings, Mapping) else {}
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, Mapping) else None
    for candidate in (
        usage.get("prompt_cache_hit_tokens"),
        timings.get("cache_n"),
        outer.get("tokens_cached"),
    ):
        if cached is None:
            cached = candidate
    prompt = _count(usage.get("prompt_tokens"))
    if not prompt and timings:  # llama.cpp timings only: processed + reused tokens
        prompt = _count(timings.get("prompt_n")) + _count(timings.get("cache_n"))
    completion_tokens = _count(usage.get("completion_tokens")) or _count(timings.get("predicted_n"))
    return Usage(prompt, _count(cached), completion_tokens)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def parse_completion(result: Any) -> tuple[str | None, Usage]:
    """Content and usage of a chat.completion (or of a legacy ``{"response": ...}`` result)."""
    if not isinstance(result, Mapping):
        return None, Usage()
    usage = parse_usage(result.get("usage"), result)
    choices = result.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        message = choices[0].get("message")
        content = message.get("content") if isinstance(message, Mapping) else None
        return (content if isinstance(content, str) else None), usage
    legacy = result.get("response")
    if isinstance(legacy, Mapping | list):  # JSON mode on older models returns an object
        return json.dumps(legacy), usage
    return (legacy if isinstance(legacy, str) else None), usage


def _result(reference: str, content: str | None, usage: Usage) -> ModelResult:
    if content is None or not content.strip():
        return ModelResult(
            reference, None, usage, error="empty_response: the model returned no content"
        )
    return ModelResult(reference, content, usage)


def backoff_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with equal jitter: half fixed, half random, capped."""
    ceiling = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2.0**attempt)
    return ceiling / 2 + (rng or _RNG).uniform(0, ceiling / 2)


# --- HTTP clients ------------------------------------------------------------------------------
# --- secreview:egress-guard (owned by bot/redact; keep this block whole when rebasing) ---


def _egress_guard(payload: Any, content: bytes, references: Sequence[str]) -> None:
    """Refuse to send a body that still holds a secret (``bot.redact.guard``).

    Each request of a batch is checked on its own, all before anything is sent, so the error
    names every blocked reference; the values themselves are never logged.
    """
    items = payload.get("requests") if isinstance(payload, Mapping) else None
    if isinstance(items, list):
        blocked = [
            (str(item.get("external_reference", i)), kind)
            for i, item in enumerate(items)
            if (kind := guard.check(_dumps(item))) is not None
        ]
    else:
        kind = guard.check(content)
        blocked = [(ref, kind) for ref in (references or ("request",))] if kind else []
    if blocked:
        refs = tuple(ref for ref, _ in blocked)
        kinds = tuple(sorted({kind for _, kind in blocked}))
        log.warning("egress guard blocked %d request(s) %s: %s", len(refs), refs, kinds)
        raise EgressBlocked(
            f"{len(refs)} request(s) still held a secret ({', '.join(kinds)}) and were not sent",
            references=refs,
            kinds=kinds,
        )


# --- end secreview:egress-guard ---


class _HTTPBackend:
    """Shared transport, retries and error mapping of both clients."""

    service = "model API"
    supports_batch = False

    def __init__(
        self,
        model: str,
        secret: str,
        *,
        response_format: Mapping[str, Any] | None,
        transport: httpx.BaseTransport | None,
        timeout: httpx.Timeout,
        max_retries: int,
        sleep: Callable[[float], None],
    ) -> None:
        self.model = model
        self.response_format: Mapping[str, Any] = dict(response_format or {})
        self.max_retries = max_retries
        self._secret = secret
        self._sleep = sleep
        self._client = httpx.Client(transport=transport, timeout=timeout)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _headers(self, affinity: str) -> dict[str, str]:
        headers = {"content-type": "application/json", "accept": "application/json"}
        if self._secret:
            headers["authorization"] = f"Bearer {self._secret}"
        if affinity:
            # Routes requests sharing a prompt prefix to the replica that has it cached.
            headers["x-session-affinity"] = affinity
        return headers

    def _post(
        self,
        url: str,
        payload: Any,
        affinity: str,
        params: Mapping[str, str] | None = None,
        references: Sequence[str] = (),
    ) -> dict[str, Any]:
        """POST JSON with retries on capacity, timeouts, 5xx and transport errors."""
        content = _dumps(payload)
        _egress_guard(payload, content, references)
        attempt = 0
        previous: ModelError | None = None
        while True:
            try:
                return self._post_once(url, content, self._headers(affinity), params)
            except ModelError as exc:
                if not self._should_retry(exc, previous) or attempt >= self.max_retries:
                    raise
                previous = exc
                delay = backoff_delay(attempt)
                log.debug("%s %s, retry %d in %.1fs", self.service, exc.reason, attempt + 1, delay)
                self._sleep(delay)
                attempt += 1

    def _should_retry(self, exc: ModelError, previous: ModelError | None) -> bool:
        """Whether ``exc`` (after ``previous``, the last failure of this call) is worth a retry."""
        return exc.retryable

    def _post_once(
        self, url: str, content: bytes, headers: Mapping[str, str], params: Mapping[str, str] | None
    ) -> dict[str, Any]:
        try:
            response = self._client.post(url, content=content, headers=headers, params=params)
        except httpx.TimeoutException as exc:
            raise ModelTimeout(f"{self.service} request timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            err = ModelError(
                scrub(f"{self.service} transport error: {type(exc).__name__}: {exc}", self._secret),
                reason="model_transport",
            )
            err.retryable = True
            raise err from None
        try:
            data = response.json()
        except ValueError:
            data = None
        status = response.status_code
        if status < 400 and isinstance(data, dict) and data.get("success") is not False:
            return data
        errors = errors_of(data)
        if not errors and not isinstance(data, dict):
            kind = response.headers.get("content-type") or "no content type"
            errors = [(None, f"non-JSON response body ({kind})")]
        raise map_error(status, errors, service=self.service, secret=self._secret)

    def submit_batch(self, requests: Sequence[ModelRequest], *, affinity: str) -> str:
        """Not supported by this backend; the engine calls ``run`` per unit instead."""
        raise ModelError("batch not supported", reason="model_batch_unsupported")

    def poll_batch(
        self, request_id: str, references: Sequence[str], *, affinity: str
    ) -> BatchStatus:
        """Not supported by this backend."""
        raise ModelError("batch not supported", reason="model_batch_unsupported")


class WorkersAIClient(_HTTPBackend):
    """Cloudflare Workers AI REST API: ``/ai/run/{model}``, sync and async batch."""

    service = "Workers AI"
    supports_batch = True

    def __init__(
        self,
        account_id: str,
        api_token: str,
        model: str,
        base_url: str = DEFAULT_WORKERS_AI_BASE_URL,
        *,
        response_format: Mapping[str, Any] | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            model,
            api_token,
            response_format=response_format,
            transport=transport,
            timeout=timeout,
            max_retries=max_retries,
            sleep=sleep,
        )
        # The model name's slashes ("@cf/moonshotai/...") are literal path segments.
        self.url = f"{base_url.rstrip('/')}/accounts/{account_id}/ai/run/{model}"

    def run(self, request: ModelRequest, *, affinity: str) -> ModelResult:
        """One synchronous chat completion."""
        body = request_body(request, self.response_format)
        data = self._post(self.url, body, affinity, references=(request.external_reference,))
        content, usage = parse_completion(data.get("result"))
        return _result(request.external_reference, content, usage)

    def submit_batch(self, requests: Sequence[ModelRequest], *, affinity: str) -> str:
        """Queue ``requests`` as one async batch; returns its ``request_id``."""
        if not requests:
            raise ValueError("an async batch needs at least one request")
        payload = _batch_payload(requests, self.response_format)
        size = len(_dumps(payload))
        if size > MAX_BATCH_BYTES:
            raise PayloadTooLarge(
                f"batch of {len(requests)} requests is {size} bytes, over the "
                f"{MAX_BATCH_BYTES}-byte limit: split it",
                status=413,
            )
        data = self._post(self.url, payload, affinity, {"queueRequest": "true"})
        result = data.get("result")
        request_id = result.get("request_id") if isinstance(result, Mapping) else None
        if not isinstance(request_id, str) or not request_id:
            raise ModelError(
                "Workers AI queued a batch without a request_id", reason="model_bad_response"
            )
        log.debug("batch %s queued with %d requests (%d bytes)", request_id, len(requests), size)
        return request_id

    def poll_batch(
        self, request_id: str, references: Sequence[str], *, affinity: str
    ) -> BatchStatus:
        """The batch's status; when done, one result per reference, in ``references`` order."""
        data = self._post(self.url, {"request_id": request_id}, affinity, {"queueRequest": "true"})
        result = data.get("result")
        if not isinstance(result, Mapping):
            raise ModelError(
                "Workers AI batch poll returned no result", reason="model_bad_response"
            )
        responses = result.get("responses")
        if not isinstance(responses, list):
            status = result.get("status")
            if status in PENDING_STATUSES:
                return BatchStatus(request_id, str(status))
            raise ModelError(
                f"Workers AI batch {request_id} has unexpected status {status!r}",
                reason="model_batch_failed",
            )
        results = _match_responses(responses, references, self._secret)
        total = Usage()
        for r in results:
            total = total + r.usage
        if total == Usage():
            total = parse_usage(result.get("usage"))
        return BatchStatus(request_id, "done", results, total)


def _match_responses(
    responses: Sequence[Any], references: Sequence[str], secret: str
) -> tuple[ModelResult, ...]:
    """Responses (in any order) matched to ``references`` by external_reference, else by id."""
    wanted = set(references)
    by_ref: dict[str, ModelResult] = {}
    for item in responses:
        if not isinstance(item, Mapping):
            continue
        ref = item.get("external_reference")
        index = item.get("id")
        if ref is None and isinstance(index, int) and 0 <= index < len(references):
            ref = references[index]
        if not isinstance(ref, str) or ref not in wanted or ref in by_ref:
            log.debug("ignoring batch response id=%r reference=%r", index, ref)
            continue
        by_ref[ref] = _response_result(ref, item, secret)
    return tuple(
        by_ref.get(ref) or ModelResult(ref, None, error="missing_response") for ref in references
    )


def _response_result(ref: str, item: Mapping[str, Any], secret: str) -> ModelResult:
    content, usage = parse_completion(item.get("result"))
    if item.get("success") is False:
        return ModelResult(ref, None, usage, error=batch_error(item, secret))
    return _result(ref, content, usage)


# Base URL → the ``response_format`` shape that server accepted, for the life of the process.
_ACCEPTED_FORMATS: dict[str, FormatMode] = {}
_ACCEPTED_LOCK = threading.Lock()
# Words an engine's error uses when it is the response_format it cannot take (llama-cpp-python:
# "Input should be 'text' or 'json_object'", old llama-server: "response_format type must be").
_FORMAT_WORDS = re.compile(r"response_format|json_schema|json_object|schema|grammar", re.I)


def format_variant(
    response_format: Mapping[str, Any], mode: FormatMode
) -> Mapping[str, Any] | None:
    """``response_format`` as ``mode`` asks: as given (json_schema), as ``json_object`` with
    the schema beside it (llama-cpp-python, Anyscale style), or nothing (``schema_in_prompt``
    then puts the schema at the end of the request's last message)."""
    if not response_format or mode == "prompt":
        return None
    if mode == "json_schema" or response_format.get("type") != "json_schema":
        return response_format
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    return {"type": "json_object", **({"schema": schema} if isinstance(schema, Mapping) else {})}


def schema_in_prompt(request: ModelRequest, response_format: Mapping[str, Any]) -> ModelRequest:
    """``request`` for a server that takes no ``response_format``: the schema goes at the end
    of the last message (after all a prefix cache could serve), so the answer keeps its shape."""
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, Mapping) else response_format.get("schema")
    if not isinstance(schema, Mapping) or not request.messages:
        return request
    text = json.dumps(schema, indent=1, sort_keys=True, ensure_ascii=False)
    *head, last = request.messages
    tail = {
        **last,
        "content": f"{last.get('content', '')}\n\nAnswer with one JSON object that matches this "
        f"JSON Schema, and nothing else:\n```json\n{text}\n```",
    }
    return dataclasses.replace(request, messages=(*head, tail))


def format_rejected(exc: ModelError) -> bool:
    """Whether an engine refused the request's ``response_format`` (not its credentials,
    capacity or size): a 400/422/500/501 whose message is about the format."""
    if exc.status not in (400, 422, 500, 501):
        return False
    return bool(_FORMAT_WORDS.search(str(exc)))


def accepted_format(base_url: str) -> FormatMode | None:
    """The ``response_format`` shape ``base_url`` was found to accept in this process."""
    with _ACCEPTED_LOCK:
        return _ACCEPTED_FORMATS.get(base_url)


def forget_formats() -> None:
    """Forget every discovered ``response_format`` (tests; a server that was upgraded)."""
    with _ACCEPTED_LOCK:
        _ACCEPTED_FORMATS.clear()


class OpenAICompatibleClient(_HTTPBackend):
    """Any ``/chat/completions`` server (vLLM, llama.cpp, Workers AI ``/ai/v1``); no async batch.

    Engines differ in the ``response_format`` they take: the first request tries the findings
    ``json_schema``; a refusal of it falls back to ``json_object`` with the schema, then to the
    prompt alone, and the shape that worked is remembered per base URL. A 5xx that repeats the
    same body, and every 4xx, is deterministic and is not retried.
    """

    service = "OpenAI-compatible API"
    supports_batch = False

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        model: str,
        *,
        response_format: Mapping[str, Any] | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = 4,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(
            model,
            api_key or "",
            response_format=response_format,
            transport=transport,
            timeout=timeout,
            max_retries=max_retries,
            sleep=sleep,
        )
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"

    def run(self, request: ModelRequest, *, affinity: str) -> ModelResult:
        """One chat completion, in the ``response_format`` shape this server accepts."""
        mode = accepted_format(self.base_url) or "json_schema"
        attempts = 1
        while True:
            fmt = format_variant(self.response_format, mode) or {}
            sent = (
                request
                if fmt or not self.response_format
                else schema_in_prompt(request, self.response_format)
            )
            body = {"model": self.model, **request_body(sent, fmt)}
            try:
                data = self._post(
                    self.url, body, affinity, references=(request.external_reference,)
                )
            except ModelError as exc:
                fallback = _next_mode(mode) if self.response_format else None
                if fallback is None or not format_rejected(exc):
                    exc.attempts = attempts  # stats count every request the server saw
                    raise
                log.info("%s refused response_format %s; trying %s", self.base_url, mode, fallback)
                mode = fallback
                attempts += 1
                continue
            if self.response_format:
                self._remember(mode)
            # Some gateways wrap the completion in a Cloudflare envelope.
            completion = data.get("result") if "choices" not in data else data
            content, usage = parse_completion(completion)
            return dataclasses.replace(
                _result(request.external_reference, content, usage), attempts=attempts
            )

    def _remember(self, mode: FormatMode) -> None:
        with _ACCEPTED_LOCK:
            if _ACCEPTED_FORMATS.get(self.base_url) != mode:
                log.info("%s takes response_format %s", self.base_url, mode)
            _ACCEPTED_FORMATS[self.base_url] = mode

    def _should_retry(self, exc: ModelError, previous: ModelError | None) -> bool:
        if not exc.retryable or format_rejected(exc):
            return False
        # The same 5xx body twice is the server's answer to this request, not a passing fault.
        return not (
            previous is not None
            and exc.status is not None
            and exc.status >= 500
            and (previous.status, str(previous)) == (exc.status, str(exc))
        )


def _next_mode(mode: FormatMode) -> FormatMode | None:
    ladder: tuple[FormatMode, ...] = ("json_schema", "json_object", "prompt")
    index = ladder.index(mode)
    return ladder[index + 1] if index + 1 < len(ladder) else None


def create_backend(
    settings: Settings,
    *,
    transport: httpx.BaseTransport | None = None,
    model: str | None = None,
    response_format: Mapping[str, Any] | None = None,
    max_retries: int = 4,
) -> ModelBackend:
    """The backend ``settings`` select; ConfigError if none is configured.

    ``response_format`` defaults to ``prompts.response_format()`` (the findings json_schema).
    ``max_retries`` 0 makes a capacity error surface at once (a Celery task then retries later
    instead of sleeping in the worker).
    """
    settings.require_model()
    if response_format is None:
        from bot.review import prompts  # late: prompts is a sibling, not needed to import llm

        response_format = prompts.response_format()
    chosen = model or settings.model
    timeout = model_timeout(settings.model_timeout_s)
    if settings.llm_backend == "workers-ai":
        return WorkersAIClient(
            settings.cloudflare_account_id or "",
            settings.cloudflare_api_token or "",
            chosen,
            settings.workers_ai_base_url,
            response_format=response_format,
            transport=transport,
            timeout=timeout,
            max_retries=max_retries,
        )
    return OpenAICompatibleClient(
        settings.openai_base_url or "",
        settings.openai_api_key,
        chosen,
        response_format=response_format,
        transport=transport,
        timeout=timeout,
        max_retries=max_retries,
    )


def model_timeout(read_s: float) -> httpx.Timeout:
    """Connect fast, wait ``read_s`` (SECREVIEW_MODEL_TIMEOUT) for the model to answer."""
    return httpx.Timeout(connect=10.0, read=read_s, write=30.0, pool=10.0)
