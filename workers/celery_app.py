"""The Celery application factory: Redis broker, JSON only, late acks, a queue per kind of work."""

from __future__ import annotations

from typing import Any

from celery import Celery

from bot import jobs
from bot.config import Settings


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for secreview's workers (and for the receiver's producer to agree with)."""
    return {
        "broker_url": settings.redis_url,
        "broker_connection_retry_on_startup": True,
        # Unacked messages come back after this long; every task here is short (model jobs are
        # polled, never awaited), so anything beyond a few minutes means a dead worker.
        "broker_transport_options": _transport_options(settings.visibility_timeout_s),
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_backend": None,
        "task_ignore_result": True,
        # A task is acknowledged only after it ran, and requeued when its worker dies mid-task:
        # every task is idempotent, so running twice is safe and losing one is not.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": jobs.QUEUE_REVIEWS,
        "task_routes": {
            jobs.TASK_REVIEW: {"queue": jobs.QUEUE_REVIEWS},
            jobs.TASK_POLL: {"queue": jobs.QUEUE_POLLS},
            jobs.TASK_POLL_SCAN: {"queue": jobs.QUEUE_POLLS},
            jobs.TASK_SCAN: {"queue": jobs.QUEUE_SCANS},
            jobs.TASK_COMMAND: {"queue": jobs.QUEUE_COMMANDS},
            jobs.TASK_MERGED: {"queue": jobs.QUEUE_COMMANDS},
        },
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
    }


def _transport_options(visibility_timeout: int) -> dict[str, int]:
    # kombu sweeps for abandoned messages every interval × throttle seconds (10 × 10 by default);
    # a short visibility timeout is only useful with a sweep at least as frequent.
    interval = max(1, min(10, visibility_timeout // 6))
    return {
        "visibility_timeout": visibility_timeout,
        "unacked_restore_interval": interval,
        "unacked_restore_throttle": 1 if visibility_timeout < 600 else 10,
    }


def create_celery(settings: Settings) -> Celery:
    """A Celery app bound to ``settings`` with secreview's tasks registered."""
    app = Celery("secreview", set_as_current=False)
    app.conf.update(celery_config(settings))
    from workers import tasks

    tasks.register(app, settings)
    return app
