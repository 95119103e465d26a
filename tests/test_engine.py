"""The engine's driver against the Workers AI emulator: batches, splits, retries, stops."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.errors import ModelError, ModelQuotaExceeded
from bot.findings import ReviewResult
from bot.model.client import ModelBackend, OpenAICompatibleClient, Usage, WorkersAIClient
from bot.review import engine, prompts
from bot.review.prompts import PRContext, RepoContext
from tests.emulators.server import LiveServer
from tests.emulators.workers_ai import EmulatorApp, create_emulator

ROOT = Path(__file__).resolve().parent.parent
DIFF = (ROOT / "examples" / "vulnerable.diff").read_bytes()
REPO = RepoContext(repo="octo/shop", languages=("Python",))
MODEL = "@cf/moonshotai/kimi-k2.6"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[EmulatorApp, str]]:
    emu = create_emulator(account_id="acct", api_token="tok")
    with LiveServer(emu.app) as live:
        yield emu, live.url


def workers_ai(url: str, *, max_retries: int = 4, token: str = "tok") -> WorkersAIClient:
    return WorkersAIClient(
        "acct",
        token,
        MODEL,
        url + "/client/v4",
        response_format=prompts.response_format(),
        max_retries=max_retries,
        sleep=lambda _s: None,
    )


@pytest.fixture
def live(server: tuple[EmulatorApp, str]) -> Iterator[tuple[EmulatorApp, WorkersAIClient]]:
    emu, url = server
    emu.reset().polls_until_done = 0
    client = workers_ai(url)
    yield emu, client
    client.close()


def small_units() -> engine.ReviewPlan:
    plan = engine.plan_review(DIFF, repo=REPO, budget_tokens=300)
    assert len(plan.units) >= 3
    return plan


def run(plan: engine.ReviewPlan, client: ModelBackend) -> ReviewResult:
    return engine.execute(plan, client, poll_interval=0.0, sleep=lambda _s: None)


def test_one_batch_answers_matched_by_reference_in_any_order(
    live: tuple[EmulatorApp, WorkersAIClient],
) -> None:
    emu, client = live
    plan = small_units()
    result = run(plan, client)
    assert [r.kind for r in emu.state.requests].count("submit") == 1
    assert emu.state.shuffle_responses  # answers come back shuffled and still land right
    assert result.failed_units == () and result.stats.requests == len(plan.units)
    assert any(f.cwe == "CWE-89" and f.path == "shop/db.py" for f in result.findings)


def test_a_batch_too_large_is_split(live: tuple[EmulatorApp, WorkersAIClient]) -> None:
    emu, client = live
    emu.state.fail_next("too_large", times=1, on=("submit",))
    result = run(small_units(), client)
    assert [r.kind for r in emu.state.requests].count("submit") == 3  # refused, then two halves
    assert result.failed_units == ()


def test_a_unit_that_hit_capacity_is_retried_once(
    live: tuple[EmulatorApp, WorkersAIClient],
) -> None:
    emu, client = live
    plan = small_units()
    emu.state.override(plan.units[0].id, error=(3040, "Capacity temporarily exceeded"))
    result = run(plan, client)
    # Retried once; the emulator answers the same error again, so the unit is reported failed.
    assert [r.kind for r in emu.state.requests].count("submit") == 2
    (failed,) = result.failed_units
    assert failed.reason.startswith(f"{plan.units[0].id}: model_capacity")


def test_a_spent_quota_stops_the_review(live: tuple[EmulatorApp, WorkersAIClient]) -> None:
    emu, client = live
    emu.state.fail_next("quota", times=1, on=("submit",))
    with pytest.raises(ModelQuotaExceeded):
        run(small_units(), client)


def test_a_batch_that_never_finishes_reports_its_units_failed(
    live: tuple[EmulatorApp, WorkersAIClient],
) -> None:
    emu, client = live
    emu.state.never_finish = True
    plan = small_units()
    result = engine.execute(plan, client, poll_interval=0.0, deadline_s=0.0, sleep=lambda _s: None)
    assert len(result.failed_units) == len(plan.units)
    assert all("model_timeout" in s.reason for s in result.failed_units)
    assert result.findings and {f.source for f in result.findings} <= {"secrets", "injection"}


def test_usage_and_cost_add_up(live: tuple[EmulatorApp, WorkersAIClient]) -> None:
    emu, client = live
    result = run(small_units(), client)
    stats = result.stats
    assert stats.prompt_tokens == sum(s.prompt_tokens for s in emu.state.served)
    assert stats.cached_tokens == sum(s.cached_tokens for s in emu.state.served) > 0
    assert stats.cost_usd > 0


def test_pr_text_is_redacted_before_it_reaches_a_prompt() -> None:
    pr = PRContext(title="Add Stripe", body="Use sk_live_4eC39HqLyjWDarjtT1zdp7dc for now")
    plan = engine.plan_review(DIFF, repo=REPO, pr=pr)
    assert all("sk_live_" not in m["content"] for r in plan.requests for m in r.messages)


def test_the_prefix_is_identical_for_every_unit_and_every_pr() -> None:
    one = engine.plan_review(DIFF, repo=REPO, pr=PRContext(title="a"), budget_tokens=300)
    two = engine.plan_review(
        DIFF, repo=REPO, pr=PRContext(title="b", body="other"), budget_tokens=300
    )
    systems = {r.messages[0]["content"] for p in (one, two) for r in p.requests}
    assert len(systems) == 1 and one.affinity == two.affinity


def submits(emu: EmulatorApp) -> int:
    return [r.kind for r in emu.state.requests].count("submit")


def test_capacity_on_submit_is_retried_with_backoff_then_succeeds(
    server: tuple[EmulatorApp, str],
) -> None:
    emu, url = server
    emu.reset().polls_until_done = 0
    emu.state.fail_next("capacity", times=2, on=("submit",))
    slept: list[float] = []
    plan = small_units()
    with workers_ai(url, max_retries=0) as client:  # the driver's own retries, not the client's
        result = engine.execute(plan, client, poll_interval=0.0, sleep=slept.append)
    assert submits(emu) == 3 and emu.state.counters["fault_capacity"] == 2
    assert len(slept) == 2 and all(0 < s <= 30 for s in slept)
    assert result.failed_units == () and result.stats.requests == len(plan.units)


def test_capacity_that_persists_reports_every_unit_failed_without_a_second_round(
    server: tuple[EmulatorApp, str],
) -> None:
    emu, url = server
    emu.reset().polls_until_done = 0
    emu.state.fail_next("capacity", times=50, on=("submit",))
    plan = small_units()
    with workers_ai(url, max_retries=0) as client:
        result = run(plan, client)
    assert submits(emu) == engine.SUBMIT_ATTEMPTS
    assert sorted(s.reason.split(":")[0] for s in result.failed_units) == sorted(
        u.id for u in plan.units
    )
    assert all("model_capacity" in s.reason for s in result.failed_units)


def test_a_single_request_too_large_fails_only_itself(
    live: tuple[EmulatorApp, WorkersAIClient],
) -> None:
    emu, client = live
    plan = small_units()
    n = len(plan.units)
    emu.state.fail_next("too_large", times=2 * n - 1, on=("submit",))  # every split refused
    result = run(plan, client)
    assert submits(emu) == 2 * n - 1
    assert len(result.failed_units) == n
    assert all("model_payload_too_large" in s.reason for s in result.failed_units)


def test_a_unit_too_large_among_others_is_the_only_one_failed(
    live: tuple[EmulatorApp, WorkersAIClient],
) -> None:
    emu, client = live
    plan = small_units()
    # Refuse the whole batch and then every chunk that still holds unit-1 (the first half down).
    halvings = (len(plan.units) - 1).bit_length()
    emu.state.fail_next("too_large", times=1 + halvings, on=("submit",))
    result = run(plan, client)
    (failed,) = result.failed_units
    assert failed.reason.startswith(f"{plan.units[0].id}: model_payload_too_large")
    assert len(emu.state.served) == len(plan.units) - 1  # the others were answered


def test_malformed_json_is_retried_once_then_the_unit_is_listed_failed(
    live: tuple[EmulatorApp, WorkersAIClient],
) -> None:
    emu, client = live
    plan = small_units()
    bad = plan.units[1].id
    emu.state.override(bad, content='{"findings": [{"path": ')
    result = run(plan, client)
    assert submits(emu) == 2
    retried = emu.state.requests[[r.kind for r in emu.state.requests].index("submit", 1)]
    assert [q["external_reference"] for q in retried.body["requests"]] == [bad]
    (failed,) = result.failed_units
    assert failed.reason.startswith(f"{bad}: invalid_model_output")
    assert result.stats.requests == len(plan.units) + 1  # both attempts are billed


def test_a_missing_response_is_resubmitted_and_then_answered(
    live: tuple[EmulatorApp, WorkersAIClient],
) -> None:
    emu, client = live
    plan = small_units()
    emu.state.override(plan.units[0].id, missing=True)
    slept: list[float] = []

    def forget_after_first_submit(seconds: float) -> None:
        slept.append(seconds)
        emu.state.overrides.clear()

    result = engine.execute(plan, client, poll_interval=0.0, sleep=forget_after_first_submit)
    assert submits(emu) == 2 and slept  # backed off before the follow-up batch
    assert result.failed_units == ()
    assert any(f.cwe == "CWE-89" for f in result.findings)


def test_quota_in_a_batch_answer_is_not_retried(
    live: tuple[EmulatorApp, WorkersAIClient],
) -> None:
    emu, client = live
    plan = small_units()
    emu.state.override(plan.units[0].id, error=(3036, "daily allocation used up"))
    result = run(plan, client)
    assert submits(emu) == 1
    assert [s.reason.split(":")[0] for s in result.failed_units] == [plan.units[0].id]


def test_a_rejected_token_stops_the_review(server: tuple[EmulatorApp, str]) -> None:
    emu, url = server
    emu.reset()
    with workers_ai(url, token="wrong") as client, pytest.raises(ModelError) as err:
        run(small_units(), client)
    assert err.value.reason == "model_auth"


def test_sync_backend_retries_capacity_with_backoff(server: tuple[EmulatorApp, str]) -> None:
    emu, url = server
    emu.reset()
    emu.state.fail_next("capacity", times=2, on=("openai",))
    slept: list[float] = []
    seen: list[tuple[int, int]] = []
    plan = small_units()
    with OpenAICompatibleClient(
        url + "/client/v4/accounts/acct/ai/v1",
        "tok",
        MODEL,
        response_format=prompts.response_format(),
        max_retries=0,
        sleep=lambda _s: None,
    ) as client:
        result = engine.execute(
            plan, client, sleep=slept.append, progress=lambda d, t, _u: seen.append((d, t))
        )
    assert len(slept) == 2 and result.failed_units == ()
    assert [r.kind for r in emu.state.requests].count("openai") == len(plan.units) + 2
    assert seen[-1] == (len(plan.units), len(plan.units))
    assert any(f.cwe == "CWE-89" for f in result.findings)


def test_progress_counts_units_not_attempts(live: tuple[EmulatorApp, WorkersAIClient]) -> None:
    emu, client = live
    plan = small_units()
    emu.state.override(plan.units[0].id, content="not json")
    seen: list[tuple[int, int, Usage]] = []
    engine.execute(
        plan,
        client,
        poll_interval=0.0,
        sleep=lambda _s: None,
        progress=lambda d, t, u: seen.append((d, t, u)),
    )
    assert max(d for d, _t, _u in seen) == len(plan.units) == seen[-1][0]
    assert seen[-1][2].prompt_tokens == emu.state.prompt_tokens
