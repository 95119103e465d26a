"""The only module that talks to GitHub: App auth, pull requests, diffs, publishing, SARIF.

PyGithub's ``GithubIntegration`` mints installation tokens from the App's JWT; its ``Requester``
carries every REST call (auth header, base URL for GitHub Enterprise, connection reuse). Calls
go through ``_call`` so errors map onto ``GitHubError``/``RateLimited`` in one place and no
retry sleeps inside a worker: a rate-limited task is retried later by Celery.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from github import Auth, Github, GithubException, GithubIntegration

from bot import diff as diffmod
from bot.config import Settings
from bot.diff import ChangedFile, Skip
from bot.errors import GitHubError, PublishBlocked, RateLimited
from bot.github.publishing import FIXED_PREFIX, Publishing, _message, posted_from
from bot.redact import guard
from bot.repo_config import (
    CONFIG_PATH,
    ORG_CONFIG_PATH,
    ORG_CONFIG_REPO,
    RepoConfig,
    merge_repo_config,
    org_config_label,
    parse_repo_config,
)
from bot.report.publish import FINDING_MARKER, Posted
from bot.review import feedback
from bot.review.prompts import PreviousFinding

log = logging.getLogger("secreview.github")

DIFF_MEDIA_TYPE = "application/vnd.github.diff"
TOKEN_MARGIN_S = 300  # renew installation tokens 5 minutes before they expire
MAX_FILES = 3000  # GET pulls/{n}/files lists at most 3000 files
ORG_CONFIG_TTL_S = 300.0  # how long a worker trusts the owner's shared config it read
MAX_TARBALL_BYTES = 512 << 20  # a scan's compressed archive; streamed to a temporary file


@dataclass(frozen=True, slots=True)
class PullRequest:
    """The parts of a pull request a review needs."""

    repo: str
    number: int
    title: str
    body: str
    head_sha: str
    head_ref: str
    head_repo: str
    base_ref: str
    base_sha: str
    draft: bool
    state: str
    author: str

    @property
    def is_fork(self) -> bool:
        """Whether the head lives in another repository."""
        return self.head_repo != self.repo


@dataclass(frozen=True, slots=True)
class PullDiff:
    """A pull request's change: the unified diff, or files from ``/files`` past the diff limits."""

    text: str | None
    files: tuple[ChangedFile, ...] = ()
    skipped: tuple[Skip, ...] = ()


@dataclass(frozen=True, slots=True)
class AppIdentity:
    """What GitHub says about the App itself (``GET /app``) and where it is installed."""

    slug: str
    name: str
    html_url: str
    permissions: Mapping[str, str]
    installations: tuple[str, ...]  # the accounts (users, organisations) it is installed on


@dataclass(frozen=True, slots=True)
class RegisteredApp:
    """A new App from the manifest flow: its id, private key and webhook secret."""

    id: int
    slug: str
    html_url: str
    owner: str
    pem: str = field(repr=False)
    webhook_secret: str = field(repr=False)


def web_url(api_url: str) -> str:
    """The web address behind a REST API URL: github.com, GHE.com or GitHub Enterprise Server.

    ``https://api.github.com`` → ``https://github.com``; ``https://api.X.ghe.com`` →
    ``https://X.ghe.com``; ``https://HOST/api/v3`` → ``https://HOST``; anything else (a fake,
    a proxy) is its own web address.
    """
    parts = urlsplit(api_url.rstrip("/"))
    host = parts.netloc
    path = parts.path
    if path.endswith("/api/v3"):
        path = path[: -len("/api/v3")]
    elif host.startswith("api.") and (host == "api.github.com" or host.endswith(".ghe.com")):
        host = host[len("api.") :]
    return urlunsplit((parts.scheme, host, path, "", "")).rstrip("/")


def convert_manifest(api_url: str, code: str, *, timeout: float = 30.0) -> RegisteredApp:
    """``POST /app-manifests/{code}/conversions``: the App GitHub just created from a manifest.

    The code is single-use and expires after an hour (GitHub docs, "Registering a GitHub App
    from a manifest"); the call needs no authentication.
    """
    url = f"{api_url.rstrip('/')}/app-manifests/{quote(code, safe='')}/conversions"
    headers = {"accept": "application/vnd.github+json", "x-github-api-version": "2022-11-28"}
    try:
        response = httpx.post(url, headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise GitHubError(f"cannot reach {api_url}: {exc}", reason="github_transport") from None
    if response.status_code != 201:
        raise GitHubError(
            f"GitHub answered {response.status_code} to the manifest conversion "
            f"({_message(response.text)}); the code is single-use and expires after an hour",
            reason=f"github_{response.status_code}",
        )
    data = response.json()
    try:
        return RegisteredApp(
            id=int(data["id"]),
            slug=str(data.get("slug") or ""),
            html_url=str(data.get("html_url") or ""),
            owner=str((data.get("owner") or {}).get("login") or ""),
            pem=str(data["pem"]),
            webhook_secret=str(data["webhook_secret"]),
        )
    except (KeyError, TypeError, ValueError):
        raise GitHubError(
            "the manifest conversion answered without id, pem and webhook_secret",
            reason="github_bad_response",
        ) from None


class GitHubApp:
    """The App: JWT auth and a per-installation token cache (thread-safe)."""

    def __init__(self, settings: Settings) -> None:
        app_id, key = settings.require_github_app()
        self.settings = settings
        self._integration = GithubIntegration(
            auth=Auth.AppAuth(int(app_id), key),
            base_url=settings.github_api_url,
            retry=0,
            seconds_between_requests=None,
            seconds_between_writes=None,
        )
        self._tokens: dict[int, tuple[str, float]] = {}
        self._installations: dict[int, Installation] = {}
        self._lock = threading.Lock()

    def token(self, installation_id: int) -> str:
        """An installation token, minted or reused until 5 minutes before it expires."""
        with self._lock:
            cached = self._tokens.get(installation_id)
            if cached is not None and cached[1] - TOKEN_MARGIN_S > time.time():
                return cached[0]
        try:
            auth = self._integration.get_access_token(installation_id)
        except GithubException as exc:
            raise _mapped(exc, f"installation {installation_id} token") from None
        expires = auth.expires_at.timestamp() if auth.expires_at else time.time() + 3600
        with self._lock:
            self._tokens[installation_id] = (auth.token, expires)
        return str(auth.token)

    def identity(self, *, timeout: float = 10.0) -> AppIdentity:
        """``GET /app`` and ``GET /app/installations`` as the App (checks the id and key pair)."""
        app_id, key = self.settings.require_github_app()
        token = Auth.AppAuth(int(app_id), key).token
        headers = {
            "authorization": f"Bearer {token}",
            "accept": "application/vnd.github+json",
            "x-github-api-version": "2022-11-28",
        }
        base = self.settings.github_api_url
        try:
            with httpx.Client(headers=headers, timeout=timeout) as client:
                app = client.get(f"{base}/app")
                found = client.get(f"{base}/app/installations", params={"per_page": 100})
        except httpx.HTTPError as exc:
            raise GitHubError(f"cannot reach {base}: {exc}", reason="github_transport") from None
        for response in (app, found):
            if response.status_code != 200:
                raise GitHubError(
                    f"GitHub answered {response.status_code} to {response.request.url.path} "
                    f"as App {app_id}: {_message(response.text)}",
                    reason=f"github_{response.status_code}",
                )
        info = app.json()
        return AppIdentity(
            slug=str(info.get("slug") or ""),
            name=str(info.get("name") or ""),
            html_url=str(info.get("html_url") or ""),
            permissions={str(k): str(v) for k, v in (info.get("permissions") or {}).items()},
            installations=tuple(
                str((i.get("account") or {}).get("login") or i.get("id")) for i in found.json()
            ),
        )

    def installation(self, installation_id: int) -> Installation:
        """The client acting as installation ``installation_id`` (one per process and installation,
        so its HTTP session and connections are reused by every call)."""
        with self._lock:
            inst = self._installations.get(installation_id)
            if inst is None:
                inst = self._installations[installation_id] = Installation(self, installation_id)
            return inst

    def installation_for_repo(self, repo: str) -> Installation:
        """The installation of the App on ``repo`` (``owner/name``)."""
        owner, _, name = repo.partition("/")
        try:
            inst = self._integration.get_repo_installation(owner, name)
        except GithubException as exc:
            raise _mapped(exc, f"installation for {repo}") from None
        return self.installation(int(inst.id))


def _mapped(exc: Exception, what: str) -> GitHubError:
    status = getattr(exc, "status", None)
    headers = getattr(exc, "headers", None) or {}
    if status in (403, 429) and (
        headers.get("retry-after") or headers.get("x-ratelimit-remaining") == "0"
    ):
        return RateLimited(f"GitHub rate limit on {what}", retry_after=_retry_after(headers))
    return GitHubError(f"GitHub refused {what}: HTTP {status}", reason=f"github_{status}")


# --- secreview:egress-guard (owned by bot/redact; keep this block whole when rebasing) ---


def _egress_guard(verb: str, path: str, body: Any) -> None:
    """Refuse to post a body that still holds a secret; SARIF is checked before its gzip."""
    kind = guard.check(json.dumps(body, ensure_ascii=False).encode())
    sarif = body.get("sarif") if isinstance(body, Mapping) else None
    if kind is None and isinstance(sarif, str):
        try:
            kind = guard.check(gzip.decompress(base64.b64decode(sarif)))
        except (ValueError, OSError):
            kind = None  # not SARIF we encoded: the plain check above is all we can do
    if kind is not None:
        log.warning("egress guard blocked %s %s: it holds a %s", verb, path, kind)
        raise PublishBlocked(f"refused to send {verb} {path}: it holds a {kind}", kind=kind)


# --- end secreview:egress-guard ---


def _retry_after(headers: Mapping[str, str]) -> float:
    """Seconds to wait: ``retry-after``, else until ``x-ratelimit-reset``, else a minute."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if lowered.get("retry-after", "").isdigit():
        return float(lowered["retry-after"])
    reset = lowered.get("x-ratelimit-reset", "")
    if reset.isdigit():
        return max(1.0, float(reset) - time.time())
    return 60.0


class Installation(Publishing):
    """REST calls as one installation."""

    def __init__(self, app: GitHubApp, installation_id: int) -> None:
        self.app = app
        self.installation_id = installation_id
        self.settings = app.settings
        self.last_posted: Posted | None = None
        self._org_configs: dict[str, tuple[float, str | None]] = {}
        self._github: tuple[str, Github] | None = None

    # --- transport -----------------------------------------------------------------------

    def _client(self) -> Github:
        """One PyGithub client (one HTTP session) per installation, renewed with its token."""
        token = self.app.token(self.installation_id)
        if self._github is None or self._github[0] != token:
            if self._github is not None:
                self._github[1].close()
            self._github = (
                token,
                Github(
                    auth=Auth.Token(token),
                    base_url=self.settings.github_api_url,
                    retry=0,
                    seconds_between_requests=None,
                    seconds_between_writes=None,
                ),
            )
        return self._github[1]

    def _call(
        self,
        verb: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        accept: str = "application/vnd.github+json",
    ) -> tuple[int, dict[str, str], str]:
        if body is not None:
            _egress_guard(verb, path, body)
        requester = self._client().requester
        status, headers, text = requester.requestJson(
            verb,
            path,
            parameters=dict(params or {}) or None,
            headers={"Accept": accept, "X-GitHub-Api-Version": "2022-11-28"},
            input=body,
        )
        lowered = {k.lower(): v for k, v in headers.items()}
        if status in (403, 429) and (
            "retry-after" in lowered or lowered.get("x-ratelimit-remaining") == "0"
        ):
            raise RateLimited(
                f"GitHub rate limit on {verb} {path}", retry_after=_retry_after(lowered)
            )
        return status, lowered, text

    def _json(self, verb: str, path: str, *, ok: Sequence[int] = (200, 201, 202), **kw: Any) -> Any:
        status, _, text = self._call(verb, path, **kw)
        if status not in ok:
            raise GitHubError(
                f"GitHub answered {status} to {verb} {path}: {_message(text)}",
                reason=f"github_{status}",
            )
        return json.loads(text) if text else None

    def _pages(self, path: str, limit: int = 10_000) -> list[Any]:
        out: list[Any] = []
        page = 1
        while len(out) < limit:
            items = self._json("GET", path, params={"per_page": 100, "page": page})
            if not isinstance(items, list) or not items:
                break
            out += items
            if len(items) < 100:
                break
            page += 1
        return out[:limit]

    # --- reading ------------------------------------------------------------------------

    def pull_request(self, repo: str, number: int) -> PullRequest:
        """``GET /repos/{repo}/pulls/{number}``."""
        data = self._json("GET", f"/repos/{repo}/pulls/{number}")
        return PullRequest(
            repo=repo,
            number=number,
            title=data.get("title") or "",
            body=data.get("body") or "",
            head_sha=data["head"]["sha"],
            head_ref=data["head"].get("ref", ""),
            head_repo=((data["head"].get("repo") or {}).get("full_name") or ""),
            base_ref=data["base"]["ref"],
            base_sha=data["base"].get("sha", ""),
            draft=bool(data.get("draft")),
            state=data.get("state", "open"),
            author=(data.get("user") or {}).get("login", ""),
        )

    def pull_diff(self, repo: str, number: int) -> PullDiff:
        """The PR's unified diff; past GitHub's diff limits (406), its paged ``/files``."""
        status, _, text = self._call("GET", f"/repos/{repo}/pulls/{number}", accept=DIFF_MEDIA_TYPE)
        if status == 200:
            return PullDiff(text)
        if status != 406:
            raise GitHubError(
                f"GitHub answered {status} to the diff of {repo}#{number}",
                reason=f"github_{status}",
            )
        files: list[ChangedFile] = []
        skipped: list[Skip] = []
        for entry in self._pages(f"/repos/{repo}/pulls/{number}/files", MAX_FILES):
            item = diffmod.files_api_entry(entry)  # a file, or why GitHub sent no patch
            if isinstance(item, Skip):
                skipped.append(item)
            else:
                files.append(item)
        return PullDiff(None, tuple(files), tuple(skipped))

    def file_text(self, repo: str, path: str, ref: str) -> str | None:
        """A file's text at ``ref``, or None when it does not exist."""
        status, _, text = self._call(
            "GET", f"/repos/{repo}/contents/{quote(path)}", params={"ref": ref}
        )
        if status == 404:
            return None
        if status != 200:
            raise GitHubError(
                f"GitHub answered {status} for {path}@{ref}", reason=f"github_{status}"
            )
        data = json.loads(text)
        return base64.b64decode(data.get("content", "")).decode("utf-8", errors="replace")

    def repo_config(self, repo: str, base_ref: str) -> RepoConfig:
        """``.github/secreview.yml`` from the BASE branch (a PR cannot configure its own review)
        over the owner's shared ``OWNER/.github:secreview.yml`` (its default branch)."""
        owner = repo.partition("/")[0]
        own = self.file_text(repo, CONFIG_PATH, base_ref)
        shared = self.org_config_text(owner)
        if shared is None:
            return parse_repo_config(own.encode() if own is not None else None)
        return merge_repo_config(shared, own, shared_label=org_config_label(owner))

    def org_config_text(self, owner: str) -> str | None:
        """The owner's shared ``secreview.yml``; None when there is none or the App cannot
        read the ``.github`` repository (not installed there, private): that is not an error.

        Kept for a few minutes per process: every review of the owner's repositories reads it,
        and one REST call per review for a file that rarely changes would be most of a budget.
        """
        cached = self._org_configs.get(owner)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        text = self._fetch_org_config(owner)
        self._org_configs[owner] = (time.monotonic() + ORG_CONFIG_TTL_S, text)
        return text

    def _fetch_org_config(self, owner: str) -> str | None:
        path = f"/repos/{quote(owner)}/{ORG_CONFIG_REPO}/contents/{ORG_CONFIG_PATH}"
        status, _, text = self._call("GET", path)  # no ref: the default branch
        if status in (403, 404):
            return None
        if status != 200:
            raise GitHubError(
                f"GitHub answered {status} for {org_config_label(owner)}",
                reason=f"github_{status}",
            )
        data = json.loads(text)
        return base64.b64decode(data.get("content", "")).decode("utf-8", errors="replace")

    def permission(self, repo: str, user: str) -> str:
        """``admin``, ``write``, ``read`` or ``none`` for ``user`` on ``repo``."""
        data = self._json("GET", f"/repos/{repo}/collaborators/{quote(user)}/permission")
        return str(data.get("permission", "none"))

    def default_branch(self, repo: str) -> str:
        """The repository's default branch name."""
        return str(self._json("GET", f"/repos/{repo}").get("default_branch") or "main")

    def resolve_ref(self, repo: str, ref: str) -> str:
        """The commit sha ``ref`` points at."""
        return str(self._json("GET", f"/repos/{repo}/commits/{quote(ref, safe='')}")["sha"])

    def download_tarball(
        self, repo: str, ref: str, dest: BinaryIO, max_bytes: int = MAX_TARBALL_BYTES
    ) -> int:
        """Stream the repository at ``ref`` as a gzipped tarball into ``dest``; bytes written.

        GitHub redirects to codeload. Never held in memory; past ``max_bytes`` the download
        stops with a GitHubError (reason ``tarball_too_large``).
        """
        url = f"{self.settings.github_api_url}/repos/{repo}/tarball/{quote(ref, safe='')}"
        headers = {"Authorization": f"token {self.app.token(self.installation_id)}"}
        written = 0
        try:
            with httpx.stream(
                "GET", url, headers=headers, follow_redirects=True, timeout=120
            ) as response:
                if response.status_code != 200:
                    raise GitHubError(
                        f"GitHub answered {response.status_code} to the tarball of {repo}@{ref}",
                        reason=f"github_{response.status_code}",
                    )
                for chunk in response.iter_bytes(1 << 16):
                    written += len(chunk)
                    if written > max_bytes:
                        raise GitHubError(
                            f"tarball of {repo}@{ref} is larger than {max_bytes >> 20} MB",
                            reason="tarball_too_large",
                        )
                    dest.write(chunk)
        except httpx.HTTPError as exc:
            raise GitHubError(
                f"tarball of {repo}@{ref}: {exc}", reason="github_transport"
            ) from None
        return written

    # --- reviewer feedback (issue 10): replies in finding threads, /secreview ignore -----------

    def review_feedback(self, repo: str, number: int) -> feedback.ReviewFeedback:
        """What reviewers dismissed on this PR, and the bot's findings still open on it."""
        return self.conversation(repo, number)[1]

    def conversation(self, repo: str, number: int) -> tuple[Posted, feedback.ReviewFeedback]:
        """What the bot posted on the PR and what reviewers answered: two listings, read once."""
        comments = self._pages(f"/repos/{repo}/pulls/{number}/comments")
        issue = self._pages(f"/repos/{repo}/issues/{number}/comments")
        return posted_from(comments, issue), review_feedback_from(comments, issue)

    def dismissals(self, repo: str, number: int) -> tuple[feedback.Dismissal, ...]:
        """Findings people with write access rejected on this PR, in replies or by command."""
        return self.review_feedback(repo, number).dismissed


def review_feedback_from(
    comments: Sequence[Mapping[str, Any]], issue_comments: Sequence[Mapping[str, Any]]
) -> feedback.ReviewFeedback:
    """Dismissals and the open findings, from the PR's review and issue comments."""
    threads, paths = finding_threads(comments)
    replies = [as_comment(c) for c in comments if c.get("in_reply_to_id") is not None]
    conversation = [as_comment(c) for c in issue_comments]
    return feedback.ReviewFeedback(
        dismissed=feedback.dismissals(threads, replies, conversation, paths),
        previous=previous_findings(comments),
    )


def finding_threads(comments: Sequence[Mapping[str, Any]]) -> tuple[dict[int, str], dict[str, str]]:
    """The bot's finding comments (by their marker): thread id → fingerprint, fingerprint → path."""
    threads: dict[int, str] = {}
    paths: dict[str, str] = {}
    for c in comments:
        marker = FINDING_MARKER.search(c.get("body") or "")
        user = c.get("user") or {}
        if marker and c.get("in_reply_to_id") is None and user.get("type") == "Bot":
            threads[int(c["id"])] = marker.group(1)
            paths.setdefault(marker.group(1), str(c.get("path") or ""))
    return threads, paths


def as_comment(raw: Mapping[str, Any]) -> feedback.Comment:
    """A review or issue comment from GitHub's REST shape."""
    user = raw.get("user") or {}
    reply_to = raw.get("in_reply_to_id")
    return feedback.Comment(
        id=int(raw["id"]),
        body=str(raw.get("body") or ""),
        author=str(user.get("login") or ""),
        association=str(raw.get("author_association") or "NONE"),
        created_at=str(raw.get("created_at") or ""),
        in_reply_to=int(reply_to) if reply_to is not None else None,
        bot=user.get("type") == "Bot",
    )


# "**HIGH** · title · [CWE-89](...)": the first line of ``render.comment_body``.
_HEADLINE = re.compile(r"^\*\*[A-Z]+\*\* · (?P<title>.*) · \[(?P<cwe>CWE-\d+)\]", re.MULTILINE)


def previous_findings(comments: Sequence[Mapping[str, Any]]) -> tuple[PreviousFinding, ...]:
    """The bot's finding threads not answered "Fixed in": what a re-review should continue.

    Dismissed ones stay in: shown the old fingerprint, the model continues it instead of
    rediscovering the flaw under a new one that no dismissal covers.
    """
    threads, _ = finding_threads(comments)
    fixed = {
        c.get("in_reply_to_id")
        for c in comments
        if str(c.get("body") or "").startswith(FIXED_PREFIX)
        and (c.get("user") or {}).get("type") == "Bot"
    }
    out = []
    for c in comments:
        fingerprint = threads.get(int(c["id"])) if c.get("in_reply_to_id") is None else None
        headline = _HEADLINE.search(str(c.get("body") or ""))
        if fingerprint is None or c["id"] in fixed or headline is None:
            continue
        line = c.get("line") or c.get("original_line") or 0  # null once outdated
        title = headline.group("title")
        out.append(
            PreviousFinding(
                fingerprint, str(c.get("path") or ""), int(line), headline["cwe"], title
            )
        )
    return tuple(out)
