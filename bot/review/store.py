"""Where runs live between steps: a directory for the CLI, Redis for the App.

The plan is written once; the state after every side effect, compare-and-set on its version so
a step that lost its lease can never overwrite newer progress. In Redis a sorted set indexes
unfinished runs by when their next step is due, which is what the sweeper reads; a lease,
renewed while its holder works, keeps two workers off one run.
"""

from __future__ import annotations

import contextlib
import fcntl
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bot.errors import SecreviewError
from bot.review.plan import Plan, decode_plan, encode_plan
from bot.review.results import write_atomic
from bot.review.state import RunState, decode_state, encode_state

RUN_TTL_S = 7 * 24 * 3600
LEASE_TTL_S = 30


class StaleRun(SecreviewError):
    """The run changed since it was loaded (another worker took over): stop, do not save."""

    reason = "stale_run"


# --- memory (library use, tests) ----------------------------------------------------------------


class MemoryRunStore:
    """Runs in this process only."""

    def __init__(self) -> None:
        self.runs: dict[str, bytes] = {}
        self.plans: dict[str, bytes] = {}

    def load(self, key: str) -> RunState | None:
        """The run under ``key``, or None."""
        raw = self.runs.get(key)
        return None if raw is None else decode_state(raw)

    def save(self, run: RunState) -> None:
        """Keep the state (encoded, as the other stores do, so it round-trips the same)."""
        run.version += 1
        self.runs[run.key] = encode_state(run)

    def save_plan(self, key: str, plan: Plan) -> None:
        """Keep the plan."""
        self.plans[key] = encode_plan(plan)

    def load_plan(self, key: str) -> Plan | None:
        """The stored plan, or None."""
        raw = self.plans.get(key)
        return None if raw is None else decode_plan(raw)


# --- files (the CLI) ----------------------------------------------------------------------------


class FileRunStore:
    """Runs under one directory: ``KEY.json`` (the state) and ``KEY.plan`` (the plan)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str, suffix: str) -> Path:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in key)
        return self.root / f"{safe}{suffix}"

    def load(self, key: str) -> RunState | None:
        """The run under ``key``, or None (a missing or unreadable file starts over)."""
        try:
            return decode_state(self._path(key, ".json").read_bytes())
        except (OSError, ValueError):
            return None

    def save(self, run: RunState) -> None:
        """Write the state whole (a temporary file renamed over the old one)."""
        run.version += 1
        write_atomic(self._path(run.key, ".json"), encode_state(run))

    def save_plan(self, key: str, plan: Plan) -> None:
        """Write the plan."""
        write_atomic(self._path(key, ".plan"), encode_plan(plan))

    def load_plan(self, key: str) -> Plan | None:
        """The stored plan, or None."""
        try:
            return decode_plan(self._path(key, ".plan").read_bytes())
        except (OSError, ValueError):
            return None

    @contextlib.contextmanager
    def lease(self, key: str) -> Iterator[bool]:
        """An exclusive lock on the run for this process (two CLIs never drive one run)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self._path(key, ".lock"), "a+b") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


# --- Redis (the App) ----------------------------------------------------------------------------

RUN_PREFIX = "secreview:run:"
LEASE_PREFIX = "secreview:lease:"
DUE_KEY = "secreview:runs:due"

# KEYS: run hash, due index. ARGV: expected version ("0": must not exist), new version, state,
# ttl, run key, due score ("" when done). Returns 1 when saved, 0 when the version moved on.
_SAVE = """
local current = redis.call('HGET', KEYS[1], 'v')
if (current or '0') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 'state', ARGV[3])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
if ARGV[6] == '' then redis.call('ZREM', KEYS[2], ARGV[5])
else redis.call('ZADD', KEYS[2], tonumber(ARGV[6]), ARGV[5]) end
return 1
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class RedisRunStore:
    """Runs in Redis: a hash per run (state and version), the plan beside it, a due index."""

    def __init__(self, client: Any, ttl_s: int = RUN_TTL_S, lease_s: int = LEASE_TTL_S) -> None:
        self.redis = client
        self.ttl = ttl_s
        self.lease_s = lease_s
        self._save = client.register_script(_SAVE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    def load(self, key: str) -> RunState | None:
        """The run under ``key``, or None."""
        raw = self.redis.hget(RUN_PREFIX + key, "state")
        return None if raw is None else decode_state(raw)

    def save(self, run: RunState) -> None:
        """Compare-and-set: saved only if nobody saved since this run was loaded."""
        expected = run.version
        run.version += 1
        run.updated = time.time()
        due = "" if run.phase == "done" else repr(run.due)
        saved = self._save(
            keys=[RUN_PREFIX + run.key, DUE_KEY],
            args=[expected, run.version, encode_state(run), self.ttl, run.key, due],
        )
        if not saved:
            run.version = expected
            raise StaleRun(f"run {run.key} was saved by another worker")

    def create(self, run: RunState) -> bool:
        """Store a new run; False when one exists under its key already."""
        try:
            self.save(run)
        except StaleRun:
            return False
        return True

    def replace(self, run: RunState) -> None:
        """Start ``run`` over an older, finished run with the same key (an explicit re-run)."""
        current = self.redis.hget(RUN_PREFIX + run.key, "v")
        run.version = int(current or 0)
        self.redis.delete(RUN_PREFIX + run.key + ":plan")
        self.save(run)

    def save_plan(self, key: str, plan: Plan) -> None:
        """Store the plan (compressed), for as long as the run."""
        self.redis.set(RUN_PREFIX + key + ":plan", encode_plan(plan), ex=self.ttl)

    def load_plan(self, key: str) -> Plan | None:
        """The stored plan, or None."""
        raw = self.redis.get(RUN_PREFIX + key + ":plan")
        return None if raw is None else decode_plan(raw)

    def overdue(self, before: float, limit: int = 200) -> list[str]:
        """Unfinished runs whose next step was due before ``before``."""
        keys = self.redis.zrangebyscore(DUE_KEY, "-inf", before, start=0, num=limit)
        return [k.decode() if isinstance(k, bytes) else k for k in keys]

    def forget(self, key: str) -> None:
        """Drop ``key`` from the due index (its run is gone or finished)."""
        self.redis.zrem(DUE_KEY, key)

    def leased(self, key: str) -> bool:
        """Whether a worker holds the run's lease."""
        return bool(self.redis.exists(LEASE_PREFIX + key))

    @contextlib.contextmanager
    def lease(self, key: str, ttl_s: int | None = None) -> Iterator[bool]:
        """Hold the run while working on it; renewed in the background, released at the end.

        A worker that dies stops renewing: the lease lapses after ``ttl_s`` and the sweeper hands
        the run to another worker. Yields False when another worker holds it.
        """
        ttl_s = ttl_s or self.lease_s
        name, token = LEASE_PREFIX + key, uuid.uuid4().hex
        if not self.redis.set(name, token, nx=True, ex=ttl_s):
            yield False
            return
        stop = threading.Event()
        renewer = threading.Thread(
            target=self._keep, args=(name, token, ttl_s, stop), daemon=True, name="lease"
        )
        renewer.start()
        try:
            yield True
        finally:
            stop.set()
            renewer.join(timeout=5)
            with contextlib.suppress(Exception):  # Redis gone: the lease lapses on its own
                self._release(keys=[name], args=[token])

    def _keep(self, name: str, token: str, ttl_s: int, stop: threading.Event) -> None:
        while not stop.wait(ttl_s / 3):
            with contextlib.suppress(Exception):  # a blip: the next renewal may succeed
                self._renew(keys=[name], args=[token, ttl_s])
