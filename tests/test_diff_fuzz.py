"""Fuzzing the diff pipeline: any bytes give a clean result or a DiffError, never a crash, and
nothing is ever placed on a line the diff does not have."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot import diff as diffmod
from bot.errors import DiffError
from bot.review import outcome as outcomes
from bot.review.plan import plan_diff
from bot.review.prompts import RepoContext

DIFFS = sorted((Path(__file__).parent / "data" / "diffs").glob("*.diff"))
EXAMPLE = (Path(__file__).resolve().parent.parent / "examples" / "vulnerable.diff").read_bytes()
SEEDS = [p.read_bytes() for p in DIFFS] + [EXAMPLE]
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))


def pipeline(data: bytes) -> None:
    try:
        parsed = diffmod.parse_diff(data)
    except DiffError:
        return
    kept, _ = diffmod.filter_files(parsed.files)
    for f in kept:
        diffmod.line_map(f)
    split = diffmod.split_units(kept, 800, max_units=50)
    for unit in split.units:
        diffmod.render_unit_diff(unit)


@FUZZ
@given(st.binary(max_size=3000))
def test_random_bytes(data: bytes) -> None:
    pipeline(data)


@FUZZ
@given(st.sampled_from(SEEDS), st.data())
def test_mangled_real_diffs(seed: bytes, data: st.DataObject) -> None:
    lines = seed.split(b"\n")
    for _ in range(data.draw(st.integers(1, 6))):
        op = data.draw(st.sampled_from(["drop", "dup", "flip", "cut", "junk"]))
        i = data.draw(st.integers(0, max(0, len(lines) - 1)))
        if op == "drop" and lines:
            del lines[i]
        elif op == "dup" and lines:
            lines.insert(i, lines[i])
        elif op == "flip" and lines and lines[i]:
            j = data.draw(st.integers(0, len(lines[i]) - 1))
            lines[i] = lines[i][:j] + bytes([lines[i][j] ^ 0x20]) + lines[i][j + 1 :]
        elif op == "cut":
            lines = lines[:i]
        else:
            lines.insert(i, data.draw(st.binary(max_size=80)))
    pipeline(b"\n".join(lines))


@FUZZ
@given(
    path=st.sampled_from(["shop/db.py", "shop/app.py", "nope.py", "", "../etc/passwd"]),
    line=st.integers(-5, 10_000),
    evidence=st.text(max_size=200),
    junk=st.text(max_size=500),
)
def test_model_garbage_never_lands_on_a_missing_line(
    path: str, line: int, evidence: str, junk: str
) -> None:
    import json

    plan = plan_diff(EXAMPLE, repo=RepoContext(repo="o/r"))
    unit = plan.units[0]
    finding = {
        "path": path,
        "line": line,
        "severity": "high",
        "cwe": "CWE-89",
        "title": "t",
        "description": "d",
        "exploit_scenario": "e",
        "recommendation": "r",
        "confidence": 0.9,
        "evidence": evidence,
    }
    for content in (json.dumps({"findings": [finding]}), junk, json.dumps({"findings": junk})):
        outcome = outcomes.evaluate(plan, unit.id, content, min_confidence=0.0)
        for f in outcome.findings:
            lines = diffmod.line_map(plan.files[f.path])
            assert not f.on_diff or lines.can_comment(f.line, "RIGHT")
            assert f.path in plan.files
