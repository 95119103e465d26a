"""A fake GitHub REST API for tests: real paths, response shapes and status codes, with state.

It records every request and rejects what GitHub rejects: an installation token only for a valid
RS256 App JWT, API calls only with a live installation token, review comments outside the diff's
hunks or spanning two hunks (422 for the whole review), more than 50 check-run annotations in one
request (422), and the ``.diff`` media type past 300 files or 20,000 lines (406). The hunk check
is written here from the unified-diff format, independently of ``bot.diff``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import io
import itertools
import random
import re
import secrets
import tarfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jwt
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tests.fakes.hold import Hold, Then, take

DIFF_MAX_FILES = 300
DIFF_MAX_LINES = 20_000
MAX_ANNOTATIONS = 50
BOT_LOGIN = "secreview[bot]"
_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


@dataclass
class Pull:
    """One pull request: its head, base and the diff between them."""

    number: int
    head_sha: str
    diff: str
    title: str = "Add features"
    body: str = ""
    base_ref: str = "main"
    base_sha: str = "0" * 40
    head_ref: str = "feature"
    head_repo: str = ""
    draft: bool = False
    state: str = "open"
    author: str = "mallory"


@dataclass
class Repo:
    """One repository the App is installed on."""

    full_name: str
    installation_id: int
    default_branch: str = "main"
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (ref, path) → bytes
    pulls: dict[int, Pull] = field(default_factory=dict)
    permissions: dict[str, str] = field(default_factory=dict)


@dataclass
class Recorded:
    """One request the fake received."""

    method: str
    path: str
    status: int
    body: Any = None
    at: float = field(default_factory=time.time)  # when it arrived (for per-hour rates)


class FakeGitHub:
    """State plus a Starlette app; seed it from Python, then point ``GITHUB_API_URL`` at it."""

    def __init__(self, app_id: str, public_key_pem: str, base_path: str = "") -> None:
        self.base_path = base_path  # "/api/v3" for a GitHub Enterprise Server style URL
        self.app_id = app_id
        self.public_key = public_key_pem
        self.repos: dict[str, Repo] = {}
        self.shas: dict[str, str] = {}  # commit sha → the branch it was resolved from
        self.tokens: dict[str, tuple[int, dt.datetime]] = {}
        self.requests: list[Recorded] = []
        self.issue_comments: list[dict[str, Any]] = []
        self.review_comments: list[dict[str, Any]] = []
        self.reviews: list[dict[str, Any]] = []
        self.check_runs: list[dict[str, Any]] = []
        self.sarifs: list[dict[str, Any]] = []
        self.faults: list[tuple[str, int, dict[str, str]]] = []  # (path regex, status, headers)
        self._ids = itertools.count(1000)
        self._lock = threading.Lock()
        # --- App registration and identity (issue 13: `secreview setup` and `doctor`) ---
        self.app_slug = "secreview"
        self.app_permissions: dict[str, str] = {}  # what GET /app reports (set by a manifest)
        self.manifest_private_key: str | None = None  # the PEM a manifest conversion hands out
        self.manifests: dict[str, dict[str, Any]] = {}  # one-time code → submitted manifest
        self.inject = Injector()  # fault injection (issue 9 part 5): holds, failures, limits
        self.app = self._build()

    # --- seeding -----------------------------------------------------------------------------

    def add_repo(self, full_name: str, installation_id: int) -> Repo:
        """Install the App on ``full_name``."""
        repo = Repo(full_name, installation_id)
        self.repos[full_name] = repo
        return repo

    def add_pull(self, repo: str, pull: Pull) -> Pull:
        """Open ``pull`` on ``repo``."""
        pull.head_repo = pull.head_repo or repo
        self.repos[repo].pulls[pull.number] = pull
        return pull

    def push(self, repo: str, number: int, head_sha: str, diff: str) -> None:
        """A new head for the pull request."""
        pull = self.repos[repo].pulls[number]
        pull.head_sha, pull.diff = head_sha, diff

    def set_file(self, repo: str, ref: str, path: str, data: bytes) -> None:
        """Put ``data`` at ``path`` on ``ref``."""
        self.repos[repo].files[(ref, path)] = data

    def fail_next(self, path_pattern: str, status: int, headers: dict[str, str]) -> None:
        """The next request whose path matches answers ``status`` with ``headers``."""
        self.faults.append((path_pattern, status, headers))

    def react(self, comment_id: int, content: str) -> None:
        """A person reacts to a review comment (``+1`` or ``-1``)."""
        comment = next(c for c in self.review_comments if c["id"] == comment_id)
        reactions = comment.setdefault("_reactions", {})
        reactions[content] = reactions.get(content, 0) + 1

    def reply_as(
        self, comment_id: int, user: str, body: str, association: str = "MEMBER"
    ) -> dict[str, Any]:
        """A person replies in the thread of review comment ``comment_id`` (GitHub threads every
        reply on the top-level comment; ``author_association`` as GitHub computes it)."""
        parent = next(c for c in self.review_comments if c["id"] == comment_id)
        root = parent["in_reply_to_id"] or parent["id"]
        reply = {
            **{k: v for k, v in parent.items() if k != "_reactions"},
            "id": self._next_id(),
            "body": body,
            "in_reply_to_id": root,
            "user": {"login": user, "type": "User"},
            "author_association": association,
            "created_at": _now(),
        }
        self.review_comments.append(reply)
        return reply

    def comment_as(
        self, repo: str, number: int, user: str, body: str, association: str = "MEMBER"
    ) -> dict[str, Any]:
        """A person comments on the pull request's conversation (an issue comment)."""
        comment = {
            "id": self._next_id(),
            "body": body,
            "user": {"login": user, "type": "User"},
            "author_association": association,
            "created_at": _now(),
            "_repo": repo,
            "_n": number,
            "edits": 0,
        }
        self.issue_comments.append(comment)
        return comment

    def calls(self, method: str, pattern: str) -> list[Recorded]:
        """Recorded requests of ``method`` whose path matches ``pattern``."""
        return [r for r in self.requests if r.method == method and re.search(pattern, r.path)]

    # --- the app -----------------------------------------------------------------------------

    def _build(self) -> Starlette:
        r = self.base_path + "/repos/{owner}/{name}"
        routes = [
            Route(
                self.base_path + "/app/installations/{iid:int}/access_tokens",
                self._token,
                methods=["POST"],
            ),
            Route(r, self._repo_info, methods=["GET"]),
            Route(r + "/installation", self._installation, methods=["GET"]),
            Route(r + "/pulls/{n:int}", self._pull, methods=["GET"]),
            Route(r + "/pulls/{n:int}/files", self._files, methods=["GET"]),
            Route(r + "/contents/{path:path}", self._contents, methods=["GET", "PUT"]),
            Route(r + "/git/ref/heads/{branch:path}", self._get_ref, methods=["GET"]),
            Route(r + "/git/refs", self._create_ref, methods=["POST"]),
            Route(r + "/pulls", self._pulls, methods=["GET", "POST"]),
            Route(r + "/issues/{n:int}/comments", self._issue_comments, methods=["GET", "POST"]),
            Route(r + "/issues/comments/{cid:int}", self._edit_comment, methods=["PATCH"]),
            Route(r + "/pulls/{n:int}/reviews", self._reviews, methods=["GET", "POST"]),
            Route(r + "/pulls/{n:int}/comments", self._review_comments, methods=["GET", "POST"]),
            Route(r + "/pulls/{n:int}/comments/{cid:int}/replies", self._reply, methods=["POST"]),
            Route(r + "/check-runs", self._create_check, methods=["POST"]),
            Route(r + "/check-runs/{cid:int}", self._update_check, methods=["PATCH"]),
            Route(r + "/commits/{ref}/check-runs", self._list_checks, methods=["GET"]),
            Route(r + "/commits/{ref}", self._commit, methods=["GET"]),
            Route(r + "/code-scanning/sarifs", self._sarif, methods=["POST"]),
            Route(r + "/tarball/{ref:path}", self._tarball, methods=["GET"]),
            Route(r + "/collaborators/{user}/permission", self._permission, methods=["GET"]),
            # --- App registration and identity (issue 13) ---
            Route(self.base_path + "/app", self._app_info, methods=["GET"]),
            Route(self.base_path + "/app/installations", self._app_installations, methods=["GET"]),
            Route(
                self.base_path + "/app-manifests/{code}/conversions",
                self._conversion,
                methods=["POST"],
            ),
            Route("/settings/apps/new", self._new_app, methods=["POST"]),
            Route("/organizations/{org}/settings/apps/new", self._new_app, methods=["POST"]),
        ]
        return Starlette(
            routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=self._guard)]
        )

    async def _guard(self, request: Request, call_next: Callable[[Request], Any]) -> Response:
        path = request.url.path.removeprefix(self.base_path)
        body: Any = None
        if request.method in ("POST", "PATCH", "PUT"):
            raw = await request.body()
            try:
                import json

                body = json.loads(raw) if raw else None
            except ValueError:
                body = raw
        verdict = await self.inject.intercept(request.method, path)  # fault injection
        if verdict.refuse is not None:
            self.requests.append(Recorded(request.method, path, verdict.refuse.status_code, body))
            return verdict.refuse
        for i, (pattern, status, headers) in enumerate(self.faults):
            if re.search(pattern, path):
                del self.faults[i]
                self.requests.append(Recorded(request.method, path, status, body))
                return JSONResponse({"message": "API rate limit exceeded"}, status, headers)
        problem = self._auth_problem(request, path)
        if problem is not None:
            self.requests.append(Recorded(request.method, path, 401, body))
            return JSONResponse({"message": problem}, status_code=401)
        request.state.json = body
        response: Response = await call_next(request)
        response.headers["x-ratelimit-limit"] = "5000"
        response.headers["x-ratelimit-remaining"] = "4999"
        self.requests.append(Recorded(request.method, path, response.status_code, body))
        # Fault injection: the work was done, but the caller gets an error instead of the answer.
        return verdict.replace if verdict.replace is not None else response

    def _auth_problem(self, request: Request, path: str) -> str | None:
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.partition(" ")
        if path.startswith("/app-manifests/") or request.url.path.endswith("/settings/apps/new"):
            return None  # the manifest flow: a one-time code, and the user's browser session
        if path.startswith("/app/") or path == "/app" or path.endswith("/installation"):
            try:
                claims = jwt.decode(credential, self.public_key, algorithms=["RS256"])
            except jwt.PyJWTError as exc:
                return f"A JSON web token could not be decoded: {exc}"
            if str(claims.get("iss")) != self.app_id or claims["exp"] - claims["iat"] > 660:
                return "'Expiration time' claim ('exp') is too far in the future"
            return None
        if scheme.lower() not in ("token", "bearer") or credential not in self.tokens:
            return "Bad credentials"
        _, expires = self.tokens[credential]
        return "Bad credentials" if expires < dt.datetime.now(dt.UTC) else None

    def _repo(self, request: Request) -> Repo | None:
        return self.repos.get(f"{request.path_params['owner']}/{request.path_params['name']}")

    def _next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    # --- endpoints ---------------------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        iid = request.path_params["iid"]
        if not any(r.installation_id == iid for r in self.repos.values()):
            return _not_found()
        token = "ghs_" + secrets.token_hex(18)
        expires = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=1)
        self.tokens[token] = (iid, expires)
        return JSONResponse(
            {
                "token": token,
                "expires_at": expires.isoformat().replace("+00:00", "Z"),
                "permissions": {"pull_requests": "write", "checks": "write"},
                "repository_selection": "all",
            },
            status_code=201,
        )

    async def _repo_info(self, request: Request) -> Response:
        repo = self._repo(request)
        if repo is None:
            return _not_found()
        return JSONResponse(
            {"full_name": repo.full_name, "default_branch": repo.default_branch, "private": True}
        )

    async def _installation(self, request: Request) -> Response:
        repo = self._repo(request)
        if repo is None:
            return _not_found()
        return JSONResponse({"id": repo.installation_id, "app_id": int(self.app_id)})

    async def _pull(self, request: Request) -> Response:
        repo = self._repo(request)
        pull = repo.pulls.get(request.path_params["n"]) if repo else None
        if repo is None or pull is None:
            return _not_found()
        if "diff" in request.headers.get("accept", ""):
            files = pull.diff.count("\ndiff --git ") + pull.diff.startswith("diff --git ")
            if files > DIFF_MAX_FILES or pull.diff.count("\n") > DIFF_MAX_LINES:
                return JSONResponse(
                    {
                        "message": "Sorry, the diff exceeded the maximum number of files (300). "
                        "Consider using 'List pull requests files' API or locally cloning the "
                        "repository instead.",
                        "errors": [
                            {"resource": "PullRequest", "field": "diff", "code": "too_large"}
                        ],
                    },
                    status_code=406,
                )
            return PlainTextResponse(pull.diff, media_type="application/vnd.github.diff")
        return JSONResponse(_pull_json(repo, pull))

    async def _files(self, request: Request) -> Response:
        repo = self._repo(request)
        pull = repo.pulls.get(request.path_params["n"]) if repo else None
        if repo is None or pull is None:
            return _not_found()
        per_page = min(int(request.query_params.get("per_page", 30)), 100)
        page = int(request.query_params.get("page", 1))
        entries = _file_entries(pull.diff)[:3000]
        return _paged(request, entries, per_page, page)

    async def _get_ref(self, request: Request) -> Response:
        repo = self._repo(request)
        branch = request.path_params["branch"]
        if repo is None or (branch not in self.branches(repo) and branch != repo.default_branch):
            return _not_found()
        sha = hashlib.sha1(f"{repo.full_name}@{branch}".encode()).hexdigest()
        self.shas[sha] = branch
        return JSONResponse(
            {"ref": f"refs/heads/{branch}", "object": {"sha": sha, "type": "commit"}}
        )

    def branches(self, repo: Repo) -> set[str]:
        """Branches with at least one file."""
        return {ref for ref, _ in repo.files}

    async def _create_ref(self, request: Request) -> Response:
        repo = self._repo(request)
        body = request.state.json or {}
        if repo is None:
            return _not_found()
        ref = str(body.get("ref", ""))
        if not ref.startswith("refs/heads/") or body.get("sha") not in self.shas:
            return _invalid("ref and sha are required")
        branch = ref.removeprefix("refs/heads/")
        if branch in self.branches(repo):
            return _invalid("Reference already exists")
        source = self.shas[body["sha"]]
        for (file_ref, path), data in list(repo.files.items()):
            if file_ref == source:
                repo.files[(branch, path)] = data
        repo.files.setdefault((branch, ".keep"), b"")
        return JSONResponse({"ref": ref, "object": {"sha": body["sha"]}}, status_code=201)

    async def _pulls(self, request: Request) -> Response:
        repo = self._repo(request)
        if repo is None:
            return _not_found()
        if request.method == "GET":
            head = request.query_params.get("head", "")
            branch = head.split(":", 1)[-1]
            found = [
                _pull_json(repo, p)
                for p in repo.pulls.values()
                if p.head_ref == branch and p.state == "open"
            ]
            return JSONResponse(found)
        body = request.state.json or {}
        if body.get("head") not in self.branches(repo) or not body.get("title"):
            return _invalid("head must be an existing branch and title is required")
        number = max(repo.pulls, default=0) + 1
        pull = Pull(
            number,
            hashlib.sha1(body["head"].encode()).hexdigest(),
            "",
            title=body["title"],
            body=body.get("body", ""),
            base_ref=body.get("base", "main"),
            head_ref=body["head"],
            author=BOT_LOGIN,
        )
        self.add_pull(repo.full_name, pull)
        return JSONResponse(_pull_json(repo, pull), status_code=201)

    async def _contents(self, request: Request) -> Response:
        repo = self._repo(request)
        if repo is None:
            return _not_found()
        if request.method == "PUT":
            body = request.state.json or {}
            branch = body.get("branch", repo.default_branch)
            path = request.path_params["path"]
            if (branch, path) in repo.files and not body.get("sha"):
                return _invalid("sha wasn't supplied")
            repo.files[(branch, path)] = base64.b64decode(body.get("content", ""))
            return JSONResponse(
                {"content": {"path": path, "sha": secrets.token_hex(20)}}, status_code=200
            )
        ref = request.query_params.get("ref", repo.default_branch)
        ref = self.shas.get(ref, ref)
        data = repo.files.get((ref, request.path_params["path"]))
        if data is None:
            return _not_found()
        return JSONResponse(
            {
                "type": "file",
                "encoding": "base64",
                "path": request.path_params["path"],
                "size": len(data),
                "content": base64.encodebytes(data).decode(),
                "sha": hashlib.sha1(data).hexdigest(),
            }
        )

    async def _issue_comments(self, request: Request) -> Response:
        n = request.path_params["n"]
        repo = self._repo(request)
        if repo is None:
            return _not_found()
        if request.method == "GET":
            mine = [c for c in self.issue_comments if c["_repo"] == repo.full_name and c["_n"] == n]
            return _paged(
                request,
                [_public(c) for c in mine],
                int(request.query_params.get("per_page", 30)),
                int(request.query_params.get("page", 1)),
            )
        body = request.state.json or {}
        if not isinstance(body.get("body"), str) or not body["body"]:
            return _invalid("body is missing")
        comment = {
            "id": self._next_id(),
            "body": body["body"],
            "user": {"login": BOT_LOGIN, "type": "Bot"},
            "author_association": "NONE",
            "created_at": _now(),
            "_repo": repo.full_name,
            "_n": n,
            "edits": 0,
        }
        self.issue_comments.append(comment)
        return JSONResponse(_public(comment), status_code=201)

    async def _edit_comment(self, request: Request) -> Response:
        cid = request.path_params["cid"]
        comment = next((c for c in self.issue_comments if c["id"] == cid), None)
        if comment is None:
            return _not_found()
        comment["body"] = (request.state.json or {}).get("body", comment["body"])
        comment["edits"] += 1
        return JSONResponse(_public(comment))

    async def _reviews(self, request: Request) -> Response:
        repo = self._repo(request)
        pull = repo.pulls.get(request.path_params["n"]) if repo else None
        if repo is None or pull is None:
            return _not_found()
        if request.method == "GET":
            mine = [
                r for r in self.reviews if r["_repo"] == repo.full_name and r["_n"] == pull.number
            ]
            return _paged(
                request, [_public(r) for r in mine], 100, int(request.query_params.get("page", 1))
            )
        body = request.state.json or {}
        if body.get("event") not in ("COMMENT", "APPROVE", "REQUEST_CHANGES", None):
            return _invalid("event is not valid")
        hunks = _hunks(pull.diff)
        for comment in body.get("comments") or []:
            problem = _comment_problem(comment, hunks)
            if problem:
                return _invalid(f"Pull request review thread {problem}")
        review_id = self._next_id()
        review = {
            "id": review_id,
            "body": body.get("body", ""),
            "state": "COMMENTED",
            "commit_id": body.get("commit_id") or pull.head_sha,
            "user": {"login": BOT_LOGIN, "type": "Bot"},
            "_repo": repo.full_name,
            "_n": pull.number,
        }
        self.reviews.append(review)
        for comment in body.get("comments") or []:
            self.review_comments.append(
                {
                    "id": self._next_id(),
                    "pull_request_review_id": review_id,
                    "path": comment["path"],
                    "line": comment["line"],
                    "side": comment.get("side", "RIGHT"),
                    "start_line": comment.get("start_line"),
                    "body": comment["body"],
                    "commit_id": review["commit_id"],
                    "in_reply_to_id": None,
                    "user": {"login": BOT_LOGIN, "type": "Bot"},
                    "author_association": "NONE",
                    "created_at": _now(),
                    "_repo": repo.full_name,
                    "_n": pull.number,
                }
            )
        return JSONResponse(_public(review))

    async def _review_comments(self, request: Request) -> Response:
        repo = self._repo(request)
        if repo is None:
            return _not_found()
        n = request.path_params["n"]
        if request.method == "POST":
            return self._single_comment(repo, repo.pulls[n], request.state.json or {})
        mine = [c for c in self.review_comments if c["_repo"] == repo.full_name and c["_n"] == n]
        return _paged(
            request,
            [_public(c) for c in mine],
            int(request.query_params.get("per_page", 30)),
            int(request.query_params.get("page", 1)),
        )

    def _single_comment(self, repo: Repo, pull: Pull, comment: dict[str, Any]) -> Response:
        problem = _comment_problem(comment, _hunks(pull.diff))
        if problem or not comment.get("commit_id"):
            return _invalid(f"Pull request review comment {problem or 'needs commit_id'}")
        stored = {
            "id": self._next_id(),
            "pull_request_review_id": None,
            "path": comment["path"],
            "line": comment["line"],
            "side": comment.get("side", "RIGHT"),
            "start_line": comment.get("start_line"),
            "body": comment["body"],
            "commit_id": comment["commit_id"],
            "in_reply_to_id": None,
            "user": {"login": BOT_LOGIN, "type": "Bot"},
            "author_association": "NONE",
            "created_at": _now(),
            "_repo": repo.full_name,
            "_n": pull.number,
        }
        self.review_comments.append(stored)
        return JSONResponse(_public(stored), status_code=201)

    async def _reply(self, request: Request) -> Response:
        repo = self._repo(request)
        cid = request.path_params["cid"]
        parent = next((c for c in self.review_comments if c["id"] == cid), None)
        if repo is None or parent is None:
            return _not_found()
        if parent["in_reply_to_id"] is not None:
            return _invalid("replies to replies are not supported")
        body = (request.state.json or {}).get("body")
        reply = {
            **parent,
            "id": self._next_id(),
            "body": body,
            "in_reply_to_id": cid,
            "created_at": _now(),
        }
        self.review_comments.append(reply)
        return JSONResponse(_public(reply), status_code=201)

    async def _create_check(self, request: Request) -> Response:
        repo = self._repo(request)
        body = request.state.json or {}
        if repo is None:
            return _not_found()
        if not body.get("name") or not body.get("head_sha"):
            return _invalid("name and head_sha are required")
        problem = _annotation_problem(body)
        if problem:
            return _invalid(problem)
        run = {
            "id": self._next_id(),
            "name": body["name"],
            "head_sha": body["head_sha"],
            "status": body.get("status", "queued"),
            "conclusion": body.get("conclusion"),
            "output": {**(body.get("output") or {})},
            "annotations": list(_annotations(body)),
            "app": {"id": int(self.app_id)},
            "_repo": repo.full_name,
            "updates": 0,
        }
        self.check_runs.append(run)
        return JSONResponse(_public(run), status_code=201)

    async def _update_check(self, request: Request) -> Response:
        run = next((c for c in self.check_runs if c["id"] == request.path_params["cid"]), None)
        if run is None:
            return _not_found()
        body = request.state.json or {}
        problem = _annotation_problem(body)
        if problem:
            return _invalid(problem)
        for key in ("status", "conclusion", "name"):
            if key in body:
                run[key] = body[key]
        if body.get("output"):
            run["output"].update({k: v for k, v in body["output"].items() if k != "annotations"})
        run["annotations"] += _annotations(body)
        run["updates"] += 1
        return JSONResponse(_public(run))

    async def _list_checks(self, request: Request) -> Response:
        repo = self._repo(request)
        name = request.query_params.get("check_name")
        runs = [
            _public(c)
            for c in self.check_runs
            if repo
            and c["_repo"] == repo.full_name
            and c["head_sha"] == request.path_params["ref"]
            and (name is None or c["name"] == name)
        ]
        return JSONResponse({"total_count": len(runs), "check_runs": runs})

    async def _commit(self, request: Request) -> Response:
        repo = self._repo(request)
        if repo is None:
            return _not_found()
        ref = request.path_params["ref"]
        if ref == "HEAD":
            ref = repo.default_branch
        if re.fullmatch(r"[0-9a-f]{40}", ref):
            return JSONResponse({"sha": ref, "commit": {"message": "x"}})
        sha = hashlib.sha1(f"{repo.full_name}@{ref}".encode()).hexdigest()
        self.shas[sha] = ref  # contents and tarballs at this sha are the branch's
        return JSONResponse({"sha": sha, "commit": {"message": "x"}})

    async def _sarif(self, request: Request) -> Response:
        repo = self._repo(request)
        body = request.state.json or {}
        if repo is None:
            return _not_found()
        if not re.fullmatch(r"[0-9a-f]{40}", str(body.get("commit_sha", ""))) or not body.get(
            "ref"
        ):
            return _invalid("commit_sha and ref are required")
        if len(body.get("sarif", "")) > 10 * 1024 * 1024:
            return JSONResponse({"message": "SARIF too large"}, status_code=413)
        sarif_id = secrets.token_hex(8)
        self.sarifs.append({**body, "id": sarif_id, "_repo": repo.full_name})
        return JSONResponse(
            {"id": sarif_id, "url": f"https://api.github.com/sarifs/{sarif_id}"}, status_code=202
        )

    async def _tarball(self, request: Request) -> Response:
        repo = self._repo(request)
        if repo is None:
            return _not_found()
        ref = self.shas.get(request.path_params["ref"], request.path_params["ref"])
        buf = io.BytesIO()
        top = f"{repo.full_name.replace('/', '-')}-{ref[:7]}"
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for (file_ref, path), data in sorted(repo.files.items()):
                if file_ref != ref:
                    continue
                info = tarfile.TarInfo(f"{top}/{path}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return Response(buf.getvalue(), media_type="application/x-gzip")

    # --- App registration and identity (issue 13) -------------------------------------------

    async def _new_app(self, request: Request) -> Response:
        """The "Create GitHub App" page, as if the signed-in user pressed its button."""
        from urllib.parse import parse_qs

        form = parse_qs((await request.body()).decode())
        try:
            import json

            manifest = json.loads((form.get("manifest") or [""])[0])
        except ValueError:
            return PlainTextResponse("Invalid manifest: not JSON", status_code=422)
        missing = [k for k in ("url", "hook_attributes", "redirect_url") if not manifest.get(k)]
        if missing or not isinstance(manifest.get("hook_attributes"), dict):
            return PlainTextResponse(f"Invalid manifest: missing {missing}", status_code=422)
        code = secrets.token_hex(10)
        owner = request.path_params.get("org") or "octocat"
        self.manifests[code] = {**manifest, "_owner": owner}
        state = request.query_params.get("state", "")
        target = f"{manifest['redirect_url']}?code={code}&state={state}"
        return Response(status_code=302, headers={"location": target})

    async def _conversion(self, request: Request) -> Response:
        manifest = self.manifests.pop(request.path_params["code"], None)
        if manifest is None or self.manifest_private_key is None:
            return _not_found()
        self.app_permissions = dict(manifest.get("default_permissions") or {})
        self.app_slug = str(manifest.get("name") or "secreview").lower().replace(" ", "-")
        return JSONResponse(
            {
                "id": int(self.app_id),
                "slug": self.app_slug,
                "node_id": "A_kwDOfake",
                "owner": {"login": manifest["_owner"]},
                "name": manifest.get("name") or "secreview",
                "html_url": f"https://github.com/apps/{self.app_slug}",
                "permissions": self.app_permissions,
                "events": manifest.get("default_events") or [],
                "client_id": "Iv1.fake",
                "client_secret": "fake-client-secret",
                "webhook_secret": "whsec-" + secrets.token_hex(16),
                "pem": self.manifest_private_key,
            },
            status_code=201,
        )

    async def _app_info(self, request: Request) -> Response:
        return JSONResponse(
            {
                "id": int(self.app_id),
                "slug": self.app_slug,
                "name": self.app_slug,
                "html_url": f"https://github.com/apps/{self.app_slug}",
                "permissions": self.app_permissions,
            }
        )

    async def _app_installations(self, request: Request) -> Response:
        seen: dict[int, str] = {}
        for repo in self.repos.values():
            seen.setdefault(repo.installation_id, repo.full_name.partition("/")[0])
        items = [
            {"id": iid, "account": {"login": login}, "app_id": int(self.app_id)}
            for iid, login in sorted(seen.items())
        ]
        return JSONResponse(items)

    async def _permission(self, request: Request) -> Response:
        repo = self._repo(request)
        if repo is None:
            return _not_found()
        perm = repo.permissions.get(request.path_params["user"], "read")
        return JSONResponse({"permission": perm, "user": {"login": request.path_params["user"]}})


# --- fault injection (issue 9 part 5) ------------------------------------------------------------
# Small explicit controls a test turns on ``FakeGitHub.inject``; nothing here fires unless asked.

SECONDARY_LIMIT_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. "
    "If you reach out to GitHub Support for help, please include the request ID 0000:0000."
)
WRITES = frozenset({"POST", "PATCH", "PUT", "DELETE"})


@dataclass(frozen=True, slots=True)
class Verdict:
    """What fault injection does to one request: refuse it, or do it and answer ``replace``."""

    refuse: Response | None = None
    replace: Response | None = None


@dataclass
class Failure:
    """Answer ``status`` to matching requests ``times`` times (None: always).

    ``after=True`` does the work first and then answers the error, like a gateway timing out on a
    POST GitHub did complete: the caller cannot know whether it happened.
    """

    method: str
    pattern: str
    status: int
    times: int | None = 1
    message: str = "Server Error"
    headers: dict[str, str] = field(default_factory=dict)
    after: bool = False
    hits: int = 0

    def applies(self, method: str, path: str) -> bool:
        """Whether this failure still fires for the request."""
        live = self.times is None or self.hits < self.times
        return live and self.method in ("*", method) and re.search(self.pattern, path) is not None

    def response(self) -> Response:
        """The error GitHub would send."""
        docs = "https://docs.github.com/rest"
        return JSONResponse(
            {"message": self.message, "documentation_url": docs}, self.status, self.headers
        )


@dataclass
class SecondaryLimit:
    """GitHub's secondary rate limit on content-creating requests (POST/PATCH/PUT/DELETE).

    The first write matching ``pattern`` trips it: for ``seconds`` every write answers 403 with
    ``retry-after`` (GitHub docs, "Rate limits for the REST API": a secondary limit is a 403 or 429
    whose message says so, with ``retry-after`` when present; ``x-ratelimit-remaining`` is not 0).
    Writes made before ``retry-after`` elapsed are counted in ``early``: GitHub may ban an
    integration that keeps sending while limited.
    """

    pattern: str
    seconds: float
    tripped_at: float | None = None
    refused: int = 0
    early: int = 0

    def check(self, method: str, path: str) -> Response | None:
        """403 for a write inside the window; None otherwise."""
        if method not in WRITES:
            return None
        now = time.monotonic()
        if self.tripped_at is None:
            if re.search(self.pattern, path) is None:
                return None
            self.tripped_at = now
        elif now - self.tripped_at >= self.seconds:
            return None
        else:
            self.early += 1
        self.refused += 1
        wait = max(1, int(self.seconds - (now - self.tripped_at) + 0.999))
        headers = {
            "retry-after": str(wait),
            "x-ratelimit-limit": "5000",
            "x-ratelimit-remaining": "4990",
        }
        docs = (
            "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api"
            "#about-secondary-rate-limits"
        )
        return JSONResponse(
            {"message": SECONDARY_LIMIT_MESSAGE, "documentation_url": docs}, 403, headers
        )


class Injector:
    """Holds, failures, a secondary rate limit and response latency for ``FakeGitHub`` (all off
    by default). ``latency = (low, high)`` delays every answer by a uniform draw, in seconds."""

    def __init__(self) -> None:
        self.holds: list[Hold] = []
        self.failures: list[Failure] = []
        self.limit: SecondaryLimit | None = None
        self.latency: tuple[float, float] | None = None
        self._rng = random.Random(0)

    def hold(self, method: str, pattern: str, then: Then = "process") -> Hold:
        """Hold the next ``method`` request whose path matches ``pattern`` until released."""
        hold = Hold(method, pattern, then)
        self.holds.append(hold)
        return hold

    def fail(
        self,
        method: str,
        pattern: str,
        status: int,
        *,
        times: int | None = 1,
        message: str = "Server Error",
        headers: dict[str, str] | None = None,
        after: bool = False,
    ) -> Failure:
        """Answer ``status`` to matching requests (``times=None``: every one, for ever)."""
        failure = Failure(method, pattern, status, times, message, dict(headers or {}), after)
        self.failures.append(failure)
        return failure

    def secondary_rate_limit(self, pattern: str, seconds: float) -> SecondaryLimit:
        """Trip a secondary rate limit at the first write matching ``pattern``."""
        self.limit = SecondaryLimit(pattern, seconds)
        return self.limit

    def release_all(self) -> None:
        """Release every hold (test teardown: never leave the server thread waiting)."""
        for hold in self.holds:
            hold.release()

    async def intercept(self, method: str, path: str) -> Verdict:
        """What to do with one request; waits here while it is held."""
        if self.latency is not None:
            await asyncio.sleep(self._rng.uniform(*self.latency))
        hold = take(self.holds, method, path)
        if hold is not None:
            await hold.block()
            if hold.then == "drop":
                return Verdict(refuse=Failure(method, path, 502).response())
        limited = self.limit.check(method, path) if self.limit is not None else None
        if limited is not None:
            return Verdict(refuse=limited)
        for failure in self.failures:
            if failure.applies(method, path):
                failure.hits += 1
                if failure.after:
                    return Verdict(replace=failure.response())
                return Verdict(refuse=failure.response())
        return Verdict()


def new_app_key() -> tuple[str, str]:
    """A throwaway RSA key pair for a GitHub App (private PEM, public PEM)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def installation_of(fake: FakeGitHub, path: str) -> int | None:
    """The installation a recorded request acted as (by its repository path), if any."""
    m = re.match(r"/(?:repos/([^/]+/[^/]+)|app/installations/(\d+))", path)
    if m is None:
        return None
    if m.group(2):
        return int(m.group(2))
    repo = fake.repos.get(m.group(1))
    return repo.installation_id if repo else None


# --- fault injection ends -------------------------------------------------------------------------


# --- helpers -------------------------------------------------------------------------------------


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _public(obj: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in obj.items() if not k.startswith("_")}
    if out.get("in_reply_to_id", 0) is None:  # GitHub omits it on top-level review comments
        del out["in_reply_to_id"]
    if "_reactions" in obj:  # GitHub's reaction rollup on comments
        out["reactions"] = {
            "+1": obj["_reactions"].get("+1", 0),
            "-1": obj["_reactions"].get("-1", 0),
            "total_count": sum(obj["_reactions"].values()),
        }
    return out


def _not_found() -> JSONResponse:
    return JSONResponse({"message": "Not Found"}, status_code=404)


def _invalid(message: str) -> JSONResponse:
    return JSONResponse({"message": "Validation Failed", "errors": [message]}, status_code=422)


def _paged(request: Request, items: list[Any], per_page: int, page: int) -> JSONResponse:
    start = (page - 1) * per_page
    chunk = items[start : start + per_page]
    headers = {}
    if start + per_page < len(items):
        url = request.url.include_query_params(page=page + 1, per_page=per_page)
        headers["link"] = f'<{url}>; rel="next"'
    return JSONResponse(chunk, headers=headers)


def _pull_json(repo: Repo, pull: Pull) -> dict[str, Any]:
    return {
        "number": pull.number,
        "state": pull.state,
        "title": pull.title,
        "body": pull.body,
        "draft": pull.draft,
        "user": {"login": pull.author},
        "head": {"sha": pull.head_sha, "ref": pull.head_ref, "repo": {"full_name": pull.head_repo}},
        "base": {"sha": pull.base_sha, "ref": pull.base_ref, "repo": {"full_name": repo.full_name}},
    }


def _split_files(diff: str) -> list[tuple[str, str, str]]:
    """(path, status, patch) per file of a git diff."""
    out = []
    for chunk in re.split(r"(?m)^(?=diff --git )", diff):
        if not chunk.startswith("diff --git "):
            continue
        m = re.search(r"(?m)^\+\+\+ (?:b/)?(.+)$", chunk)
        path = m.group(1) if m and m.group(1) != "/dev/null" else chunk.split()[2][2:]
        status = (
            "added"
            if "\nnew file mode" in chunk
            else "removed"
            if "\ndeleted file" in chunk
            else "modified"
        )
        at = chunk.find("\n@@")
        out.append((path, status, chunk[at + 1 :] if at >= 0 else ""))
    return out


def _file_entries(diff: str) -> list[dict[str, Any]]:
    entries = []
    for path, status, patch in _split_files(diff):
        adds = sum(1 for ln in patch.splitlines() if ln.startswith("+"))
        dels = sum(1 for ln in patch.splitlines() if ln.startswith("-"))
        entry = {
            "filename": path,
            "status": status,
            "additions": adds,
            "deletions": dels,
            "changes": adds + dels,
        }
        if patch:
            entry["patch"] = patch.rstrip("\n")
        entries.append(entry)
    return entries


def _hunks(diff: str) -> dict[str, list[tuple[set[int], set[int]]]]:
    """path → per hunk (RIGHT lines: added/context, LEFT lines: removed)."""
    out: dict[str, list[tuple[set[int], set[int]]]] = {}
    for path, _, patch in _split_files(diff):
        hunks: list[tuple[set[int], set[int]]] = []
        old = new = 0
        for line in patch.splitlines():
            m = _HUNK.match(line)
            if m:
                old, new = int(m.group(1)), int(m.group(3))
                hunks.append((set(), set()))
            elif hunks and line.startswith("+"):
                hunks[-1][0].add(new)
                new += 1
            elif hunks and line.startswith("-"):
                hunks[-1][1].add(old)
                old += 1
            elif hunks and line.startswith(" "):
                hunks[-1][0].add(new)
                old, new = old + 1, new + 1
        out[path] = hunks
    return out


def _comment_problem(
    comment: dict[str, Any], hunks: dict[str, list[tuple[set[int], set[int]]]]
) -> str:
    side = comment.get("side", "RIGHT")
    line = comment.get("line")
    if comment.get("path") not in hunks or not isinstance(line, int) or not comment.get("body"):
        return "is invalid: path, line and body are required and the path must be in the diff"
    index = 0 if side == "RIGHT" else 1
    owner = next((i for i, h in enumerate(hunks[comment["path"]]) if line in h[index]), None)
    if owner is None:
        return "line must be part of the diff"
    start = comment.get("start_line")
    if start is not None:
        start_index = 0 if comment.get("start_side", side) == "RIGHT" else 1
        if start >= line or start not in hunks[comment["path"]][owner][start_index]:
            return "start_line must be part of the same hunk as the line"
    return ""


def _annotations(body: dict[str, Any]) -> list[dict[str, Any]]:
    return list((body.get("output") or {}).get("annotations") or [])


def _annotation_problem(body: dict[str, Any]) -> str:
    notes = _annotations(body)
    if len(notes) > MAX_ANNOTATIONS:
        return f"output.annotations: only {MAX_ANNOTATIONS} annotations are allowed per request"
    for note in notes:
        if note.get("annotation_level") not in ("notice", "warning", "failure"):
            return "annotation_level is not valid"
        if not note.get("path") or not isinstance(note.get("start_line"), int):
            return "annotations need path and start_line"
    return ""
