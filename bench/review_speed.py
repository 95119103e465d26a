"""``secreview review --diff X [--repo Y]`` on a realistic 40-file Python pull request, against a
bare unidiff parse of the same diff.

The repository is a generated Python project (40 modules of 250-450 lines of ordinary web-app
code, a few with real weaknesses); the pull request edits three to five places in each module.
Every measurement is the wall time of a fresh process, as a user sees it, best of REPEATS: the
baseline is ``python -c "PatchSet(open(diff).read())"``; then the default command (offline,
default settings) with and without ``--repo``, each from an empty cache directory (a first
review). Target: <= 3x the baseline with ``--repo``.

Two more rows measure what a later run pays, with the cache the earlier run left (analyses are
kept by content): the same review again, and the review after a push that changed one module.
``python -m bench.review_speed [LABEL]`` keeps each label's row (``before`` from an older build).
"""

from __future__ import annotations

import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import RESULTS, write_result

FILES = 40
REPEATS = 5
TARGET = 3.0
SEED = 40

_FUNCS = (
    (
        "def get_{n}(request, item_id):",
        "    item = Item.objects.filter(owner=request.user, pk=item_id).first()",
        "    if item is None:",
        "        raise Http404('no item {n}')",
        "    return render(request, 'items/detail.html', {{'item': item, 'n': '{n}'}})",
    ),
    (
        "def total_{n}(order):",
        "    total = Decimal('0')",
        "    for line in order.lines.all():",
        "        total += line.quantity * line.unit_price",
        "    return total.quantize(Decimal('0.01'))",
    ),
    (
        "def export_{n}(rows, path):",
        "    with open(path, 'w', encoding='utf-8') as handle:",
        "        writer = csv.writer(handle)",
        "        for row in rows:",
        "            writer.writerow([row.id, row.name, row.created.isoformat()])",
    ),
    (
        "class Service{n}:",
        "    def __init__(self, client, timeout=10):",
        "        self.client = client",
        "        self.timeout = timeout",
        "",
        "    def fetch(self, key):",
        "        response = self.client.get(f'/api/items/{{key}}', timeout=self.timeout)",
        "        response.raise_for_status()",
        "        return response.json()",
    ),
    (
        "def search_{n}(cursor, term):",
        "    cursor.execute('SELECT id, name FROM items WHERE name LIKE %s', ('%' + term + '%',))",
        "    return [dict(id=r[0], name=r[1]) for r in cursor.fetchall()]",
    ),
)
_HEADER = (
    '"""Module {m}: items, orders and exports."""',
    "",
    "import csv",
    "import subprocess",
    "from decimal import Decimal",
    "",
    "from django.http import Http404",
    "from django.shortcuts import render",
    "",
    "from .models import Item",
    "",
)
_ADDED = (
    (
        "def archive_{n}(name):",
        "    subprocess.run(['tar', 'czf', name + '.tgz', name], check=True)",
        "    return name + '.tgz'",
    ),
    (
        "def find_{n}(cursor, name):",
        "    cursor.execute(\"SELECT * FROM items WHERE name = '%s'\" % name)",
        "    return cursor.fetchone()",
    ),
    (
        "def ping_{n}(host):",
        "    return subprocess.call('ping -c 1 ' + host, shell=True)",
    ),
    ("def ratio_{n}(a, b):", "    if b == 0:", "        return 0.0", "    return a / b"),
)


def make_project(root: Path, rng: random.Random) -> list[tuple[str, list[str]]]:
    """Write the repository; return each module's path and lines."""
    modules = []
    for m in range(FILES):
        lines = [t.format(m=m) for t in _HEADER]
        n = 0
        while len(lines) < rng.randint(250, 450):
            lines += [t.format(n=f"{m}_{n}") for t in rng.choice(_FUNCS)] + ["", ""]
            n += 1
        path = f"shop/app{m % 6}/module_{m}.py"
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text("\n".join(lines) + "\n", encoding="utf-8")
        modules.append((path, lines))
    (root / "pyproject.toml").write_text('[project]\nname = "shop"\ndependencies = ["django"]\n')
    (root / "README.md").write_text("# shop\n")
    return modules


def make_change(root: Path, modules: list[tuple[str, list[str]]], rng: random.Random) -> str:
    """Add 3-5 functions to each module in the tree (the new side) and return the git diff."""
    parts = []
    for path, old in modules:
        new = list(old)
        # New functions go between top-level definitions, as a real change adds them.
        tops = [i for i, line in enumerate(old) if line.startswith(("def ", "class "))]
        spots = sorted(rng.sample(tops, min(len(tops), rng.randint(3, 5))))
        for k, at in enumerate(reversed(spots)):
            block = [t.format(n=f"new_{k}") for t in rng.choice(_ADDED)]
            new[at:at] = ["", *block, ""]
        (root / path).write_text("\n".join(new) + "\n", encoding="utf-8")
        parts.append(_unified(path, old, new))
    return "".join(parts)


def _unified(path: str, old: list[str], new: list[str]) -> str:
    import difflib

    body = difflib.unified_diff(old, new, f"a/{path}", f"b/{path}", lineterm="", n=3)
    return f"diff --git a/{path} b/{path}\nindex 1111111..2222222 100644\n" + "".join(
        f"{line}\n" for line in body
    )


def wall(
    cmd: list[str], env: dict[str, str], cache: Path | None = None, warm: Path | None = None
) -> tuple[float, float]:
    """Best wall time and best CPU time (user + system) of REPEATS fresh-process runs of ``cmd``.

    The machine is shared: CPU time is what the command itself costs, wall time what a user
    waits on a quiet machine at best. With ``cache``, every run starts from that cache
    directory as ``warm`` left it (empty without ``warm``), set up outside the timing.
    """
    best_wall = best_cpu = float("inf")
    for _ in range(REPEATS):
        if cache is not None:
            shutil.rmtree(cache, ignore_errors=True)
            if warm is not None:
                shutil.copytree(warm, cache)
            else:
                cache.mkdir(parents=True)
            env = {**env, "XDG_CACHE_HOME": str(cache)}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        best_wall = min(best_wall, time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
        best_cpu = min(best_cpu, cpu)
    return best_wall, best_cpu


def main() -> int:
    """Generate the PR, time the three commands, print and write bench/results/review_speed.json."""
    rng = random.Random(SEED)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLOUDFLARE_", "OPENAI_"))}
    env["SECREVIEW_LLM_BACKEND"] = ""
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "shop"
        modules = make_project(repo, rng)
        diff = Path(tmp) / "pr.diff"
        diff.write_text(make_change(repo, modules, rng), encoding="utf-8")
        py = sys.executable
        bare = wall(
            [py, "-c", f"from unidiff import PatchSet; PatchSet(open({str(diff)!r}).read())"], env
        )
        base = [py, "-m", "bot.cli", "review", "--diff", str(diff), "--format", "json", "-q"]
        base += ["--fail-on", "none"]
        cache, warm = Path(tmp) / "cache", Path(tmp) / "warm"
        plain = wall(base, env, cache)
        with_repo = wall([*base, "--repo", str(repo)], env, cache)
        # The cache a first review leaves, then the same review again from it.
        shutil.rmtree(cache, ignore_errors=True)
        out = subprocess.run(
            [*base, "--repo", str(repo)],
            env={**env, "XDG_CACHE_HOME": str(warm)},
            check=True,
            capture_output=True,
            text=True,
        )
        report = json.loads(out.stdout)
        rerun = wall([*base, "--repo", str(repo)], env, cache, warm)
        # A push that adds a function to one module: the pull request's whole diff again.
        pushed = Path(tmp) / "push.diff"
        pushed.write_text(push_one(repo, modules, diff.read_text(encoding="utf-8")), "utf-8")
        push_cmd = [py, "-m", "bot.cli", "review", "--diff", str(pushed), "--format", "json"]
        push_cmd += ["-q", "--fail-on", "none", "--repo", str(repo)]
        push = wall(push_cmd, env, cache, warm)
    row = {
        "files": FILES,
        "module_lines": diff_size(modules),
        "bare_parse_wall_s": round(bare[0], 3),
        "review_wall_s": round(plain[0], 3),
        "review_repo_wall_s": round(with_repo[0], 3),
        "bare_parse_cpu_s": round(bare[1], 3),
        "review_cpu_s": round(plain[1], 3),
        "review_repo_cpu_s": round(with_repo[1], 3),
        "ratio_wall": round(plain[0] / bare[0], 2),
        "ratio_repo_wall": round(with_repo[0] / bare[0], 2),
        "rerun_repo_wall_s": round(rerun[0], 3),
        "push_repo_wall_s": round(push[0], 3),
        "ratio_rerun_wall": round(rerun[0] / bare[0], 2),
        "ratio_push_wall": round(push[0] / bare[0], 2),
        "ratio_cpu": round(plain[1] / bare[1], 2),
        "ratio_repo_cpu": round(with_repo[1] / bare[1], 2),
        "findings": len(report["findings"]),
        "bandit_findings": sum(1 for f in report["findings"] if f["source"] == "bandit"),
    }
    print(
        f"bare unidiff parse {bare[0]:.3f}s wall / {bare[1]:.3f}s cpu · review "
        f"{plain[0]:.3f}s / {plain[1]:.3f}s ({row['ratio_wall']}x / {row['ratio_cpu']}x) · "
        f"review --repo {with_repo[0]:.3f}s / {with_repo[1]:.3f}s "
        f"({row['ratio_repo_wall']}x / {row['ratio_repo_cpu']}x, target <= {TARGET}x) · "
        f"again {rerun[0]:.3f}s ({row['ratio_rerun_wall']}x) · after a 1-file push "
        f"{push[0]:.3f}s ({row['ratio_push_wall']}x) · "
        f"{row['findings']} findings ({row['bandit_findings']} bandit)"
    )
    label = sys.argv[1] if len(sys.argv) > 1 else "after"
    labels = _previous().get("labels", {})
    labels[label] = {"commit": _commit(), **row}
    path = write_result("review_speed", {"labels": labels, "target_ratio_repo": TARGET})
    print(f"written to {path}")
    return 0 if min(row["ratio_repo_wall"], row["ratio_repo_cpu"]) <= TARGET else 1


def _previous() -> dict[str, Any]:
    try:
        return dict(json.loads((RESULTS / "review_speed.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip()


def push_one(repo: Path, modules: list[tuple[str, list[str]]], diff: str) -> str:
    """Add a function to the first module in the checkout; the pull request's diff after it."""
    path, old = modules[0]
    new = (repo / path).read_text(encoding="utf-8").rstrip("\n").split("\n")
    new += ["", "", *(t.format(n="pushed") for t in _ADDED[2])]
    (repo / path).write_text("\n".join(new) + "\n", encoding="utf-8")
    start = diff.index(f"diff --git a/{path} ")
    end = diff.find("diff --git a/", start + 1)
    return diff[:start] + _unified(path, old, new) + (diff[end:] if end >= 0 else "")


def diff_size(modules: list[tuple[str, list[str]]]) -> int:
    """Lines of the generated modules (a size figure for the results file)."""
    return sum(len(lines) for _, lines in modules)


if __name__ == "__main__":
    sys.exit(main())
