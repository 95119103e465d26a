"""``/secreview`` commands that are not reviews or scans: refusals, help, triage guidance."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.commands import USAGE, CommandError, parse_command
from bot.jobs import CommandJob

if TYPE_CHECKING:
    from workers.pipeline import Services


def answer(job: CommandJob) -> str:
    """The reply to ``job``'s command (pure)."""
    if not job.authorized:
        return (
            f"@{job.author} secreview only takes commands from owners, members and "
            "collaborators of this repository."
        )
    try:
        command = parse_command(job.command)
    except CommandError as exc:
        return f"@{job.author} {exc}"
    if command.verb in ("help", "review", "scan"):
        return USAGE
    key = "ignore" if command.verb == "ignore" else "accept_risk"
    until = f"\n    until: {command.until.isoformat()}" if command.until else ""
    return (
        f"@{job.author} suppressions are read from `.github/secreview.yml` on the base branch "
        "only, so that code owners review them. Add this entry there:\n\n"
        f"```yaml\n{key}:\n  - fingerprint: {command.fingerprint}\n"
        f"    reason: {command.reason!r}{until}\n```"
    )


def run_command(job: CommandJob, svc: Services) -> str:
    """Reply to the command on its pull request or issue."""
    inst = svc.github(job.installation_id)
    inst.post_comment(job.repo, job.pr, answer(job))
    return f"answered {job.command.split()[1] if len(job.command.split()) > 1 else 'help'}"
