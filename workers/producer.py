"""Fast, atomic enqueue for the webhook receiver: dedupe a delivery and queue its jobs in one step.

Celery's ``send_task`` costs far more than the rest of a webhook request (it measured about 14 %
of a bare endpoint's throughput), so the receiver writes the Celery protocol-2 message itself,
exactly as kombu's Redis transport stores it (``LPUSH`` of a JSON envelope onto the queue's
list), from a Lua script that first claims the ``X-GitHub-Delivery`` id with ``SET NX EX``.
Either the delivery is recorded *and* its jobs are queued, or neither happens; a redelivery
finds the id taken and queues nothing.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from bot.jobs import Job

DELIVERY_TTL_S = 7 * 24 * 3600
DELIVERY_PREFIX = "secreview:delivery:"
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_ORIGIN = f"{os.getpid()}@{socket.gethostname()}"

# KEYS[1] the delivery key, KEYS[2..] one queue list per job; ARGV[1] the TTL, ARGV[2..] messages.
_ENQUEUE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return 0 end
for i = 2, #KEYS do redis.call('LPUSH', KEYS[i], ARGV[i + 1]) end
return 1
"""


def celery_message(job: Job, task_id: str | None = None) -> str:
    """The Celery protocol-2 message for ``job``, as kombu's Redis transport stores it."""
    task_id = task_id or str(uuid.uuid4())
    kwargs = job.kwargs()
    body = json.dumps([[], kwargs, _EMBED]).encode()
    envelope: dict[str, Any] = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": job.task,
            "id": task_id,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": task_id,
            "parent_id": None,
            "argsrepr": "()",
            "kwargsrepr": repr(kwargs),
            "origin": _ORIGIN,
            "ignore_result": None,
            "replaced_task_nesting": 0,
            "stamped_headers": None,
            "stamps": {},
        },
        "properties": {
            "correlation_id": task_id,
            "reply_to": str(uuid.uuid4()),
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": job.queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(envelope)


class Producer:
    """Claims delivery ids and queues their jobs atomically on an asyncio Redis client."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.redis = client
        self._script = client.register_script(_ENQUEUE)

    async def enqueue(self, delivery_id: str, jobs: Sequence[Job], event: str = "") -> bool:
        """Queue ``jobs`` unless ``delivery_id`` was seen before; True when it was new."""
        keys = [DELIVERY_PREFIX + delivery_id, *(job.queue for job in jobs)]
        args: list[str | int] = [event or "1", DELIVERY_TTL_S]
        args += [celery_message(job) for job in jobs]
        return bool(await self._script(keys=keys, args=args))
