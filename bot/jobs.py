"""Job values: what the receiver enqueues and the workers run, as JSON identities only.

A job never carries a token, a diff or a prompt (DESIGN.md §7): the worker mints its own
installation token and fetches what it needs. ``task`` names and ``queue`` names are the
contract between the receiver's producer (``workers/producer.py``) and the Celery workers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

# Queues: PR reviews never wait behind a full-repository scan; polls never wait behind either.
QUEUE_REVIEWS = "secreview.reviews"
QUEUE_POLLS = "secreview.polls"
QUEUE_SCANS = "secreview.scans"
QUEUE_COMMANDS = "secreview.commands"
QUEUES = (QUEUE_REVIEWS, QUEUE_POLLS, QUEUE_SCANS, QUEUE_COMMANDS)

TASK_REVIEW = "secreview.review_pull_request"
TASK_SCAN = "secreview.scan_repository"
TASK_COMMAND = "secreview.run_command"
TASK_MERGED = "secreview.record_merge"
TASK_STEP = "secreview.run_step"  # the next step of a run (workers only)
TASK_SWEEP = "secreview.sweep"  # re-drive overdue runs (workers only)

ReviewTrigger = Literal["opened", "synchronize", "reopened", "ready_for_review", "command", "rerun"]


@dataclass(frozen=True, slots=True)
class ReviewJob:
    """Review pull request ``pr`` of ``repo`` at ``head_sha``."""

    task: ClassVar[str] = TASK_REVIEW
    queue: ClassVar[str] = QUEUE_REVIEWS

    installation_id: int
    repo: str  # "owner/name"
    pr: int
    head_sha: str
    delivery_id: str
    trigger: ReviewTrigger = "opened"

    def kwargs(self) -> dict[str, Any]:
        """The task's keyword arguments (JSON types only)."""
        # Spelled out: this runs for every webhook and asdict's deep copy costs more.
        return {
            "installation_id": self.installation_id,
            "repo": self.repo,
            "pr": self.pr,
            "head_sha": self.head_sha,
            "delivery_id": self.delivery_id,
            "trigger": self.trigger,
        }


@dataclass(frozen=True, slots=True)
class ScanJob:
    """Scan the whole of ``repo`` at ``ref`` (a branch, tag or sha); optionally upload SARIF."""

    task: ClassVar[str] = TASK_SCAN
    queue: ClassVar[str] = QUEUE_SCANS

    installation_id: int
    repo: str
    ref: str
    delivery_id: str
    requested_by: str = ""
    pr: int | None = None  # where to answer, when the scan was asked for in a PR comment
    upload_sarif: bool = True

    def kwargs(self) -> dict[str, Any]:
        """The task's keyword arguments (JSON types only)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class CommandJob:
    """A triage command from a PR comment (``ignore``, ``accept-risk``) or a refusal to answer."""

    task: ClassVar[str] = TASK_COMMAND
    queue: ClassVar[str] = QUEUE_COMMANDS

    installation_id: int
    repo: str
    pr: int
    comment_id: int
    author: str
    command: str  # the command line as written, e.g. "/secreview ignore 1a2b3c test fixture"
    delivery_id: str
    authorized: bool = True

    def kwargs(self) -> dict[str, Any]:
        """The task's keyword arguments (JSON types only)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True, slots=True)
class MergedJob:
    """A pull request was merged: record where each of the bot's findings on it ended."""

    task: ClassVar[str] = TASK_MERGED
    queue: ClassVar[str] = QUEUE_COMMANDS

    installation_id: int
    repo: str
    pr: int
    delivery_id: str

    def kwargs(self) -> dict[str, Any]:
        """The task's keyword arguments (JSON types only)."""
        return dataclasses.asdict(self)


Job = ReviewJob | ScanJob | CommandJob | MergedJob
