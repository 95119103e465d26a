"""bot.findings: schema validation, fingerprints, evidence placement, dedupe and the gate."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

import pytest

from bot.diff import ChangedFile, DiffLine, Hunk, ReviewUnit, UnitSegment
from bot.errors import InvalidModelOutput
from bot.findings import (
    BELOW_THRESHOLD,
    EVIDENCE_NOT_FOUND,
    PATH_NOT_IN_UNIT,
    Finding,
    at_or_above,
    dedupe,
    fingerprint,
    gate_exceeded,
    normalize_evidence,
    parse_model_output,
    place_findings,
)

# --- building diffs by hand ------------------------------------------------------------------


def hunk(index: int, old_start: int, new_start: int, lines: list[tuple[str, str]]) -> Hunk:
    """A hunk from (marker, text) pairs, numbering old and new lines like git does."""
    old, new, out = old_start, new_start, []
    for marker, text in lines:
        if marker == "+":
            out.append(DiffLine("add", None, new, text))
            new += 1
        elif marker == "-":
            out.append(DiffLine("delete", old, None, text))
            old += 1
        else:
            out.append(DiffLine("context", old, new, text))
            old, new = old + 1, new + 1
    return Hunk(index, old_start, old - old_start, new_start, new - new_start, "", tuple(out))


DB_HUNKS = (
    hunk(
        0,
        10,
        10,
        [
            (" ", "def find(user_id):"),
            ("-", "    q = 'SELECT 1'"),
            ("+", '    q = "SELECT * FROM users WHERE id = %s" % user_id'),
            ("+", "    cursor.execute(q)"),
            (" ", "    return cursor.fetchone()"),
        ],
    ),
    hunk(
        1,
        39,
        40,
        [
            (" ", "def load(blob):"),
            ("+", "    import pickle"),
            ("+", ""),
            ("+", "    return pickle.loads(blob)"),
            (" ", ""),
        ],
    ),
)
DB = ChangedFile("app/db.py", "app/db.py", "modified", DB_HUNKS)
CI = ChangedFile(
    ".github/workflows/ci.yml",
    ".github/workflows/ci.yml",
    "modified",
    (hunk(0, 5, 5, [(" ", "    steps:"), ("+", "      - run: curl -s $URL | sh")]),),
)
OTHER = ChangedFile("app/other.py", None, "added", (hunk(0, 0, 1, [("+", "print('hi')")]),))
FILES = {f.path: f for f in (DB, CI, OTHER)}
UNIT = ReviewUnit(
    "unit-1",
    (
        UnitSegment(DB.path, DB.status, DB.hunks),
        UnitSegment(CI.path, CI.status, CI.hunks),
    ),
    tokens=100,
)


def raw(**overrides: Any) -> dict[str, Any]:
    """A schema-valid model finding on the SQL injection of DB."""
    base: dict[str, Any] = {
        "path": "app/db.py",
        "line": 11,
        "severity": "high",
        "cwe": "CWE-89",
        "title": "SQL injection in find()",
        "description": "user_id is formatted into the query.",
        "exploit_scenario": "id=1 OR 1=1 dumps every user.",
        "recommendation": "Use a parameterised query.",
        "confidence": 0.9,
        "evidence": 'q = "SELECT * FROM users WHERE id = %s" % user_id',
    }
    base.update(overrides)
    return base


def place_one(item: dict[str, Any], **kwargs: Any) -> Finding:
    placed, rejected = place_findings([item], UNIT, FILES, **kwargs)
    assert rejected == [], rejected
    assert len(placed) == 1
    return placed[0]


def reject_reason(item: dict[str, Any], **kwargs: Any) -> str:
    placed, rejected = place_findings([item], UNIT, FILES, **kwargs)
    assert placed == []
    assert len(rejected) == 1
    assert rejected[0].unit == "unit-1"
    assert rejected[0].title == item["title"]
    return rejected[0].reason


# --- parse_model_output ------------------------------------------------------------------


def doc(*findings: dict[str, Any]) -> str:
    return json.dumps({"findings": list(findings)})


def test_valid_output_is_returned_as_dicts() -> None:
    assert parse_model_output(doc(raw())) == [raw()]
    assert parse_model_output('{"findings": []}') == []


def test_optional_fields_accepted() -> None:
    item = raw(start_line=10, suggestion="    q = 'SELECT * FROM users WHERE id = %s'")
    assert parse_model_output(doc(item)) == [item]


@pytest.mark.parametrize(
    "text",
    [
        "```json\n" + doc(raw()) + "\n```",
        "```\n" + doc(raw()) + "\n```",
        "  \n```json\n" + doc(raw()) + "\n```\n\n",
        "\n\t" + doc(raw()) + "  \n",
    ],
)
def test_one_surrounding_fence_and_whitespace_tolerated(text: str) -> None:
    assert parse_model_output(text) == [raw()]


@pytest.mark.parametrize(
    "text",
    [
        "Here are the findings:\n" + doc(raw()),
        doc(raw()) + "\nHope this helps!",
        "```json\n" + doc(raw()) + "\n```\n```json\n" + doc(raw()) + "\n```",
        "Sure:\n```json\n" + doc(raw()) + "\n```",
        "```json\n" + doc(raw()),
        "{'findings': []}",
        "",
        "null",
    ],
)
def test_anything_else_is_not_repaired(text: str) -> None:
    with pytest.raises(InvalidModelOutput):
        parse_model_output(text)


def _problem(item: dict[str, Any]) -> str:
    with pytest.raises(InvalidModelOutput) as info:
        parse_model_output(doc(item))
    assert info.value.reason == "invalid_model_output"
    return str(info.value)


def test_missing_field_is_named() -> None:
    item = raw()
    del item["evidence"]
    assert "evidence" in _problem(item)


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"severity": "urgent"}, "severity"),
        ({"severity": "HIGH"}, "severity"),
        ({"cwe": "89"}, "cwe"),
        ({"cwe": "CWE-89a"}, "cwe"),
        ({"line": 0}, "line"),
        ({"line": "12"}, "line"),
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": -0.1}, "confidence"),
        ({"evidence": ""}, "evidence"),
        ({"start_line": 0}, "start_line"),
    ],
)
def test_bad_values_are_rejected_and_located(override: dict[str, Any], field: str) -> None:
    assert f"[0].{field}" in _problem(raw(**override))


def test_extra_field_is_rejected() -> None:
    assert "cvss" in _problem(raw(cvss=9.8))


def test_first_problem_is_reported_in_order() -> None:
    with pytest.raises(InvalidModelOutput) as info:
        parse_model_output(doc(raw(), raw(severity="urgent"), raw(line=0)))
    assert "[1].severity" in str(info.value)


def test_missing_findings_key_and_wrong_root() -> None:
    with pytest.raises(InvalidModelOutput, match="findings"):
        parse_model_output('{"results": []}')
    with pytest.raises(InvalidModelOutput, match="expected"):
        parse_model_output("[1, 2, 3]")


def test_error_message_never_quotes_the_whole_output() -> None:
    huge = "A" * 50_000
    for text in (json.dumps([huge]), json.dumps({"findings": huge}), huge):
        with pytest.raises(InvalidModelOutput) as info:
            parse_model_output(text)
        assert len(str(info.value)) < 300


# --- fingerprints --------------------------------------------------------------------------


def test_fingerprint_is_pinned() -> None:
    material = b"CWE-89\0app/db.py\0cursor.execute(q)"
    assert (
        fingerprint("CWE-89", "app/db.py", "cursor.execute(q)")
        == (hashlib.sha256(material).hexdigest()[:16])
    )


def test_fingerprint_ignores_whitespace_case_of_cwe_and_diff_markers() -> None:
    base = fingerprint("CWE-89", "app/db.py", "cursor.execute(q)")
    assert fingerprint("cwe-89", "app/db.py", "  cursor.execute(q)\n") == base
    assert fingerprint("CWE-89", "app/db.py", "+ cursor.execute(q)") == base
    multi = fingerprint("CWE-89", "app/db.py", "a = 1\n    b(a)")
    assert fingerprint("CWE-89", "app/db.py", "+a  =  1\n+\tb(a)\n") == multi


def test_fingerprint_separates_cwe_path_and_evidence() -> None:
    base = fingerprint("CWE-89", "app/db.py", "cursor.execute(q)")
    assert fingerprint("CWE-78", "app/db.py", "cursor.execute(q)") != base
    assert fingerprint("CWE-89", "app/other.py", "cursor.execute(q)") != base
    assert fingerprint("CWE-89", "app/db.py", "cursor.execute(p)") != base


def test_normalize_evidence() -> None:
    assert normalize_evidence("  +  x   =\t1 \n\n-  y  ") == "x = 1 y"
    assert normalize_evidence("   \n ") == ""


def test_placed_fingerprint_survives_line_numbers_and_citation_style() -> None:
    exact = place_one(raw())
    moved = place_one(
        raw(line=14, evidence='+    q = "SELECT * FROM users WHERE id = %s" % user_id')
    )
    fragment = place_one(raw(line=3, evidence="* FROM users WHERE id = %s"))
    assert exact.fingerprint == moved.fingerprint == fragment.fingerprint
    assert exact.fingerprint == fingerprint("CWE-89", "app/db.py", exact.evidence)
    assert len(exact.fingerprint) == 16


# --- place_findings ----------------------------------------------------------------------


def test_finding_is_placed_with_unit_source_and_fingerprint() -> None:
    f = place_one(raw())
    assert (f.path, f.line, f.start_line, f.on_diff, f.side) == (
        "app/db.py",
        11,
        None,
        True,
        "RIGHT",
    )
    assert f.unit == "unit-1"
    assert f.source == "model"
    assert f.evidence == '    q = "SELECT * FROM users WHERE id = %s" % user_id'
    assert (f.severity, f.cwe, f.confidence) == ("high", "CWE-89", 0.9)


def test_source_and_normalisation() -> None:
    f = place_one(raw(cwe=" cwe-89 ", severity="High"), source="bandit")
    assert (f.cwe, f.severity, f.source) == ("CWE-89", "high", "bandit")


def test_line_is_reanchored_to_the_evidence() -> None:
    f = place_one(raw(line=15, evidence="cursor.execute(q)"))
    assert (f.line, f.start_line) == (12, None)
    assert f.on_diff


def test_match_covering_the_cited_line_is_preferred() -> None:
    unit_file = ChangedFile(
        "dup.py",
        None,
        "added",
        (hunk(0, 0, 1, [("+", "eval(request.args['x'])"), ("+", "pass")] * 3),),
    )
    unit = ReviewUnit("u", (UnitSegment("dup.py", "added", unit_file.hunks),), 10)
    item = raw(path="dup.py", line=3, evidence="eval(request.args['x'])", cwe="CWE-95")
    placed, _ = place_findings([item], unit, {"dup.py": unit_file})
    assert placed[0].line == 3
    placed, _ = place_findings([{**item, "line": 4}], unit, {"dup.py": unit_file})
    assert placed[0].line == 3  # 3 and 5 are equally near: the earlier wins
    placed, _ = place_findings([{**item, "line": 6}], unit, {"dup.py": unit_file})
    assert placed[0].line == 5


def test_multi_line_evidence_sets_a_range() -> None:
    evidence = 'q = "SELECT * FROM users WHERE id = %s" % user_id\n    cursor.execute(q)'
    f = place_one(raw(line=30, evidence=evidence))
    assert (f.start_line, f.line) == (11, 12)
    assert f.on_diff


def test_multi_line_evidence_with_copied_markers_and_blank_lines() -> None:
    f = place_one(
        raw(line=43, evidence="+    import pickle\n+    return pickle.loads(blob)", cwe="CWE-502")
    )
    assert (f.start_line, f.line) == (41, 43)
    assert f.evidence == "    import pickle\n\n    return pickle.loads(blob)"


def test_multi_line_evidence_must_be_consecutive() -> None:
    # Both lines exist on the new side, but not next to each other.
    evidence = "cursor.execute(q)\nimport pickle"
    assert reject_reason(raw(evidence=evidence)) == EVIDENCE_NOT_FOUND


def test_multi_line_evidence_may_cut_the_outer_lines() -> None:
    f = place_one(
        raw(line=11, evidence='WHERE id = %s" % user_id\n    cursor.execute(q)\n    return')
    )
    assert (f.start_line, f.line) == (11, 13)


def test_model_range_holding_the_evidence_is_kept() -> None:
    f = place_one(raw(start_line=10, line=12, evidence="cursor.execute(q)"))
    assert (f.start_line, f.line) == (10, 12)


def test_evidence_on_a_removed_line_is_rejected() -> None:
    assert reject_reason(raw(evidence="q = 'SELECT 1'")) == EVIDENCE_NOT_FOUND


def test_evidence_not_in_the_diff_is_rejected() -> None:
    assert reject_reason(raw(evidence="os.system(cmd)")) == EVIDENCE_NOT_FOUND
    assert reject_reason(raw(evidence="   \n  ")) == EVIDENCE_NOT_FOUND


def test_short_fragments_do_not_match_anywhere() -> None:
    assert reject_reason(raw(evidence="q")) == EVIDENCE_NOT_FOUND
    assert reject_reason(raw(evidence="...")) == EVIDENCE_NOT_FOUND


def test_evidence_in_another_file_of_the_unit_does_not_count() -> None:
    assert reject_reason(raw(path=".github/workflows/ci.yml")) == EVIDENCE_NOT_FOUND


def test_path_outside_the_unit_is_rejected() -> None:
    assert reject_reason(raw(path="app/other.py", evidence="print('hi')")) == PATH_NOT_IN_UNIT
    assert reject_reason(raw(path="b/app/db.py")) == PATH_NOT_IN_UNIT


def test_yaml_list_dash_is_code_not_a_marker() -> None:
    item = raw(
        path=".github/workflows/ci.yml", line=6, cwe="CWE-494", evidence="- run: curl -s $URL | sh"
    )
    assert place_one(item).line == 6
    assert place_one({**item, "evidence": "+      - run: curl -s $URL | sh"}).line == 6
    two = place_one({**item, "evidence": "steps:\n  - run: curl -s $URL | sh"})
    assert (two.start_line, two.line) == (5, 6)


def test_start_line_in_another_hunk_is_dropped() -> None:
    f = place_one(raw(start_line=12, line=41, evidence="import pickle", cwe="CWE-502"))
    assert (f.start_line, f.line, f.on_diff) == (None, 41, True)


def test_on_diff_false_when_the_line_is_outside_the_pr_hunks() -> None:
    # A whole-file unit (as in a scan) whose line is not part of the PR's diff.
    whole = ChangedFile(
        "app/db.py",
        None,
        "added",
        (hunk(0, 0, 1, [("+", f"line {n}") for n in range(1, 30)] + [("+", "cursor.execute(q)")]),),
    )
    unit = ReviewUnit("scan-1", (UnitSegment("app/db.py", "added", whole.hunks),), 10)
    item = raw(line=30, evidence="cursor.execute(q)", suggestion="cursor.execute(q, (uid,))")
    placed, rejected = place_findings([item], unit, FILES)
    assert rejected == []
    assert (placed[0].line, placed[0].on_diff, placed[0].suggestion) == (30, False, None)


def test_file_missing_from_files_is_off_diff() -> None:
    placed, _ = place_findings([raw()], UNIT, {})
    assert placed[0].on_diff is False


def test_suggestion_kept_only_on_the_lines_it_was_written_for() -> None:
    fix = "    q = 'SELECT * FROM users WHERE id = %s'"
    assert place_one(raw(suggestion=fix)).suggestion == fix
    assert place_one(raw(line=13, suggestion=fix)).suggestion is None  # re-anchored to 11
    assert (
        place_one(raw(start_line=12, line=41, evidence="import pickle", suggestion=fix)).suggestion
        is None
    )


def test_confidence_floor() -> None:
    assert reject_reason(raw(confidence=0.4), confidence_floor=0.5) == BELOW_THRESHOLD
    assert place_one(raw(confidence=0.5), confidence_floor=0.5).confidence == 0.5


def test_mixed_batch_keeps_order_and_reasons() -> None:
    items = [
        raw(),
        raw(path="nope.py"),
        raw(evidence="nothing like it"),
        raw(line=12, evidence="cursor.execute(q)"),
    ]
    placed, rejected = place_findings(items, UNIT, FILES)
    assert [f.line for f in placed] == [11, 12]
    assert [r.reason for r in rejected] == [PATH_NOT_IN_UNIT, EVIDENCE_NOT_FOUND]
    assert rejected[0].path == "nope.py"


# --- dedupe and gate -----------------------------------------------------------------------


def finding(**overrides: Any) -> Finding:
    base = Finding(
        path="a.py",
        line=1,
        severity="medium",
        cwe="CWE-79",
        title="t",
        description="d",
        exploit_scenario="e",
        recommendation="r",
        confidence=0.5,
        evidence="x",
        fingerprint="fp-a",
    )
    return dataclasses.replace(base, **overrides)


def test_dedupe_keeps_the_most_severe_then_most_confident_at_one_place() -> None:
    kept = dedupe(
        [
            finding(severity="low", confidence=1.0, line=5),
            finding(severity="high", confidence=0.6, line=5),
            finding(severity="high", confidence=0.7, line=5),
        ]
    )
    assert [(f.severity, f.confidence, f.line) for f in kept] == [("high", 0.7, 5)]


def test_the_same_evidence_on_two_lines_is_two_findings_with_their_own_fingerprints() -> None:
    """bandit B105 on galaxy/token.py lines 49, 122 and 180 (one evidence text) is three."""
    hits = [finding(fingerprint="", line=n, evidence="password = ''") for n in (180, 49, 122)]
    kept = dedupe(hits)
    assert sorted(f.line for f in kept) == [49, 122, 180]
    assert len({f.fingerprint for f in kept}) == 3
    first = next(f for f in kept if f.line == 49)
    assert first.fingerprint == fingerprint("CWE-79", "a.py", "password = ''")  # unchanged id


def test_fingerprints_survive_a_line_shift() -> None:
    before = dedupe([finding(fingerprint="", line=n, evidence="eval(x)") for n in (10, 20)])
    after = dedupe([finding(fingerprint="", line=n, evidence="eval(x)") for n in (14, 24)])
    assert [f.fingerprint for f in before] == [f.fingerprint for f in after]


def test_two_rules_naming_one_flaw_at_one_place_are_one_finding() -> None:
    """bandit's B308 calls a mark_safe call CWE-79, its B703 CWE-80 (Django 5.0: 52 such pairs)."""
    b308 = finding(source="bandit", rule="B308", cwe="CWE-79", evidence="return mark_safe(",
                   fingerprint="fp-308", confidence=0.9)  # fmt: skip
    b703 = finding(source="bandit", rule="B703", cwe="CWE-80", evidence="return mark_safe(",
                   fingerprint="fp-703", confidence=0.6)  # fmt: skip
    (one,) = dedupe([b703, b308])
    assert (one.rule, one.cwe, one.fingerprint) == ("B308", "CWE-79", "fp-308")
    assert one.corroborated_by == ("bandit B703",)
    # Another line, another CWE outside the family, or the same rule twice: still apart.
    assert len(dedupe([b308, dataclasses.replace(b703, line=2)])) == 2
    assert len(dedupe([b308, dataclasses.replace(b703, cwe="CWE-89")])) == 2
    twice = dedupe([b308, dataclasses.replace(b308, confidence=0.1)])
    assert len(twice) == 1 and twice[0].corroborated_by == ()
    # A model's CWE-77 is corroborated by bandit's CWE-78 on its lines.
    model = finding(source="model", cwe="CWE-77", line=3, start_line=1, evidence="os.system(c)")
    shell = finding(source="bandit", rule="B605", cwe="CWE-78", line=2, evidence="os.system(c)")
    (merged,) = dedupe([model, shell])
    assert merged.source == "model" and merged.corroborated_by == ("bandit B605",)


def test_dedupe_sorts_by_severity_then_path_then_line() -> None:
    kept = dedupe(
        [
            finding(fingerprint="1", path="b.py", line=3, severity="medium", evidence="b"),
            finding(fingerprint="2", path="a.py", line=9, severity="medium", evidence="c"),
            finding(fingerprint="3", path="z.py", line=1, severity="critical"),
            finding(fingerprint="4", path="a.py", line=2, severity="medium", evidence="d"),
            finding(fingerprint="5", path="a.py", line=1, severity="low", evidence="e"),
        ]
    )
    assert [f.fingerprint for f in kept] == ["3", "4", "2", "1", "5"]


def test_dedupe_computes_missing_fingerprints() -> None:
    kept = dedupe([finding(fingerprint="", line=1), finding(fingerprint="", line=1)])
    assert len(kept) == 1 and kept[0].fingerprint == fingerprint("CWE-79", "a.py", "x")


def test_an_analyzer_agreeing_with_the_model_corroborates_it() -> None:
    model = finding(
        source="model",
        line=12,
        start_line=10,
        cwe="CWE-78",
        title="Shell injection",
        description="the model's explanation",
        severity="medium",
        evidence="run(x)",
    )
    bandit = finding(
        source="bandit",
        line=11,
        cwe="CWE-78",
        rule="B602",
        severity="high",
        description="bandit B602",
        confidence=0.9,
        evidence="run(x, shell=True)",
    )
    other = finding(source="bandit", line=11, cwe="CWE-259", rule="B105", evidence="pw = ''")
    kept = dedupe([bandit, model, other])
    merged = next(f for f in kept if f.cwe == "CWE-78")
    assert len(kept) == 2 and merged.source == "model"
    assert merged.description == "the model's explanation"
    assert merged.corroborated_by == ("bandit B602",) and merged.severity == "high"
    assert merged.to_json()["corroborated_by"] == ["bandit B602"]


def test_gate() -> None:
    found = [finding(severity="medium"), finding(severity="low")]
    assert [f.severity for f in at_or_above(found, "medium")] == ["medium"]
    assert at_or_above(found, "high") == []
    assert len(at_or_above(found, "LOW")) == 2
    assert gate_exceeded(found, "medium") and not gate_exceeded(found, "critical")
    assert not gate_exceeded(found, "none")
    assert not gate_exceeded([], "low")
    with pytest.raises(ValueError, match="severity"):
        at_or_above(found, "severe")
    with pytest.raises(ValueError):
        gate_exceeded(found, "")


def test_report_shape_of_a_finding() -> None:
    assert list(finding().to_json())[:14] == [
        "path", "line", "start_line", "severity", "cwe", "title", "description",
        "exploit_scenario", "recommendation", "confidence", "evidence", "suggestion",
        "fingerprint", "source",
    ]  # fmt: skip
