"""The command line's side of a run: its sources (a diff, a tree), its sink (a report), its driver.

``secreview review`` and ``secreview scan`` plan here, then hand the run to
:func:`bot.review.run.run_blocking` with a directory store, so an interrupted command resumes
what it already paid for, and per-file results are kept for the next review of the same change.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from bot.config import Settings
from bot.findings import Finding
from bot.model.values import Usage
from bot.review import plan as planning
from bot.review.finalize import Final
from bot.review.models import ModelPool
from bot.review.plan import Lookup, Plan
from bot.review.results import FileBlobs, FileResultStore, prune_cache
from bot.review.run import Context, LocalSink, new_run, run_blocking
from bot.review.store import FileRunStore

Progress = Callable[[int, int, Usage], None]


def default_cache_dir() -> Path:
    """The platform's user cache directory for secreview (``~/.cache/secreview`` on Linux)."""
    return Path(platformdirs.user_cache_dir("secreview"))


@dataclass
class PlannedSource:
    """A source whose plan was made before the run (so its digest could name the run)."""

    planned: Plan

    def plan(self, lookup: Lookup | None) -> Plan:
        """The plan made earlier."""
        return self.planned


@dataclass
class LocalRun:
    """Where a command's runs and per-file results live (``--cache-dir``, ``--no-cache``)."""

    cache_dir: Path | None
    state_dir: Path | None = None
    _pruned: bool = field(default=False, init=False, repr=False)

    def _cache(self) -> Path | None:
        """The cache directory (None: ``--no-cache``), pruned once per command."""
        if self.cache_dir is not None and not self._pruned:
            prune_cache(self.cache_dir)
            self._pruned = True
        return self.cache_dir

    def stores(
        self,
    ) -> tuple[FileRunStore, FileResultStore | None, tempfile.TemporaryDirectory[str] | None]:
        """The run store, the result store (None: ``--no-cache``) and a scratch dir to drop."""
        cache = self._cache()
        if cache is None:
            scratch = tempfile.TemporaryDirectory(prefix="secreview-")
            runs = self.state_dir or Path(scratch.name)
            return FileRunStore(runs), None, scratch
        runs = self.state_dir or cache / "runs"
        return FileRunStore(runs), FileResultStore(cache / "results"), None

    def memo(self) -> FileBlobs | None:
        """Where analyzer results are kept between runs (None: ``--no-cache``)."""
        cache = self._cache()
        return None if cache is None else FileBlobs(cache / "analyses")


def lookup_for(results: FileResultStore | None) -> Lookup | None:
    """The planning lookup over ``results`` (None: nothing is reused)."""
    if results is None:
        return None
    from bot.review.results import lookup_in

    found: Lookup = lookup_in(results)
    return found


def drive_local(
    make_plan: Callable[[Lookup | None, Sequence[Finding], Mapping[str, Sequence[str]]], Plan],
    *,
    kind: str,
    settings: Settings,
    models: ModelPool | None,
    where: LocalRun,
    progress: Progress | None,
    sleep: Callable[[float], None] = time.sleep,
    deadline_s: float | None = None,
    resumed: Callable[[Path], None] | None = None,
    scope: str = "",
) -> Final:
    """Plan (reusing stored per-file results), run to the end here, return the final result.

    ``scope`` names what later reviews continue (a checkout): its last findings are shown to
    the model again, so a re-review says which persist instead of writing them out again, and
    a file changed since is sent narrowed to what changed (``make_plan``'s third argument).
    """
    store, results, scratch = where.stores()
    if models is None:
        results = None  # analyzers only: no model answers to reuse or to keep
    try:
        earlier = results.last(scope) if results is not None and scope else ()
        seen = results.views(scope) if results is not None and scope else {}
        plan = make_plan(lookup_for(results), earlier, seen)
        key = f"{kind}-{planning.digest(plan)}"
        run = store.load(key)
        if run is not None and run.phase == "done":
            run = None  # finished before: a new run (unchanged files are reused anyway)
        elif run is not None and resumed is not None:
            resumed(store.root)
        if run is None:
            identity = {"models": list(settings.model_chain), "label": key, "scope": scope}
            run = new_run(key, kind, identity)
        sink = LocalSink(progress)
        ctx = Context(
            store=store,
            sink=sink,
            models=models,
            source=PlannedSource(plan),
            results=results,
            deadline_s=deadline_s or settings.model_deadline_s,
            first_poll_s=2.0,
            no_model_note="analyzers only (no model is configured)",
            offline_ok=True,
        )
        with store.lease(key) as held:
            if not held:
                from bot.errors import UsageError

                raise UsageError(f"another secreview process is working on this {kind} right now")
            run_blocking(run, ctx, sleep)
        assert sink.final is not None
        return sink.final
    finally:
        if scratch is not None:
            scratch.cleanup()
