"""``secreview review`` end to end: a real child process against the Workers AI emulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.emulators.server import LiveServer
from tests.emulators.workers_ai import EmulatorApp, create_emulator

ROOT = Path(__file__).resolve().parent.parent
DIFF = ROOT / "examples" / "vulnerable.diff"
SHOP = ROOT / "examples" / "shop"
MODEL_ENV = ("CLOUDFLARE_", "OPENAI_", "SECREVIEW_", "WORKERS_AI_", "GITHUB_")


@pytest.fixture(scope="module")
def live() -> Iterator[tuple[EmulatorApp, str]]:
    emulator = create_emulator(account_id="acct", api_token="tok")
    with LiveServer(emulator.app) as server:
        yield emulator, server.url


@pytest.fixture
def emu(live: tuple[EmulatorApp, str]) -> EmulatorApp:
    state = live[0].reset()
    state.polls_until_done = 0  # done at the first poll: no 2 s wait in the CLI's driver
    return live[0]


def run(
    args: list[str], env: dict[str, str] | None = None, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(MODEL_ENV)}
    return subprocess.run(
        [sys.executable, "-m", "bot.cli", *args],
        env={**clean, **(env or {})},
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        timeout=60,
    )


def workers_ai(url: str) -> dict[str, str]:
    return {
        "CLOUDFLARE_ACCOUNT_ID": "acct",
        "CLOUDFLARE_API_TOKEN": "tok",
        "WORKERS_AI_BASE_URL": url + "/client/v4",
    }


def review(
    url: str, *extra: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    args = ["review", "--diff", str(DIFF), "--repo", str(SHOP), *extra]
    return run(args, env={**workers_ai(url), **(env or {})})


def findings_of(out: bytes) -> list[dict[str, object]]:
    report = json.loads(out)
    assert set(report) >= {"findings", "stats", "coverage"}
    return list(report["findings"])


def test_json_report_through_the_async_batch(
    live: tuple[EmulatorApp, str], emu: EmulatorApp
) -> None:
    proc = review(live[1], "--format", "json", "--fail-on", "none")
    assert proc.returncode == 0, proc.stderr.decode()
    report = json.loads(proc.stdout)
    by_source = {(f["source"], f["cwe"], f["path"], f["line"]) for f in report["findings"]}
    # The emulator's model finds the SQL injection at the f-string's real line of shop/db.py.
    assert ("model", "CWE-89", "shop/db.py", 16) in by_source
    assert ("secrets", "CWE-798", "shop/app.py", 41) in by_source
    assert all(f["fingerprint"] for f in report["findings"])
    assert "sk_live_" not in proc.stdout.decode()
    stats = report["stats"]
    assert stats["requests"] >= 1 and stats["prompt_tokens"] > 0 and stats["cost_usd"] > 0
    assert sorted(report["coverage"]["reviewed"]) == ["shop/app.py", "shop/db.py"]
    assert report["model"] == "@cf/moonshotai/kimi-k2.6"
    kinds = [r.kind for r in emu.state.requests]
    assert kinds.count("submit") == 1 and "run" not in kinds
    submit = next(r for r in emu.state.requests if r.kind == "submit")
    assert submit.headers.get("x-session-affinity", "").startswith("sr-")
    # No secret reached the model.
    assert all("sk_live_" not in json.dumps(r.body) for r in emu.state.requests)


def test_exit_status_follows_fail_on(live: tuple[EmulatorApp, str], emu: EmulatorApp) -> None:
    assert review(live[1], "--format", "json", "--fail-on", "high").returncode == 1
    assert review(live[1], "--format", "json", "--fail-on", "none").returncode == 0


def test_sarif_written_to_a_file(
    live: tuple[EmulatorApp, str], emu: EmulatorApp, tmp_path: Path
) -> None:
    out = tmp_path / "findings.sarif"
    proc = review(live[1], "--format", "sarif", "--output", str(out), "--fail-on", "none")
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout == b""
    log = json.loads(out.read_text())
    assert log["version"] == "2.1.0"
    results = log["runs"][0]["results"]
    assert results and all(r["partialFingerprints"] for r in results)


def test_markdown_from_standard_input(live: tuple[EmulatorApp, str], emu: EmulatorApp) -> None:
    proc = run(
        ["review", "--diff", "-", "--format", "markdown", "--fail-on", "none"],
        env=workers_ai(live[1]),
        stdin=DIFF.read_bytes(),
    )
    assert proc.returncode == 0, proc.stderr.decode()
    text = proc.stdout.decode()
    assert text.startswith("# secreview security review")
    assert "CWE-89" in text
    assert "units" in proc.stderr.decode()  # progress lines


def test_capacity_errors_are_retried(live: tuple[EmulatorApp, str], emu: EmulatorApp) -> None:
    emu.state.fail_next("capacity", times=2, on=("submit",))
    proc = review(live[1], "--format", "json", "--fail-on", "none")
    assert proc.returncode == 0, proc.stderr.decode()
    assert emu.state.counters["fault_capacity"] == 2
    assert any(f["source"] == "model" for f in findings_of(proc.stdout))


def test_malformed_output_is_retried_then_the_unit_is_reported_failed(
    live: tuple[EmulatorApp, str], emu: EmulatorApp
) -> None:
    emu.state.override("unit-1", content='{"findings": [{"path": "shop/db.py"')
    proc = review(live[1], "--format", "json", "--fail-on", "none")
    report = json.loads(proc.stdout)
    # The unit failed twice: the review is incomplete (exit 2) but nothing was invented.
    assert proc.returncode == 2
    assert report["stats"]["requests"] == 2
    assert [r.kind for r in emu.state.requests].count("submit") == 2
    assert not [f for f in report["findings"] if f["source"] == "model"]
    assert {f["source"] for f in report["findings"]} == {"secrets", "bandit"}
    assert "not reviewed" in proc.stderr.decode()


def test_openai_compatible_backend(live: tuple[EmulatorApp, str], emu: EmulatorApp) -> None:
    env = {
        "SECREVIEW_LLM_BACKEND": "openai",
        "OPENAI_BASE_URL": live[1] + "/client/v4/accounts/acct/ai/v1",
        "OPENAI_API_KEY": "tok",
    }
    proc = run(["review", "--diff", str(DIFF), "--format", "json", "--fail-on", "none"], env=env)
    assert proc.returncode == 0, proc.stderr.decode()
    assert ("CWE-89", "shop/db.py") in {
        (f["cwe"], f["path"]) for f in findings_of(proc.stdout) if f["source"] == "model"
    }


def test_offline_mode_runs_the_analyzers_and_says_so() -> None:
    proc = run(
        [
            "review",
            "--diff",
            str(DIFF),
            "--repo",
            str(SHOP),
            "--format",
            "json",
            "--fail-on",
            "none",
        ]
    )
    assert proc.returncode == 0
    report = json.loads(proc.stdout)
    assert report["model"] is None
    assert {f["source"] for f in report["findings"]} == {"secrets", "bandit"}
    assert ("CWE-78", "shop/app.py", 37) in {
        (f["cwe"], f["path"], f["line"]) for f in report["findings"]
    }
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "no model configured" in lines[0]


def test_offline_mode_produces_every_format(tmp_path: Path) -> None:
    for fmt in ("json", "sarif", "markdown"):
        proc = run(["review", "--diff", str(DIFF), "--format", fmt, "--fail-on", "critical"])
        assert proc.returncode == 1, (fmt, proc.stderr.decode())  # the live Stripe key is critical
        assert proc.stdout


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["review", "--diff", str(DIFF), "--format", "xml"], "invalid choice"),
        (["review", "--diff", "no/such.diff"], "cannot read diff"),
        (["review"], "--diff"),
        (["review", "--diff", str(DIFF), "--repo", "no/such/dir"], "not a directory"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args: list[str], needle: str) -> None:
    proc = run(args)
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert len(err.strip().splitlines()) == 1, err
    assert needle in err and "Traceback" not in err


def test_a_half_configured_backend_names_what_is_missing() -> None:
    proc = run(
        ["review", "--diff", str(DIFF)],
        env={"SECREVIEW_LLM_BACKEND": "workers-ai", "CLOUDFLARE_ACCOUNT_ID": "a"},
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.decode().strip()
        == "secreview: error: Workers AI backend needs CLOUDFLARE_API_TOKEN to be set"
    )


def test_not_a_diff_is_a_clean_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.diff"
    bad.write_bytes(b"@@ -1,2 +1,2 @@\n-only a hunk without headers\n")
    proc = run(["review", "--diff", str(bad)])
    assert proc.returncode in (0, 2)
    assert b"Traceback" not in proc.stderr


# --- start-up cost: what a review loads, and what a re-run skips --------------------------------

_LOADED = """
import runpy, sys
sys.argv = ["secreview", *sys.argv[1:]]
try:
    runpy.run_module("bot.cli", run_name="__main__")
except SystemExit as exc:
    code = exc.code
heavy = ("bandit", "yaml", "jinja2", "http.server", "pathspec", "webbrowser", "httpx")
sys.stderr.write("LOADED " + ",".join(m for m in heavy if m in sys.modules) + "\\n")
sys.exit(code)
"""


def loaded_by(args: list[str], env: dict[str, str]) -> tuple[set[str], bytes]:
    """The heavy modules a ``secreview`` run imported, and its standard output."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(MODEL_ENV)}
    done = subprocess.run(
        [sys.executable, "-c", _LOADED, *args],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode in (0, 1), done.stderr.decode()
    line = [ln for ln in done.stderr.decode().splitlines() if ln.startswith("LOADED ")][-1]
    return set(filter(None, line.removeprefix("LOADED ").split(","))), done.stdout


def test_an_offline_rerun_reuses_its_analyses_and_never_loads_bandit(tmp_path: Path) -> None:
    import shutil

    checkout = tmp_path / "shop"  # the example checkout without its config file
    shutil.copytree(SHOP, checkout, ignore=shutil.ignore_patterns(".github"))
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    args = ["review", "--diff", str(DIFF), "--repo", str(checkout), "--format", "json", "-q"]
    first, report = loaded_by(args, env)
    # Nothing the review does not need: no glob parser without a config file, no server, no
    # HTTP client without a model.
    assert "bandit" in first
    assert not first & {"pathspec", "http.server", "webbrowser", "httpx"}
    assert list((tmp_path / "cache").rglob("analyses/*/*"))
    again, same = loaded_by(args, env)
    # Every file was analyzed before: neither bandit nor the YAML parser it brings is imported.
    assert not again & {"bandit", "yaml", "pathspec", "http.server", "webbrowser", "httpx"}
    assert json.loads(same)["findings"] == json.loads(report)["findings"]
    assert any(f["source"] == "bandit" for f in json.loads(same)["findings"])


def test_no_cache_keeps_no_analyses(tmp_path: Path) -> None:
    env = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    args = ["review", "--diff", str(DIFF), "--format", "json", "-q", "--no-cache"]
    loaded, _ = loaded_by(args, env)
    assert "bandit" in loaded and not list(tmp_path.rglob("analyses"))


def test_a_rerun_after_a_push_sends_only_what_the_push_changed(
    live: tuple[EmulatorApp, str], emu: EmulatorApp, tmp_path: Path
) -> None:
    first = review(live[1], "--format", "json", "--fail-on", "none")
    assert first.returncode == 0, first.stderr.decode()
    before = {f["fingerprint"] for f in findings_of(first.stdout) if f["source"] == "model"}
    seen = len(emu.state.requests)
    line = '+    image = requests.get(request.args["url"], timeout=5, verify=False)'
    text = DIFF.read_text(encoding="utf-8")
    assert line in text
    pushed = tmp_path / "pushed.diff"
    pushed.write_text(text.replace(line, line.replace("timeout=5", "timeout=10")), "utf-8")
    args = ["review", "--diff", str(pushed), "--repo", str(SHOP), "--format", "json"]
    again = run([*args, "--fail-on", "none"], env=workers_ai(live[1]))
    assert again.returncode == 0, again.stderr.decode()
    sent = emu.state.user_text(seen)
    assert "### shop/app.py (modified, changes since the last review)" in sent
    assert "timeout=10" in sent and "def thumbnail():" in sent
    assert "yaml.load(request.data)" not in sent and "### shop/db.py" not in sent
    # Every earlier model finding is still reported, under its fingerprint, and the report
    # says which files were reviewed as their changes only.
    after = {f["fingerprint"] for f in findings_of(again.stdout) if f["source"] == "model"}
    assert before <= after
    assert json.loads(again.stdout)["coverage"]["narrowed"] == ["shop/app.py"]
