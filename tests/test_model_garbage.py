"""Whatever the model answers, no finding lands on a line the diff does not have.

Garbage, huge output, wrong paths, out-of-range lines and evidence that is not in the diff go
through the real outcome.evaluate / findings.place_findings on a real diff; every placed finding
must sit on a new-side line of its own file inside the unit, and cite what is really there.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import diff as diffmod
from bot import findings as fnd
from bot.model.client import ModelResult
from bot.review import outcome as outcomes
from bot.review import verify
from bot.review.outcome import UnitOutcome
from bot.review.plan import Plan, plan_diff
from bot.review.prompts import RepoContext

ROOT = Path(__file__).resolve().parent.parent
DIFF = (ROOT / "examples" / "vulnerable.diff").read_bytes()
PLAN = plan_diff(DIFF, repo=RepoContext(repo="octo/shop"))
UNIT = PLAN.units[0]
SQL = (
    "query = f\"SELECT id, name, price FROM products WHERE name LIKE '%{term}%' ORDER BY {order}\""
)
RAW_LINES = DIFF.decode().splitlines()


def raw(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "path": "shop/db.py",
        "line": 16,
        "severity": "high",
        "cwe": "CWE-89",
        "title": "SQL injection",
        "description": "d",
        "exploit_scenario": "e",
        "recommendation": "r",
        "confidence": 0.9,
        "evidence": SQL,
    }
    base.update(changes)
    return base


def answer(*items: Mapping[str, Any]) -> str:
    return json.dumps({"findings": list(items)})


def evaluate(content: str, plan: Plan = PLAN) -> UnitOutcome:
    return outcomes.evaluate(plan, plan.units[0].id, content, min_confidence=0.0)


def new_side(unit: diffmod.ReviewUnit, path: str) -> dict[int, str]:
    """New-file line number → text for ``path``'s added and context lines in ``unit``."""
    return {
        ln.new_lineno: ln.text
        for seg in unit.segments
        if seg.path == path
        for hunk in seg.hunks
        for ln in hunk.lines
        if ln.new_lineno is not None
    }


def assert_grounded(outcome: UnitOutcome, plan: Plan = PLAN) -> None:
    """Every placed finding is on a real new-side line and its evidence is that code."""
    unit = plan.unit(outcome.unit)
    for f in outcome.findings:
        assert f.path in unit.paths and f.path in plan.files
        lines = new_side(unit, f.path)
        first = f.start_line or f.line
        assert first <= f.line and first in lines and f.line in lines
        numbers = sorted(lines)
        cited = [
            "\n".join(lines[n] for n in range(a, b + 1))
            for i, a in enumerate(numbers)
            for b in numbers[i:]
            if all(n in lines for n in range(a, b + 1))
        ]
        assert f.evidence in cited  # consecutive real new-side lines of this file
        line_map = diffmod.line_map(plan.files[f.path])
        if f.on_diff:
            assert line_map.can_comment(f.line, "RIGHT", f.start_line)
        assert f.fingerprint == fnd.fingerprint(f.cwe, f.path, f.evidence)


@pytest.mark.parametrize(
    "content",
    [
        "",
        "   ",
        "I found no vulnerabilities, the code looks great!",
        '```json\n{"findings": []',
        '{"findings": [',
        "[]",
        "null",
        "NaN",
        '{"findings": {"path": "shop/db.py"}}',
        '{"findings": [], "verdict": "approve"}',
        '{"findings": [{"path": "shop/db.py"}]}',
        answer(raw(line="16")),
        answer(raw(line=1.5)),
        answer(raw(line=0)),
        answer(raw(severity="catastrophic")),
        answer(raw(cwe="SQLi")),
        answer(raw(confidence=7)),
        answer(raw(path="")),
        "\x00\x01\x02\ufffd\udcff",
    ],
)
def test_garbage_is_an_invalid_output_not_a_finding(content: str) -> None:
    outcome = evaluate(content)
    assert outcome.findings == ()
    assert outcome.error is not None and outcome.invalid_output


@pytest.mark.parametrize(
    "content",
    [
        "[" * 100_000,
        '{"findings": [' + '{"a": ' * 50_000 + "1" + "}" * 50_000 + "]}",
        '{"findings": [{"line": 1' + "0" * 5000 + "}]}",
    ],
    ids=["deep-array", "deep-object", "huge-integer"],
)
def test_pathological_json_is_an_invalid_output(content: str) -> None:
    outcome = evaluate(content)
    assert outcome.findings == () and outcome.invalid_output


def test_huge_output_places_only_grounded_findings() -> None:
    items = [raw(line=16, title=f"copy {i}") for i in range(2000)]
    items += [raw(evidence="x" * 20_000, title="long")] * 50
    items += [raw(path=f"shop/ghost{i}.py") for i in range(500)]
    content = answer(*items)
    assert len(content) > 1_000_000
    outcome = evaluate(content)
    assert_grounded(outcome)
    assert len(outcome.findings) == 2000 and len(outcome.rejected) == 550
    result = outcomes.assemble(PLAN, [outcome], model=None)
    model_findings = [f for f in result.findings if f.source == "model"]
    assert len(model_findings) == 1  # 2000 copies of one flaw are one finding


@pytest.mark.parametrize(
    "path",
    ["shop/app.py ", "/shop/db.py", "./shop/db.py", "../shop/db.py", "shop/DB.py", "db.py"],
)
def test_a_wrong_path_is_rejected(path: str) -> None:
    outcome = evaluate(answer(raw(path=path)))
    assert outcome.findings == ()
    assert [r.reason for r in outcome.rejected] == [fnd.PATH_NOT_IN_UNIT]


@pytest.mark.parametrize("line", [1, 2, 15, 17, 18, 999_999, 2**62])
def test_out_of_range_lines_are_reanchored_on_the_evidence(line: int) -> None:
    outcome = evaluate(answer(raw(line=line)))
    (found,) = outcome.findings
    assert (found.path, found.line, found.start_line) == ("shop/db.py", 16, None)
    assert_grounded(outcome)


def test_a_range_starting_after_its_end_is_never_posted_backwards() -> None:
    outcome = evaluate(answer(raw(line=16, start_line=40), raw(line=3, start_line=17)))
    assert len(outcome.findings) == 2
    assert_grounded(outcome)


@pytest.mark.parametrize(
    ("path", "evidence"),
    [
        ("shop/db.py", "os.system(request.args['cmd'])"),  # invented code
        ("shop/db.py", "image = requests.get(request.args"),  # another file's line
        ("shop/app.py", 'STRIPE_KEY = "sk_live_4eC39HqLyjWDarjtT1zdp7dc"'),  # redacted
        ("shop/db.py", "def connect(path="),  # hunk header only, not a diff line
        ("shop/db.py", "\n\n  \n"),  # nothing at all
        ("shop/app.py", '+@app.get("/search")\n+def nosuch():'),  # a window that is not there
    ],
)
def test_evidence_not_in_the_diff_is_rejected(path: str, evidence: str) -> None:
    outcome = evaluate(answer(raw(path=path, evidence=evidence)))
    assert outcome.findings == ()
    assert [r.reason for r in outcome.rejected] == [fnd.EVIDENCE_NOT_FOUND]


def test_a_range_across_hunks_collapses_onto_its_evidence() -> None:
    docstring = '"""HTTP handlers of the example shop."""'
    outcome = evaluate(answer(raw(path="shop/app.py", line=17, start_line=1, evidence=docstring)))
    (found,) = outcome.findings
    assert_grounded(outcome)
    assert (found.line, found.start_line) == (1, None)


def test_removed_lines_are_never_cited() -> None:
    diff = (
        "diff --git a/a.py b/a.py\n--- a/a.py\n+++ b/a.py\n@@ -1,3 +1,3 @@\n"
        " import os\n-os.system(request.args['cmd'])\n+os.run_safely(['ls'])\n print('done')\n"
    )
    plan = plan_diff(diff, repo=RepoContext(repo="o/r"))
    outcome = evaluate(
        answer(raw(path="a.py", line=2, evidence="os.system(request.args['cmd'])")), plan
    )
    assert outcome.findings == ()
    assert [r.reason for r in outcome.rejected] == [fnd.EVIDENCE_NOT_FOUND]


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))


@st.composite
def claims(draw: st.DrawFn) -> dict[str, Any]:
    """A schema-valid finding whose evidence comes from anywhere in the raw diff (or nowhere)."""
    first = draw(st.integers(0, len(RAW_LINES) - 1))
    count = draw(st.integers(1, 4))
    evidence = "\n".join(RAW_LINES[first : first + count])
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(evidence)))
        evidence = evidence[cut:] if draw(st.booleans()) else evidence[:cut]
    evidence = draw(st.one_of(st.just(evidence), st.text(min_size=1, max_size=60)))
    line = draw(st.integers(1, 60))
    start = draw(st.one_of(st.none(), st.integers(1, 60)))
    item = raw(
        path=draw(st.sampled_from(["shop/db.py", "shop/app.py", "shop/views.py", "a/shop/db.py"])),
        line=line,
        evidence=evidence or "x",
    )
    if start is not None:
        item["start_line"] = start
    if draw(st.booleans()):
        item["suggestion"] = draw(st.text(max_size=40))
    return item


@FUZZ
@given(st.lists(claims(), max_size=6))
def test_fuzzed_claims_only_land_on_real_lines(items: list[dict[str, Any]]) -> None:
    outcome = evaluate(answer(*items))
    assert outcome.error is None
    assert len(outcome.findings) + len(outcome.rejected) == len(items)
    assert_grounded(outcome)
    for f in outcome.findings:
        if f.suggestion is not None:
            assert f.on_diff


@pytest.mark.parametrize(
    "content",
    [
        None,
        "",
        "the finding is real",
        "[" * 100_000,
        '{"verdicts": [{"index": 0, "verdict": "refuted", "confidence": 1' + "0" * 5000 + "}]}",
        '{"verdicts": [{"index": 0, "verdict": "refuted", "confidence": 7}]}',
        '{"verdicts": [{"index": "0", "verdict": "refuted", "confidence": 0.9}]}',
        '{"verdicts": [{"index": 0, "verdict": "nah", "confidence": 0.9}]}',
    ],
)
def test_a_garbage_verdict_keeps_the_finding(content: str | None) -> None:
    placed = evaluate(answer(raw())).findings
    result = outcomes.assemble(PLAN, [evaluate(answer(raw()))], model=None)
    look = verify.SecondLook()
    answers = [ModelResult("verify-0", content)]
    kept = verify.apply_verdicts(result, placed, answers, look, 0.5, "@cf/moonshotai/kimi-k2.6")
    assert {f.fingerprint for f in placed} <= {f.fingerprint for f in kept.findings}
    assert look.unparsed == len(placed) == 1 and not look.dropped
