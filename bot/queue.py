"""Fast, atomic enqueue for the webhook receiver: dedupe a delivery and queue its jobs in one step.

Celery's ``send_task`` costs far more than the rest of a webhook request (it measured about 14 %
of a bare endpoint's throughput), so the receiver writes the Celery protocol-2 message itself,
exactly as kombu's Redis transport stores it (``LPUSH`` of a JSON envelope onto the queue's
list), from a Lua script that first claims the ``X-GitHub-Delivery`` id with ``SET NX EX``.
Either the delivery is recorded *and* its jobs are queued, or neither happens; a redelivery
finds the id taken and queues nothing.

The message format is Celery's protocol 2 as the pinned Celery/kombu versions write it; a test
builds the same task through Celery's own API and compares, and the end-to-end tests have real
workers consume it.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
import socket
import uuid
from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis

from bot.jobs import Job

DELIVERY_TTL_S = 7 * 24 * 3600
DELIVERY_PREFIX = "secreview:delivery:"
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}
_ORIGIN = f"{os.getpid()}@{socket.gethostname()}"

# Any number of deliveries in one call. ARGV: TTL, then per delivery: its key, its event, the
# number of jobs, and (queue, message) per job. Returns 1 (queued) or 0 (seen before) each.
_ENQUEUE = """
local ttl, i, out = ARGV[1], 2, {}
while i <= #ARGV do
  local key, event, jobs = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2])
  i = i + 3
  if redis.call('SET', key, event, 'NX', 'EX', ttl) then
    for j = 0, jobs - 1 do redis.call('LPUSH', ARGV[i + 2 * j], ARGV[i + 2 * j + 1]) end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
  i = i + 2 * jobs
end
return out
"""


_PROCESS_ID = uuid.uuid4().hex[:20]
_SEQUENCE = itertools.count()
_REPLY_TO = str(uuid.uuid4())  # secreview's tasks return nothing; Celery still expects one


def _new_id() -> str:
    """A unique task id, cheaper than uuid4 per message: a per-process random part + a counter."""
    n = next(_SEQUENCE)
    return (
        f"{_PROCESS_ID[:8]}-{_PROCESS_ID[8:12]}-{_PROCESS_ID[12:16]}-{_PROCESS_ID[16:20]}-{n:012x}"
    )


def celery_message(job: Job, task_id: str | None = None) -> str:
    """The Celery protocol-2 message for ``job``, as kombu's Redis transport stores it."""
    task_id = task_id or _new_id()
    kwargs = job.kwargs()
    body = orjson.dumps([[], kwargs, _EMBED])
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
            "reply_to": _REPLY_TO,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": job.queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": task_id,
        },
    }
    return orjson.dumps(envelope).decode()


class Producer:
    """Claims delivery ids and queues their jobs atomically on an asyncio Redis client.

    Concurrent deliveries are sent together: while one script call is in flight, the next ones
    wait and then go as one call (atomic as a whole). Under load this turns many small round
    trips into a few, without delaying a lone delivery.
    """

    def __init__(self, client: aioredis.Redis) -> None:
        self.redis = client
        self._script = client.register_script(_ENQUEUE)
        self._pending: list[tuple[list[str | int], asyncio.Future[bool]]] = []
        self._flushing = False

    async def enqueue(self, delivery_id: str, jobs: Sequence[Job], event: str = "") -> bool:
        """Queue ``jobs`` unless ``delivery_id`` was seen before; True when it was new."""
        args: list[str | int] = [DELIVERY_PREFIX + delivery_id, event or "1", len(jobs)]
        for job in jobs:
            args += [job.queue, celery_message(job)]
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((args, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                argv: list[str | int] = [DELIVERY_TTL_S]
                for args, _ in batch:
                    argv += args
                try:
                    results = await self._script(keys=[], args=argv)
                except Exception as exc:  # noqa: BLE001 — each waiting delivery gets the failure
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(bool(result))
        finally:
            self._flushing = False
