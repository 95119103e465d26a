"""``secreview scan`` as a real process: offline analyzers, the emulator, resume after a kill,
OWNER/REPO through a fake GitHub with SARIF upload, cost budget and usage errors."""

from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.repo_config import parse_repo_config
from bot.scan import walk as scan
from tests.emulators.server import LiveServer
from tests.emulators.workers_ai import EmulatorApp, create_emulator
from tests.fakes.github import FakeGitHub
from tests.procs import wait_for
from tests.test_render import assert_github_ingestible, assert_valid_sarif

ROOT = Path(__file__).resolve().parent.parent
VULN = ROOT / "tests" / "data" / "vulnproject"
MODEL = "@cf/moonshotai/kimi-k2.6"
SECRET = "wJalrXUtnFEMI"  # the start of the fixture's AWS secret: never in any output
_OWN_ENV = ("CLOUDFLARE_", "OPENAI_", "SECREVIEW_", "WORKERS_AI_", "GITHUB_")


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(_OWN_ENV)}
    return {**clean, **(extra or {})}


def run_cli(
    args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env=cli_env(env),
        cwd=ROOT,
        capture_output=True,
        timeout=120,
    )


def views_findings(report: dict[str, object]) -> set[tuple[str, str, int]]:
    findings = report["findings"]
    assert isinstance(findings, list)
    return {(f["source"], f["cwe"], f["line"]) for f in findings if f["path"] == "app/views.py"}


EXPECTED_OFFLINE = {
    ("bandit", "CWE-78", 25),  # subprocess with shell=True
    ("bandit", "CWE-89", 19),  # SQL built with an f-string
    ("bandit", "CWE-502", 35),  # pickle.loads
    ("bandit", "CWE-20", 30),  # yaml.load
    ("bandit", "CWE-327", 39),  # md5 for passwords
    ("secrets", "CWE-798", 12),  # AWS secret access key
}


def test_offline_scan_json_reports_analyzers_and_coverage() -> None:
    proc = run_cli(["scan", str(VULN), "--format", "json", "--fail-on", "high"])
    assert proc.returncode == 1, proc.stderr.decode()
    report = json.loads(proc.stdout)
    assert report["model"] is None
    assert views_findings(report) >= EXPECTED_OFFLINE
    assert not [f for f in report["findings"] if f["path"] == "app/money.py"]  # the clean file
    skipped = {s["path"]: s["reason"] for s in report["coverage"]["skipped"]}
    assert skipped["logo.png"] == "binary file"
    assert skipped["node_modules/left-pad/index.js"] == "vendored"
    assert skipped["docs/index.md"] in ("documentation", "excluded by config")
    assert "app/views.py" in report["coverage"]["reviewed"]
    notice = [line for line in proc.stderr.decode().splitlines() if "no model configured" in line]
    assert len(notice) == 1 and "CLOUDFLARE_API_TOKEN" in notice[0]
    assert SECRET not in proc.stdout.decode() + proc.stderr.decode()


def test_offline_scan_sarif_is_valid_and_ingestible(tmp_path: Path) -> None:
    out = tmp_path / "scan.sarif"
    proc = run_cli(["scan", str(VULN), "--format", "sarif", "--output", str(out), "-q"])
    assert proc.returncode == 1, proc.stderr.decode()  # the repo config's fail_on: high
    assert proc.stdout == b""
    sarif = json.loads(out.read_text())
    assert_valid_sarif(sarif)
    assert_github_ingestible(sarif)
    results = sarif["runs"][0]["results"]
    assert {"app/views.py"} == {
        r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results
    }
    assert SECRET not in out.read_text()


def test_offline_scan_markdown_and_fail_on_none() -> None:
    proc = run_cli(["scan", str(VULN), "--format", "markdown", "--fail-on", "none"])
    assert proc.returncode == 0, proc.stderr.decode()
    text = proc.stdout.decode()
    assert text.startswith("# secreview")
    assert "app/views.py:25" in text and "CWE-78" in text and "CWE-798" in text
    assert "logo.png" in text  # skipped files are listed
    assert SECRET not in text


def test_usage_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    cases = [
        (["scan", str(VULN), "--upload-sarif"], "needs OWNER/REPO"),
        (["scan", "not a target!"], "neither a directory nor OWNER/REPO"),
        (["scan", "octo/shop"], "GITHUB_APP_ID"),  # no App configured: named, no traceback
        (["scan", str(VULN), "--max-cost", "-1"], "--max-cost"),
        (["scan", str(VULN), "--max-cost", "lots"], "--max-cost"),
        (["scan", str(VULN), "--format", "xml"], "--format"),
    ]
    file = tmp_path / "file.py"
    file.write_text("x = 1\n")
    cases.append((["scan", str(file)], "neither a directory"))
    for args, expected in cases:
        proc = run_cli(args)
        err = proc.stderr.decode()
        assert proc.returncode == 2, (args, err)
        assert len(err.strip().splitlines()) == 1 and expected in err, (args, err)
        assert "Traceback" not in err


@pytest.fixture
def emulator() -> Iterator[tuple[EmulatorApp, str]]:
    emu = create_emulator(account_id="acct", api_token="tok")
    emu.state.polls_until_done = 0
    with LiveServer(emu.app) as server:
        yield emu, server.url


def model_env(url: str, unit_tokens: int = 600) -> dict[str, str]:
    return {
        "CLOUDFLARE_ACCOUNT_ID": "acct",
        "CLOUDFLARE_API_TOKEN": "tok",
        "WORKERS_AI_BASE_URL": url + "/client/v4",
        "SECREVIEW_UNIT_TOKENS": str(unit_tokens),
    }


def test_scan_through_the_emulator(emulator: tuple[EmulatorApp, str], tmp_path: Path) -> None:
    emu, url = emulator
    state = tmp_path / "state"
    proc = run_cli(
        ["scan", str(VULN), "--format", "json", "--fail-on", "none", "--state-dir", str(state)],
        env=model_env(url),
    )
    assert proc.returncode == 0, proc.stderr.decode()
    report = json.loads(proc.stdout)
    assert report["model"] == MODEL and report["stats"]["requests"] >= 1
    assert any(f["source"] == "model" and f["cwe"] == "CWE-89" for f in report["findings"])
    assert ("secrets", "CWE-798", 12) in views_findings(report)
    submits = [r for r in emu.state.requests if r.kind == "submit"]
    assert submits and {r.headers["x-session-affinity"] for r in submits} != {""}
    assert all(r.headers["x-session-affinity"].startswith("sr-") for r in submits)
    sent = json.dumps([r.body for r in submits])
    assert SECRET not in sent and "[REDACTED:" in sent  # the secret never left the process
    assert "app/money.py" in sent and "node_modules" not in sent
    err = proc.stderr.decode()
    assert "planned 5 files in 1 unit " in err  # tests/test_money.py is read for secrets only
    assert {"path": "tests/test_money.py", "reason": "test code"} in report["coverage"]["skipped"]
    assert "units" in err and "so far" in err  # plain progress lines off a terminal


def test_cost_budget_leaves_out_the_least_relevant(
    emulator: tuple[EmulatorApp, str], tmp_path: Path
) -> None:
    emu, url = emulator
    config = parse_repo_config((VULN / ".github" / "secreview.yml").read_bytes())
    full = scan.plan_scan(scan.walk_tree(VULN), config, budget_tokens=600, model=MODEL)
    views = next(f for f in full.files if f.path == "app/views.py")
    just_views = scan.estimate_cost(MODEL, [views.tokens])
    assert just_views < full.estimated_cost_usd
    base = [
        "scan",
        str(VULN),
        "--format",
        "json",
        "--fail-on",
        "none",
        "--state-dir",
        str(tmp_path),
    ]
    proc = run_cli([*base, "--max-cost", f"{just_views + 1e-7:.7f}"], env=model_env(url))
    assert proc.returncode == 0, proc.stderr.decode()
    report = json.loads(proc.stdout)
    over = [s["path"] for s in report["coverage"]["skipped"] if s["reason"] == "over cost budget"]
    assert set(over) == {f.path for f in full.files} - {"app/views.py"}
    assert report["coverage"]["reviewed"] == ["app/views.py"]  # the request handlers first
    assert "cost budget" in proc.stderr.decode()
    units = json.dumps(
        [
            m["content"]
            for r in emu.state.requests
            if r.kind == "submit"
            for item in r.body["requests"]
            for m in item["messages"]
            if m["role"] == "user"
        ]
    )
    assert "app/views.py" in units and all(path not in units for path in over)
    nothing = run_cli([*base, "--max-cost", "0"], env=model_env(url))
    assert nothing.returncode == 0, nothing.stderr.decode()
    report = json.loads(nothing.stdout)
    assert report["coverage"]["reviewed"] == [] and report["stats"]["requests"] == 0


def test_a_killed_scan_resumes_without_paying_again(
    emulator: tuple[EmulatorApp, str], tmp_path: Path
) -> None:
    emu, url = emulator
    emu.state.polls_until_done = 1_000_000  # the batch stays "running" until we let it finish
    args = [sys.executable, "-m", "bot.cli", "scan", str(VULN), "--format", "json"]
    args += ["--fail-on", "none", "--state-dir", str(tmp_path / "state")]
    env = cli_env(model_env(url))
    child = subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_for(lambda: any(r.kind == "poll" for r in emu.state.requests), 60, "the first poll")
    finally:
        child.send_signal(signal.SIGKILL)
        child.communicate(timeout=10)
    submitted = [r for r in emu.state.requests if r.kind == "submit"]
    assert submitted and list((tmp_path / "state").glob("*.json"))
    for batch in emu.state.batches.values():
        batch.polls_until_done = 0
    emu.state.polls_until_done = 0
    rerun = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert rerun.returncode == 0, rerun.stderr.decode()
    assert b"resuming the scan" in rerun.stderr
    assert [r for r in emu.state.requests if r.kind == "submit"] == submitted  # none twice
    polled = {r.body["request_id"] for r in emu.state.requests if r.kind == "poll"}
    assert polled == set(emu.state.batches)  # what was submitted before the kill was polled
    first = json.loads(rerun.stdout)
    assert first["stats"]["requests"] >= 1 and not first.get("failed_units")
    seen = len(emu.state.requests)
    again = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, timeout=120)
    assert again.returncode == 0, again.stderr.decode()
    assert len(emu.state.requests) == seen  # every file's result is reused: no model request
    second = json.loads(again.stdout)

    def placed(report: dict[str, Any]) -> list[dict[str, Any]]:
        return [{k: v for k, v in f.items() if k != "unit"} for f in report["findings"]]

    assert placed(second) == placed(first)  # reused findings belong to no unit of this run
    reused = {r["path"] for r in second["coverage"]["reused"]}
    assert reused == set(first["coverage"]["reviewed"]) and second["stats"]["requests"] == 0


def test_owner_repo_through_the_app_with_sarif_upload(
    app_key: tuple[str, str],
) -> None:
    fake = FakeGitHub("55", app_key[1])
    fake.add_repo("octo/vuln", 9)
    for path in VULN.rglob("*"):
        if path.is_file():
            fake.set_file("octo/vuln", "main", path.relative_to(VULN).as_posix(), path.read_bytes())
    with LiveServer(fake.app) as gh:
        env = {"GITHUB_APP_ID": "55", "GITHUB_PRIVATE_KEY": app_key[0], "GITHUB_API_URL": gh.url}
        proc = run_cli(["scan", "octo/vuln", "--format", "json", "--upload-sarif"], env=env)
        missing = run_cli(["scan", "octo/other", "--format", "json"], env=env)
    assert proc.returncode == 1, proc.stderr.decode()  # the repo's base config: fail_on high
    report = json.loads(proc.stdout)
    assert views_findings(report) >= EXPECTED_OFFLINE
    skipped = {s["path"]: s["reason"] for s in report["coverage"]["skipped"]}
    assert skipped["docs/index.md"] in ("documentation", "excluded by config")
    assert skipped["logo.png"] == "binary file"
    (upload,) = fake.sarifs
    assert upload["ref"] == "refs/heads/main" and len(upload["commit_sha"]) == 40
    sarif = json.loads(gzip.decompress(base64.b64decode(upload["sarif"])))
    assert_valid_sarif(sarif)
    assert {r["ruleId"] for r in sarif["runs"][0]["results"]}
    assert b"uploaded SARIF" in proc.stderr
    assert missing.returncode == 2 and len(missing.stderr.decode().strip().splitlines()) == 1
    assert b"Traceback" not in missing.stderr
