"""Precision and memory on real code: Django 4.2 → 5.0 as one pull request, and offline scans of
the flask, Django and ansible-core sdists beside ``bandit -r`` on the same trees.

The sdists come from PyPI (``pip download --no-deps --no-binary :all:``) into bench/data/real/,
which git ignores; nothing downloaded is committed. Every command runs offline (no model: the
secrets scanner, the injection detector and bandit) in a fresh process whose peak RSS is read.
``python -m bench.real_code [--label NAME] [--code DIR]``: ``--code`` runs another build (a
checkout of an older commit) so its figures sit beside the current ones in
bench/results/real_code.json.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import RESULTS, write_result

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / "data" / "real"
SDISTS = {
    "Django-4.2": "Django==4.2",
    "Django-5.0": "Django==5.0",
    "flask-3.0.3": "flask==3.0.3",
    "ansible_core-2.17.0": "ansible-core==2.17.0",
}
SCANS = ("flask-3.0.3", "Django-5.0", "ansible_core-2.17.0")
_PEAK = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)"
    ".returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, code)\n"
)


def fetch() -> None:
    """Download and unpack the sdists once (cached under bench/data/real/)."""
    archives = DATA / "sdists"
    archives.mkdir(parents=True, exist_ok=True)
    for name, spec in SDISTS.items():
        if (DATA / name).is_dir():
            continue
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
        subprocess.run([*pip, "-q", "-d", str(archives), spec], check=True)
        archive = next(archives.glob(f"{name}.tar.gz"))
        with tarfile.open(archive) as tar:
            tar.extractall(DATA, filter="data")


def django_diff() -> Path:
    """Django 4.2 → 5.0 (the django package) as one git diff with repository-relative paths."""
    out = DATA / "django-4.2-5.0.diff"
    if not out.exists():
        proc = subprocess.run(
            ["git", "diff", "--no-index", "Django-4.2/django", "Django-5.0/django"],
            cwd=DATA,
            capture_output=True,
        )
        text = proc.stdout.replace(b"a/Django-4.2/", b"a/").replace(b"b/Django-5.0/", b"b/")
        out.write_bytes(text)
    return out


# What a model scan of a tree would send, with the default settings: planned in the build under
# test, without a model (planning stops before the first request).
_MODEL_PLAN = (
    "import json, sys, time\n"
    "from pathlib import Path\n"
    "from bot.config import Settings\n"
    "from bot.repo_config import RepoConfig\n"
    "from bot.review.plan import PlanOptions, plan_tree\n"
    "from bot.review.prompts import RepoContext\n"
    "from bot.scan import walk\n"
    "s = Settings.from_env({})\n"
    "t = time.perf_counter()\n"
    "tree = plan_tree(walk.walk_tree(Path(sys.argv[1])), repo=RepoContext(repo='x'),\n"
    "                 config=RepoConfig(), options=PlanOptions(budget_tokens=s.unit_token_budget,\n"
    "                 model=s.model))\n"
    "print(json.dumps({'files': tree.files, 'units': len(tree.plan.units),\n"
    "                  'tokens': tree.estimated_tokens,\n"
    "                  'cost_usd': round(tree.estimated_cost_usd, 2),\n"
    "                  'planning_seconds': round(time.perf_counter() - t, 1)}))\n"
)


def model_plan(tree: Path, code: Path) -> dict[str, Any]:
    """Files, units, tokens and estimated cost of a model scan of ``tree`` (default settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDFLARE_", "OPENAI_"))}
    proc = subprocess.run(
        [sys.executable, "-c", _MODEL_PLAN, str(tree)],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def peak(cmd: list[str], cwd: Path) -> float:
    """Peak RSS in MB of ``cmd`` run in its own process, with an empty cache directory (a first
    scan: no analysis kept from an earlier run)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDFLARE_", "OPENAI_"))}
    with tempfile.TemporaryDirectory(prefix="real-code-cache-") as cache:
        env["XDG_CACHE_HOME"] = cache
        proc = subprocess.run(
            [sys.executable, "-c", _PEAK, *cmd], cwd=cwd, env=env, capture_output=True, text=True
        )
    return float(proc.stdout.split()[0])


def summary(report: dict[str, Any]) -> dict[str, Any]:
    """Finding counts by source, and skip counts by reason."""
    skipped = collections.Counter(s["reason"].split(" (")[0] for s in report["coverage"]["skipped"])
    return {
        "findings": len(report["findings"]),
        "by_source": dict(collections.Counter(f["source"] for f in report["findings"])),
        "reviewed": len(report["coverage"]["reviewed"]),
        "skipped": dict(skipped.most_common()),
        "injection": [
            f"{f['path']}:{f['line']}" for f in report["findings"] if f["source"] == "injection"
        ][:20],
    }


def run(code: Path, tmp: Path) -> dict[str, Any]:
    """The Django PR and the three scans with the build in ``code``."""
    cli = [sys.executable, "-m", "bot.cli"]
    out: dict[str, Any] = {}
    review = tmp / "django_pr.json"
    cmd = [*cli, "review", "--diff", str(django_diff()), "--repo", str(DATA / "Django-5.0")]
    rss = peak([*cmd, "--format", "json", "--output", str(review), "--fail-on", "none"], code)
    out["django_4.2_5.0_pr"] = {
        "peak_rss_mb": round(rss),
        **summary(json.loads(review.read_text())),
    }
    for tree in SCANS:
        report = tmp / f"scan_{tree}.json"
        cmd = [*cli, "scan", str(DATA / tree), "--format", "json", "--output", str(report)]
        started = time.perf_counter()
        rss = peak([*cmd, "--fail-on", "none"], code)
        seconds = time.perf_counter() - started
        bandit = peak([sys.executable, "-m", "bandit", "-r", str(DATA / tree), "-q", "-f", "json",
                       "-o", str(tmp / "bandit.json")], code)  # fmt: skip
        out[f"scan_{tree}"] = {
            "peak_rss_mb": round(rss),
            "bandit_peak_rss_mb": round(bandit),
            "memory_vs_bandit": round(rss / bandit, 2),
            "offline_seconds": round(seconds, 1),
            **summary(json.loads(report.read_text())),
            "model_scan_plan": model_plan(DATA / tree, code),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    """Fetch, run, print, and write bench/results/real_code.json under ``--label``."""
    parser = argparse.ArgumentParser(prog="bench.real_code")
    parser.add_argument("--label", default="after")
    parser.add_argument("--code", type=Path, default=ROOT, help="the build to run (a checkout)")
    args = parser.parse_args(argv)
    fetch()
    with tempfile.TemporaryDirectory() as tmp:
        rows = run(args.code.resolve(), Path(tmp))
    for name, row in rows.items():
        extra = f", bandit -r {row['bandit_peak_rss_mb']} MB" if "bandit_peak_rss_mb" in row else ""
        print(f"{name}: {row['findings']} findings {row['by_source']}; "
              f"peak {row['peak_rss_mb']} MB{extra}")  # fmt: skip
        if "model_scan_plan" in row:
            print(f"  a model scan would plan {row['model_scan_plan']}")
    try:
        previous = json.loads((RESULTS / "real_code.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = {}
    labels = dict(previous.get("labels", {}))
    labels[args.label] = rows
    path = write_result("real_code", {"labels": labels})
    print(f"written to {path} as {args.label!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
