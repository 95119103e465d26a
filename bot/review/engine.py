"""The review engine: a diff in, validated findings out — planning, evaluation and a local driver.

``plan_review`` and ``evaluate``/``assemble`` are pure and shared by the CLI and the Celery
pipeline; ``execute`` is the in-process driver the CLI uses (the App polls from Celery instead).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from bot import diff as diffmod
from bot import findings as fnd
from bot.diff import ChangedFile, FilterRules, ReviewUnit, Skip
from bot.errors import (
    InvalidModelOutput,
    ModelError,
    ModelQuotaExceeded,
    ModelUnavailable,
    PayloadTooLarge,
)
from bot.findings import Coverage, Finding, Rejection, ReviewResult, Stats
from bot.model import client as llm
from bot.model.client import ModelBackend, ModelRequest, ModelResult, Usage
from bot.redact.run import RunRedaction
from bot.repo_config import RepoConfig
from bot.review import injection, prompts
from bot.review.prompts import PRContext, Prefix, RepoContext

INVALID_OUTPUT = "invalid_model_output"
# Tries of one submit (batch) or run (sync) on capacity and timeouts, each of which the client
# may already have retried with its own backoff; then the units are reported failed.
SUBMIT_ATTEMPTS = 3
Progress = Callable[[int, int, Usage], None]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ReviewPlan:
    """Everything decided before the first model request: prefix, units, requests, coverage."""

    prefix: Prefix
    affinity: str
    units: tuple[ReviewUnit, ...]
    requests: tuple[ModelRequest, ...]
    files: Mapping[str, ChangedFile]
    reviewed: tuple[str, ...]
    skipped: tuple[Skip, ...]
    analyzer_findings: tuple[Finding, ...] = ()
    secrets_allowed: int = 0  # secrets on allow-commented lines: redacted, not reported

    def request(self, unit_id: str) -> ModelRequest:
        """The request that reviews ``unit_id``."""
        return next(r for r in self.requests if r.external_reference == unit_id)

    def unit(self, unit_id: str) -> ReviewUnit:
        """The unit called ``unit_id``."""
        return next(u for u in self.units if u.id == unit_id)


@dataclass(frozen=True, slots=True)
class UnitOutcome:
    """What came of one unit: placed findings and rejections, or an error reason."""

    unit: str
    findings: tuple[Finding, ...] = ()
    rejected: tuple[Rejection, ...] = ()
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    attempts: int = 1

    @property
    def invalid_output(self) -> bool:
        """Whether the model answered but its answer failed the schema (worth one retry)."""
        return self.error is not None and self.error.startswith(INVALID_OUTPUT)


_NO_RULES = FilterRules()
_NO_USAGE = Usage()


def plan_review(
    diff_text: str | bytes,
    *,
    repo: RepoContext,
    pr: PRContext | None = None,
    rules: FilterRules = _NO_RULES,
    budget_tokens: int = 12_000,
    max_units: int | None = None,
    installation: int | str = "local",
    kind: str = "review",
    max_tokens: int = 4096,
) -> ReviewPlan:
    """Parse, filter, redact and split a diff, and build one request per review unit."""
    parsed = diffmod.parse_diff(diff_text)
    kept, skipped = diffmod.filter_files(parsed.files, rules)
    return plan_files(
        kept,
        skipped=skipped,
        repo=repo,
        pr=pr,
        budget_tokens=budget_tokens,
        max_units=max_units,
        installation=installation,
        kind=kind,
        max_tokens=max_tokens,
    )


def plan_files(
    files: Sequence[ChangedFile],
    *,
    skipped: Sequence[Skip] = (),
    repo: RepoContext,
    pr: PRContext | None = None,
    budget_tokens: int = 12_000,
    max_units: int | None = None,
    installation: int | str = "local",
    kind: str = "review",
    max_tokens: int = 4096,
    extra_findings: Sequence[Finding] = (),
    secret_only: Sequence[tuple[str, str]] = (),
) -> ReviewPlan:
    """Plan a review of already-filtered files (the diff path and the full-repository scan).

    ``secret_only`` are whole files (path, text) read for secrets but not reviewed, such as
    the documentation a scan skips.
    """
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
    split = diffmod.split_units(clean_files, budget_tokens, max_units)
    by_path = {f.path: f for f in clean_files}
    found = [*secret_findings, *extra_findings]
    found += injection.in_files(clean_files, scan=kind == "scan") + injection.in_pull_request(pr)
    analyzers = finalize(found, by_path)
    prefix = prompts.build_prefix(repo)
    affinity = prompts.affinity_key(installation, repo.repo, prefix.sha256, _kind(kind))
    requests = tuple(_request(prefix, unit, pr, analyzers, max_tokens) for unit in split.units)
    unit_paths = {p for u in split.units for p in u.paths}
    return ReviewPlan(
        prefix=prefix,
        affinity=affinity,
        units=split.units,
        requests=requests,
        files=by_path,
        reviewed=tuple(f.path for f in clean_files if f.path in unit_paths),
        skipped=tuple(skipped) + split.skipped,
        analyzer_findings=tuple(analyzers),
        secrets_allowed=secrets.allowed,
    )


def _kind(kind: str) -> Literal["review", "scan"]:
    return "scan" if kind == "scan" else "review"


def _request(
    prefix: Prefix,
    unit: ReviewUnit,
    pr: PRContext | None,
    analyzers: Sequence[Finding],
    max_tokens: int,
) -> ModelRequest:
    text = prompts.render_unit(unit)
    message = prompts.build_unit_message(
        unit, pr, hints=hints_for(unit, analyzers), redactions=text.count("[REDACTED:")
    )
    return ModelRequest(
        external_reference=unit.id,
        messages=prompts.build_messages(prefix, message),
        max_tokens=max_tokens,
    )


def hints_for(unit: ReviewUnit, analyzers: Sequence[Finding]) -> list[str]:
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
        for f in analyzers
        if (f.path, f.line) in lines
    ]


def finalize(findings: Iterable[Finding], files: Mapping[str, ChangedFile]) -> list[Finding]:
    """Give analyzer findings their fingerprint and inline placement on the diff."""
    out = []
    maps: dict[str, diffmod.LineMap] = {}
    for f in findings:
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


def evaluate(plan: ReviewPlan, result: ModelResult, *, min_confidence: float = 0.0) -> UnitOutcome:
    """Validate one model result and place its findings on the unit's diff."""
    unit_id = result.external_reference
    if result.error is not None or result.content is None:
        return UnitOutcome(unit_id, error=result.error or "empty_response", usage=result.usage)
    try:
        raw = fnd.parse_model_output(result.content)
    except InvalidModelOutput as exc:
        return UnitOutcome(unit_id, error=f"{INVALID_OUTPUT}: {exc}", usage=result.usage)
    placed, rejected = fnd.place_findings(
        raw, plan.unit(unit_id), plan.files, confidence_floor=min_confidence
    )
    return UnitOutcome(unit_id, tuple(placed), tuple(rejected), usage=result.usage)


def merge_attempts(first: UnitOutcome, retry: UnitOutcome) -> UnitOutcome:
    """The retry's outcome, carrying the usage of both attempts (both are billed)."""
    return dataclasses.replace(
        retry, usage=first.usage + retry.usage, attempts=first.attempts + retry.attempts
    )


def assemble(
    plan: ReviewPlan,
    outcomes: Iterable[UnitOutcome],
    *,
    model: str | None,
    extra_usage: Usage = _NO_USAGE,
) -> ReviewResult:
    """Merge per-unit outcomes and analyzer findings into the final, deduplicated result."""
    outcomes = list(outcomes)
    usage = extra_usage
    for o in outcomes:
        usage = usage + o.usage
    requests = sum(o.attempts for o in outcomes)
    findings = fnd.dedupe([*plan.analyzer_findings, *(f for o in outcomes for f in o.findings)])
    failed = tuple(
        Skip(", ".join(plan.unit(o.unit).paths), f"{o.unit}: {o.error}")
        for o in outcomes
        if o.error is not None
    )
    return ReviewResult(
        findings=tuple(findings),
        stats=Stats(
            requests=requests,
            prompt_tokens=usage.prompt_tokens,
            cached_tokens=usage.cached_tokens,
            completion_tokens=usage.completion_tokens,
            cost_usd=round(llm.cost_usd(model, usage), 6) if model else 0.0,
            secrets_allowed=plan.secrets_allowed,
        ),
        coverage=Coverage(reviewed=plan.reviewed, skipped=plan.skipped),
        rejected=tuple(r for o in outcomes for r in o.rejected),
        failed_units=failed,
        model=model,
    )


def offline_result(plan: ReviewPlan) -> ReviewResult:
    """The result with deterministic analyzers only (no model configured)."""
    return assemble(plan, [], model=None)


def batches(
    requests: Sequence[ModelRequest], size_of: Callable[[ModelRequest], int], limit: int
) -> list[list[ModelRequest]]:
    """Split requests into consecutive batches whose summed payload stays under ``limit`` bytes.

    Sizes are summed per request (linear, not re-serialising the batch) with 1 KiB of headroom
    for the envelope; a single request over the limit still gets a batch of its own and the
    client reports it as too large.
    """
    out: list[list[ModelRequest]] = []
    current: list[ModelRequest] = []
    total = 1024
    for req in requests:
        size = size_of(req) + 1
        if current and total + size > limit:
            out.append(current)
            current, total = [], 1024
        current.append(req)
        total += size
    if current:
        out.append(current)
    return out


@dataclass
class _Driver:
    plan: ReviewPlan
    backend: ModelBackend
    progress: Progress | None
    poll_interval: float
    deadline_s: float
    sleep: Callable[[float], None]
    min_confidence: float
    usage: Usage = field(default_factory=Usage)
    done: int = 0
    exhausted: set[str] = field(default_factory=set)

    def run(self, requests: Sequence[ModelRequest]) -> list[ModelResult]:
        if not self.backend.supports_batch:
            return [self._one(r) for r in requests]
        results: list[ModelResult] = []
        fmt = prompts.response_format()
        for chunk in batches(
            requests, lambda r: llm.batch_payload_size([r], fmt), llm.MAX_BATCH_BYTES
        ):
            results.extend(self._batch(chunk))
        return results

    def _retrying(self, call: Callable[[], T]) -> T:
        """``call()``, tried again with backoff while it fails with capacity or a timeout."""
        attempt = 0
        while True:
            try:
                return call()
            except (ModelQuotaExceeded, ModelUnavailable, PayloadTooLarge):
                raise
            except ModelError as exc:
                attempt += 1
                if not exc.retryable or attempt >= SUBMIT_ATTEMPTS:
                    raise
                self.sleep(llm.backoff_delay(attempt))

    def _one(self, request: ModelRequest) -> ModelResult:
        ref = request.external_reference
        try:
            result = self._retrying(lambda: self.backend.run(request, affinity=self.plan.affinity))
        except (ModelQuotaExceeded, ModelUnavailable):
            raise  # no other unit can succeed either: stop and report
        except ModelError as exc:
            if exc.reason == "model_auth":
                raise
            if exc.retryable:  # retried with backoff already: no second round
                self.exhausted.add(ref)
            result = ModelResult(ref, None, error=f"{exc.reason}: {exc}")
        self._advance(1, result.usage)
        return result

    def _batch(self, chunk: Sequence[ModelRequest]) -> list[ModelResult]:
        refs = [r.external_reference for r in chunk]
        try:
            request_id = self._retrying(
                lambda: self.backend.submit_batch(chunk, affinity=self.plan.affinity)
            )
        except PayloadTooLarge as exc:
            if len(chunk) == 1:
                return self._failed(refs, exc)
            half = len(chunk) // 2  # Workers AI 3006: split the batch and try each half
            return self._batch(chunk[:half]) + self._batch(chunk[half:])
        except (ModelQuotaExceeded, ModelUnavailable):
            raise
        except ModelError as exc:
            if exc.reason == "model_auth" or not exc.retryable:
                raise
            # Retried with backoff and still refused: report these units, keep the others.
            self.exhausted.update(refs)
            return self._failed(refs, exc)
        started, interval = time.monotonic(), self.poll_interval
        while True:
            status = self.backend.poll_batch(request_id, refs, affinity=self.plan.affinity)
            if status.done:
                total = Usage()
                for r in status.results:
                    total = total + r.usage
                self._advance(len(chunk), total)
                return list(status.results)
            if time.monotonic() - started > self.deadline_s:
                self.exhausted.update(refs)  # the run's own time limit: no second round
                self._advance(len(refs), Usage())
                return [
                    ModelResult(ref, None, error="model_timeout: batch deadline") for ref in refs
                ]
            self.sleep(interval)
            interval = min(interval * 1.5, 30.0)

    def _failed(self, refs: Sequence[str], exc: ModelError) -> list[ModelResult]:
        self._advance(len(refs), Usage())
        return [ModelResult(ref, None, error=f"{exc.reason}: {exc}") for ref in refs]

    def _advance(self, units: int, usage: Usage) -> None:
        self.done += units
        self.usage = self.usage + usage
        if self.progress is not None:
            self.progress(self.done, len(self.plan.units), self.usage)


RETRYABLE_ERRORS = ("model_capacity", "model_timeout", "missing_response", "model_transport")


def is_retryable(error: str | None) -> bool:
    """Errors of one unit worth one more try (the batch API's capacity and timeouts)."""
    return error is not None and error.startswith(RETRYABLE_ERRORS)


def execute(
    plan: ReviewPlan,
    backend: ModelBackend,
    *,
    progress: Progress | None = None,
    poll_interval: float = 2.0,
    deadline_s: float = 900.0,
    sleep: Callable[[float], None] = time.sleep,
    min_confidence: float = 0.0,
) -> ReviewResult:
    """Review every unit of ``plan`` with ``backend``.

    A unit whose answer fails the schema, or that hit capacity or a timeout, is tried once more;
    a unit that still fails is reported as failed, never guessed at.
    """
    driver = _Driver(plan, backend, progress, poll_interval, deadline_s, sleep, min_confidence)
    first = {
        r.external_reference: evaluate(plan, r, min_confidence=min_confidence)
        for r in driver.run(plan.requests)
    }
    retry = [
        plan.request(u)
        for u, o in first.items()
        if u not in driver.exhausted and (o.invalid_output or is_retryable(o.error))
    ]
    driver.done -= len(retry)  # progress counts units, not attempts
    if any(is_retryable(first[r.external_reference].error) for r in retry):
        sleep(llm.backoff_delay(0))  # capacity and timeouts: give the model a moment
    for result in driver.run(retry) if retry else []:
        unit = result.external_reference
        first[unit] = merge_attempts(
            first[unit], evaluate(plan, result, min_confidence=min_confidence)
        )
    ordered = [first[u.id] for u in plan.units if u.id in first]
    return assemble(plan, ordered, model=backend.model)


def suppress(result: ReviewResult, config: RepoConfig) -> tuple[ReviewResult, list[str]]:
    """Drop findings the base-branch config ignores or accepts (until their date); say so."""
    from bot.review import suppress as suppressions

    kept, hidden = suppressions.apply(result, config)
    return kept, hidden.notes()
