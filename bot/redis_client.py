"""Redis connections that survive a Redis restart: health-checked, retried, bounded timeouts.

A pooled connection left over from before a restart is found dead by the health check (or on
first use) and replaced, and the command is retried, so the first request after Redis comes back
succeeds instead of failing (the receiver would answer 503, a worker would drop a step).
"""

from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

HEALTH_CHECK_S = 10
_RETRY_ON = [RedisConnectionError, RedisTimeoutError]


def _options() -> dict[str, Any]:
    return {
        "health_check_interval": HEALTH_CHECK_S,
        "socket_connect_timeout": 5,
        "socket_timeout": 10,
        "socket_keepalive": True,
        "retry_on_error": _RETRY_ON,
    }


def connect(url: str) -> redis.Redis:
    """A client for workers and commands."""
    from redis.retry import Retry

    return redis.Redis.from_url(
        url, retry=Retry(ExponentialBackoff(cap=2.0, base=0.1), 3), **_options()
    )


def connect_async(url: str, max_connections: int = 64) -> aioredis.Redis:
    """A client for the receiver's event loop."""
    from redis.asyncio.retry import Retry

    client: aioredis.Redis = aioredis.Redis.from_url(
        url,
        retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 2),
        max_connections=max_connections,
        **_options(),
    )
    return client
