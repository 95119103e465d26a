"""The Celery application factory: Redis broker, JSON only, late acks, time limits, a sweeper.

Every task is bounded (soft and hard time limits); the visibility timeout — after which a
message a dead worker held comes back — is derived from them. A sweeper thread in every worker
(one sweep at a time across the fleet, by a Redis lock) re-drives runs whose next step is
overdue, so a lost message or a worker killed mid-review only delays a review.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from celery import Celery, signals

from bot import jobs
from bot.config import Settings

log = logging.getLogger("secreview.worker")


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings for secreview's workers (and for the receiver's producer to agree with)."""
    return {
        "broker_url": settings.redis_url,
        "broker_connection_retry_on_startup": True,
        "broker_connection_retry": True,
        "broker_connection_max_retries": None,  # a Redis restart is waited out, never fatal
        "broker_transport_options": _transport_options(settings.visibility_timeout_s),
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_backend": None,
        "task_ignore_result": True,
        # A task is acknowledged only after it ran, and requeued when its worker dies mid-task:
        # every task is idempotent, so running twice is safe and losing one is not.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_time_limit": settings.task_time_limit_s,
        "task_soft_time_limit": settings.task_soft_limit_s,
        "worker_prefetch_multiplier": 1,
        "task_default_queue": jobs.QUEUE_REVIEWS,
        "task_routes": {
            jobs.TASK_REVIEW: {"queue": jobs.QUEUE_REVIEWS},
            jobs.TASK_STEP: {"queue": jobs.QUEUE_POLLS},
            jobs.TASK_SWEEP: {"queue": jobs.QUEUE_POLLS},
            jobs.TASK_SCAN: {"queue": jobs.QUEUE_SCANS},
            jobs.TASK_COMMAND: {"queue": jobs.QUEUE_COMMANDS},
            jobs.TASK_MERGED: {"queue": jobs.QUEUE_COMMANDS},
        },
        # For deployments that run `celery beat` too; every worker also sweeps on its own.
        "beat_schedule": {
            "secreview-sweep": {"task": jobs.TASK_SWEEP, "schedule": settings.sweep_interval_s}
        },
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
    }


def _transport_options(visibility_timeout: int) -> dict[str, Any]:
    # kombu sweeps for abandoned messages every interval × throttle seconds (10 × 10 by default);
    # a short visibility timeout is only useful with a sweep at least as frequent.
    interval = max(1, min(10, visibility_timeout // 6))
    return {
        "visibility_timeout": visibility_timeout,
        "unacked_restore_interval": interval,
        "unacked_restore_throttle": 1 if visibility_timeout < 600 else 10,
        "health_check_interval": 10,
        "socket_keepalive": True,
        "retry_on_timeout": True,
    }


def create_celery(settings: Settings, *, sweeper: bool = True) -> Celery:
    """A Celery app bound to ``settings`` with secreview's tasks registered."""
    app = Celery("secreview", set_as_current=False)
    app.conf.update(celery_config(settings))
    from workers import tasks

    tasks.register(app, settings)
    if sweeper:
        _sweep_in_every_worker(app, settings)
    return app


def _sweep_in_every_worker(app: Celery, settings: Settings) -> None:
    """Sweep at worker start, then every ``sweep_interval_s`` (one worker at a time)."""

    halt = threading.Event()

    def start(sender: Any = None, **_: Any) -> None:
        if sender is None or getattr(sender, "app", None) is not app:
            return
        threading.Thread(
            target=_sweep_loop, args=(settings, halt), daemon=True, name="secreview-sweeper"
        ).start()

    def stop(sender: Any = None, **_: Any) -> None:
        halt.set()

    signals.worker_ready.connect(start, weak=False)
    signals.worker_shutdown.connect(stop, weak=False)


def _sweep_loop(settings: Settings, stop: threading.Event) -> None:
    from bot.redis_client import connect
    from workers import driver

    client = connect(settings.redis_url)
    schedule = _scheduler(settings)
    rt = driver.Runtime(settings=settings, redis=client, github=_no_github, schedule=schedule)
    interval = settings.sweep_interval_s
    while True:
        with contextlib.suppress(Exception):  # Redis down: try again next time
            if client.set("secreview:sweeper", "1", nx=True, ex=max(1, interval - 1)):
                count = driver.sweep(rt)
                if count:
                    log.warning("sweeper re-drove %d overdue runs", count)
                dropped = driver.sweep_unacked(rt)
                if dropped:
                    log.info("sweeper dropped %d moot unacked messages", dropped)
        if stop.wait(interval):
            return


def _scheduler(settings: Settings) -> Any:
    """A step scheduler for the sweeper thread (its own producer, not the worker's)."""
    app = Celery("secreview-sweeper", set_as_current=False)
    app.conf.update(celery_config(settings))

    def schedule(key: str, token: str, countdown: float, queue: str) -> None:
        app.send_task(
            jobs.TASK_STEP,
            kwargs={"key": key, "token": token},
            countdown=countdown if countdown > 0 else None,
            queue=queue,
        )

    return schedule


def _no_github(installation_id: int) -> Any:
    raise RuntimeError("the sweeper never talks to GitHub")
