"""Property tests over hostile bytes: the planner (parse → filter → split → redact → prompts)
and the webhook receiver take anything — lone surrogates, NULs, invalid UTF-8, CR-only and
binary patches, paths with newlines, ``..`` or 5000 characters — and answer with a plan, a
reported skip or a refusal, never an exception and never a file left out of coverage."""

from __future__ import annotations

import json
import uuid
from typing import Any

import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from bot import diff as diffmod
from bot.config import Settings
from bot.errors import DiffError
from bot.github.webhooks import signature
from bot.review.plan import PlanOptions, plan_diff
from bot.review.prompts import PRContext, RepoContext
from bot.web import create_app

PROPS = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
REPO = RepoContext(repo="octo/app", languages=("Python",))
# Characters that have broken text pipelines: a lone surrogate, NUL, bare CR, escape, bidi
# override, BOM, zero-width space, a replacement character, a newline.
NASTY = ["\ud800", "\udfff", "\0", "\r", "\x1b", "\u202e", "\ufeff", "\u200b", "\ufffd", "\n"]
nasty_text = st.lists(
    st.one_of(st.text(max_size=12), st.sampled_from(NASTY), st.just("token = ")), max_size=12
).map("".join)
paths = st.one_of(
    st.sampled_from(["app/x.py", "a b/c.py", "../../etc/passwd", "/abs.py", "x" * 5000 + ".py"]),
    st.lists(st.one_of(st.sampled_from(["..", ".", "src", "é", "a\nb", "t\tx"]), nasty_text),
             min_size=1, max_size=4).map("/".join),
)  # fmt: skip


def _quoted(path: str) -> str:
    """A path as git writes it in a header (C-quoted when unusual)."""
    if path.isprintable() and '"' not in path and "\\" not in path and " " not in path:
        return path
    escaped = path.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return '"' + escaped.encode("unicode_escape").decode("ascii").replace('"', '\\"') + '"'


@st.composite
def hostile_diffs(draw: st.DrawFn) -> str:
    """A syntactically plausible git diff whose paths, lines and endings are hostile."""
    parts = []
    for _ in range(draw(st.integers(1, 4))):
        path = _quoted(draw(paths))
        kind = draw(st.sampled_from(["text", "binary", "git-binary", "rename", "empty"]))
        parts.append(f"diff --git a/{path} b/{path}\n")
        if kind == "binary":
            parts.append(f"Binary files a/{path} and b/{path} differ\n")
            continue
        if kind == "git-binary":
            parts.append("index 1111111..2222222 100644\nGIT binary patch\nliteral 5\n")
            parts.append("McmZQzU|s5E000\n\nliteral 0\nHcmV?d00001\n\n")
            continue
        if kind == "rename":
            parts.append(f"similarity index 100%\nrename from {path}\nrename to {path}.new\n")
            continue
        if kind == "empty":
            parts.append("new file mode 100644\nindex 0000000..e69de29\n")
            continue
        lines = draw(st.lists(nasty_text, min_size=1, max_size=8))
        body = "".join(f"+{ln.replace(chr(10), ' ')}\n" for ln in lines)
        parts.append(f"--- a/{path}\n+++ b/{path}\n@@ -0,0 +1,{len(lines)} @@\n{body}")
    text = "".join(parts)
    ending = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    return text.replace("\n", ending)


def _check_plan(data: str | bytes, pr: PRContext | None) -> None:
    try:
        parsed = diffmod.parse_diff(data)
        plan = plan_diff(
            data, repo=REPO, pr=pr, options=PlanOptions(budget_tokens=800, max_units=20)
        )
    except DiffError:
        return  # "not a diff" is itself the reported outcome
    for request in plan.requests:  # everything that leaves the process encodes as UTF-8 JSON
        json.dumps(request.messages, ensure_ascii=False).encode("utf-8")
    for f in plan.analyzer_findings:
        json.dumps(f.to_json(), ensure_ascii=False).encode("utf-8")
    covered = set(plan.reviewed) | {s.path for s in plan.skipped}
    missing = [f.path for f in parsed.files if diffmod.shown_path(f.path) not in covered]
    assert missing == [], "every file is reviewed or listed as skipped with a reason"


@PROPS
@given(hostile_diffs(), nasty_text, nasty_text)
def test_any_diff_plans_or_is_refused_never_crashes(diff: str, title: str, body: str) -> None:
    _check_plan(diff, PRContext(title=title, body=body))


@PROPS
@given(hostile_diffs())
def test_the_same_diff_as_invalid_utf8_bytes(diff: str) -> None:
    raw = diff.encode("utf-8", "surrogatepass").replace(b"a", b"\xff\xfe", 1)
    _check_plan(raw, None)


@PROPS
@given(st.binary(max_size=600))
def test_raw_bytes_after_a_valid_header(tail: bytes) -> None:
    _check_plan(b"diff --git a/x.py b/x.py\n--- a/x.py\n+++ b/x.py\n@@ -0,0 +1,3 @@\n" + tail, None)


@PROPS
@given(
    st.dictionaries(
        st.sampled_from(["filename", "status", "patch", "changes", "previous_filename"]),
        st.one_of(
            nasty_text, st.integers(-1, 5), st.none(), st.sampled_from(["removed", "renamed"])
        ),
    )
)
def test_any_files_api_entry_is_a_file_or_a_skip(entry: dict[str, Any]) -> None:
    item = diffmod.files_api_entry(entry)
    assert isinstance(item, diffmod.ChangedFile | diffmod.Skip)
    if isinstance(item, diffmod.Skip):
        assert item.reason


# --- the receiver --------------------------------------------------------------------------------

SECRET = "It's a Secret to Everybody"
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), nasty_text),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(nasty_text, inner, max_size=3),
    max_leaves=8,
)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A signed event of a routed kind whose fields are hostile or of the wrong type."""
    event = draw(st.sampled_from(["pull_request", "issue_comment", "check_run", "installation"]))
    payload: dict[str, Any] = {
        "action": draw(st.sampled_from(["opened", "synchronize", "created", "rerequested"])),
        "number": draw(st.one_of(st.integers(-5, 2**64), nasty_text)),
        "repository": {"full_name": draw(st.one_of(paths, st.just("octo/app"), json_values))},
        "installation": {"id": draw(st.one_of(st.integers(-1, 2**64), nasty_text))},
        "pull_request": {
            "number": draw(st.integers(0, 10)),
            "head": {"sha": draw(st.one_of(nasty_text, st.just("a" * 40)))},
            "title": draw(nasty_text),
            "body": draw(nasty_text),
            "draft": draw(json_values),
        },
        "issue": {"number": 7, "pull_request": {"url": draw(nasty_text)}},
        "comment": {
            "id": draw(json_values),
            "body": "/secreview " + draw(nasty_text),
            "author_association": draw(st.sampled_from(["MEMBER", "NONE", "\ud800"])),
            "user": {"login": draw(nasty_text), "type": "User"},
        },
        "check_run": {"id": draw(json_values), "head_sha": draw(nasty_text)},
    }
    return event, payload


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(deliveries())
def test_any_signed_delivery_is_answered_below_500(
    redis_url: str, delivery: tuple[str, dict[str, Any]]
) -> None:
    event, payload = delivery
    body = json.dumps(payload).encode()  # lone surrogates travel as \ud800 escapes
    app = create_app(Settings.from_env({"GITHUB_WEBHOOK_SECRET": SECRET, "REDIS_URL": redis_url}))
    client = redis.Redis.from_url(redis_url)
    with TestClient(app) as http:
        response = http.post(
            "/api/github/webhooks",
            content=body,
            headers={
                "x-github-event": event,
                "x-github-delivery": str(uuid.uuid4()),
                "x-hub-signature-256": signature(SECRET, body),
                "content-type": "application/json",
            },
        )
    assert response.status_code in (200, 202, 204, 400), response.text
    for key in client.keys("*"):  # whatever was queued is JSON a worker can read
        if client.type(key) == b"list":
            for raw in client.lrange(key, 0, -1):
                json.loads(raw)
    client.flushdb()
    client.close()
