"""The models a run may use: one client per model, the failover chain, the verifier."""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.config import Settings
from bot.model.values import ModelBackend
from bot.review import verify
from bot.review.policy import Breaker, Failover, MemoryBreaker


@dataclass
class ModelPool:
    """Clients for the chain SECREVIEW_MODEL, SECREVIEW_MODEL_FALLBACKS…, made on first use.

    ``max_retries`` 0 (the App) makes a capacity error surface at once, so the run — not a
    sleeping worker — decides when to try again.
    """

    settings: Settings
    breaker: Breaker = field(default_factory=MemoryBreaker)
    max_retries: int = 0
    failover: Failover = field(init=False)
    _clients: dict[str, ModelBackend] = field(default_factory=dict, init=False)
    _verifier: ModelBackend | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.failover = Failover(self.settings.model_chain, self.breaker)

    def backend(self, model: str) -> ModelBackend:
        """The client of ``model``."""
        if model not in self._clients:
            from bot.model.client import create_backend  # the HTTP stack, only when asked

            self._clients[model] = create_backend(
                self.settings, model=model, max_retries=self.max_retries
            )
        return self._clients[model]

    def verifier(self) -> ModelBackend | None:
        """The client of the verification pass (SECREVIEW_VERIFY_MODEL, else the first model)."""
        if self._verifier is None:
            from bot.model.client import create_backend

            self._verifier = create_backend(
                self.settings,
                model=self.settings.verify_model or self.settings.model,
                response_format=verify.response_format(),
                max_retries=self.max_retries,
            )
        return self._verifier


@dataclass
class FixedModels:
    """Given clients, in failover order (library use and tests); breakers kept in memory."""

    backends: dict[str, ModelBackend]
    verify_backend: ModelBackend | None = None
    breaker: Breaker = field(default_factory=MemoryBreaker)
    failover: Failover = field(init=False)

    def __post_init__(self) -> None:
        self.failover = Failover(list(self.backends), self.breaker)

    def backend(self, model: str) -> ModelBackend:
        """The client of ``model``."""
        return self.backends[model]

    def verifier(self) -> ModelBackend | None:
        """The verification client, if any."""
        return self.verify_backend


def single(backend: ModelBackend, verifier: ModelBackend | None = None) -> FixedModels:
    """Just ``backend`` (no failover)."""
    return FixedModels({backend.model: backend}, verifier)


def pool_for(
    settings: Settings, breaker: Breaker | None = None, max_retries: int = 0
) -> ModelPool | None:
    """The model pool ``settings`` configure, or None when no model is configured."""
    if not settings.model_configured:
        return None
    return ModelPool(settings, breaker or MemoryBreaker(), max_retries)
