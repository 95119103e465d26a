"""Secrets benchmark: a generated, labelled corpus through ``secreview review`` (against the Workers
AI emulator, which flags any request carrying a labelled value) and ``secreview scan``, beside
detect-secrets on the same checkout in the same run.

Measures recall on real-format secrets, false positives on decoys, secret values that reached
the model, and secret values in any output (JSON, SARIF, Markdown). ``--label`` names the run
in bench/results/secrets.json (``before`` on the old code, ``after`` on the new).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.common import RESULTS, write_result
from bench.secrets_corpus import PR_PATH, Corpus, Label, build, diff_of, encoded_forms
from tests.emulators.server import LiveServer
from tests.emulators.workers_ai import create_emulator

ROOT = Path(__file__).resolve().parent.parent
FORMATS = ("json", "sarif", "markdown")
MODEL_ENV = ("CLOUDFLARE_", "OPENAI_", "SECREVIEW_", "WORKERS_AI_")


def _env(url: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(MODEL_ENV)}
    return {
        **clean,
        "CLOUDFLARE_ACCOUNT_ID": "acct",
        "CLOUDFLARE_API_TOKEN": "token",
        "WORKERS_AI_BASE_URL": url + "/client/v4",
        "SECREVIEW_FIRST_POLL": "0",
    }


def _secreview(args: list[str], env: dict[str, str]) -> tuple[float, int]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli", *args, "--quiet", "--fail-on", "none"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=600,
    )
    if done.returncode not in (0, 1):
        sys.stderr.write(done.stderr.decode(errors="replace"))
    return time.perf_counter() - start, done.returncode


def _write(corpus: Corpus, work: Path) -> tuple[Path, Path]:
    repo = work / "repo"
    for path, text in corpus.texts().items():
        target = repo / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    diff = work / "pr.diff"
    diff.write_text(diff_of(corpus.texts()), encoding="utf-8")
    return repo, diff


def _forbidden(corpus: Corpus) -> dict[str, str]:
    """name → value form that no request and no output may carry."""
    out: dict[str, str] = {}
    for label in corpus.labels:
        if label.role not in ("secret", "copy"):
            continue
        for i, value in enumerate(label.values):
            for j, form in enumerate(encoded_forms(value)):
                out[f"{label.kind}@{label.path}:{label.line}#{i}.{j}"] = form
    return out


def _score(findings: list[dict[str, Any]], corpus: Corpus, scan: bool) -> dict[str, Any]:
    """Recall on secrets, false positives on decoys, allow comments honoured, per-kind misses."""
    secrets_at = {(f["path"], f["line"]): f for f in findings if f.get("source") == "secrets"}
    bandit_at = {(f["path"], f["line"]) for f in findings if f.get("source") == "bandit"}
    wanted = [x for x in corpus.by_role("secret") if not (scan and x.path == PR_PATH)]
    found = [x for x in wanted if (x.path, x.line) in secrets_at]
    decoys = corpus.by_role("decoy")
    flagged = [x for x in decoys if (x.path, x.line) in secrets_at]
    allowed = [x for x in corpus.by_role("allowed") if (x.path, x.line) in secrets_at]
    labelled = {(x.path, x.line) for x in corpus.labels}
    stray = sorted(k for k in secrets_at if k not in labelled)
    missed = Counter(x.kind for x in wanted if (x.path, x.line) not in secrets_at)
    fixtures = [secrets_at[(x.path, x.line)]["severity"] for x in found if x.fixture]
    return {
        "secrets": len(wanted),
        "found": len(found),
        "recall": round(len(found) / len(wanted), 4),
        "decoys": len(decoys),
        "false_positives": len(flagged),
        "false_positive_rate": round(len(flagged) / len(decoys), 4),
        "false_positive_kinds": dict(Counter(x.kind for x in flagged)),
        "bandit_on_decoys": sum(1 for x in decoys if (x.path, x.line) in bandit_at),
        "allowed_lines_reported": len(allowed),
        "findings_on_unlabelled_lines": len(stray),
        "missed_by_kind": dict(sorted(missed.items())),
        "fixture_severities": dict(Counter(fixtures)),
    }


def _leaks_in(outputs: dict[str, str], forbidden: dict[str, str]) -> dict[str, int]:
    """Output name → how many forbidden values it holds."""
    return {
        name: sum(1 for v in forbidden.values() if v in text or json.dumps(v)[1:-1] in text)
        for name, text in outputs.items()
    }


def _detect_secrets(repo: Path, corpus: Corpus) -> dict[str, Any]:
    exe = Path(sys.executable).with_name("detect-secrets")
    if not exe.exists():
        return {"error": "detect-secrets is not installed (make bench-secrets installs it)"}
    start = time.perf_counter()
    done = subprocess.run(
        [str(exe), "scan", "--all-files"], cwd=repo, capture_output=True, check=True
    )
    elapsed = time.perf_counter() - start
    results = json.loads(done.stdout)["results"]
    as_findings = [
        {"path": path, "line": hit["line_number"], "source": "secrets", "severity": "n/a"}
        for path, hits in results.items()
        for hit in hits
    ]
    score = _score(as_findings, corpus, scan=True)
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True).stdout
    return {"version": version.strip(), "seconds": round(elapsed, 2), **score}


def _run_tool(
    command: str, corpus: Corpus, repo: Path, diff: Path, work: Path, url: str, emu: Any
) -> dict[str, Any]:
    """Run ``review`` or ``scan`` once per format; score the JSON, check every output."""
    # A cache of its own: the first run of each tool always sends its units to the model (the
    # runs after it reuse their results, as a user's re-runs would).
    env = {**_env(url), "XDG_CACHE_HOME": str(work / f"cache-{command}")}
    forbidden = _forbidden(corpus)
    outputs: dict[str, str] = {}
    seconds = 0.0
    before = len(emu.state.leaks)
    sent_before = sum(1 for r in emu.state.requests if r.kind in ("run", "submit"))
    for fmt in FORMATS:
        out = work / f"{command}.{fmt}"
        if command == "review":
            args = ["review", "--diff", str(diff), "--repo", str(repo), "--title", corpus.title,
                    "--description", "\n".join(corpus.description)]  # fmt: skip
        else:
            args = ["scan", str(repo), "--state-dir", str(work / f"state-{fmt}")]
        took, _ = _secreview([*args, "--format", fmt, "--output", str(out)], env)
        seconds += took
        outputs[f"{command}.{fmt}"] = out.read_text(encoding="utf-8") if out.exists() else ""
    report = json.loads(outputs[f"{command}.json"] or '{"findings": []}')
    leaks = emu.state.leaks[before:]
    return {
        "seconds_per_run": round(seconds / len(FORMATS), 2),
        **_score(report["findings"], corpus, scan=command == "scan"),
        "model_requests": sum(1 for r in emu.state.requests if r.kind in ("run", "submit"))
        - sent_before,
        "values_reaching_model": len({name.split("#")[0] for _, name in leaks}),
        "values_in_outputs": _leaks_in(outputs, forbidden),
        "allowed_count_in_report": _allowed_count(report),
    }


def _allowed_count(report: dict[str, Any]) -> int | None:
    stats = report.get("stats") or {}
    value = stats.get("secrets_allowed", report.get("secrets_allowed"))
    return value if isinstance(value, int) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--label", default="after", help="name of this run in the results")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    corpus = build(args.seed)
    secrets = corpus.by_role("secret")
    kinds = {x.kind for x in secrets}
    work = Path(tempfile.mkdtemp(prefix="secreview-bench-secrets-"))
    try:
        repo, diff = _write(corpus, work)
        emulator = create_emulator()
        emulator.state.polls_until_done = 0
        emulator.state.flag_values(_forbidden(corpus))
        with LiveServer(emulator.app) as server:
            review = _run_tool("review", corpus, repo, diff, work, server.url, emulator)
            scan = _run_tool("scan", corpus, repo, diff, work, server.url, emulator)
        baseline = _detect_secrets(repo, corpus)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    run = {
        "corpus": {
            "seed": args.seed,
            "files": len(corpus.files),
            "secrets": len(secrets),
            "kinds": len(kinds),
            "decoys": len(corpus.by_role("decoy")),
            "allowed": len(corpus.by_role("allowed")),
            "copies": len(corpus.by_role("copy")),
            "languages": sorted({p.rsplit(".", 1)[-1] for p in corpus.files if "." in p}),
        },
        "secreview_review": review,
        "secreview_scan": scan,
        "detect_secrets": baseline,
    }
    previous = RESULTS / "secrets.json"
    runs = json.loads(previous.read_text())["runs"] if previous.exists() else {}
    runs[args.label] = run
    path = write_result("secrets", {"runs": runs})
    _print(args.label, run, path)


def _print(label: str, run: dict[str, Any], path: Path) -> None:
    c = run["corpus"]
    print(f"[{label}] corpus: {c['secrets']} secrets of {c['kinds']} kinds, {c['decoys']} decoys, "
          f"{c['allowed']} allowed, {c['copies']} copies in {c['files']} files")  # fmt: skip
    for name in ("secreview_review", "secreview_scan", "detect_secrets"):
        r = run[name]
        if "recall" not in r:
            print(f"{name}: {r}")
            continue
        extra = ""
        if "values_reaching_model" in r:
            extra = (f", values reaching the model {r['values_reaching_model']}, values in "
                     f"outputs {sum(r['values_in_outputs'].values())}")  # fmt: skip
        fp = f"{r['false_positive_rate']:.3f} ({r['false_positives']}/{r['decoys']})"
        print(f"{name:18} recall {r['recall']:.3f} ({r['found']}/{r['secrets']}), "
              f"false positives {fp}{extra}")  # fmt: skip
        if r["missed_by_kind"]:
            print(f"{'':18} missed: {r['missed_by_kind']}")
    print(f"written to {path}")


if __name__ == "__main__":
    main()


__all__ = ["Label", "main"]
