"""Running a scan through the async batch API, resumable: every submitted batch and every answer
is recorded before the next step, so a scan killed midway polls what it already paid for instead
of submitting it again.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from bot.errors import ModelError, ModelQuotaExceeded, ModelUnavailable, PayloadTooLarge
from bot.findings import ReviewResult
from bot.model import client as llm
from bot.model.client import ModelBackend, ModelRequest, ModelResult, Usage
from bot.review import engine, prompts

State = dict[str, Any]
Progress = Callable[[int, int, Usage], None]


class ScanStore(Protocol):
    """Where a scan keeps its progress (a JSON file for the CLI, Redis for the App)."""

    def load(self) -> State | None: ...
    def save(self, state: State) -> None: ...


class FileStore:
    """Scan progress in a JSON file, replaced atomically on every save."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> State | None:
        """The saved state, or None for a new scan."""
        try:
            data: State = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return data

    def save(self, state: State) -> None:
        """Write ``state`` (to a temporary file first, so a kill never leaves half a file)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state), encoding="utf-8")
        os.replace(tmp, self.path)


class RedisStore:
    """Scan progress in one Redis hash (for the App's workers): a field per batch.

    Only the batches that changed since the last save are written, so recording one answer
    costs one field, not the whole scan.
    """

    def __init__(self, client: Any, key: str, ttl_s: int = 7 * 24 * 3600) -> None:
        self.redis, self.key, self.ttl = client, key, ttl_s
        self._written: dict[str, str] = {}

    def load(self) -> State | None:
        """The saved state, or None for a new scan."""
        raw = self.redis.hgetall(self.key)
        if not raw:
            return None
        fields = {_text(k): _text(v) for k, v in raw.items()}
        self._written = dict(fields)
        meta = json.loads(fields.pop("meta", "{}"))
        order = sorted(fields, key=lambda f: int(f.partition(":")[2]))
        return {**meta, "batches": [json.loads(fields[f]) for f in order]}

    def save(self, state: State) -> None:
        """Write the fields that changed and renew the expiry, in one round trip."""
        fields = {"meta": json.dumps({k: v for k, v in state.items() if k != "batches"})}
        for i, batch in enumerate(state["batches"]):
            fields[f"batch:{i}"] = json.dumps(batch)
        changed = {k: v for k, v in fields.items() if self._written.get(k) != v}
        pipe = self.redis.pipeline()
        if changed:
            pipe.hset(self.key, mapping=changed)
        pipe.expire(self.key, self.ttl)
        pipe.execute()
        self._written.update(changed)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def plan_key(plan: engine.ReviewPlan) -> str:
    """A digest of exactly what would be sent: the same scan resumes, a changed one starts over."""
    digest = hashlib.sha256(plan.prefix.sha256.encode())
    for request in plan.requests:
        digest.update(request.external_reference.encode())
        for message in request.messages:
            digest.update(message["content"].encode())
    return digest.hexdigest()[:32]


class ScanRun:
    """One scan's batches: submit, poll, retry once, finish — each step recorded first."""

    def __init__(
        self,
        plan: engine.ReviewPlan,
        backend: ModelBackend,
        store: ScanStore,
        progress: Progress | None,
        sleep: Callable[[float], None],
        poll_interval: float,
        deadline_s: float,
        *,
        raise_retryable: bool = False,
    ) -> None:
        # ``raise_retryable``: a capacity error propagates (the App's task retries later, and
        # what was submitted before it is already recorded) instead of failing those units.
        self.raise_retryable = raise_retryable
        self.plan, self.backend, self.store = plan, backend, store
        self.progress, self.sleep = progress, sleep
        self.poll_interval, self.deadline_s = poll_interval, deadline_s
        self.state: State = store.load() or {"key": plan_key(plan), "batches": []}
        self.fmt = prompts.response_format()

    def _save(self) -> None:
        self.store.save(self.state)

    def _report(self) -> None:
        if self.progress is None:
            return
        done = [b for b in self.state["batches"] if b["done"] and b["round"] == 1]
        usage = Usage()
        for b in self.state["batches"]:
            for r in b.get("results", {}).values():
                usage = usage + Usage(*r[1])
        self.progress(sum(len(b["refs"]) for b in done), len(self.plan.units), usage)

    def submit(self, requests: Sequence[ModelRequest], round_: int) -> None:
        """Submit what is not recorded yet for this round, in batches under the payload limit."""
        known = {(b["round"], r) for b in self.state["batches"] for r in b["refs"]}
        todo = [r for r in requests if (round_, r.external_reference) not in known]
        size = lambda r: llm.batch_payload_size([r], self.fmt)  # noqa: E731
        for chunk in engine.batches(todo, size, llm.MAX_BATCH_BYTES):
            self._submit_chunk(list(chunk), round_)

    def _submit_chunk(self, chunk: list[ModelRequest], round_: int) -> None:
        refs = [r.external_reference for r in chunk]
        try:
            request_id = self.backend.submit_batch(chunk, affinity=self.plan.affinity)
        except PayloadTooLarge as exc:
            if len(chunk) > 1:  # Workers AI 3006: split and try each half
                half = len(chunk) // 2
                self._submit_chunk(chunk[:half], round_)
                self._submit_chunk(chunk[half:], round_)
                return
            self._record_failed(refs, round_, exc)
            return
        except (ModelQuotaExceeded, ModelUnavailable):
            raise
        except ModelError as exc:
            if exc.reason == "model_auth" or not exc.retryable or self.raise_retryable:
                raise
            self._record_failed(refs, round_, exc)
            return
        self.state["batches"].append(
            {"round": round_, "refs": refs, "request_id": request_id, "done": False, "results": {}}
        )
        self._save()

    def _record_failed(self, refs: list[str], round_: int, exc: ModelError) -> None:
        error = f"{exc.reason}: {exc}"
        results = {ref: [None, [0, 0, 0], error] for ref in refs}
        self.state["batches"].append(
            {"round": round_, "refs": refs, "request_id": "", "done": True, "results": results}
        )
        self._save()

    def poll_once(self) -> bool:
        """Poll each pending batch once, keeping what finished; True when none is pending."""
        finished = poll_pending(self.state, self.backend, self.plan.affinity, self.store)
        if finished:
            self._report()
        return not pending(self.state)

    def time_out(self, reason: str) -> None:
        """Give up on pending batches: their units are reported failed, never dropped."""
        self.time_out_state(self.state, self.store, reason)

    @staticmethod
    def time_out_state(state: State, store: ScanStore, reason: str) -> None:
        """``time_out`` on a bare state (the App polls without building the plan)."""
        for batch in pending(state):
            batch["results"] = {r: [None, [0, 0, 0], reason] for r in batch["refs"]}
            batch["done"] = True
        store.save(state)

    def wait(self) -> None:
        """Poll every pending batch until all are done or the deadline passes."""
        started, interval = time.monotonic(), self.poll_interval
        while not self.poll_once():
            if time.monotonic() - started > self.deadline_s:
                self.time_out("model_timeout: scan deadline")
                return
            self.sleep(interval)
            interval = min(interval * 1.5, 30.0)

    def next_round(self, min_confidence: float) -> bool:
        """After round 1: resubmit units worth one more try; True when something was sent."""
        if any(b["round"] == 2 for b in self.state["batches"]):
            return False
        first = {
            ref: engine.evaluate(self.plan, r, min_confidence=min_confidence)
            for ref, r in self.results(1).items()
        }
        retry = [
            self.plan.request(ref)
            for ref, o in first.items()
            if o.invalid_output or engine.is_retryable(o.error)
        ]
        if retry:
            self.submit(retry, 2)
        return bool(retry)

    def finish(self, min_confidence: float) -> ReviewResult:
        """Evaluate every answer (the retry's where there was one) and merge the result."""
        outcomes = {
            ref: engine.evaluate(self.plan, r, min_confidence=min_confidence)
            for ref, r in self.results(1).items()
        }
        for ref, r in self.results(2).items():
            if ref in outcomes:
                retry = engine.evaluate(self.plan, r, min_confidence=min_confidence)
                outcomes[ref] = engine.merge_attempts(outcomes[ref], retry)
        ordered = [outcomes[u.id] for u in self.plan.units if u.id in outcomes]
        return engine.assemble(self.plan, ordered, model=self.backend.model)

    def results(self, round_: int) -> dict[str, ModelResult]:
        out = {}
        for b in self.state["batches"]:
            if b["round"] == round_:
                for ref, (content, usage, error) in b["results"].items():
                    out[ref] = ModelResult(ref, content, Usage(*usage), error)
        return out


def pending(state: State) -> list[dict[str, Any]]:
    """Batches of ``state`` still waiting for the model."""
    return [b for b in state["batches"] if not b["done"]]


def poll_pending(state: State, backend: ModelBackend, affinity: str, store: ScanStore) -> int:
    """Poll each pending batch once (no plan needed); returns how many finished."""
    finished = 0
    for batch in pending(state):
        status = backend.poll_batch(batch["request_id"], batch["refs"], affinity=affinity)
        if status.done:
            batch["results"] = {r.external_reference: _stored(r) for r in status.results}
            batch["done"] = True
            store.save(state)
            finished += 1
    return finished


def units_done(state: State) -> int:
    """Units of the first round with an answer."""
    return sum(len(b["refs"]) for b in state["batches"] if b["done"] and b["round"] == 1)


def _stored(result: ModelResult) -> list[Any]:
    u = result.usage
    return [result.content, [u.prompt_tokens, u.cached_tokens, u.completion_tokens], result.error]


def run_scan(
    plan: engine.ReviewPlan,
    backend: ModelBackend,
    store: ScanStore,
    *,
    progress: Progress | None = None,
    sleep: Callable[[float], None] = time.sleep,
    poll_interval: float = 2.0,
    deadline_s: float = 3600.0,
    min_confidence: float = 0.0,
) -> ReviewResult:
    """Review every unit of a scan plan, waiting here (the CLI); resumable through ``store``."""
    if not backend.supports_batch:
        return engine.execute(plan, backend, progress=progress, min_confidence=min_confidence)
    run = ScanRun(plan, backend, store, progress, sleep, poll_interval, deadline_s)
    run.submit(plan.requests, 1)
    run.wait()
    if run.next_round(min_confidence):
        run.wait()
    return run.finish(min_confidence)
