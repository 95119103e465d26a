"""Triage commands from pull-request comments: ignore, accept-risk, and refusals."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.errors import SecreviewError
from bot.jobs import CommandJob

if TYPE_CHECKING:
    from workers.pipeline import Services


def run_command(job: CommandJob, svc: Services) -> str:
    """Carry out (or refuse) the command in ``job``."""
    raise SecreviewError(f"command {job.command!r} is not available yet")
