"""Scan planning at scale: a generated tree of 20,000+ files / 2,000,000+ lines.

Measures, in fresh processes: planning (walk, skip, rank, budget, pack) time and peak memory
beside a bare walk that only reads every file; then, from the run's real units and prompts,
the number of requests and of async batches under the 10 MB payload limit, how full the units
are (estimated tokens over the budget), and requests against the minimum the budget allows.
"""

from __future__ import annotations

import math
import random
import tempfile
from pathlib import Path

from bench.common import run_child, write_result

SEED = 11
FILES = 20_500
TARGET_LINES = 2_050_000
BUDGET = 12_000
_LANGS = {
    ".py": (
        "def handler_{n}(request):",
        "    value_{n} = compute(request.args.get('k{n}'), {n})",
        "    if value_{n} is None:",
        "        return error({n})",
        "    return render(value_{n})",
    ),
    ".js": (
        "function handler{n}(req, res) {{",
        "  const v{n} = compute(req.query.k{n}, {n});",
        "  if (!v{n}) {{ return res.status(400).end(); }}",
        "  res.json({{ v: v{n} }});",
        "}}",
    ),
    ".go": (
        "func Handler{n}(w http.ResponseWriter, r *http.Request) {{",
        '\tv{n} := compute(r.URL.Query().Get("k{n}"), {n})',
        "\tif v{n} == nil {{ return }}",
        "\tjson.NewEncoder(w).Encode(v{n})",
        "}}",
    ),
    ".java": (
        "public Result handle{n}(Request req) {{",
        '    var v{n} = compute(req.param("k{n}"), {n});',
        "    if (v{n} == null) return Result.error({n});",
        "    return Result.ok(v{n});",
        "}}",
    ),
}
_DIRS = (
    "app/api",
    "app/auth",
    "app/models",
    "app/services",
    "lib/util",
    "web/routes",
    "internal/handlers",
    "pkg/crypto",
    "src/main/java/com/acme",
    "tests",
    "scripts",
)


def generate(root: Path) -> dict[str, int]:
    """Write the tree; returns counts of files and lines written."""
    rng = random.Random(SEED)
    lines_left, files, lines_total = TARGET_LINES, 0, 0
    for i in range(FILES):
        ext = rng.choice(tuple(_LANGS))
        shapes = _LANGS[ext]
        n_lines = max(5, min(2500, int(rng.lognormvariate(4.3, 0.8))))
        if i == FILES - 1:
            n_lines = max(n_lines, lines_left)
        body = "\n".join(shapes[j % len(shapes)].format(n=j) for j in range(n_lines)) + "\n"
        path = root / rng.choice(_DIRS) / f"d{i % 97}" / f"mod_{i}{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
        files += 1
        lines_total += n_lines
        lines_left -= n_lines
    for i in range(300):  # noise the plan must skip
        (root / "node_modules" / f"pkg{i}").mkdir(parents=True, exist_ok=True)
        (root / "node_modules" / f"pkg{i}" / "index.js").write_text("module.exports = 1;\n")
        (root / "assets").mkdir(exist_ok=True)
        (root / "assets" / f"img{i}.png").write_bytes(
            b"\x89PNG\r\n\x1a\n" + bytes(rng.randbytes(512))
        )
    (root / "package-lock.json").write_text("{}\n")
    return {"files": files, "lines": lines_total}


_BARE = """
import json, os, resource, sys, time
t0 = time.perf_counter()
n = size = 0
for cur, dirs, files in os.walk(sys.argv[1]):
    for name in files:
        with open(os.path.join(cur, name), 'rb') as fh:
            size += len(fh.read())
        n += 1
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": time.perf_counter() - t0, "peak_rss_mb": rss, "files": n}))
"""

_PLAN = """
import json, math, resource, sys, time
from pathlib import Path
from bot.review.plan import PlanOptions, plan_files
from bot.review.outcome import batches as pack_batches
from bot.model import client as llm
from bot.review import prompts
from bot.scan import walk as scan
from bot.review.prompts import RepoContext
from bot.repo_config import RepoConfig
budget = int(sys.argv[2])
t0 = time.perf_counter()
plan = scan.plan_scan(scan.walk_tree(Path(sys.argv[1])), RepoConfig(), budget_tokens=budget,
                      model="@cf/moonshotai/kimi-k2.6")
elapsed = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
total = sum(f.tokens for f in plan.files)
# What a run really sends: redaction, units, prompts, then batches by their payload bytes.
t1 = time.perf_counter()
review = plan_files(plan.changed_files(), skipped=plan.skipped, repo=RepoContext(),
                    kind="scan", options=PlanOptions(budget_tokens=budget))
fmt = prompts.response_format()
batches = pack_batches(review.requests, lambda r: llm.batch_payload_size([r], fmt),
                         llm.MAX_BATCH_BYTES)
sizes = [sum(llm.batch_payload_size([r], fmt) for r in b) for b in batches]
unit_tokens = sum(u.tokens for u in review.units)
print(json.dumps({"seconds": elapsed, "peak_rss_mb": rss, "files": len(plan.files),
                  "skipped": len(plan.skipped), "groups": len(plan.groups),
                  "requests": len(review.requests), "total_tokens": total,
                  "plan_fullness": plan.fullness,
                  "unit_fullness": unit_tokens / (len(review.units) * budget),
                  "estimated_cost_usd": plan.estimated_cost_usd,
                  "batches": len(batches), "largest_batch_mb": max(sizes) / 1e6,
                  "prompt_build_seconds": time.perf_counter() - t1,
                  "peak_rss_with_prompts_mb":
                      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "repo"
        counts = generate(root)
        bare = min((run_child(_BARE, str(root)) for _ in range(2)), key=lambda r: r["seconds"])
        planned = min(
            (run_child(_PLAN, str(root), str(BUDGET)) for _ in range(2)), key=lambda r: r["seconds"]
        )
    minimum = math.ceil(planned["total_tokens"] / BUDGET)
    result = {
        "tree": counts,
        "budget_tokens": BUDGET,
        "bare_walk": bare,
        "planning": planned,
        "minimum_requests": minimum,
        "requests_over_minimum": round(planned["requests"] / minimum - 1, 4),
        "targets": {
            "seconds": 20,
            "peak_rss_mb": 500,
            "unit_fullness": 0.85,
            "requests_over_minimum": 0.10,
        },
        "meets_targets": planned["seconds"] < 20
        and planned["peak_rss_mb"] < 500
        and planned["unit_fullness"] >= 0.85
        and planned["requests"] <= minimum * 1.10,
    }
    path = write_result("scan_plan", result)
    print(f"tree: {counts['files']:,} files, {counts['lines']:,} lines (+ vendored, binary, lock)")
    print(f"bare walk      {bare['seconds']:7.2f} s  {bare['peak_rss_mb']:7.1f} MB")
    print(
        f"planning       {planned['seconds']:7.2f} s  {planned['peak_rss_mb']:7.1f} MB  "
        f"({planned['files']:,} files, {planned['skipped']:,} skipped)"
    )
    print(
        f"requests       {planned['requests']:,} (minimum {minimum:,}, "
        f"+{result['requests_over_minimum']:.1%}); {planned['groups']:,} packed groups; "
        f"units {planned['unit_fullness']:.1%} full; est. cost "
        f"${planned['estimated_cost_usd']:.2f}"
    )
    print(
        f"batches        {planned['batches']} under 10 MB (largest "
        f"{planned['largest_batch_mb']:.1f} MB); prompts built in "
        f"{planned['prompt_build_seconds']:.1f} s, {planned['peak_rss_with_prompts_mb']:.0f} MB"
    )
    print(
        f"targets (<20 s, <500 MB, >=85% full, <=10% over minimum): "
        f"{'met' if result['meets_targets'] else 'NOT met'}; written to {path}"
    )


if __name__ == "__main__":
    main()
