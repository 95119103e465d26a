"""``(event, action)`` → job values: what the receiver enqueues for each webhook it accepts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.github.commands import WRITE_ASSOCIATIONS, find_command
from bot.github.webhooks import Delivery
from bot.jobs import CommandJob, Job, MergedJob, ReviewJob, ScanJob

Handler = Callable[[Delivery, "RouteContext"], "Routed"]
REVIEW_ACTIONS = ("opened", "synchronize", "reopened", "ready_for_review")


@dataclass(frozen=True, slots=True)
class RouteContext:
    """What routing may know besides the delivery: the App's own id (for check runs)."""

    app_id: str | None = None


@dataclass(frozen=True, slots=True)
class Routed:
    """The jobs a delivery starts, and a short note for the log when it starts none."""

    jobs: tuple[Job, ...] = ()
    note: str = ""


@dataclass
class Router:
    """A table of handlers by ``(event, action)``; ``action`` None matches every action."""

    handlers: dict[tuple[str, str | None], Handler] = field(default_factory=dict)

    def register(self, event: str, *actions: str) -> Callable[[Handler], Handler]:
        """Decorator: handle ``event`` (with one of ``actions``, or any when none are given)."""

        def add(handler: Handler) -> Handler:
            for action in actions or (None,):
                self.handlers[(event, action)] = handler
            return handler

        return add

    def route(self, delivery: Delivery, ctx: RouteContext | None = None) -> Routed:
        """The jobs for ``delivery`` (none, with a note, for events secreview ignores)."""
        handler = self.handlers.get((delivery.event, delivery.action)) or self.handlers.get(
            (delivery.event, None)
        )
        if handler is None:
            return Routed(note=f"ignored {delivery.event}.{delivery.action or '-'}")
        return handler(delivery, ctx or RouteContext())


router = Router()


def _get(obj: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(key)
    return obj


def _identity(delivery: Delivery) -> tuple[int, str] | None:
    installation = _get(delivery.payload, "installation", "id")
    repo = _get(delivery.payload, "repository", "full_name")
    if not isinstance(installation, int) or not isinstance(repo, str) or "/" not in repo:
        return None
    return installation, repo


@router.register("pull_request", *REVIEW_ACTIONS)
def pull_request(delivery: Delivery, ctx: RouteContext) -> Routed:
    """A PR opened or pushed to: review its head (the worker skips drafts unless configured)."""
    ident = _identity(delivery)
    number = _get(delivery.payload, "pull_request", "number")
    head = _get(delivery.payload, "pull_request", "head", "sha")
    if ident is None or not isinstance(number, int) or not isinstance(head, str):
        return Routed(note="pull_request without installation, number or head sha")
    trigger = delivery.action
    job = ReviewJob(ident[0], ident[1], number, head, delivery.delivery_id, trigger)  # type: ignore[arg-type]
    return Routed((job,))


@router.register("pull_request", "closed")
def pull_request_closed(delivery: Delivery, ctx: RouteContext) -> Routed:
    """A merged PR: record the fate of its findings (feedback); a PR closed unmerged: nothing."""
    ident = _identity(delivery)
    number = _get(delivery.payload, "pull_request", "number")
    if _get(delivery.payload, "pull_request", "merged") is not True:
        return Routed(note="pull request closed without merging")
    if ident is None or not isinstance(number, int):
        return Routed(note="pull_request without installation or number")
    return Routed((MergedJob(ident[0], ident[1], number, delivery.delivery_id),))


@router.register("issue_comment", "created")
def issue_comment(delivery: Delivery, ctx: RouteContext) -> Routed:
    """``/secreview`` commands; only users with write access are obeyed, others get a reply."""
    payload = delivery.payload
    line = find_command(str(_get(payload, "comment", "body") or ""))
    ident = _identity(delivery)
    number = _get(payload, "issue", "number")
    if line is None or ident is None or not isinstance(number, int):
        return Routed(note="comment without a secreview command")
    if _get(payload, "comment", "user", "type") == "Bot":
        return Routed(note="command from a bot ignored")
    on_pr = _get(payload, "issue", "pull_request") is not None
    author = str(_get(payload, "comment", "user", "login") or "")
    comment_id = int(_get(payload, "comment", "id") or 0)
    installation, repo = ident
    if _get(payload, "comment", "author_association") not in WRITE_ASSOCIATIONS:
        refusal = CommandJob(
            installation, repo, number, comment_id, author, line, delivery.delivery_id, False
        )
        return Routed((refusal,))
    verb = line.split()[1] if len(line.split()) > 1 else "help"
    if verb == "review" and on_pr:
        return Routed((ReviewJob(installation, repo, number, "", delivery.delivery_id, "command"),))
    if verb == "scan":
        pr = number if on_pr else None
        return Routed((ScanJob(installation, repo, "", delivery.delivery_id, author, pr),))
    job = CommandJob(installation, repo, number, comment_id, author, line, delivery.delivery_id)
    return Routed((job,))


@router.register("check_run", "rerequested", "requested_action")
def check_run(delivery: Delivery, ctx: RouteContext) -> Routed:
    """Re-run requested on secreview's check: review each of its pull requests again."""
    run = _get(delivery.payload, "check_run") or {}
    app_id = _get(run, "app", "id")
    if ctx.app_id is not None and str(app_id) != str(ctx.app_id):
        return Routed(note="check run of another app")
    ident = _identity(delivery)
    head = _get(run, "head_sha")
    if ident is None or not isinstance(head, str):
        return Routed(note="check_run without installation or head sha")
    jobs = tuple(
        ReviewJob(ident[0], ident[1], pr["number"], head, delivery.delivery_id, "rerun")
        for pr in (_get(run, "pull_requests") or [])
        if isinstance(pr, Mapping) and isinstance(pr.get("number"), int)
    )
    return Routed(jobs, "" if jobs else "check run without pull requests")


@router.register("installation")
@router.register("installation_repositories")
def installation(delivery: Delivery, ctx: RouteContext) -> Routed:
    """Installations change: logged; tokens are minted per job, so there is nothing to do."""
    account = _get(delivery.payload, "installation", "account", "login")
    return Routed(note=f"installation {delivery.action} for {account}")
