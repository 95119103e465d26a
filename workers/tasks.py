"""Celery tasks: thin wrappers that turn JSON identities into driver calls.

secreview.review_pull_request  a receiver job: start (or find) the run of a head, drive it
secreview.scan_repository      a receiver job: start the scan run of a commit, drive it
secreview.run_step             the next step of a run (carries the run's current token)
secreview.sweep                re-drive overdue runs (also run at worker start, and by beat)
secreview.run_command          triage commands
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.exceptions import SoftTimeLimitExceeded

from bot import jobs
from bot.config import Settings
from workers import driver

log = logging.getLogger("secreview.tasks")


def register(app: Celery, settings: Settings) -> None:
    """Register secreview's tasks on ``app``; the runtime is built once per worker process."""

    def schedule(key: str, token: str, countdown: float, queue: str) -> None:
        app.send_task(
            jobs.TASK_STEP,
            kwargs={"key": key, "token": token},
            countdown=countdown if countdown > 0 else None,
            queue=queue,
        )

    runtime = _lazy_runtime(settings, schedule)

    @app.task(name=jobs.TASK_REVIEW)
    def review_pull_request(**kwargs: Any) -> str:
        job = jobs.ReviewJob(**kwargs)
        return _logged(job.delivery_id, lambda: driver.start_review(job, runtime()))

    @app.task(name=jobs.TASK_SCAN)
    def scan_repository(**kwargs: Any) -> str:
        job = jobs.ScanJob(**kwargs)
        return _logged(job.delivery_id, lambda: driver.start_scan(job, runtime()))

    @app.task(name=jobs.TASK_STEP)
    def run_step(key: str, token: str = "") -> str:
        return _logged(key, lambda: driver.drive(key, token, runtime()))

    @app.task(name=jobs.TASK_SWEEP)
    def sweep() -> str:
        def both() -> str:
            rt = runtime()
            return f"re-drove {driver.sweep(rt)} runs, dropped {driver.sweep_unacked(rt)} moot"

        return _logged("sweep", both)

    @app.task(name=jobs.TASK_COMMAND)
    def run_command(**kwargs: Any) -> str:
        job = jobs.CommandJob(**kwargs)
        from workers import commands

        return _logged(job.delivery_id, lambda: commands.run_command(job, runtime()))

    # --- feedback (issue 10): a merged pull request's findings meet their fate ---------------

    @app.task(name=jobs.TASK_MERGED)
    def record_merge(**kwargs: Any) -> str:
        job = jobs.MergedJob(**kwargs)
        from workers import feedback

        return _logged(job.delivery_id, lambda: feedback.record_merge(job, runtime()))


def _logged(ident: str, work: Callable[[], str]) -> str:
    """The task boundary: log the outcome; a failure is logged once (the sweeper retries runs)."""
    try:
        outcome = work()
    except SoftTimeLimitExceeded:
        log.error("%s: stopped at the soft time limit; the sweeper resumes it", ident)
        return "time limit"
    except Exception:
        log.exception("%s: failed; an unfinished run is resumed by the sweeper", ident)
        raise
    log.info("%s: %s", ident, outcome)
    return outcome


def _lazy_runtime(settings: Settings, schedule: driver.Schedule) -> Callable[[], driver.Runtime]:
    """Connect on first use (not at import or fork): Redis, the GitHub App, the models."""
    built: list[driver.Runtime] = []

    def get() -> driver.Runtime:
        if not built:
            from bot.github.client import GitHubApp
            from bot.redis_client import connect

            app = GitHubApp(settings)
            built.append(
                driver.Runtime(
                    settings=settings,
                    redis=connect(settings.redis_url),
                    github=app.installation,
                    schedule=schedule,
                )
            )
        return built[0]

    return get
