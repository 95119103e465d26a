"""``secreview review --diff X [--repo Y]`` on a realistic 40-file Python pull request, against a
bare unidiff parse of the same diff.

The repository is a generated Python project (40 modules of 250-450 lines of ordinary web-app
code, a few with real weaknesses); the pull request edits three to five places in each module.
Every measurement is the wall time of a fresh process, as a user sees it, best of REPEATS: the
baseline is ``python -c "PatchSet(open(diff).read())"``; then the default command (offline,
default settings) with and without ``--repo``. Target: <= 3x the baseline with ``--repo``.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import write_result

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
        "    return render(request, 'items/detail.html', {{'item': item, 'n': {n}}})",
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
    """Edit 3-5 places of each module in the tree (the new side) and return the git diff."""
    parts = []
    for path, old in modules:
        new = list(old)
        spots = sorted(rng.sample(range(len(_HEADER), len(old) - 1), rng.randint(3, 5)))
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


def wall(cmd: list[str], env: dict[str, str]) -> float:
    """Best wall time of REPEATS runs of ``cmd`` in a fresh process."""
    best = float("inf")
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        best = min(best, time.perf_counter() - t0)
    return best


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
        plain = wall(base, env)
        with_repo = wall([*base, "--repo", str(repo)], env)
        out = subprocess.run(
            [*base, "--repo", str(repo)], env=env, check=True, capture_output=True, text=True
        )
        report = json.loads(out.stdout)
    row = {
        "files": FILES,
        "module_lines": diff_size(modules),
        "bare_parse_s": round(bare, 3),
        "review_s": round(plain, 3),
        "review_repo_s": round(with_repo, 3),
        "ratio": round(plain / bare, 2),
        "ratio_repo": round(with_repo / bare, 2),
        "findings": len(report["findings"]),
        "bandit_findings": sum(1 for f in report["findings"] if f["source"] == "bandit"),
    }
    print(
        f"bare unidiff parse {bare:.3f}s · review {plain:.3f}s ({row['ratio']}x) · "
        f"review --repo {with_repo:.3f}s ({row['ratio_repo']}x, target <= {TARGET}x) · "
        f"{row['findings']} findings ({row['bandit_findings']} bandit)"
    )
    path = write_result("review_speed", {"rows": [row], "target_ratio_repo": TARGET})
    print(f"written to {path}")
    return 0 if row["ratio_repo"] <= TARGET else 1


def diff_size(modules: list[tuple[str, list[str]]]) -> int:
    """Lines of the generated modules (a size figure for the results file)."""
    return sum(len(lines) for _, lines in modules)


if __name__ == "__main__":
    sys.exit(main())
