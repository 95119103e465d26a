"""Celery tasks: thin wrappers that turn JSON identities into pipeline calls and schedule polls."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Celery, Task

from bot import jobs
from bot.config import Settings
from bot.errors import GitHubError, ModelCapacity, RateLimited, SecreviewError
from bot.model.client import backoff_delay
from workers import pipeline

log = logging.getLogger("secreview.tasks")

MAX_RETRIES = 8


def register(app: Celery, settings: Settings) -> None:
    """Register secreview's tasks on ``app``; services are built once per worker process."""

    def schedule_poll(target: pipeline.Target, step: pipeline.Next) -> None:
        app.send_task(
            jobs.TASK_POLL,
            kwargs={**target.kwargs(), "token": step.token},
            countdown=step.poll_in,
            queue=jobs.QUEUE_POLLS,
        )

    services = _lazy_services(settings, schedule_poll)

    @app.task(name=jobs.TASK_REVIEW, bind=True, max_retries=MAX_RETRIES)
    def review_pull_request(self: Task, **kwargs: Any) -> str:
        job = jobs.ReviewJob(**kwargs)
        with _boundary(self, job.delivery_id):
            step, target = pipeline.review_pull_request(job, services())
            return _follow(step, target, schedule_poll)
        return "retrying"

    @app.task(name=jobs.TASK_POLL, bind=True, max_retries=MAX_RETRIES)
    def poll_model_job(self: Task, token: str = "", **kwargs: Any) -> str:
        target = pipeline.Target(**kwargs)
        with _boundary(self, target.key):
            step = pipeline.poll_model_job(target, services(), token)
            return _follow(step, target, schedule_poll)
        return "retrying"

    def schedule_scan_poll(key: str, polls: int) -> None:
        countdown = pipeline.poll_delay(polls, settings.first_poll_s)
        app.send_task(
            jobs.TASK_POLL_SCAN,
            kwargs={"key": key, "polls": polls + 1},
            countdown=countdown,
            queue=jobs.QUEUE_POLLS,
        )

    @app.task(name=jobs.TASK_SCAN, bind=True, max_retries=MAX_RETRIES)
    def scan_repository(self: Task, **kwargs: Any) -> str:
        job = jobs.ScanJob(**kwargs)
        with _boundary(self, job.delivery_id):
            from workers import scan

            outcome, key = scan.scan_repository(job, services())
            if key is not None:
                schedule_scan_poll(key, 0)
            log.info("%s", outcome)
            return outcome
        return "retrying"

    @app.task(name=jobs.TASK_POLL_SCAN, bind=True, max_retries=MAX_RETRIES)
    def poll_scan(self: Task, key: str, polls: int = 0) -> str:
        with _boundary(self, key):
            from workers import scan

            outcome, again = scan.poll_scan(key, services())
            if again:
                schedule_scan_poll(key, polls)
            log.info("%s", outcome)
            return outcome
        return "retrying"

    @app.task(name=jobs.TASK_COMMAND, bind=True, max_retries=MAX_RETRIES)
    def run_command(self: Task, **kwargs: Any) -> str:
        job = jobs.CommandJob(**kwargs)
        with _boundary(self, job.delivery_id):
            from workers import commands

            return commands.run_command(job, services())
        return "retrying"

    # --- feedback (issue 10): a merged pull request's findings meet their fate ---------------

    @app.task(name=jobs.TASK_MERGED, bind=True, max_retries=MAX_RETRIES)
    def record_merge(self: Task, **kwargs: Any) -> str:
        job = jobs.MergedJob(**kwargs)
        with _boundary(self, job.delivery_id):
            from workers import feedback

            return feedback.record_merge(job, services())
        return "retrying"


def _follow(
    step: pipeline.Next,
    target: pipeline.Target | None,
    schedule_poll: Callable[[pipeline.Target, pipeline.Next], None],
) -> str:
    if step.poll_in is not None and target is not None:
        schedule_poll(target, step)
    log.info("%s", step.outcome)
    return step.outcome


def _lazy_services(
    settings: Settings, schedule_poll: Callable[[pipeline.Target, pipeline.Next], None]
) -> Callable[[], pipeline.Services]:
    """Connect on first use (not at import or fork): Redis, the GitHub App, the model backend."""
    built: list[pipeline.Services] = []

    def get() -> pipeline.Services:
        if not built:
            import redis

            from bot.github.client import GitHubApp
            from bot.model.client import create_backend
            from bot.review import verify

            app = GitHubApp(settings)
            built.append(
                pipeline.Services(
                    settings=settings,
                    redis=redis.Redis.from_url(settings.redis_url),
                    github=app.installation,
                    # No in-process retry sleeps: a capacity error retries the task later.
                    backend=lambda: create_backend(settings, max_retries=0),
                    schedule=schedule_poll,
                    verify_backend=lambda: create_backend(
                        settings,
                        model=settings.verify_model,
                        response_format=verify.response_format(),
                        max_retries=0,
                    ),
                )
            )
        return built[0]

    return get


class _boundary:
    """The task boundary: retry what is worth retrying, log the rest once, never loop forever."""

    def __init__(self, task: Task, ident: str) -> None:
        self.task = task
        self.ident = ident

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        retries = self.task.request.retries
        if isinstance(exc, RateLimited):
            countdown = max(1.0, exc.retry_after or 60.0)
        elif isinstance(exc, (ModelCapacity, GitHubError)):
            countdown = backoff_delay(retries)
        elif isinstance(exc, SecreviewError):
            log.error("%s: %s (%s)", self.ident, exc, exc.reason)
            return True
        else:
            log.exception("%s: unexpected error", self.ident)
            countdown = backoff_delay(retries)
        if retries >= MAX_RETRIES:
            log.error("%s: giving up after %d retries: %s", self.ident, retries, exc)
            return True
        log.warning("%s: %s; retrying in %.0f s", self.ident, exc, countdown)
        # Celery's Retry exception must escape the task body; raise it from here.
        raise self.task.retry(exc=exc, countdown=countdown)
