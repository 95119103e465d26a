"""The engine's driver against the Workers AI emulator: batches, splits, retries, stops."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot import engine, prompts
from bot.errors import ModelQuotaExceeded
from bot.llm import WorkersAIClient
from bot.prompts import PRContext, RepoContext
from tests.emulators.server import LiveServer
from tests.emulators.workers_ai import EmulatorApp, create_emulator

ROOT = Path(__file__).resolve().parent.parent
DIFF = (ROOT / "examples" / "vulnerable.diff").read_bytes()
REPO = RepoContext(repo="octo/shop", languages=("Python",))


@pytest.fixture
def live() -> Iterator[tuple[EmulatorApp, WorkersAIClient]]:
    emu = create_emulator(account_id="acct", api_token="tok")
    emu.state.polls_until_done = 0
    with LiveServer(emu.app) as server:
        client = WorkersAIClient(
            "acct",
            "tok",
            "@cf/moonshotai/kimi-k2.6",
            server.url + "/client/v4",
            response_format=prompts.response_format(),
            sleep=lambda _s: None,
        )
        yield emu, client
        client.close()


def small_units() -> engine.ReviewPlan:
    plan = engine.plan_review(DIFF, repo=REPO, budget_tokens=300)
    assert len(plan.units) >= 3
    return plan


def run(plan: engine.ReviewPlan, client: WorkersAIClient) -> object:
    return engine.execute(plan, client, poll_interval=0.0, sleep=lambda _s: None)


def test_one_batch_answers_matched_by_reference_in_any_order(
    live: tuple[EmulatorApp, WorkersAIClient],
) -> None:
    emu, client = live
    plan = small_units()
    result = run(plan, client)
    assert [r.kind for r in emu.state.requests].count("submit") == 1
    assert emu.state.shuffle_responses  # answers come back shuffled and still land right
    assert result.failed_units == () and result.stats.requests == len(plan.units)  # type: ignore[attr-defined]
    assert any(f.cwe == "CWE-89" and f.path == "shop/db.py" for f in result.findings)  # type: ignore[attr-defined]


def test_a_batch_too_large_is_split(live: tuple[EmulatorApp, WorkersAIClient]) -> None:
    emu, client = live
    emu.state.fail_next("too_large", times=1, on=("submit",))
    result = run(small_units(), client)
    assert [r.kind for r in emu.state.requests].count("submit") == 3  # refused, then two halves
    assert result.failed_units == ()  # type: ignore[attr-defined]


def test_a_unit_that_hit_capacity_is_retried_once(
    live: tuple[EmulatorApp, WorkersAIClient],
) -> None:
    emu, client = live
    plan = small_units()
    emu.state.override(plan.units[0].id, error=(3040, "Capacity temporarily exceeded"))
    result = run(plan, client)
    # Retried once; the emulator answers the same error again, so the unit is reported failed.
    assert [r.kind for r in emu.state.requests].count("submit") == 2
    (failed,) = result.failed_units  # type: ignore[attr-defined]
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
    assert len(result.failed_units) == len(plan.units)  # type: ignore[attr-defined]
    assert all("model_timeout" in s.reason for s in result.failed_units)  # type: ignore[attr-defined]
    assert result.findings and {f.source for f in result.findings} <= {"secrets", "injection"}  # type: ignore[attr-defined]


def test_usage_and_cost_add_up(live: tuple[EmulatorApp, WorkersAIClient]) -> None:
    emu, client = live
    result = run(small_units(), client)
    stats = result.stats  # type: ignore[attr-defined]
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
