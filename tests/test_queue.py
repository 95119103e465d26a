"""The receiver writes Celery messages itself (bot/queue.py): they must be exactly what the
installed Celery and kombu write for the same task, checked against a real send on real Redis."""

from __future__ import annotations

import base64
import json

import redis
from celery import Celery

from bot import jobs
from bot.queue import celery_message

# Values that differ per message or per process by design.
PER_MESSAGE = {"id", "root_id", "origin", "correlation_id", "reply_to", "delivery_tag"}


def celery_sent(redis_url: str, job: jobs.Job) -> dict[str, object]:
    """What Celery's own producer puts on the queue's list for ``job``."""
    app = Celery("secreview-test", broker=redis_url, set_as_current=False)
    app.conf.update(task_serializer="json", accept_content=["json"], result_backend=None)
    client = redis.Redis.from_url(redis_url)
    client.delete(job.queue)
    app.send_task(job.task, kwargs=job.kwargs(), queue=job.queue)
    raw = client.rpop(job.queue)
    client.close()
    app.close()
    assert raw is not None
    message: dict[str, object] = json.loads(raw)
    return message


def without(d: object, keys: set[str]) -> dict[str, object]:
    assert isinstance(d, dict)
    return {k: v for k, v in d.items() if k not in keys}


def test_our_messages_are_the_ones_celery_writes(redis_url: str) -> None:
    for job in (
        jobs.ReviewJob(3, "octo/shop", 7, "d" * 40, "delivery-1", "synchronize"),
        jobs.ScanJob(3, "octo/shop", "main", "delivery-2", "alice", pr=7),
        jobs.CommandJob(3, "octo/shop", 7, 11, "alice", "/secreview help", "delivery-3"),
    ):
        theirs = celery_sent(redis_url, job)
        ours = json.loads(celery_message(job))
        assert set(ours) == set(theirs)
        assert ours["content-type"] == theirs["content-type"] == "application/json"
        assert ours["content-encoding"] == theirs["content-encoding"]
        their_headers, our_headers = theirs["headers"], ours["headers"]
        assert without(our_headers, PER_MESSAGE | {"ignore_result"}) == without(
            their_headers, PER_MESSAGE | {"ignore_result"}
        )
        assert without(ours["properties"], PER_MESSAGE) == without(
            theirs["properties"], PER_MESSAGE
        )
        body_theirs = json.loads(base64.b64decode(str(theirs["body"])))
        body_ours = json.loads(base64.b64decode(ours["body"]))
        assert body_ours == body_theirs
