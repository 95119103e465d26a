"""``secreview worker``: a Celery worker on secreview's queues; other options go to Celery."""

from __future__ import annotations

import argparse
from typing import Any

from bot import jobs
from bot.config import Settings
from bot.errors import UsageError


def register(sub: Any) -> None:
    """Add the ``worker`` subcommand to the ``secreview`` parser."""
    worker = sub.add_parser(
        "worker",
        help="run a Celery worker on secreview's queues",
        description="Run a Celery worker. Options after the queues go to Celery unchanged, "
        "e.g. `secreview worker --concurrency 4 --loglevel INFO`.",
    )
    worker.add_argument(
        "--queues",
        "-Q",
        default=",".join(jobs.QUEUES),
        help="comma-separated queues (default: all of them; run scans on their own worker with "
        f"-Q {jobs.QUEUE_SCANS})",
    )
    worker.add_argument("celery_args", nargs=argparse.REMAINDER, help="options for Celery")
    worker.set_defaults(func=run_worker)


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Start the worker in this process (blocks until it is stopped)."""
    from workers.celery_app import create_celery

    unknown = [q for q in args.queues.split(",") if q and q not in jobs.QUEUES]
    if unknown:
        raise UsageError(f"unknown queue {unknown[0]!r}; known: {', '.join(jobs.QUEUES)}")
    import click

    from bot.cli.doctor import require_ready  # issue 13: refuse to start half-configured

    require_ready(settings, "worker")
    app = create_celery(settings)
    try:
        app.worker_main(["worker", "-Q", args.queues, *args.celery_args])
    except click.exceptions.ClickException as exc:
        raise UsageError(f"celery worker: {exc.format_message()}") from None
    return 0
