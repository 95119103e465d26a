"""Prompt building: a byte-stable cached prefix (policy, schema, repo context) + a unit message."""

from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import json
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

from bot import diff as diffmod
from bot.diff import ReviewUnit

if TYPE_CHECKING:  # loaded on first use, by environment()
    import jinja2

# Bump when the policy, schema or templates change in a way that should invalidate cached prefixes
# (the prefix sha changes anyway; the version tells humans and reports which policy judged a PR).
POLICY_VERSION = "2026.12"

SCHEMA_NAME = "secreview_findings"
FENCE_TAG = "untrusted-data"
INSTRUCTIONS_TAG = "repository-instructions"

# PR text is repeated in every unit message of a PR, so it is capped to keep units within budget.
MAX_TITLE_CHARS = 300
MAX_BODY_CHARS = 6000
MAX_LISTED_FILES = 200
# Everything in a unit message before this heading is the same for every unit of a PR (and
# every push that keeps the PR text); everything after it belongs to one unit.
UNIT_HEADING = "## This chunk"

# Any "<" that starts something resembling one of our structural tags (with optional whitespace,
# zero-width characters and "/") becomes "‹", so data can neither close a fence nor open one.
_GAP = r"[\s\u200b-\u200d\u2060\ufeff]*"
# One gap, then optionally "/" and a second gap: never two adjacent gaps that could split the
# same whitespace between them (quadratic backtracking on "<" followed by a long gap).
_MARKER_RE = re.compile(
    rf"<(?={_GAP}(?:/{_GAP})?(?:{FENCE_TAG}|{INSTRUCTIONS_TAG}))", re.IGNORECASE
)
_LABEL_RE = re.compile(r"[a-z][a-z0-9-]{0,40}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# Cyrillic and Greek letters that read as the hex letters of a fence id.
_HEX_LOOKALIKES = str.maketrans("аɑαьъсϲԁеєҽſ", "aaabbccdeeef")
_ID_GAP_RE = re.compile(r"[\s\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]+")


@dataclass(frozen=True, slots=True)
class RepoContext:
    """What the model should know about a repository; rendered from sorted inputs only."""

    repo: str = ""
    languages: tuple[str, ...] = ()
    frameworks: tuple[str, ...] = ()
    manifests: tuple[str, ...] = ()
    security_files: tuple[str, ...] = ()
    instructions: str = ""


@dataclass(frozen=True, slots=True)
class PRContext:
    """Untrusted pull-request text: title, description and the changed files."""

    title: str = ""
    body: str = ""
    files: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class PreviousFinding:
    """A finding already posted on a file under review, shown so a re-review can continue it."""

    fingerprint: str
    path: str
    line: int
    cwe: str
    title: str


@dataclass(frozen=True, slots=True)
class Prefix:
    """The stable system prompt and its sha256 (which keys cache affinity)."""

    text: str
    sha256: str


def neutralise(text: str) -> str:
    """``text`` with every imitation of the prompt's structural tags defused (``<`` → ``‹``)."""
    return _MARKER_RE.sub("‹", text)


def _id_probe(text: str) -> str:
    """``text`` as a reader could take it: compatibility-folded (fullwidth digits), lower case,
    look-alikes of hex letters mapped to them, without whitespace or invisible characters."""
    folded = unicodedata.normalize("NFKC", text).lower().translate(_HEX_LOOKALIKES)
    return _ID_GAP_RE.sub("", folded)


def fence_id(label: str, body: str) -> str:
    """The id of a ``label`` block around ``body``: stable, and never a substring of ``body``.

    A content hash would make the opening tag differ in every request and break the prefix cache
    for everything after it. Instead the id is derived from the label alone (the same bytes in
    every request) and checked against the content: if the data contains it (in any case, split
    by whitespace or zero-width characters), the next candidate is taken. Forging the closing tag
    needs the id inside the data, which by construction it is not.
    """
    probe = _id_probe(body)
    for attempt in itertools.count():
        block_id = hashlib.sha256(f"secreview-fence\0{label}\0{attempt}".encode()).hexdigest()
        if block_id[:12] not in probe:
            return block_id[:12]
    raise AssertionError("unreachable")  # pragma: no cover - itertools.count() is endless


def fence(text: str, label: str) -> str:
    """Wrap untrusted ``text`` in an ``untrusted-data`` block it cannot break out of.

    Lookalike tags in the data are neutralised, and the block's id (see ``fence_id``) never
    occurs in the data, so no text can close the block early or open one of its own.
    """
    if not _LABEL_RE.fullmatch(label):
        raise ValueError(f"invalid fence label {label!r}")
    # str() makes a StrictUndefined passed through the filter raise instead of rendering as "".
    body = neutralise(str(text))
    if body and not body.endswith("\n"):
        body += "\n"
    block_id = fence_id(label, body)
    return f'<{FENCE_TAG} kind="{label}" id="{block_id}">\n{body}</{FENCE_TAG} id="{block_id}">'


def _load_template(name: str) -> str:
    return resources.files("prompts").joinpath(name).read_text(encoding="utf-8")


@functools.cache
def environment() -> jinja2.Environment:
    """The jinja environment over the ``prompts`` package (StrictUndefined, plain text)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load_template),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # noqa: S701 - prompts are plain text for a model, never HTML
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["fence"] = fence
    return env


@functools.cache
def _schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(_load_template("findings.schema.json"))
    return loaded


def findings_schema() -> dict[str, Any]:
    """prompts/findings.schema.json (a copy: callers may not mutate the cached one)."""
    return copy.deepcopy(_schema())


def _clean_item(value: str) -> str:
    # Repository paths may legally contain newlines; one path must stay one list item.
    return neutralise(_CONTROL_RE.sub("?", value)).strip()


def _sorted_items(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({item for item in map(_clean_item, values) if item}))


def normalise_instructions(text: str) -> str:
    """Maintainer instructions with LF line endings, no trailing spaces, no outer blank lines."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return neutralise("\n".join(line.rstrip() for line in lines).strip("\n"))


def build_prefix(repo: RepoContext, *, schema_in_prompt: bool = False) -> Prefix:
    """Policy → (output schema) → repo context, byte-identical for equal inputs.

    The schema goes to the model once: as ``response_format`` (``schema_in_prompt=False``, the
    default), or in this text for a backend that cannot take ``response_format``.
    """
    context = RepoContext(
        repo=_clean_item(repo.repo),
        languages=_sorted_items(repo.languages),
        frameworks=_sorted_items(repo.frameworks),
        manifests=_sorted_items(repo.manifests),
        security_files=_sorted_items(repo.security_files),
        instructions=normalise_instructions(repo.instructions),
    )
    schema_json = json.dumps(_schema(), indent=2, sort_keys=True, ensure_ascii=False)
    text = (
        environment()
        .get_template("system.j2")
        .render(
            policy_version=POLICY_VERSION,
            schema_json=schema_json if schema_in_prompt else "",
            repo=context,
        )
    )
    return Prefix(text=text, sha256=hashlib.sha256(text.encode("utf-8")).hexdigest())


def render_unit(unit: ReviewUnit) -> str:
    """The diff text of a unit: each segment's path header and its rendered hunks."""
    # bot/diff.py owns the rendering so the text sent is exactly the text split_units measured.
    return diffmod.render_unit_diff(unit)


def _cap(text: str, limit: int) -> tuple[str, int]:
    return (text, 0) if len(text) <= limit else (text[:limit], len(text) - limit)


def _pr_view(pr: PRContext) -> dict[str, Any]:
    title, _ = _cap(" ".join(pr.title.split()), MAX_TITLE_CHARS)
    body, omitted = _cap(pr.body.replace("\r\n", "\n").strip(), MAX_BODY_CHARS)
    files = sorted({_CONTROL_RE.sub("?", f) for f in pr.files if f})
    return {
        "title": title,
        "body": body,
        "body_omitted": omitted,
        "files": files[:MAX_LISTED_FILES],
        "file_count": len(files),
        "files_omitted": max(0, len(files) - MAX_LISTED_FILES),
    }


def _previous_view(previous: Sequence[PreviousFinding]) -> str:
    """One JSON object per line, sorted by place: the same findings render the same bytes."""
    rows = sorted(set(previous), key=lambda p: (p.path, p.line, p.fingerprint))
    return "\n".join(
        json.dumps(
            {
                "fingerprint": p.fingerprint,
                "path": _CONTROL_RE.sub("?", p.path),
                "line": p.line,
                "cwe": p.cwe,
                "title": " ".join(p.title.split())[:MAX_TITLE_CHARS],
            },
            ensure_ascii=False,
        )
        for p in rows
    )


def build_unit_message(
    unit: ReviewUnit,
    pr: PRContext | None = None,
    hints: Sequence[str] = (),
    redactions: int = 0,
    previous: Sequence[PreviousFinding] = (),
) -> str:
    """The user message: what every unit of the PR shares first, then this unit's own part.

    Shared: the fenced PR context and the task. This unit's (after ``UNIT_HEADING``): findings
    already posted on its files, analyzer hints, the redaction note and the fenced diff.
    """
    return (
        environment()
        .get_template("unit.j2")
        .render(
            pr=None if pr is None else _pr_view(pr),
            unit_heading=UNIT_HEADING,
            previous=_previous_view(previous),
            hints=[f"- {' '.join(h.split())}" for h in hints],
            redactions=redactions,
            diff=render_unit(unit),
        )
    )


def build_messages(prefix: Prefix, unit_message: str) -> tuple[dict[str, str], ...]:
    """System message = prefix, user message = unit message."""
    return (
        {"role": "system", "content": prefix.text},
        {"role": "user", "content": unit_message},
    )


_STRICT_UNSUPPORTED = frozenset({"minLength", "maxLength"})


def strict_compatible(schema: dict[str, Any]) -> bool:
    """Whether ``schema`` meets OpenAI strict structured-output rules.

    Strict mode demands that every object lists all its properties as required and forbids
    additional ones, and it does not support string length limits.
    """
    if _STRICT_UNSUPPORTED & schema.keys():
        return False
    if schema.get("type") == "object":
        props: dict[str, Any] = schema.get("properties", {})
        if schema.get("additionalProperties") is not False or set(
            schema.get("required", ())
        ) != set(props):
            return False
        return all(strict_compatible(p) for p in props.values())
    items = schema.get("items")
    return strict_compatible(items) if isinstance(items, dict) else True


def response_format() -> dict[str, Any]:
    """The ``response_format`` json_schema object sent with every request."""
    schema = findings_schema()
    # DESIGN.md §3 makes start_line and suggestion optional and bounds string lengths, which
    # OpenAI's strict mode rejects (it wants every property required, nullable instead of
    # optional). So the schema is sent as guidance with strict=false, and bot/findings.py
    # validates every answer against the full schema instead; strict_compatible() flips this to
    # true automatically should the schema ever meet the strict rules.
    return {
        "type": "json_schema",
        "json_schema": {
            "name": SCHEMA_NAME,
            "schema": schema,
            "strict": strict_compatible(schema),
        },
    }


def affinity_key(
    installation: int | str, repo: str, prefix_sha: str, kind: Literal["review", "scan"] = "review"
) -> str:
    """``sr-`` + sha256(installation, repo, prefix_sha, kind)[:24]: one key per repo and prefix."""
    material = f"{installation}\0{repo}\0{prefix_sha}\0{kind}".encode()
    return "sr-" + hashlib.sha256(material).hexdigest()[:24]
