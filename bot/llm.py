"""Model clients: Workers AI (sync run, async batch, poll) and OpenAI-compatible; usage and cost."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


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


@dataclass(frozen=True, slots=True)
class BatchStatus:
    """A poll of an async batch: still ``queued``/``running``, or done with every result."""

    request_id: str
    status: str
    results: tuple[ModelResult, ...] = ()

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


def cost_usd(model: str, usage: Usage) -> float:
    """Price of ``usage`` on ``model`` in US dollars (cached input billed at its own rate)."""
    raise NotImplementedError


def request_body(request: ModelRequest, response_format: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON input of one chat request (shared by run, batch and OpenAI-compatible)."""
    raise NotImplementedError
