"""Model values without any transport: requests, results, usage, prices, payload sizes.

Planning and the run need these on every review; the HTTP clients (``bot.model.client``, which
imports httpx) only when a model is really asked.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

# Cloudflare: "Ensure that the total payload is under 10 MB" (Workers AI, Asynchronous Batch API).
MAX_BATCH_BYTES = 10_000_000


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage of one or more requests, as the model API reported it."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.cached_tokens + other.cached_tokens,
            self.completion_tokens + other.completion_tokens,
        )


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """One chat request; ``external_reference`` ties its response back to a review unit."""

    external_reference: str
    messages: tuple[Mapping[str, str], ...]
    max_tokens: int = 4096
    temperature: float = 0.0


@dataclass(frozen=True, slots=True)
class ModelResult:
    """The outcome of one request: content, or an error reason; usage either way."""

    external_reference: str
    content: str | None
    usage: Usage = Usage()
    error: str | None = None
    attempts: int = 1  # HTTP requests behind it (a refused response_format is one more)


@dataclass(frozen=True, slots=True)
class BatchStatus:
    """A poll of an async batch: still ``queued``/``running``, or done with every result.

    ``usage`` is the batch total: the sum of the results, or the batch's own top-level ``usage``
    when the individual results carried none.
    """

    request_id: str
    status: str
    results: tuple[ModelResult, ...] = ()
    usage: Usage = Usage()

    @property
    def done(self) -> bool:
        return self.status == "done"


class ModelBackend(Protocol):
    """What the review engine needs from a model API."""

    model: str
    supports_batch: bool

    def run(self, request: ModelRequest, *, affinity: str) -> ModelResult: ...

    def submit_batch(self, requests: Sequence[ModelRequest], *, affinity: str) -> str: ...

    def poll_batch(
        self, request_id: str, references: Sequence[str], *, affinity: str
    ) -> BatchStatus: ...


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million tokens."""

    input: float
    cached_input: float
    output: float


# Workers AI pricing page (2026), per million tokens.
PRICES: Mapping[str, Price] = {
    "@cf/moonshotai/kimi-k2.5": Price(0.60, 0.10, 3.00),
    "@cf/moonshotai/kimi-k2.6": Price(0.95, 0.16, 4.00),
    "@cf/moonshotai/kimi-k2.7-code": Price(0.95, 0.19, 4.00),
}


def price_known(model: str) -> bool:
    """Whether ``cost_usd`` knows the price of ``model`` (unknown models cost 0.0)."""
    return model in PRICES


def cost_usd(model: str, usage: Usage) -> float:
    """Price of ``usage`` on ``model`` in US dollars (cached input billed at its own rate)."""
    price = PRICES.get(model)
    if price is None:
        return 0.0
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    uncached = usage.prompt_tokens - cached
    total = uncached * price.input + cached * price.cached_input
    return (total + usage.completion_tokens * price.output) / 1_000_000


def request_body(request: ModelRequest, response_format: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON input of one chat request (shared by run, batch and OpenAI-compatible)."""
    body: dict[str, Any] = {
        "messages": [dict(m) for m in request.messages],
        "max_tokens": request.max_tokens,
        "temperature": request.temperature,
    }
    if response_format:
        body["response_format"] = dict(response_format)
    return body


def _dumps(payload: Any) -> bytes:
    # Serialised once, by us, so the size we check is exactly the size we send.
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _batch_payload(
    requests: Sequence[ModelRequest], response_format: Mapping[str, Any]
) -> dict[str, Any]:
    items = [
        {**request_body(r, response_format), "external_reference": r.external_reference}
        for r in requests
    ]
    return {"requests": items}


def batch_payload_size(requests: Sequence[ModelRequest], response_format: Mapping[str, Any]) -> int:
    """Bytes of the async-batch body for ``requests``, as ``submit_batch`` would send it."""
    return len(_dumps(_batch_payload(requests, response_format)))
