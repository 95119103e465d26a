"""Publishing on GitHub: the review, fixed replies, the sticky summary, check runs, SARIF and
triage pull requests. Mixed into ``bot.github.Installation``, whose REST transport it uses.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from bot.config import Settings
from bot.diff import ChangedFile
from bot.errors import GitHubError
from bot.findings import Finding, ReviewResult
from bot.repo_config import CONFIG_PATH, RepoConfig
from bot.report import render
from bot.report.publish import (
    FINDING_MARKER,
    REVIEW_MARKER,
    SUMMARY_MARKER,
    Dismissed,
    Posted,
    PostedComment,
    PublishPlan,
    parse_open,
    plan_publish,
    review_marker,
    with_refused,
)

log = logging.getLogger("secreview.github")

ANNOTATION_BATCH = 50  # check-run annotations per request (GitHub docs)
FIXED_PREFIX = "Fixed in "


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    """What publishing did (``posted``: what the bot had posted before, read from GitHub)."""

    review_posted: bool
    inline: int
    summary_only: int
    fixed_replies: int
    summary_id: int | None
    check_run_id: int | None
    conclusion: str
    posted: Posted | None = None
    refused: int = 0  # inline comments GitHub refused, listed in the summary instead
    fixed: tuple[str, ...] = ()  # fingerprints this push fixed (threads answered, summary rows)


class RestTransport:
    """The calls the publishing mixin needs; ``bot.github.Installation`` provides them."""

    settings: Settings
    last_posted: Posted | None

    def _call(
        self,
        verb: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        accept: str = "application/vnd.github+json",
    ) -> tuple[int, dict[str, str], str]:
        raise NotImplementedError

    def _json(self, verb: str, path: str, *, ok: Sequence[int] = (200, 201, 202), **kw: Any) -> Any:
        raise NotImplementedError

    def _pages(self, path: str, limit: int = 10_000) -> list[Any]:
        raise NotImplementedError

    def pull_request(self, repo: str, number: int) -> Any:
        raise NotImplementedError


class Publishing(RestTransport):
    """Idempotent publishing by markers (DESIGN.md §3): GitHub is the record."""

    # --- publishing ---------------------------------------------------------------------

    def posted(self, repo: str, number: int) -> Posted:
        """What the bot posted on the PR before, read from its markers (reviews included)."""
        heads = set()
        for review in self._pages(f"/repos/{repo}/pulls/{number}/reviews"):
            m = REVIEW_MARKER.search(review.get("body") or "")
            if m:
                heads.add(m.group(1))
        comments = self._pages(f"/repos/{repo}/pulls/{number}/comments")
        issue = self._pages(f"/repos/{repo}/issues/{number}/comments")
        return dataclasses.replace(posted_from(comments, issue), reviewed_heads=frozenset(heads))

    def publish_review(
        self,
        repo: str,
        number: int,
        head_sha: str,
        result: ReviewResult,
        config: RepoConfig,
        *,
        check_run_id: int | None,
        notes: Sequence[str] = (),
        files: Mapping[str, ChangedFile] | None = None,
        conclusion: str | None = None,
        dismissed: Sequence[Dismissed] = (),
        posted: Posted | None = None,
    ) -> PublishOutcome:
        """Post the review, fixed replies, the sticky summary and the check run — once.

        ``conclusion`` overrides the severity gate (the run decides it); ``dismissed``
        (``Installation.dismissals``): findings reviewers rejected, never "fixed". Inline comments
        GitHub refuses (422) are listed as summary rows instead: a finding is never dropped.
        ``posted``: what the bot had posted, when the caller read it already (else read here).
        """
        if posted is None:
            posted = self.posted(repo, number)
        self.last_posted = posted
        plan = plan_publish(head_sha, result, files or {}, config, posted, notes, dismissed)
        if self.settings.dry_run:
            log.info(
                "dry run: would post %d inline comments on %s#%d", len(plan.inline), repo, number
            )
            return PublishOutcome(
                False,
                len(plan.inline),
                len(plan.summary_only),
                0,
                None,
                None,
                plan.conclusion,
                posted,
            )
        refused: list[Finding] = []
        if plan.post_review:
            refused = self._post_review(repo, number, head_sha, plan)
        if refused:
            plan = with_refused(plan, refused, head_sha, result, notes, config, dismissed)
        for thread in plan.fixed:
            self._json(
                "POST",
                f"/repos/{repo}/pulls/{number}/comments/{thread.id}/replies",
                body={"body": f"{FIXED_PREFIX}{head_sha}. <!-- secreview:fixed -->"},
            )
        summary_id = self._upsert_summary(repo, number, posted.summary_id, plan.summary)
        if check_run_id is not None:
            self.finish_check(
                repo,
                check_run_id,
                conclusion or plan.conclusion,
                render.verdict(result),
                plan.summary,
                plan.annotations,
            )
        return PublishOutcome(
            bool(plan.inline) and len(refused) < len(plan.inline),
            len(plan.inline) - len(refused),
            len(plan.summary_only),
            len(plan.fixed),
            summary_id,
            check_run_id,
            conclusion or plan.conclusion,
            posted,
            len(refused),
            tuple(sorted({c.fingerprint for c in plan.fixed} | set(plan.fixed_elsewhere))),
        )

    def _post_review(
        self, repo: str, number: int, head_sha: str, plan: PublishPlan
    ) -> list[Finding]:
        """Post the review; the findings whose inline comments GitHub refused."""
        body: dict[str, Any] = {
            "commit_id": head_sha,
            "event": "COMMENT",
            "body": f"secreview found {len(plan.inline)} new issue(s) on this push; "
            f"see the summary comment.\n\n{review_marker(head_sha)}",
            "comments": list(plan.review_comments),
        }
        path = f"/repos/{repo}/pulls/{number}/reviews"
        status, _, text = self._call("POST", path, body=body)
        if status in (200, 201):
            return []
        if status != 422:
            raise GitHubError(
                f"GitHub answered {status} to the review: {_message(text)}",
                reason=f"github_{status}",
            )
        # One bad comment fails the whole review (GitHub docs). Post the review bare, then each
        # comment on its own, so a comment GitHub refuses never takes the others down.
        log.warning("review rejected (%s); posting comments one by one", _message(text))
        comments: list[dict[str, Any]] = body.pop("comments")
        status, _, text = self._call("POST", path, body=body)
        if status not in (200, 201):
            log.warning("bare review rejected too (%s); findings go to the summary", _message(text))
            return list(plan.inline)
        return [
            f
            for f, comment in zip(plan.inline, comments, strict=True)
            if not self._single_comment(repo, number, head_sha, comment)
        ]

    def _single_comment(
        self, repo: str, number: int, head_sha: str, comment: Mapping[str, Any]
    ) -> bool:
        path = f"/repos/{repo}/pulls/{number}/comments"
        status, _, text = self._call("POST", path, body={**comment, "commit_id": head_sha})
        if status in (200, 201):
            return True
        log.warning(
            "comment on %s:%s refused: %s", comment.get("path"), comment.get("line"), _message(text)
        )
        return False

    def _upsert_summary(self, repo: str, number: int, existing: int | None, body: str) -> int:
        if existing is not None:
            self._json("PATCH", f"/repos/{repo}/issues/comments/{existing}", body={"body": body})
            return existing
        return int(
            self._json("POST", f"/repos/{repo}/issues/{number}/comments", body={"body": body})["id"]
        )

    def post_comment(self, repo: str, number: int, body: str) -> int:
        """A new comment on an issue or PR."""
        return int(
            self._json("POST", f"/repos/{repo}/issues/{number}/comments", body={"body": body})["id"]
        )

    # --- triage -------------------------------------------------------------------------------

    def propose_config_change(
        self, repo: str, base: str, branch: str, text: str, title: str, body: str
    ) -> int:
        """Open (or reuse) a pull request that writes ``text`` to ``.github/secreview.yml``.

        Suppressions go through review like any change: code owners see who silenced what.
        """
        base_sha = self._json("GET", f"/repos/{repo}/git/ref/heads/{quote(base)}")["object"]["sha"]
        status, _, _ = self._call(
            "POST",
            f"/repos/{repo}/git/refs",
            body={"ref": f"refs/heads/{branch}", "sha": base_sha},
        )
        if status not in (201, 422):  # 422: the branch exists from an earlier command
            raise GitHubError(
                f"GitHub answered {status} creating {branch}", reason=f"github_{status}"
            )
        current = self._call("GET", f"/repos/{repo}/contents/{CONFIG_PATH}", params={"ref": branch})
        put: dict[str, Any] = {
            "message": title,
            "branch": branch,
            "content": base64.b64encode(text.encode()).decode(),
        }
        if current[0] == 200:
            put["sha"] = json.loads(current[2]).get("sha")
        self._json("PUT", f"/repos/{repo}/contents/{CONFIG_PATH}", body=put)
        owner = repo.split("/")[0]
        existing = self._json(
            "GET", f"/repos/{repo}/pulls", params={"head": f"{owner}:{branch}", "state": "open"}
        )
        if existing:
            return int(existing[0]["number"])
        pr = self._json(
            "POST",
            f"/repos/{repo}/pulls",
            body={"title": title, "head": branch, "base": base, "body": body},
        )
        return int(pr["number"])

    # --- check runs -------------------------------------------------------------------------

    def start_check(
        self,
        repo: str,
        head_sha: str,
        name: str = "secreview",
        summary: str = "secreview is reviewing this change.",
        *,
        reuse: bool = True,
    ) -> int:
        """The in-progress check run ``name`` on ``head_sha``, reused when it exists.

        ``reuse=False`` skips looking (one REST call) when the caller knows it created none.
        """
        if reuse:
            data = self._json(
                "GET", f"/repos/{repo}/commits/{head_sha}/check-runs", params={"check_name": name}
            )
            for run in data.get("check_runs", []):
                if run.get("name") == name:
                    return int(run["id"])
        run = self._json(
            "POST",
            f"/repos/{repo}/check-runs",
            body={
                "name": name,
                "head_sha": head_sha,
                "status": "in_progress",
                "started_at": _now(),
                "output": {"title": "Reviewing", "summary": summary[:65000]},
            },
        )
        return int(run["id"])

    def update_check(self, repo: str, check_run_id: int, title: str, summary: str) -> None:
        """Progress on a running check run."""
        self._json(
            "PATCH",
            f"/repos/{repo}/check-runs/{check_run_id}",
            body={"output": {"title": title[:255], "summary": summary[:65000]}},
        )

    def finish_check(
        self,
        repo: str,
        check_run_id: int,
        conclusion: str,
        title: str,
        summary: str,
        annotations: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        """Complete the check run; annotations go in batches of 50 (GitHub's limit)."""
        notes = list(annotations)
        batches = [
            notes[i : i + ANNOTATION_BATCH] for i in range(0, len(notes), ANNOTATION_BATCH)
        ] or [[]]
        for i, batch in enumerate(batches):
            body: dict[str, Any] = {
                "output": {"title": title[:255], "summary": summary[:65000], "annotations": batch}
            }
            if i == len(batches) - 1:
                body.update(status="completed", conclusion=conclusion, completed_at=_now())
            self._json("PATCH", f"/repos/{repo}/check-runs/{check_run_id}", body=body)

    # --- code scanning --------------------------------------------------------------------

    def upload_sarif(self, repo: str, commit_sha: str, ref: str, sarif: Mapping[str, Any]) -> str:
        """Upload SARIF to code scanning for ``commit_sha`` (gzip + base64, ≤ 10 MB)."""
        payload = render.sarif_gzip_base64(dict(sarif))
        if len(payload) > 10 * 1024 * 1024:
            raise GitHubError(
                "SARIF is over GitHub's 10 MB limit after compression", reason="sarif_too_large"
            )
        data = self._json(
            "POST",
            f"/repos/{repo}/code-scanning/sarifs",
            body={"commit_sha": commit_sha, "ref": ref, "sarif": payload, "tool_name": "secreview"},
        )
        return str(data.get("id", ""))


def posted_from(
    comments: Sequence[Mapping[str, Any]], issue_comments: Sequence[Mapping[str, Any]]
) -> Posted:
    """What the bot posted, from the PR's review comments and issue comments as GitHub lists
    them (the reviews themselves are not read: ``reviewed_heads`` stays empty)."""
    replied = {
        c.get("in_reply_to_id") for c in comments if (c.get("body") or "").startswith(FIXED_PREFIX)
    }
    threads = []
    for c in comments:
        m = FINDING_MARKER.search(c.get("body") or "")
        if m and c.get("in_reply_to_id") is None:
            reactions = c.get("reactions") or {}
            threads.append(
                PostedComment(
                    c["id"],
                    m.group(1),
                    c.get("path", ""),
                    c["id"] in replied,
                    int(reactions.get("+1", 0)),
                    int(reactions.get("-1", 0)),
                )
            )
    summary_id, open_fps = None, frozenset[str]()
    for c in issue_comments:
        if SUMMARY_MARKER.search(c.get("body") or ""):
            summary_id, open_fps = c["id"], parse_open(c["body"])
            break
    return Posted(frozenset(), tuple(threads), summary_id, open_fps)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _message(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        return text[:200]
    if isinstance(data, dict):
        return str(data.get("message", ""))[:200] + (
            f" {data['errors']}" if data.get("errors") else ""
        )
    return text[:200]
