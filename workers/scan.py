"""Full-repository scans requested through the App (tarball → plan → async batches → SARIF)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.errors import SecreviewError
from bot.jobs import ScanJob

if TYPE_CHECKING:
    from workers.pipeline import Services


def scan_repository(job: ScanJob, svc: Services) -> str:
    """Scan ``job.repo`` at ``job.ref``."""
    raise SecreviewError(f"scanning {job.repo} through the App is not available yet")
