"""``/secreview`` commands that are not reviews or scans: triage, help, and refusals.

``ignore`` and ``accept-risk`` open a pull request that adds the suppression to
``.github/secreview.yml`` on the base branch, so code owners review who silenced what; an
expired acceptance simply stops applying and the finding comes back.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import yaml

from bot.github.commands import USAGE, Command, CommandError, parse_command
from bot.jobs import CommandJob
from bot.repo_config import CONFIG_PATH, load_yaml, parse_repo_config

if TYPE_CHECKING:
    from workers.driver import Runtime

WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})


def refusal(job: CommandJob) -> str:
    """The reply to a command from someone without write access."""
    return (
        f"@{job.author} secreview only takes commands from people with write access to this "
        "repository."
    )


def answer(job: CommandJob) -> str | Command:
    """A reply (refusals, help, errors), or the triage command to carry out."""
    if not job.authorized:
        return refusal(job)
    try:
        command = parse_command(job.command)
    except CommandError as exc:
        return f"@{job.author} {exc}"
    if command.verb in ("help", "review", "scan"):
        return USAGE
    return command


def with_suppression(text: str | None, command: Command) -> str:
    """The config file with ``command``'s suppression added (validated before it is proposed)."""
    data: dict[str, Any] = (load_yaml(text) if text else None) or {}  # no aliases, capped
    key = "ignore" if command.verb == "ignore" else "accept_risk"
    entry: dict[str, Any] = {"fingerprint": command.fingerprint, "reason": command.reason}
    if command.until is not None:
        entry["until"] = command.until  # a YAML date, as the config parser expects
    entries = [e for e in data.get(key) or [] if e.get("fingerprint") != command.fingerprint]
    data[key] = [*entries, entry]
    out = yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    parse_repo_config(out.encode())  # never propose a file the bot itself would reject
    return out


def run_command(job: CommandJob, svc: Runtime) -> str:
    """Reply to the command, or open the pull request that records a suppression."""
    inst: Any = svc.github(job.installation_id)
    outcome = answer(job)
    if isinstance(outcome, str):
        inst.post_comment(job.repo, job.pr, outcome)
        return "answered"
    if inst.permission(job.repo, job.author) not in WRITE_PERMISSIONS:
        inst.post_comment(job.repo, job.pr, refusal(job))
        return "refused"
    pr = inst.pull_request(job.repo, job.pr)
    text = inst.file_text(job.repo, CONFIG_PATH, pr.base_ref)
    until = f" until {outcome.until.isoformat()}" if outcome.until else ""
    title = f"secreview: {outcome.verb} {outcome.fingerprint}{until}"
    body = (
        f"Requested by @{job.author} in #{job.pr}: {outcome.reason}\n\n"
        f"Recorded on {dt.datetime.now(dt.UTC).date().isoformat()}. Merging this makes "
        "secreview stop reporting the finding"
        + (f" until {outcome.until.isoformat()}." if outcome.until else ".")
    )
    number = inst.propose_config_change(
        job.repo,
        pr.base_ref,
        f"secreview/{outcome.verb}-{outcome.fingerprint}",
        with_suppression(text, outcome),
        title,
        body,
    )
    inst.post_comment(
        job.repo,
        job.pr,
        f"@{job.author} proposed in #{number}: it applies once a code owner merges it.",
    )
    return f"proposed #{number}"
