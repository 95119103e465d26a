"""The second look: exclusions by policy, and a verification pass that shares the prompt cache."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from bot.findings import Finding
from bot.model.client import WorkersAIClient
from bot.repo_config import RepoConfig
from bot.review import prompts, verify
from bot.review.models import single
from bot.review.plan import plan_diff
from bot.review.prompts import RepoContext
from bot.review.run import review_plan
from tests.emulators.fake_model import review
from tests.emulators.server import LiveServer
from tests.emulators.workers_ai import EmulatorApp, create_emulator

ROOT = Path(__file__).resolve().parent.parent
DIFF = (ROOT / "examples" / "vulnerable.diff").read_bytes()
REPO = RepoContext(repo="octo/shop", languages=("Python",))


def finding(**changes: Any) -> Finding:
    base = Finding(
        path="app/views.py",
        line=3,
        severity="high",
        cwe="CWE-89",
        title="SQLi",
        description="d",
        exploit_scenario="e",
        recommendation="r",
        confidence=0.9,
        evidence="db.execute(q)",
        fingerprint="ab" * 8,
    )
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"path": "tests/test_views.py"}, "only in tests, examples or documentation"),
        ({"path": "docs/guide.md"}, "only in tests, examples or documentation"),
        ({"cwe": "CWE-400"}, "resource exhaustion (policy: not reported)"),
        ({"evidence": "  "}, "no evidence cited"),
        ({}, None),
        ({"path": "tests/test_views.py", "severity": "critical"}, None),
        ({"path": "tests/conftest.py", "source": "secrets"}, None),
        ({"cwe": "CWE-1427", "path": "docs/x.md", "source": "injection"}, None),
    ],
)
def test_exclusions(changes: dict[str, Any], reason: str | None) -> None:
    assert verify.exclusion_reason(finding(**changes)) == reason


def answer_verdicts(refute: set[str]) -> Any:
    """The review as usual; verification refutes findings whose CWE is in ``refute``."""

    def script(messages: Sequence[Mapping[str, Any]], request: Mapping[str, Any]) -> str:
        user = str(messages[-1]["content"])
        if "## Second look" not in user:
            return review(messages, request)
        claims = json.loads(
            user.split('kind="findings"')[1].split(">\n", 1)[1].split("</untrusted-data")[0]
        )
        return json.dumps(
            {
                "verdicts": [
                    {
                        "index": c["index"],
                        "verdict": "refuted" if c["cwe"] in refute else "confirmed",
                        "confidence": 0.9 if c["cwe"] in refute else 0.85,
                        "reason": "checked",
                    }
                    for c in claims
                ]
            }
        )

    return script


@pytest.fixture
def live() -> Iterator[tuple[EmulatorApp, str]]:
    emu = create_emulator(account_id="acct", api_token="tok", script=answer_verdicts({"CWE-918"}))
    emu.state.polls_until_done = 0
    with LiveServer(emu.app) as server:
        yield emu, server.url + "/client/v4"


def client(url: str, fmt: dict[str, Any] | None = None) -> WorkersAIClient:
    return WorkersAIClient(
        "acct",
        "tok",
        "@cf/moonshotai/kimi-k2.6",
        url,
        response_format=fmt or prompts.response_format(),
    )


def test_verification_drops_what_it_refutes_and_shares_the_cache(
    live: tuple[EmulatorApp, str],
) -> None:
    emu, url = live
    plain = review_plan(plan_diff(DIFF, repo=REPO), single(client(url)), sleep=lambda _s: None)
    model = {f.cwe for f in plain.result.findings if f.source == "model"}
    assert "CWE-918" in model and len(model) >= 2
    emu.reset().polls_until_done = 0
    plan = plan_diff(DIFF, repo=REPO, config=RepoConfig(verify=True, min_confidence=0.5))
    final = review_plan(
        plan,
        single(client(url), verifier=client(url, verify.response_format())),
        sleep=lambda _s: None,
    )
    after = {f.cwe for f in final.result.findings if f.source == "model"}
    assert after == model - {"CWE-918"}
    note = next(n for n in final.notes if n.startswith("Second look"))
    assert "1 refuted by the verification pass" in note
    # What a deterministic analyzer corroborates is not second-guessed.
    checked = [f for f in plain.result.findings if f.source == "model" and not f.corroborated_by]
    assert checked and len(checked) < len(model)
    assert f"{len(checked)} checked by the verification pass" in note
    # The verification requests start with the review's exact prefix, on the same replica.
    submits = [r for r in emu.state.requests if r.kind == "submit"]
    assert submits[-1].headers["x-session-affinity"] == plan.affinity
    assert submits[-1].body["requests"][0]["messages"][0]["content"] == plan.prefix.text
    verify_served = [s for s in emu.state.served if (s.reference or "").startswith("verify-")]
    # One request per unit with findings, not one per finding.
    assert len(verify_served) == len({f.unit for f in checked})
    assert len(verify_served) < len(checked)
    assert verify_served and all(s.cached_tokens > 0 for s in verify_served)


def test_unreadable_verdicts_keep_the_finding() -> None:
    from bot.findings import ReviewResult
    from bot.model.client import ModelResult

    kept = ReviewResult(findings=(finding(),))
    look = verify.SecondLook()
    out = verify.apply_verdicts(
        kept, [finding()], [ModelResult("verify-0", "{nope")], look, 0.5, "@cf/moonshotai/kimi-k2.6"
    )
    assert out.findings == (finding(),) and look.unparsed == 1
    assert "could not be read" in look.notes()[0]
