"""Scan planning: skip what is not worth reviewing, rank files by security relevance, stay under
a cost budget and pack whole files into full units. Pure: nothing is read, sent or executed.

Each kept file becomes a whole-file "added" ``ChangedFile``, so prompts, evidence checks and
reports are the same as for a pull request.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from bot.diff import ChangedFile, DiffLine, Hunk, Skip
from bot.diff.globs import compile_globs
from bot.diff.split import (
    LOCKFILES,
    MAX_LINE_CHARS,
    VENDOR_DIRS,
    default_skip_reason,
    is_migration,
)
from bot.model import values as llm
from bot.paths import is_prose, is_test, off_target
from bot.redact import linear
from bot.repo_config import RepoConfig
from bot.tokens import CHARS_PER_TOKEN

Entry = tuple[str, bytes | None, str | None]  # (path, content, skip reason) from a walker
PREFIX_TOKENS_GUESS = 6000  # the cached system prefix, billed at the cached rate after the first
COMPLETION_TOKENS_GUESS = 600  # what a unit's answer costs, on average
OVER_BUDGET = "over cost budget"  # the skip reason of files a --max-cost leaves out
_LINE_OVERHEAD = 10  # "   123 + " rendering of each line in a unit
_BINARY_SUFFIXES = (
    ".png",
    ".jpg",
    ".jpeg",
    ".gif",
    ".ico",
    ".pdf",
    ".zip",
    ".gz",
    ".tgz",
    ".jar",
    ".so",
    ".dll",
    ".exe",
    ".woff",
    ".woff2",
    ".ttf",
    ".mp4",
    ".mp3",
    ".pyc",
    ".class",
    ".o",
    ".a",
    ".bin",
    ".webp",
    ".svgz",
    ".xz",
    ".bz2",
    ".7z",
)
_CATALOG_SUFFIXES = (".po", ".pot", ".mo")  # translation catalogs: text for people, not code
_BUNDLED = b"\n_BUNDLED_METADATA"  # ansible's marker of a bundled upstream package

# Where vulnerabilities live: request handlers, auth, crypto, deserialization, shell and SQL,
# templates, CI workflows and infrastructure code. (pattern, weight)
_PATH_SIGNALS = [
    (re.compile(p, re.I), w)
    for p, w in (
        (r"(^|/)\.github/workflows/", 9),
        (r"auth|login|oauth|saml|sso|session|password|passwd", 8),
        (r"crypt|cipher|jwt|token|secret|key(s|store)?\b|cert", 7),
        (r"(^|/)(views?|routes?|handlers?|controllers?|api|endpoints?|resolvers?)(/|\.|$)", 7),
        (r"middleware|permission|acl|rbac|policy|admin", 6),
        (r"upload|download|file|path", 4),
        (r"serial|pickle|marshal|yaml|xml|parse", 5),
        (r"sql|db|query|repositor|model", 4),
        (r"(^|/)templates?/|\.(html|jinja2?|j2|erb|ejs|hbs)$", 4),
        (r"(^|/)(dockerfile|docker-compose[^/]*)$|\.tf$|(^|/)(k8s|helm|terraform|deploy)/", 6),
        (r"(^|/)(main|app|server|wsgi|asgi|manage|index)\.\w+$", 5),
    )
]
# Content signals are plain substrings (a bytes search is several times faster than a regex
# alternation): "|" separates needles, "&" joins parts that must all be present. Each signal is
# (needles, search the lower-cased text?, weight).
_CONTENT_SIGNALS = tuple(
    (
        tuple(n for n in needles.split(b"|") if b"&" not in n),
        tuple(tuple(n.split(b"&")) for n in needles.split(b"|") if b"&" in n),
        fold,
        weight,
    )
    for needles, fold, weight in (
        (b"subprocess|os.system|exec(|eval(|child_process|runtime.getruntime|shell=true", 1, 6),
        (b"insert into|execute(|raw(|.query(|select & from ", 1, 5),
        (b"pickle.load|yaml.load|marshal.load|unserialize|objectinputstream|readobject", 1, 6),
        (
            b"request.args|request.form|request.json|request.get_json|request.GET|request.POST"
            b"|request.body|request.params|request.query|req.body|req.query|req.params",
            0,
            5,
        ),
        (b"password|secret|api_key|apikey|private_key|token", 1, 3),
        (b"open(|send_file|sendfile|readfile|path.join", 1, 2),
        (
            b"@app.route|@app.get|@app.post|@router.|app.get(|app.post(|urlpatterns|@requestmapping",
            1,
            5,
        ),
        (b"md5|MD5|sha1(|DES|ECB|random.random|Math.random|verify=False|InsecureSkipVerify", 0, 4),
    )
)


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One file the scan may review: its text, estimated size and security relevance."""

    path: str
    text: str
    tokens: int
    score: float


@dataclass(frozen=True, slots=True)
class ScanPlan:
    """Files chosen (in packing order), grouped into units, and everything left out with why."""

    files: tuple[SourceFile, ...]
    groups: tuple[tuple[str, ...], ...]
    skipped: tuple[Skip, ...]
    estimated_tokens: int
    estimated_cost_usd: float
    budget_tokens: int
    over_budget: tuple[str, ...] = field(default=())
    # secreview:redaction — text files the model does not review but the secrets scan reads
    # (documentation, lockfiles, vendored and generated code, files over the cost budget).
    secret_only: tuple[tuple[str, str], ...] = field(default=())

    def changed_files(self) -> list[ChangedFile]:
        """Each chosen file as a whole-file "added" ChangedFile, in packing order."""
        return [as_changed_file(f.path, f.text) for f in self.files]

    @property
    def fullness(self) -> float:
        """Average unit size over the budget (how well the units are packed)."""
        by_path = {f.path: f.tokens for f in self.files}
        if not self.groups:
            return 0.0
        sizes = [sum(by_path[p] for p in g) for g in self.groups]
        return sum(min(s, self.budget_tokens) for s in sizes) / (len(sizes) * self.budget_tokens)


def as_changed_file(path: str, text: str) -> ChangedFile:
    """A whole file as an added file with one hunk of every line."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    body = tuple(DiffLine("add", None, i, t) for i, t in enumerate(lines, 1))
    hunk = Hunk(0, 0, 0, 1, len(body), "", body)
    return ChangedFile(path, None, "added", (hunk,) if body else ())


# --- choosing and ranking ----------------------------------------------------------------------


def skip_reason(path: str, data: bytes) -> str | None:
    """Why a file is not reviewed (binary, lockfile, vendored, generated, docs...), or None."""
    name = path.rsplit("/", 1)[-1]
    if name.lower().endswith(_BINARY_SUFFIXES) or b"\0" in data[:8192]:
        return "binary file"
    if not data.strip():
        return "empty file"
    if name in LOCKFILES:
        return "lockfile"
    if VENDOR_DIRS.intersection(path.split("/")[:-1]):
        return "vendored"
    if is_prose(path) and not path.startswith(".github/"):
        return "documentation"
    if name.lower().endswith(_CATALOG_SUFFIXES):
        return "translation catalog"
    return None


def _off_target(path: str) -> str | None:
    """Tests, examples and documentation trees: the policy reports no finding there (bar a
    critical one), so a scan reads them for secrets only unless ``include`` names them."""
    return None if path.startswith(".github/") else off_target(path)


_WILDCARDS = linear.compile(r"\*\*|\*|\?|\[[^\]/]*\]")  # config text: RE2, linear time


def names_off_target(pattern: str) -> bool:
    """Whether an ``include`` glob itself names tests, examples or documentation
    (``tests/**``, ``**/test_*.py``, ``core/src/test/**``), rather than reaching them through a
    wildcard (``src/**``, ``**/*.py``): only such a glob brings those files back into a scan."""
    body = pattern.strip()
    if not body or body.startswith("!"):
        return False
    probe = _WILDCARDS.sub("x", body.lstrip("/"))
    return bool(off_target(probe) or off_target(probe.rstrip("/") + "/x"))


def _long_line(text: str) -> int | None:
    """The number of the first line longer than MAX_LINE_CHARS, or None (one linear pass)."""
    start, number = 0, 1
    while True:
        end = text.find("\n", start)
        stop = len(text) if end < 0 else end
        if stop - start > MAX_LINE_CHARS:
            return number
        if end < 0:
            return None
        start, number = end + 1, number + 1


def score(path: str, data: bytes) -> float:
    """Security relevance: path signals plus a few cheap content signals; tests rank low."""
    value = float(sum(w for pattern, w in _PATH_SIGNALS if pattern.search(path)))
    head = data[:20_000]
    lower = head.lower()
    for singles, combined, fold, weight in _CONTENT_SIGNALS:
        text = lower if fold else head
        if any(n in text for n in singles) or any(_has(text, c) for c in combined):
            value += weight
    if is_test(path):
        value *= 0.3
    return float(value)


def _has(text: bytes, parts: tuple[bytes, ...]) -> bool:
    return all(part in text for part in parts)


def _tokens(path: str, text: str) -> int:
    lines = text.count("\n") + (0 if text.endswith("\n") else 1)
    return math.ceil((len(text) + _LINE_OVERHEAD * lines + len(path) + 40) / CHARS_PER_TOKEN)


# secreview:redaction — skip reasons whose files are still text worth reading for secrets.
SECRET_SCAN_REASONS = frozenset(
    ("documentation", "test code", "example code", "lockfile", "vendored", "generated file")
)
SECRET_SCAN_MAX_BYTES = 1_000_000


def secret_only(entries: Iterable[Entry], skipped: Iterable[Skip]) -> tuple[tuple[str, str], ...]:
    """(path, text) of skipped text files the secrets scan still reads."""
    wanted = {s.path for s in skipped if s.reason in SECRET_SCAN_REASONS or s.reason == OVER_BUDGET}
    return tuple(
        (path, data.decode("utf-8", errors="replace"))
        for path, data, _ in entries
        if path in wanted and data is not None and len(data) <= SECRET_SCAN_MAX_BYTES
    )


def choose(entries: Iterable[Entry], config: RepoConfig) -> Iterator[tuple[str, str | None, str]]:
    """``(path, text, "")`` for each file worth reviewing, ``(path, text, reason)`` for the rest,
    with the text only where the secrets scan still reads a skipped file (SECRET_SCAN_REASONS).

    One file at a time: nothing is kept, so a caller may analyze and let go of each text.
    Bundled packages (see :func:`bundle_dirs`) are for the caller to drop afterwards.
    """
    rules = config.filter_rules
    include = compile_globs(tuple(rules.include)) if rules.include else None
    exclude = compile_globs(tuple(rules.exclude))
    named = compile_globs(tuple(p for p in rules.include if names_off_target(p)))
    for path, data, reason in entries:
        if reason is None and data is not None:
            reason = skip_reason(path, data)
        if reason is None and exclude(path):
            reason = "excluded by config"
        if reason is None and include is not None and not include(path):
            reason = "not included by config"
        if reason is None and rules.default_excludes and not named(path):
            reason = _off_target(path)
        if reason is None and data is not None:
            text = data.decode("utf-8", errors="replace")
            if rules.default_excludes and not is_migration(path):
                reason = default_skip_reason(_probe(path, text))
            long = _long_line(text) if reason is None else None
            if long is not None:
                reason = f"line {long} is longer than {MAX_LINE_CHARS} characters"
            if reason is None:
                yield path, text, ""
                continue
        yield path, _secret_text(data, reason), reason or "unreadable"


def _secret_text(data: bytes | None, reason: str | None) -> str | None:
    """The text of a skipped file the secrets scan reads anyway, else None."""
    if data is None or reason not in SECRET_SCAN_REASONS or len(data) > SECRET_SCAN_MAX_BYTES:
        return None
    return data.decode("utf-8", errors="replace")


def select(entries: Iterable[Entry], config: RepoConfig) -> tuple[list[SourceFile], list[Skip]]:
    """Files worth reviewing, ranked most relevant first, and the rest with a reason."""
    kept: list[SourceFile] = []
    skipped: list[Skip] = []
    for path, text, reason in choose(entries, config):
        if reason or text is None:
            skipped.append(Skip(path, reason))
        else:
            kept.append(SourceFile(path, text, _tokens(path, text), score_text(path, text)))
    if config.filter_rules.default_excludes:
        bundles = bundle_dirs((f.path, f.text) for f in kept)
        skipped += [Skip(f.path, "vendored") for f in kept if f.path.startswith(bundles)]
        kept = [f for f in kept if not f.path.startswith(bundles)]
    kept.sort(key=lambda f: (-f.score, f.path))
    return kept, skipped


def bundle_dirs(files: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """Package directories whose ``__init__.py`` declares a bundled upstream package."""
    return tuple(
        path[: -len("__init__.py")]
        for path, text in files
        if path.endswith("/__init__.py") and _BUNDLED in text[:8000].encode()
    )


def score_text(path: str, text: str) -> float:
    """:func:`score` of a decoded file."""
    return score(path, text[:20_000].encode("utf-8", errors="replace"))


def _probe(path: str, text: str) -> ChangedFile:
    """Enough of a file for the default filters (generated markers, minified lines)."""
    head = "\n".join(text.split("\n", 40)[:40])
    return as_changed_file(path, head)


# --- budget and packing ------------------------------------------------------------------------


def estimate_cost(model: str, unit_tokens: Sequence[int]) -> float:
    """Dollars for units of these sizes: the prefix cached after the first request."""
    if not unit_tokens:
        return 0.0
    prompt = sum(unit_tokens) + PREFIX_TOKENS_GUESS * len(unit_tokens)
    cached = PREFIX_TOKENS_GUESS * (len(unit_tokens) - 1)
    usage = llm.Usage(prompt, cached, COMPLETION_TOKENS_GUESS * len(unit_tokens))
    return llm.cost_usd(model, usage)


def pack(files: Sequence[SourceFile], budget: int) -> list[list[SourceFile]]:
    """Best-fit decreasing: whole files into units of at most ``budget`` tokens.

    Rooms left in open units are kept sorted, so each file finds the tightest unit it fits in
    with a binary search. A file bigger than a unit gets units of its own (split later at line
    boundaries).
    """
    bins: list[list[SourceFile]] = []
    rooms: list[tuple[int, int]] = []  # (room left, bin index), sorted
    for f in sorted(files, key=lambda f: (-f.tokens, f.path)):
        if f.tokens >= budget:
            bins.append([f])
            continue
        at = bisect.bisect_left(rooms, (f.tokens, -1))
        if at == len(rooms):
            bins.append([f])
            index, left = len(bins) - 1, budget - f.tokens
        else:
            left, index = rooms.pop(at)
            bins[index].append(f)
            left -= f.tokens
        if left > 0:
            bisect.insort(rooms, (left, index))
    return bins


def plan_scan(
    entries: Iterable[Entry],
    config: RepoConfig,
    *,
    budget_tokens: int,
    model: str,
    max_cost_usd: float | None = None,
) -> ScanPlan:
    """Choose, rank, budget and pack; nothing is sent anywhere."""
    entries = list(entries)
    ranked, skipped = select(entries, config)
    chosen = ranked
    over: list[str] = []
    if max_cost_usd is not None:
        chosen, over = _within_budget(ranked, budget_tokens, model, max_cost_usd)
        skipped += [Skip(p, OVER_BUDGET) for p in over]
    bins = pack(chosen, budget_tokens)
    ordered = [f for b in bins for f in b]
    sizes = [sum(f.tokens for f in b) for b in bins]
    return ScanPlan(
        files=tuple(ordered),
        groups=tuple(tuple(f.path for f in b) for b in bins),
        skipped=tuple(skipped),
        estimated_tokens=sum(sizes),
        estimated_cost_usd=estimate_cost(model, sizes),
        budget_tokens=budget_tokens,
        over_budget=tuple(over),
        secret_only=secret_only(entries, skipped),
    )


def _within_budget(
    ranked: Sequence[SourceFile], budget: int, model: str, max_cost: float
) -> tuple[list[SourceFile], list[str]]:
    """The most relevant files whose packed units fit the cost budget (binary search)."""
    lo, hi = 0, len(ranked)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        sizes = [sum(f.tokens for f in b) for b in pack(ranked[:mid], budget)]
        if estimate_cost(model, sizes) <= max_cost:
            lo = mid
        else:
            hi = mid - 1
    return list(ranked[:lo]), [f.path for f in ranked[lo:]]
