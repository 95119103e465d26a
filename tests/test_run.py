"""The one run against the Workers AI emulator on loopback: batches, the retry policy, failover,
deadlines, the second look and the finalize order — with a clock that moves only when the run
sleeps, so backoffs cost no wall time."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.model.client import ModelBackend, OpenAICompatibleClient, Usage, WorkersAIClient
from bot.repo_config import RepoConfig, Suppression
from bot.review import policy, prompts, verify
from bot.review.finalize import Final
from bot.review.models import FixedModels, single
from bot.review.plan import Plan, PlanOptions, plan_diff
from bot.review.prompts import PRContext, RepoContext
from bot.review.results import FileResultStore
from bot.review.run import review_plan
from tests.emulators.server import LiveServer
from tests.emulators.workers_ai import EmulatorApp, create_emulator

ROOT = Path(__file__).resolve().parent.parent
DIFF = (ROOT / "examples" / "vulnerable.diff").read_bytes()
REPO = RepoContext(repo="octo/shop", languages=("Python",))
MODEL = "@cf/moonshotai/kimi-k2.6"
FALLBACK = "@cf/moonshotai/kimi-k2.5"


@dataclass
class Clock:
    """Time that passes only when the run sleeps."""

    now: float = 1_000_000.0
    slept: float = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[EmulatorApp, str]]:
    emu = create_emulator(account_id="acct", api_token="tok")
    with LiveServer(emu.app) as live:
        yield emu, live.url


def workers_ai(url: str, model: str = MODEL, token: str = "tok", **kw: object) -> WorkersAIClient:
    return WorkersAIClient(
        "acct",
        token,
        model,
        url + "/client/v4",
        response_format=kw.pop("response_format", prompts.response_format()),  # type: ignore[arg-type]
        max_retries=0,
        sleep=lambda _s: None,
    )


@pytest.fixture
def emu(server: tuple[EmulatorApp, str]) -> EmulatorApp:
    app, _ = server
    app.reset().polls_until_done = 0
    return app


@pytest.fixture
def url(server: tuple[EmulatorApp, str]) -> str:
    return server[1]


def small_units(config: RepoConfig | None = None) -> Plan:
    plan = plan_diff(
        DIFF, repo=REPO, config=config, options=PlanOptions(budget_tokens=300, model=MODEL)
    )
    assert len(plan.units) >= 3
    return plan


def run(
    plan: Plan, *backends: ModelBackend, verifier: ModelBackend | None = None, **kw: object
) -> Final:
    clock = Clock()
    models = FixedModels({b.model: b for b in backends}, verifier)
    return review_plan(plan, models, sleep=clock.sleep, clock=clock, first_poll_s=1.0, **kw)  # type: ignore[arg-type]


def submits(emu: EmulatorApp, model: str | None = None) -> int:
    return sum(1 for r in emu.state.requests if r.kind == "submit" and model in (None, r.model))


def test_one_batch_answers_matched_by_reference_in_any_order(emu: EmulatorApp, url: str) -> None:
    plan = small_units()
    final = run(plan, workers_ai(url))
    assert submits(emu) == 1 and emu.state.shuffle_responses
    result = final.result
    assert result.failed_units == () and result.coverage.failed == ()
    assert result.stats.requests == len(plan.units)
    assert any(f.cwe == "CWE-89" and f.path == "shop/db.py" for f in result.findings)
    assert set(result.coverage.reviewed) == set(plan.reviewed)
    assert set(result.coverage.models.values()) == {MODEL}


def test_a_batch_too_large_is_split(emu: EmulatorApp, url: str) -> None:
    emu.state.fail_next("too_large", times=1, on=("submit",))
    final = run(small_units(), workers_ai(url))
    assert submits(emu) == 3  # refused, then two halves
    assert final.result.failed_units == ()


def test_a_single_request_too_large_fails_only_itself(emu: EmulatorApp, url: str) -> None:
    plan = small_units()
    halvings = (len(plan.units) - 1).bit_length()
    emu.state.fail_next("too_large", times=1 + halvings, on=("submit",))
    final = run(plan, workers_ai(url))
    (failed,) = final.result.failed_units
    assert failed.reason.startswith(f"{plan.units[0].id}: model_payload_too_large")
    assert final.incomplete and final.conclusion == "failure"  # the gate: a live key was found


def test_capacity_on_submit_backs_off_and_retries_the_whole_batch(
    emu: EmulatorApp, url: str
) -> None:
    emu.state.fail_next("capacity", times=2, on=("submit",))
    plan = small_units()
    clock = Clock()
    final = review_plan(
        plan, single(workers_ai(url)), sleep=clock.sleep, clock=clock, first_poll_s=1.0
    )
    assert submits(emu) == 3  # the whole batch each time, not a batch per unit
    assert 0 < clock.slept < 200
    assert final.result.failed_units == () and final.result.stats.requests == len(plan.units)


def test_capacity_that_persists_fails_every_unit_after_the_policy_attempts(
    emu: EmulatorApp, url: str
) -> None:
    emu.state.fail_model(MODEL, "capacity")
    plan = small_units()
    final = run(plan, workers_ai(url))
    assert submits(emu) == policy.MODEL_ATTEMPTS
    assert {s.path for s in final.result.coverage.failed} == set(plan.reviewed)
    assert all("model_capacity" in s.reason for s in final.result.failed_units)
    # Analyzer findings never wait for the model: the committed key is reported and gates.
    assert any(f.source == "secrets" for f in final.result.findings)
    assert final.conclusion == "failure"


def test_capacity_on_one_model_fails_over_to_the_next(emu: EmulatorApp, url: str) -> None:
    emu.state.fail_model(MODEL, "capacity")
    plan = small_units()
    final = run(plan, workers_ai(url), workers_ai(url, FALLBACK))
    assert submits(emu, MODEL) == policy.MODEL_ATTEMPTS and submits(emu, FALLBACK) == 1
    result = final.result
    assert result.failed_units == () and not final.incomplete
    assert set(result.coverage.models.values()) == {FALLBACK}
    assert result.model == FALLBACK


def test_quota_moves_the_units_to_the_next_model_at_once(emu: EmulatorApp, url: str) -> None:
    emu.state.fail_model(MODEL, "quota")
    final = run(small_units(), workers_ai(url), workers_ai(url, FALLBACK))
    assert submits(emu, MODEL) == 1 and submits(emu, FALLBACK) == 1
    assert final.result.failed_units == ()


def test_quota_with_no_other_model_ends_the_review_with_what_the_analyzers_found(
    emu: EmulatorApp, url: str
) -> None:
    emu.state.fail_next("quota", times=1, on=("submit",))
    plan = small_units()
    final = run(plan, workers_ai(url), config=None) if False else run(plan, workers_ai(url))
    assert submits(emu) == 1
    assert len(final.result.failed_units) == len(plan.units)
    assert all("model_quota" in s.reason for s in final.result.failed_units)
    assert any(f.source == "secrets" for f in final.result.findings)


def test_a_rejected_token_ends_the_review_visibly(emu: EmulatorApp, url: str) -> None:
    final = run(small_units(), workers_ai(url, token="wrong"))
    assert final.incomplete
    assert all("model_auth" in s.reason for s in final.result.failed_units)


def test_a_batch_that_never_finishes_fails_its_units_at_the_deadline(
    emu: EmulatorApp, url: str
) -> None:
    emu.state.never_finish = True
    plan = small_units()
    final = run(plan, workers_ai(url), deadline_s=300.0)
    assert len(final.result.failed_units) == len(plan.units)
    assert all("model_timeout" in s.reason for s in final.result.failed_units)
    assert {f.source for f in final.result.findings} <= {"secrets", "injection", "bandit"}
    assert final.result.coverage.reviewed == ()


def test_malformed_json_is_retried_once_on_the_same_model(emu: EmulatorApp, url: str) -> None:
    plan = small_units()
    bad = plan.units[1].id
    emu.state.override(bad, content='{"findings": [{"path": ')
    final = run(plan, workers_ai(url))
    assert submits(emu) == 2
    retried = [r for r in emu.state.requests if r.kind == "submit"][1]
    assert [q["external_reference"] for q in retried.body["requests"]] == [bad]
    (failed,) = final.result.failed_units
    assert failed.reason.startswith(f"{bad}: invalid_model_output")
    assert final.result.stats.requests == len(plan.units) + 1  # both attempts are billed


def test_malformed_twice_then_the_next_model_answers(emu: EmulatorApp, url: str) -> None:
    plan = small_units()
    bad = plan.units[1].id
    primary = workers_ai(url)
    real_poll = primary.poll_batch

    def garbled(request_id: str, refs: object, *, affinity: str) -> object:
        status = real_poll(request_id, refs, affinity=affinity)  # type: ignore[arg-type]
        results = tuple(
            dataclasses.replace(r, content="not json at all") if r.external_reference == bad else r
            for r in status.results
        )
        return dataclasses.replace(status, results=results)

    primary.poll_batch = garbled  # type: ignore[method-assign]
    final = run(plan, primary, workers_ai(url, FALLBACK))
    assert submits(emu, MODEL) == 2 and submits(emu, FALLBACK) == 1
    assert final.result.failed_units == ()
    (moved,) = [r for r in emu.state.requests if r.kind == "submit" and r.model == FALLBACK]
    assert [q["external_reference"] for q in moved.body["requests"]] == [bad]
    assert final.result.model == f"{FALLBACK}, {MODEL}"


def test_a_missing_response_is_resubmitted_and_then_answered(emu: EmulatorApp, url: str) -> None:
    plan = small_units()
    emu.state.override(plan.units[0].id, missing=True)
    clock = Clock()

    def sleep(seconds: float) -> None:
        clock.sleep(seconds)
        if any(r.kind == "poll" for r in emu.state.requests):
            emu.state.overrides.clear()  # answered once without it: the resubmission gets one

    final = review_plan(plan, single(workers_ai(url)), sleep=sleep, clock=clock, first_poll_s=1.0)
    assert submits(emu) == 2 and final.result.failed_units == ()
    assert any(f.cwe == "CWE-89" for f in final.result.findings)


def test_usage_and_cost_add_up(emu: EmulatorApp, url: str) -> None:
    final = run(small_units(), workers_ai(url))
    stats = final.result.stats
    assert stats.prompt_tokens == sum(s.prompt_tokens for s in emu.state.served)
    assert stats.cached_tokens == sum(s.cached_tokens for s in emu.state.served) > 0
    assert stats.cost_usd > 0


def test_sync_backend_retries_capacity_with_backoff(emu: EmulatorApp, url: str) -> None:
    emu.state.fail_next("capacity", times=2, on=("openai",))
    seen: list[tuple[int, int]] = []
    plan = small_units()
    client = OpenAICompatibleClient(
        url + "/client/v4/accounts/acct/ai/v1",
        "tok",
        MODEL,
        response_format=prompts.response_format(),
        max_retries=0,
        sleep=lambda _s: None,
    )
    final = run(plan, client, progress=lambda d, t, _u: seen.append((d, t)))
    assert final.result.failed_units == ()
    assert [r.kind for r in emu.state.requests].count("openai") == len(plan.units) + 2
    assert seen[-1] == (len(plan.units), len(plan.units))


def test_progress_counts_units_not_attempts(emu: EmulatorApp, url: str) -> None:
    plan = small_units()
    emu.state.override(plan.units[0].id, content="not json")
    seen: list[tuple[int, int, Usage]] = []
    run(plan, workers_ai(url), progress=lambda d, t, u: seen.append((d, t, u)))
    assert max(d for d, _t, _u in seen) == len(plan.units) == seen[-1][0]
    assert all(d <= t for d, t, _u in seen)
    assert seen[-1][2].prompt_tokens == emu.state.prompt_tokens


def test_pr_text_is_redacted_before_it_reaches_a_prompt() -> None:
    pr = PRContext(title="Add Stripe", body="Use sk_live_4eC39HqLyjWDarjtT1zdp7dc for now")
    plan = plan_diff(DIFF, repo=REPO, pr=pr)
    assert all("sk_live_" not in m["content"] for r in plan.requests for m in r.messages)


def test_the_prefix_is_identical_for_every_unit_and_every_pr() -> None:
    options = PlanOptions(budget_tokens=300)
    one = plan_diff(DIFF, repo=REPO, pr=PRContext(title="a"), options=options)
    two = plan_diff(DIFF, repo=REPO, pr=PRContext(title="b", body="other"), options=options)
    systems = {r.messages[0]["content"] for p in (one, two) for r in p.requests}
    assert len(systems) == 1 and one.affinity == two.affinity


# --- the second look and the finalize order ----------------------------------------------------


def test_verification_drops_what_it_refutes_and_its_cost_is_in_the_stats(
    emu: EmulatorApp, url: str
) -> None:
    plan = small_units(RepoConfig(verify=True, min_confidence=0.5))
    verifier = workers_ai(url, response_format=verify.response_format())
    emu.state.override(
        "verify-0", content='{"verdicts": [{"index": 0, "verdict": "refuted", "confidence": 0.9}]}'
    )
    final = run(plan, workers_ai(url), verifier=verifier)
    assert any("refuted by the verification pass" in n for n in final.notes)
    assert final.refuted
    assert all(f.fingerprint not in final.refuted for f in final.result.findings)
    verify_requests = sum(
        len(r.body["requests"])
        for r in emu.state.requests
        if r.kind == "submit"
        if r.body["requests"][0]["external_reference"].startswith("verify-")
    )
    assert final.result.stats.requests == len(plan.units) + verify_requests
    dropped = [r for r in final.result.rejected if r.unit == "second look"]
    assert dropped  # the report's rejected counts agree with the note


def test_suppress_comes_before_the_gate(emu: EmulatorApp, url: str) -> None:
    plan = small_units()
    first = run(plan, workers_ai(url))
    secret = next(f for f in first.result.findings if f.source == "secrets")
    quiet = RepoConfig(
        suppressions=(Suppression(secret.fingerprint, "test key"),), fail_on="critical"
    )
    emu.reset().polls_until_done = 0
    final = run(small_units(quiet), workers_ai(url))
    assert secret.fingerprint not in {f.fingerprint for f in final.result.findings}
    assert any(secret.fingerprint in n for n in final.notes)


def test_an_incomplete_review_concludes_as_the_repository_says(emu: EmulatorApp, url: str) -> None:
    emu.state.fail_model(MODEL, "quota")
    lenient = RepoConfig(fail_on="none")
    strict = RepoConfig(fail_on="none", on_incomplete="failure")
    assert run(small_units(lenient), workers_ai(url)).conclusion == "neutral"
    assert run(small_units(strict), workers_ai(url)).conclusion == "failure"


# --- results reused across pushes -------------------------------------------------------------


def test_a_second_review_of_the_same_change_sends_nothing(
    emu: EmulatorApp, url: str, tmp_path: Path
) -> None:
    store = FileResultStore(tmp_path)
    from bot.review.results import lookup_in

    def plan_now() -> Plan:
        return plan_diff(
            DIFF,
            repo=REPO,
            options=PlanOptions(budget_tokens=300, model=MODEL),
            lookup=lookup_in(store),
        )

    first = run(plan_now(), workers_ai(url), results=store)
    sent = submits(emu)
    again = plan_now()
    assert again.requests == () and set(again.reused) == set(first.result.coverage.reviewed)
    second = run(again, workers_ai(url), results=store)
    assert submits(emu) == sent
    assert {f.fingerprint for f in second.result.findings} == {
        f.fingerprint for f in first.result.findings
    }
    assert {r.path for r in second.result.coverage.reused} == set(first.result.coverage.reviewed)


def test_a_file_whose_analyzer_hints_changed_is_reviewed_again(tmp_path: Path) -> None:
    from bot import diff as diffmod
    from bot.review.plan import file_key

    file = diffmod.parse_diff(DIFF).files[0]
    config = RepoConfig()
    plain = file_key(file, [], "p" * 64, MODEL, config)
    hinted = plan_diff(DIFF, repo=REPO).analyzer_findings
    on_file = [f for f in hinted if f.path == file.path]
    assert on_file  # the example change has analyzer findings on this file
    assert file_key(file, on_file, "p" * 64, MODEL, config) != plain
    # ... and so does every other input of the answer: prefix, model, judging settings.
    assert file_key(file, [], "q" * 64, MODEL, config) != plain
    assert file_key(file, [], "p" * 64, FALLBACK, config) != plain
    assert file_key(file, [], "p" * 64, MODEL, RepoConfig(verify=True)) != plain
    assert file_key(file, [], "p" * 64, MODEL, config) == plain


def test_a_file_is_answered_only_when_every_unit_holding_it_was() -> None:
    from bot.review import outcome
    from bot.review.run import _answered_files

    plan = small_units()
    split = next(
        p for p in plan.files if sum(p in u.paths for u in plan.units) > 1
    )  # a file whose hunks went to more than one unit
    units = [u for u in plan.units if split in u.paths]
    others = [u for u in plan.units if split not in u.paths]
    answered = [outcome.UnitOutcome(u.id, model=MODEL) for u in [units[0], *others]]
    failed = [outcome.failed(u.id, "model_timeout", MODEL) for u in units[1:]]
    done = _answered_files(plan, [*answered, *failed])
    assert split not in done  # its result and its view wait for a complete answer
    assert {p for u in others for p in u.paths} <= set(done)
    assert split in _answered_files(
        plan, [outcome.UnitOutcome(u.id, model=MODEL) for u in plan.units]
    )
