"""The persisted state of a run: where it stands and what it still owes (DESIGN.md §8).

Plain msgspec structs, stored as JSON by ``bot.review.store`` (a file for the CLI, Redis for
the App). The plan is stored beside it, once; the state holds only what changes between steps.
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

import msgspec

from bot.model.values import Usage
from bot.review.finalize import Final

Phase = Literal["plan", "model", "verify", "publish", "done"]
UnitStatus = Literal["pending", "submitted", "answered", "failed"]
Kind = Literal["review", "scan"]


class UnitState(msgspec.Struct, kw_only=True):
    """One unit: which model has it, how often it was tried, its answer or its error."""

    status: UnitStatus = "pending"
    model: str = ""
    tried: list[str] = msgspec.field(default_factory=list)  # models given up on
    attempts: int = 0  # capacity, timeout, transport failures on the current model
    invalid: int = 0  # answers that failed the schema on the current model
    batch: str = ""
    content: str | None = None
    error: str | None = None
    not_before: float = 0.0


class BatchState(msgspec.Struct, kw_only=True):
    """One submitted async batch."""

    request_id: str
    model: str
    refs: list[str]
    submitted: float = 0.0
    next_poll: float = 0.0
    polls: int = 0
    done: bool = False


class VerifyState(msgspec.Struct, kw_only=True):
    """The verification pass: the findings it checks, its batch, its answers."""

    status: Literal["todo", "submitted", "done"] = "todo"
    checked: list[str] = msgspec.field(default_factory=list)
    groups: int = 0
    model: str = ""
    request_id: str = ""
    answers: dict[str, str | None] = msgspec.field(default_factory=dict)
    started: float = 0.0
    attempts: int = 0
    next_poll: float = 0.0
    note: str = ""
    usage: list[int] = msgspec.field(default_factory=lambda: [0, 0, 0])


class RunState(msgspec.Struct, kw_only=True):
    """Everything a run has done so far.

    ``version`` makes saves compare-and-set; ``token`` names the one scheduled step allowed to
    advance the run; ``due`` is when that step should run (past it, the sweeper re-drives).
    """

    key: str
    kind: Kind = "review"
    phase: Phase = "plan"
    version: int = 0
    token: str = ""
    created: float = msgspec.field(default_factory=time.time)
    updated: float = 0.0
    due: float = 0.0
    identity: dict[str, Any] = msgspec.field(default_factory=dict)
    units: dict[str, UnitState] = msgspec.field(default_factory=dict)
    batches: list[BatchState] = msgspec.field(default_factory=list)
    verify: VerifyState = msgspec.field(default_factory=VerifyState)
    usage: dict[str, list[int]] = msgspec.field(default_factory=dict)  # model → p, c, o
    requests: int = 0
    model_started: float = 0.0
    skip: str = ""  # why the model was not asked ("" when it was, or when nothing needed it)
    skip_kind: Literal["", "route", "budget", "no_model", "offline"] = ""
    skip_conclusion: str = ""
    failure: str = ""  # why the run could not be planned
    sink: dict[str, Any] = msgspec.field(default_factory=dict)  # the publisher's bookkeeping
    final: Final | None = None
    publish_attempts: int = 0
    errors: int = 0  # consecutive failed steps
    outcome: str = ""

    def spend(self, model: str, usage: Usage) -> None:
        """Add what a request to ``model`` cost."""
        cur = self.usage.setdefault(model, [0, 0, 0])
        cur[0] += usage.prompt_tokens
        cur[1] += usage.cached_tokens
        cur[2] += usage.completion_tokens

    def usage_by_model(self) -> dict[str, Usage]:
        """Usage per model."""
        return {m: Usage(*u) for m, u in self.usage.items()}

    def counts(self) -> tuple[int, int]:
        """(settled units, all units): answered or failed, out of how many."""
        settled = sum(1 for u in self.units.values() if u.status in ("answered", "failed"))
        return settled, len(self.units)


def new_token() -> str:
    """A fresh step token."""
    return uuid.uuid4().hex


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(RunState)


def encode_state(state: RunState) -> bytes:
    """``state`` as JSON."""
    return _ENCODER.encode(state)


def decode_state(raw: bytes | str) -> RunState:
    """The state ``encode_state`` wrote."""
    return _DECODER.decode(raw)
