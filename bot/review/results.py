"""Per-file review results, kept so a later push pays only for files whose patch changed.

A file's result is stored under the key ``plan.file_key`` computes from everything that can
change it. The App keeps results in Redis (with a TTL); the CLI in a cache directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import msgspec

from bot.findings import Finding

RESULT_TTL_S = 30 * 24 * 3600
REDIS_PREFIX = "secreview:result:"


@dataclass(frozen=True, slots=True)
class FileResult:
    """What the model said about one file after the second look: kept findings and counts.

    ``from_head`` names the review that paid for it (a commit, or a local run id).
    """

    findings: tuple[Finding, ...] = ()
    rejected: int = 0
    refuted: int = 0
    model: str = ""
    from_head: str = ""


class ResultStore(Protocol):
    """Where per-file results live between reviews, and each change's last findings."""

    def get_many(self, keys: Collection[str]) -> dict[str, FileResult]: ...

    def put_many(self, items: Mapping[str, FileResult]) -> None: ...

    def last(self, scope: str) -> tuple[Finding, ...]: ...

    def put_last(self, scope: str, findings: Sequence[Finding]) -> None: ...

    def views(self, scope: str) -> dict[str, tuple[str, ...]]: ...

    def put_views(self, scope: str, views: Mapping[str, Sequence[str]]) -> None: ...


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(FileResult)
_LAST = msgspec.json.Decoder(tuple[Finding, ...])
LAST_PREFIX = "secreview:last:"
VIEWS_PREFIX = "secreview:views:"
_VIEWS = msgspec.json.Decoder(dict[str, tuple[str, ...]])


def _decode_views(raw: bytes | str | None) -> dict[str, tuple[str, ...]]:
    if raw is None:
        return {}
    try:
        return _VIEWS.decode(raw)
    except msgspec.DecodeError:
        return {}


def _decode_last(raw: bytes | str | None) -> tuple[Finding, ...]:
    if raw is None:
        return ()
    try:
        return _LAST.decode(raw)
    except msgspec.DecodeError:
        return ()


def _decode(raw: bytes | str | None) -> FileResult | None:
    if raw is None:
        return None
    try:
        return _DECODER.decode(raw)
    except msgspec.DecodeError:  # written by another version: a miss, never a crash
        return None


class RedisResultStore:
    """Results in Redis, one key each, expiring ``ttl_s`` after they were last written."""

    def __init__(self, client: Any, ttl_s: int = RESULT_TTL_S) -> None:
        self.redis, self.ttl = client, ttl_s

    def get_many(self, keys: Collection[str]) -> dict[str, FileResult]:
        """The stored results among ``keys``."""
        ordered = list(dict.fromkeys(keys))
        if not ordered:
            return {}
        raws = self.redis.mget([REDIS_PREFIX + k for k in ordered])
        out = {}
        for key, raw in zip(ordered, raws, strict=True):
            found = _decode(raw)
            if found is not None:
                out[key] = found
        return out

    def put_many(self, items: Mapping[str, FileResult]) -> None:
        """Store ``items`` (one round trip)."""
        if not items:
            return
        pipe = self.redis.pipeline(transaction=False)
        for key, result in items.items():
            pipe.set(REDIS_PREFIX + key, _ENCODER.encode(result), ex=self.ttl)
        pipe.execute()

    def last(self, scope: str) -> tuple[Finding, ...]:
        """The model's findings of the last review published for ``scope`` (a pull request)."""
        return _decode_last(self.redis.get(LAST_PREFIX + scope))

    def put_last(self, scope: str, findings: Sequence[Finding]) -> None:
        """Keep ``findings`` as ``scope``'s last findings."""
        self.redis.set(LAST_PREFIX + scope, _ENCODER.encode(tuple(findings)), ex=self.ttl)

    def views(self, scope: str) -> dict[str, tuple[str, ...]]:
        """What the last review of ``scope`` was shown of each file it answered for: the new
        side of the file's patch (``bot.diff.delta``)."""
        return _decode_views(self.redis.get(VIEWS_PREFIX + scope))

    def put_views(self, scope: str, views: Mapping[str, Sequence[str]]) -> None:
        """Keep ``views`` as ``scope``'s (replacing the earlier ones)."""
        self.redis.set(VIEWS_PREFIX + scope, _ENCODER.encode(dict(views)), ex=self.ttl)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole or not at all (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


PRUNE_EVERY_S = 24 * 3600
_PRUNED = ".pruned"


def prune_cache(root: Path, max_age_s: float = RESULT_TTL_S, now: float | None = None) -> int:
    """Delete the files under a cache directory not written or read for ``max_age_s`` (as
    Redis lets the App's keys expire), at most once every ``PRUNE_EVERY_S``; how many went.

    A local cache is written by every review and scan; without this it only grows.
    """
    at = time.time() if now is None else now
    stamp = root / _PRUNED
    try:
        if at - stamp.stat().st_mtime < PRUNE_EVERY_S:
            return 0
    except OSError:
        pass  # never pruned (or no cache yet)
    removed = 0
    for dirpath, _dirs, names in os.walk(root):
        for name in names:
            path = Path(dirpath, name)
            with contextlib.suppress(OSError):
                if name != _PRUNED and at - path.stat().st_mtime > max_age_s:
                    path.unlink()
                    removed += 1
    with contextlib.suppress(OSError):
        root.mkdir(parents=True, exist_ok=True)
        stamp.touch()
        os.utime(stamp, (at, at))
    return removed


def _read_fresh(path: Path) -> bytes:
    """A cache file's bytes, marking it used (``prune_cache`` keeps what is read)."""
    data = path.read_bytes()
    with contextlib.suppress(OSError):
        os.utime(path)
    return data


class FileResultStore:
    """Results as small JSON files under a cache directory (the CLI's)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get_many(self, keys: Collection[str]) -> dict[str, FileResult]:
        """The stored results among ``keys``."""
        out = {}
        for key in keys:
            try:
                raw = _read_fresh(self._path(key))
            except OSError:
                continue
            found = _decode(raw)
            if found is not None:
                out[key] = found
        return out

    def put_many(self, items: Mapping[str, FileResult]) -> None:
        """Store ``items``, each written whole or not at all."""
        for key, result in items.items():
            write_atomic(self._path(key), _ENCODER.encode(result))

    def _last_path(self, scope: str) -> Path:
        return self.root / "last" / f"{hashlib.sha256(scope.encode()).hexdigest()[:32]}.json"

    def last(self, scope: str) -> tuple[Finding, ...]:
        """The model's findings of the last review of ``scope`` (a checkout)."""
        try:
            return _decode_last(self._last_path(scope).read_bytes())
        except OSError:
            return ()

    def put_last(self, scope: str, findings: Sequence[Finding]) -> None:
        """Keep ``findings`` as ``scope``'s last findings."""
        write_atomic(self._last_path(scope), _ENCODER.encode(tuple(findings)))

    def views(self, scope: str) -> dict[str, tuple[str, ...]]:
        """What the last review of ``scope`` was shown of each file it answered for."""
        try:
            return _decode_views(self._views_path(scope).read_bytes())
        except OSError:
            return {}

    def put_views(self, scope: str, views: Mapping[str, Sequence[str]]) -> None:
        """Keep ``views`` as ``scope``'s (replacing the earlier ones)."""
        write_atomic(self._views_path(scope), _ENCODER.encode(dict(views)))

    def _views_path(self, scope: str) -> Path:
        return self.root / "views" / f"{hashlib.sha256(scope.encode()).hexdigest()[:32]}.json"


ANALYSIS_PREFIX = "secreview:analysis:"


class RedisBlobs:
    """Opaque values in Redis under ``prefix`` + key (``analyzers.Memo``), with a TTL."""

    def __init__(self, client: Any, prefix: str = ANALYSIS_PREFIX, ttl_s: int = RESULT_TTL_S):
        self.redis, self.prefix, self.ttl = client, prefix, ttl_s

    def get_many(self, keys: Collection[str]) -> dict[str, bytes]:
        """The stored values among ``keys`` (one round trip)."""
        ordered = list(dict.fromkeys(keys))
        if not ordered:
            return {}
        raws = self.redis.mget([self.prefix + k for k in ordered])
        return {k: raw for k, raw in zip(ordered, raws, strict=True) if isinstance(raw, bytes)}

    def put_many(self, items: Mapping[str, bytes]) -> None:
        """Store ``items`` (one round trip)."""
        if not items:
            return
        pipe = self.redis.pipeline(transaction=False)
        for key, value in items.items():
            pipe.set(self.prefix + key, value, ex=self.ttl)
        pipe.execute()


class FileBlobs:
    """Opaque values as files under a cache directory (``analyzers.Memo``, the CLI's)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get_many(self, keys: Collection[str]) -> dict[str, bytes]:
        """The stored values among ``keys``."""
        out = {}
        for key in keys:
            try:
                out[key] = _read_fresh(self._path(key))
            except OSError:
                continue
        return out

    def put_many(self, items: Mapping[str, bytes]) -> None:
        """Store ``items``, each written whole or not at all."""
        for key, value in items.items():
            write_atomic(self._path(key), value)


def lookup_in(store: ResultStore) -> Any:
    """A planning lookup (path → key in, path → stored result out) over ``store``."""

    def lookup(keys: Mapping[str, str]) -> dict[str, FileResult]:
        found = store.get_many(set(keys.values()))
        return {path: found[key] for path, key in keys.items() if key in found}

    return lookup
