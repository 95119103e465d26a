"""The review pipeline's ports and values: what it needs from GitHub, Redis and the model."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis

from bot import diff as diffmod
from bot.config import Settings
from bot.findings import ReviewResult
from bot.model.client import ModelBackend
from bot.repo_config import RepoConfig
from workers.state import StateStore, review_key


class PullRequestLike(Protocol):
    """What the pipeline reads of a pull request (``bot.github.PullRequest``)."""

    @property
    def repo(self) -> str: ...
    @property
    def number(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def head_sha(self) -> str: ...
    @property
    def base_ref(self) -> str: ...
    @property
    def draft(self) -> bool: ...
    @property
    def state(self) -> str: ...


class PullDiffLike(Protocol):
    """A pull request's change: unified diff text, or files from the paged ``/files`` API."""

    @property
    def text(self) -> str | None: ...
    @property
    def files(self) -> Sequence[diffmod.ChangedFile]: ...
    @property
    def skipped(self) -> Sequence[diffmod.Skip]: ...


class InstallationPort(Protocol):
    """The GitHub calls a review makes, through one installation (``bot.github.Installation``)."""

    def pull_request(self, repo: str, number: int) -> Any: ...
    def pull_diff(self, repo: str, number: int) -> Any: ...
    def repo_config(self, repo: str, base_ref: str) -> RepoConfig: ...
    def post_comment(self, repo: str, number: int, body: str) -> int: ...
    def start_check(self, repo: str, head_sha: str, name: str = ...) -> int: ...
    def finish_check(
        self,
        repo: str,
        check_run_id: int,
        conclusion: str,
        title: str,
        summary: str,
        annotations: Sequence[Any] = ...,
    ) -> None: ...
    def publish_review(
        self,
        repo: str,
        pr: Any,
        head_sha: str,
        result: ReviewResult,
        config: RepoConfig,
        *,
        check_run_id: int | None,
        notes: Sequence[str] = ...,
        files: Any = ...,
        conclusion: str | None = ...,
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class Next:
    """What the task layer should do next: poll again after ``poll_in`` seconds, or stop."""

    outcome: str
    poll_in: float | None = None
    token: str = ""


@dataclass
class Services:
    """The pipeline's ports: settings, Redis, GitHub per installation, the model backend."""

    settings: Settings
    redis: redis.Redis
    github: Callable[[int], InstallationPort]
    backend: Callable[[], ModelBackend]
    clock: Callable[[], float] = time.time
    schedule: Callable[[Target, Next], None] | None = None  # queue a poll (the task layer's)
    verify_backend: Callable[[], ModelBackend] | None = None  # the second look's model
    store: StateStore = field(init=False)

    def __post_init__(self) -> None:
        self.store = StateStore(self.redis)


@dataclass(frozen=True, slots=True)
class Target:
    """One review: a pull request at one head, through one installation."""

    installation_id: int
    repo: str
    pr: int
    head_sha: str

    @property
    def key(self) -> str:
        """The review's Redis key."""
        return review_key(self.repo, self.pr, self.head_sha)

    def kwargs(self) -> dict[str, Any]:
        """The poll task's keyword arguments."""
        return {
            "installation_id": self.installation_id,
            "repo": self.repo,
            "pr": self.pr,
            "head_sha": self.head_sha,
        }
