"""Run-wide redaction: every occurrence, in every input, in every cheap encoding; and the plan."""

from __future__ import annotations

import base64
import json
import pickle
import random
from urllib.parse import quote

import pytest

from bot import diff as diffmod
from bot.redact.report import PR_DESCRIPTION, PR_TITLE
from bot.redact.run import RunRedaction
from bot.repo_config import RepoConfig
from bot.review import outcome as outcomes
from bot.review.plan import Plan, plan_diff, plan_files
from bot.review.prompts import PRContext, RepoContext
from bot.scan import plan as scan_plan
from tests import secret_values as sv

PASSWORD = "Xk9pQ2vLm7" + "Wq"
TOKEN = sv.checksummed(random.Random(77), "gh" + "p_")


def _diff(*lines: str) -> str:
    body = "".join(f"+{line}\n" for line in lines)
    return (
        "diff --git a/app/db.py b/app/db.py\n--- a/app/db.py\n+++ b/app/db.py\n"
        f"@@ -1 +1,{len(lines) + 1} @@\n x = 1\n{body}"
    )


def _sent(plan: Plan) -> str:
    return json.dumps([list(r.messages) for r in plan.requests], ensure_ascii=False)


@pytest.mark.parametrize(
    "copy",
    [
        f'assert p == "{PASSWORD}"',  # the case: a plain second occurrence
        f"callback = 'https://x.io/cb?v={quote(PASSWORD, safe='')}'",  # URL-encoded
        f"blob = '{base64.b64encode(PASSWORD.encode()).decode()}'",  # base64 of the value
        f"log.debug('using %s', '{PASSWORD}')",
    ],
)
def test_every_occurrence_in_the_diff_is_redacted(copy: str) -> None:
    diff = _diff(f'URL = "http://mary:{PASSWORD}@db.internal/x"', copy)
    plan = plan_diff(diff, repo=RepoContext())
    sent = _sent(plan)
    assert PASSWORD not in sent and quote(PASSWORD, safe="") not in sent
    assert base64.b64encode(PASSWORD.encode()).decode() not in sent
    assert sent.count("[REDACTED:url-password]") == 2
    assert all(PASSWORD not in f.evidence for f in plan.analyzer_findings)


def test_a_value_from_the_pr_description_is_redacted_in_the_diff_and_reported() -> None:
    diff = _diff(f"token_check = compare(x, '{TOKEN[:4]}' + '{TOKEN[4:]}')", f"X = '{TOKEN}'")
    pr = PRContext(title=f"use {TOKEN}", body=f"Deploy with\n{TOKEN}\nthanks")
    plan = plan_diff(diff, repo=RepoContext(), pr=pr)
    assert TOKEN not in _sent(plan)
    places = {(f.path, f.line) for f in plan.analyzer_findings if f.source == "secrets"}
    assert {(PR_TITLE, 1), (PR_DESCRIPTION, 2), ("app/db.py", 3)} <= places


def test_instructions_and_analyzer_findings_are_scrubbed() -> None:
    diff = _diff(f'password = "{PASSWORD}"')
    repo = RepoContext(instructions=f"The staging password is {PASSWORD}.")
    from bot.findings import Finding

    bandit = Finding(
        path="app/db.py", line=2, severity="low", cwe="CWE-259", title="Hard-coded password",
        description="d", exploit_scenario="e", recommendation="r", confidence=0.5,
        evidence=f'password = "{PASSWORD}"', source="bandit",
    )  # fmt: skip
    plan = plan_files(diffmod.parse_diff(diff).files, repo=repo, extra_findings=[bandit])
    assert PASSWORD not in _sent(plan) and PASSWORD not in plan.prefix.text
    assert all(PASSWORD not in f.evidence for f in plan.analyzer_findings)


def test_allowed_count_reaches_the_plan_and_the_stats() -> None:
    diff = _diff(f"DEMO = '{TOKEN}'  # gitleaks:allow", f"REAL = '{sv.token('npm-token')}'")
    plan = plan_diff(diff, repo=RepoContext())
    assert plan.secrets_allowed == 1
    assert [f.line for f in plan.analyzer_findings if f.source == "secrets"] == [3]
    assert TOKEN not in _sent(plan)
    assert outcomes.assemble(plan, [], model=None, analyzers_only=True).stats.secrets_allowed == 1


def test_values_never_leave_the_object() -> None:
    run = RunRedaction.detect(texts={"x": f'password = "{PASSWORD}"'})
    assert PASSWORD not in repr(run) and PASSWORD not in repr(run.values)
    with pytest.raises(TypeError):
        pickle.dumps(run)
    with pytest.raises(TypeError):
        pickle.dumps(run.values)
    assert run.redact(f"later: {PASSWORD}") == "later: [REDACTED:generic-secret]"


def test_scans_read_documentation_for_secrets() -> None:
    entries = [
        ("README.md", f"Set the token to `{TOKEN}`.\n".encode(), None),
        ("app.py", b"print('hi')\n", None),
    ]
    planned = scan_plan.plan_scan(entries, RepoConfig(), budget_tokens=4000, model="m")
    assert [p for p, _ in planned.secret_only] == ["README.md"]
    plan = plan_files(
        planned.changed_files(), repo=RepoContext(), kind="scan", secret_only=planned.secret_only
    )
    [found] = [f for f in plan.analyzer_findings if f.source == "secrets"]
    assert found.path == "README.md" and TOKEN not in found.evidence
    assert "README.md" not in {p for u in plan.units for p in u.paths}  # not sent to the model
