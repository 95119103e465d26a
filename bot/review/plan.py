"""Planning a review: everything decided before the first model request, as one stored value.

A plan is computed once per run — diff, filters, analyzers, redaction, units, prompts — and kept
with the run (DESIGN.md §8): later steps read it back and never fetch or rebuild anything. Every
door (the CLI's diff, a pull request, a repository scan) ends in :func:`plan_files`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from bot import diff as diffmod
from bot import findings as fnd
from bot.diff import ChangedFile, ReviewUnit, Skip, delta
from bot.findings import Finding
from bot.model.values import ModelRequest
from bot.redact.run import RunRedaction
from bot.repo_config import RepoConfig
from bot.review import analyzers, continuity, injection, prompts, risk
from bot.review.feedback import Dismissal
from bot.review.prompts import PRContext, Prefix, PreviousFinding, RepoContext
from bot.review.results import FileResult

# path → key of every reviewable file, in; path → stored result of the keys that have one, out
Lookup = Callable[[Mapping[str, str]], Mapping[str, FileResult]]

Kind = Literal["review", "scan"]
# Bumped whenever the policy, the output schema or the evaluation of answers changes meaning:
# a stored per-file result computed under another version is never reused.
RESULT_VERSION = "1"


@dataclass(frozen=True, slots=True)
class PlanOptions:
    """Knobs of planning that come from the process settings, not from the change."""

    budget_tokens: int = 12_000
    max_units: int | None = None
    installation: int | str = "local"
    max_tokens: int = 4096
    model: str = ""


@dataclass(frozen=True, slots=True)
class Plan:
    """A planned run: the prefix, the units and their requests, coverage, analyzer findings.

    ``route`` is non-empty when the change needs no model call (documentation only, ...): it
    says why. ``file_keys`` maps each reviewable path to the key its result is stored under;
    ``reused`` holds the stored results of files whose key did not change since a review that
    already answered them (they are in no unit).
    """

    kind: Kind
    prefix: Prefix
    affinity: str
    units: tuple[ReviewUnit, ...]
    requests: tuple[ModelRequest, ...]
    files: dict[str, ChangedFile]
    reviewed: tuple[str, ...]
    skipped: tuple[Skip, ...]
    analyzer_findings: tuple[Finding, ...] = ()
    config: RepoConfig = field(default_factory=RepoConfig)
    route: str = ""
    file_keys: dict[str, str] = field(default_factory=dict)
    reused: dict[str, FileResult] = field(default_factory=dict)
    secrets_allowed: int = 0  # secrets on allow-commented lines: redacted, not reported
    # A re-review continues the last one: the earlier findings shown to each unit, the earlier
    # findings themselves (fingerprint → finding, to carry those the model says persist), and
    # the fingerprints people with write access dismissed on this pull request.
    previous: dict[str, tuple[PreviousFinding, ...]] = field(default_factory=dict)
    earlier: dict[str, Finding] = field(default_factory=dict)
    dismissed: tuple[Dismissal, ...] = ()
    # Unit id → earlier findings on lines of its narrowed files that the unit does not show
    # (bot.diff.delta): unchanged code, so they stay as they were, without asking the model.
    carried: dict[str, tuple[Finding, ...]] = field(default_factory=dict)

    def request(self, unit_id: str) -> ModelRequest:
        """The request that reviews ``unit_id``."""
        return next(r for r in self.requests if r.external_reference == unit_id)

    def unit(self, unit_id: str) -> ReviewUnit:
        """The unit called ``unit_id``."""
        return next(u for u in self.units if u.id == unit_id)

    @property
    def needs_model(self) -> bool:
        """Whether any unit is left for the model to review."""
        return bool(self.requests) and not self.route


def plan_diff(
    diff_text: str | bytes,
    *,
    repo: RepoContext,
    pr: PRContext | None = None,
    config: RepoConfig | None = None,
    options: PlanOptions | None = None,
    read: Callable[[str], bytes | None] | None = None,
    extra_skipped: Sequence[Skip] = (),
    lookup: Lookup | None = None,
    earlier: Sequence[Finding] = (),
    dismissed: Sequence[Dismissal] = (),
    memo: analyzers.Memo | None = None,
    seen: Mapping[str, Sequence[str]] | None = None,
) -> Plan:
    """Plan the review of a unified diff (the CLI's ``--diff`` and a pull request's diff)."""
    parsed = diffmod.parse_diff(diff_text)
    return plan_change(
        parsed.files,
        repo=repo,
        pr=pr,
        config=config,
        options=options,
        read=read,
        extra_skipped=extra_skipped,
        lookup=lookup,
        earlier=earlier,
        dismissed=dismissed,
        memo=memo,
        seen=seen,
    )


def plan_change(
    files: Iterable[ChangedFile],
    *,
    repo: RepoContext,
    pr: PRContext | None = None,
    config: RepoConfig | None = None,
    options: PlanOptions | None = None,
    read: Callable[[str], bytes | None] | None = None,
    extra_skipped: Sequence[Skip] = (),
    lookup: Lookup | None = None,
    earlier: Sequence[Finding] = (),
    dismissed: Sequence[Dismissal] = (),
    memo: analyzers.Memo | None = None,
    seen: Mapping[str, Sequence[str]] | None = None,
) -> Plan:
    """Filter a change's files, run the analyzers on them, and plan the rest (``memo``: where
    analyses are kept, so a push re-analyzes only the files it changed)."""
    config = config or RepoConfig()
    kept, skipped = diffmod.filter_files(files, config.filter_rules)
    kept = risk.sensitive_first(kept)  # a unit cap never drops auth, crypto, workflows, IaC
    if pr is not None:
        pr = dataclasses.replace(pr, files=tuple(f.path for f in kept))
    decision = risk.route([*(f.path for f in kept), *(s.path for s in skipped)])
    analysis = analyzers.analyze(kept, read, memo)
    return plan_files(
        kept,
        skipped=(*extra_skipped, *skipped, *analysis.skipped),
        repo=repo,
        pr=pr,
        config=config,
        options=options,
        extra_findings=analysis.findings,
        route="" if decision.needs_model else decision.reason,
        lookup=lookup,
        earlier=earlier,
        dismissed=dismissed,
        seen=seen,
    )


def plan_files(
    files: Sequence[ChangedFile],
    *,
    skipped: Sequence[Skip] = (),
    repo: RepoContext,
    pr: PRContext | None = None,
    config: RepoConfig | None = None,
    options: PlanOptions | None = None,
    kind: Kind = "review",
    extra_findings: Sequence[Finding] = (),
    route: str = "",
    lookup: Lookup | None = None,
    secret_only: Sequence[tuple[str, str]] = (),
    earlier: Sequence[Finding] = (),
    dismissed: Sequence[Dismissal] = (),
    seen: Mapping[str, Sequence[str]] | None = None,
) -> Plan:
    """Redact, detect, split and build one request per review unit, for filtered files.

    With ``lookup``, files whose result is stored under an unchanged key are not sent again:
    their stored results are carried in ``Plan.reused``. ``secret_only`` are whole files
    (path, text) read for secrets but not reviewed, such as the documentation a scan skips.
    ``earlier``: the model's findings of the last review of this change (a pull request's last
    head); each unit is shown those on its files, so a re-review continues them. ``seen``: what
    that review was shown of each file (``bot.diff.delta.new_side``); a file that changed since
    is sent narrowed to the lines that changed, and its earlier findings on lines not sent are
    kept as they are (``Plan.carried``).
    """
    opts = options or PlanOptions()
    config = config or RepoConfig()
    # --- secreview:redaction (bot/redact owns this block: one run-wide redaction) ---
    secrets = RunRedaction.detect(
        files=files,
        title=diffmod.clean_text(pr.title) if pr is not None else "",  # no lone surrogates
        body=diffmod.clean_text(pr.body) if pr is not None else "",
        texts={"instructions": repo.instructions},
        documents=secret_only,
    )
    clean_files, secret_findings = secrets.files, list(secrets.findings)
    repo = dataclasses.replace(repo, instructions=secrets.texts["instructions"])
    if pr is not None:  # PR text is untrusted and may paste credentials too
        pr = dataclasses.replace(pr, title=secrets.title, body=secrets.body)
    extra_findings = [secrets.scrub_finding(f) for f in extra_findings]
    # --- end secreview:redaction ---
    by_path = {f.path: f for f in clean_files}
    found = [*secret_findings, *extra_findings]
    found += injection.in_files(clean_files, scan=kind == "scan") + injection.in_pull_request(pr)
    placed = place_analyzer_findings(found, by_path)
    prefix = prompts.build_prefix(repo)
    before = _earlier_by_path(earlier, by_path)
    keys = {
        f.path: file_key(f, placed, prefix.sha256, opts.model, config)
        for f in clean_files
        if f.hunks and not route
    }
    reused = dict(lookup(keys)) if lookup is not None and keys else {}
    todo = [f for f in clean_files if f.path not in reused]
    views = seen or {}
    narrowed = {
        f.path: small
        for f in todo
        if f.path in views and (small := delta.changed_since(f, views[f.path]))
    }
    kept_as_is = _outside(narrowed, before, by_path)
    split = diffmod.split_units(
        [narrowed.get(f.path, f) for f in todo], opts.budget_tokens, opts.max_units
    )
    affinity = prompts.affinity_key(opts.installation, repo.repo, prefix.sha256, kind)
    settled = {f.fingerprint for kept in kept_as_is.values() for f in kept}
    shown = {
        u.id: continuity.previous_for(
            u,
            [
                continuity.as_previous(f)
                for p in u.paths
                for f in before.get(p, ())
                if f.fingerprint not in settled
            ],
        )
        for u in split.units
    }
    first_unit: dict[str, str] = {}
    for u in split.units:
        for p in u.paths:
            first_unit.setdefault(p, u.id)
    carried: dict[str, tuple[Finding, ...]] = {}
    for p, kept in kept_as_is.items():
        if p in first_unit:  # a file the unit cap left out is reported as not reviewed
            uid = first_unit[p]
            carried[uid] = (
                *carried.get(uid, ()),
                *(dataclasses.replace(f, unit=uid) for f in kept),
            )
    requests = tuple(
        _request(prefix, u, pr, placed, opts.max_tokens, shown[u.id]) for u in split.units
    )
    unit_paths = {p for u in split.units for p in u.paths}
    return Plan(
        kind=kind,
        prefix=prefix,
        affinity=affinity,
        units=split.units,
        requests=requests,
        files=by_path,
        reviewed=tuple(f.path for f in clean_files if f.path in unit_paths),
        skipped=tuple(skipped) + split.skipped,
        analyzer_findings=tuple(placed),
        config=config,
        route=route,
        file_keys={p: k for p, k in keys.items() if p in unit_paths},
        reused=reused,
        secrets_allowed=secrets.allowed,
        previous={uid: found for uid, found in shown.items() if found},
        earlier={f.fingerprint: f for p in unit_paths for f in before.get(p, ()) if f.fingerprint},
        dismissed=tuple(dismissed),
        carried={uid: found for uid, found in carried.items() if found},
    )


def _outside(
    narrowed: Mapping[str, ChangedFile],
    before: Mapping[str, Sequence[Finding]],
    files: Mapping[str, ChangedFile],
) -> dict[str, tuple[Finding, ...]]:
    """The earlier findings of each narrowed file on lines its narrowed patch does not show:
    placed again on the whole patch (the code they cite is unchanged there), fingerprint kept.
    """
    out: dict[str, tuple[Finding, ...]] = {}
    for path, small in narrowed.items():
        visible = {ln.new_lineno for h in small.hunks for ln in h.lines if ln.new_lineno}
        whole = continuity.whole_file_unit(files[path])
        kept = []
        for f in before.get(path, ()):
            placed = continuity.reanchor(f, whole, files)
            if placed is None:
                continue  # its code changed: the model is shown it and says what became of it
            lines = set(range(placed.start_line or placed.line, placed.line + 1))
            if not lines & visible:
                kept.append(placed)
        if kept:
            out[path] = tuple(kept)
    return out


def _earlier_by_path(
    earlier: Sequence[Finding], files: Mapping[str, ChangedFile]
) -> dict[str, tuple[Finding, ...]]:
    """The earlier model findings on each file of this change (scrubbed of any secret value)."""
    out: dict[str, list[Finding]] = {}
    for f in earlier:
        if f.source == "model" and f.path in files:
            out.setdefault(f.path, []).append(f)
    return {p: tuple(sorted(fs, key=lambda f: (f.line, f.fingerprint))) for p, fs in out.items()}


def _request(
    prefix: Prefix,
    unit: ReviewUnit,
    pr: PRContext | None,
    analyzer_findings: Sequence[Finding],
    max_tokens: int,
    previous: Sequence[PreviousFinding] = (),
) -> ModelRequest:
    text = prompts.render_unit(unit)
    message = prompts.build_unit_message(
        unit,
        pr,
        hints=hints_for(unit, analyzer_findings),
        redactions=text.count("[REDACTED:"),
        previous=previous,
    )
    return ModelRequest(
        external_reference=unit.id,
        messages=prompts.build_messages(prefix, message),
        max_tokens=max_tokens,
    )


def hints_for(unit: ReviewUnit, analyzer_findings: Sequence[Finding]) -> list[str]:
    """Deterministic-analyzer findings inside ``unit``, phrased as hints for the model."""
    lines = {
        (seg.path, ln.new_lineno)
        for seg in unit.segments
        for hunk in seg.hunks
        for ln in hunk.lines
        if ln.new_lineno is not None
    }
    return [
        f"{f.source} analyzer: {f.title} ({f.cwe}) at {f.path}:{f.line} — already reported; "
        "do not report it again, but do report related issues it reveals."
        for f in analyzer_findings
        if (f.path, f.line) in lines
    ]


def place_analyzer_findings(
    found: Iterable[Finding], files: Mapping[str, ChangedFile]
) -> list[Finding]:
    """Give analyzer findings their fingerprint and inline placement on the diff."""
    out = []
    maps: dict[str, diffmod.LineMap] = {}
    for f in found:
        file = files.get(f.path)
        if file is not None and f.path not in maps:
            maps[f.path] = diffmod.line_map(file)
        on_diff = file is not None and maps[f.path].can_comment(f.line, "RIGHT")
        out.append(
            dataclasses.replace(
                f,
                fingerprint=f.fingerprint or fnd.fingerprint(f.cwe, f.path, f.evidence),
                on_diff=on_diff,
            )
        )
    return out


def file_key(
    file: ChangedFile,
    analyzer_findings: Sequence[Finding],
    prefix_sha: str,
    model: str,
    config: RepoConfig,
) -> str:
    """The key of one file's review result: everything that can change what is reported of it.

    The file's (redacted) patch, the analyzer hints about it, the prompt prefix (policy, schema,
    repository context and instructions), the model, the settings that judge answers (confidence
    floor, verification) and the result version. Equal keys, equal answers.
    """
    judged = f"{config.min_confidence}:{config.verify}"
    digest = hashlib.sha256()
    for part in (RESULT_VERSION, prefix_sha, model, judged, file.path, file.status):
        digest.update(part.encode("utf-8", "surrogatepass") + b"\0")
    for hunk in file.hunks:
        digest.update(diffmod.render_hunk(hunk).encode("utf-8", "surrogatepass") + b"\0")
    for f in sorted(analyzer_findings, key=lambda f: (f.line, f.fingerprint)):
        if f.path == file.path:
            digest.update(f"{f.source}:{f.rule}:{f.cwe}:{f.line}\0".encode())
    # Earlier findings shown on a re-review are not in the key: an unchanged patch keeps the
    # answer it already has (a continuation of the same findings), whatever came before it.
    return digest.hexdigest()[:32]


# --- storage ------------------------------------------------------------------------------------

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Plan)


def encode_plan(plan: Plan) -> bytes:
    """``plan`` as compressed JSON (a stored plan is read back by every later step)."""
    return zlib.compress(_ENCODER.encode(plan), 6)


def decode_plan(data: bytes) -> Plan:
    """The plan ``encode_plan`` stored."""
    return _DECODER.decode(zlib.decompress(data))


def digest(plan: Plan) -> str:
    """A digest of what would be sent: the same change resumes, a changed one starts over."""
    h = hashlib.sha256(plan.prefix.sha256.encode())
    for request in plan.requests:
        h.update(request.external_reference.encode())
        for message in request.messages:
            h.update(message["content"].encode("utf-8", "surrogatepass"))
    return h.hexdigest()[:32]


# --- whole trees (scans) -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TreePlan:
    """A scan's plan, and the scan planner's own figures (files chosen, estimate, budget cuts)."""

    plan: Plan
    files: int
    units: int
    estimated_tokens: int
    estimated_cost_usd: float
    over_budget: tuple[str, ...]


def plan_tree(
    entries: Iterable[Any],
    *,
    repo: RepoContext,
    config: RepoConfig,
    options: PlanOptions,
    max_cost_usd: float | None = None,
    lookup: Lookup | None = None,
    memo: analyzers.Memo | None = None,
    progress: analyzers.Progress | None = None,
) -> TreePlan:
    """Plan a full-repository scan: choose, rank and pack files, run bandit (``memo``: not again
    on files analyzed before with the same content; ``progress`` hears of each file), plan the
    units."""
    from bot.scan import plan as scan_plan

    chosen = scan_plan.plan_scan(
        entries,
        config,
        budget_tokens=options.budget_tokens,
        model=options.model,
        max_cost_usd=max_cost_usd,
    )
    analysis = analyzers.analyze_sources(((s.path, s.text) for s in chosen.files), memo, progress)
    plan = plan_files(
        chosen.changed_files(),
        skipped=[*chosen.skipped, *analysis.skipped],
        repo=repo,
        config=config,
        options=options,
        kind="scan",
        extra_findings=analysis.findings,
        lookup=lookup,
        secret_only=chosen.secret_only,  # secreview:redaction — documentation is read for secrets
    )
    return TreePlan(
        plan=plan,
        files=len(chosen.files),
        units=len(chosen.groups),
        estimated_tokens=chosen.estimated_tokens,
        estimated_cost_usd=chosen.estimated_cost_usd,
        over_budget=chosen.over_budget,
    )
