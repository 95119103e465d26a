"""Hostile input: adversarial text, configs, globs, archives and trees through each component.

Every case runs an adversarial input and a benign input of the same size through the same
public function, each in a fresh interpreter (so peak memory is its own) with a time limit, at
two sizes (n and 2n). Printed and written to bench/results/hostile.json: seconds and peak-RSS
growth during the call for both inputs, their ratio (target <= 3x) and how the adversarial time
grows when the input doubles (target: about 2x, nothing superlinear).

``python -m bench.hostile [--label NAME] [--timeout S] [CASE ...]``; ``--label before`` keeps the
figures of an older build beside the current ones in the same results file.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import RESULTS, write_result

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 60.0
REPEAT_S = 0.2
MEMORY_CAP = 3 << 30  # bytes of address space for one measurement
RATIO_TARGET = 3.0
GROWTH_TARGET = 2.6  # time at 2n over time at n; 2.0 is linear, 4.0 quadratic

_PROSE = (
    "This change moves the refund handling into its own service so the order view stays small. "
    "The system keeps the previous behaviour for partial refunds and logs every decision. "
)


# --- inputs: (adversarial, benign) of the same size, built in the child ------------------------


def _pr_body(kind: str, n: int) -> str:
    """60 KB of spaces and '#' before a role word with no colon (the old heading rule's worst)."""
    if kind == "hostile":
        return " " * (n - 9) + "#system x"
    return (_PROSE * (n // len(_PROSE) + 1))[:n]


def _pr_body_plan(kind: str, n: int) -> str:
    """Two halves: the injection heading worst case and the generic secret assignment's."""
    if kind == "hostile":
        half = n // 2
        return " " * (half - 9) + "#system x\n" + "token" + " " * (n - half - 7) + "#"
    return _pr_body(kind, n)


def _long_line_diff(kind: str, n: int) -> str:
    """A new Python file of one ``n``-character line (or ``n`` characters in 80-char lines)."""
    head = "diff --git a/app/blob.py b/app/blob.py\nnew file mode 100644\n--- /dev/null\n"
    if kind == "hostile":
        body = ["password" + " " * (n - 10) + "#"]
    else:
        line = "    total += item.quantity * item.unit_price  # running sum of the order lines"
        body = [line[:78]] * (n // 80)
    return (
        head + f"+++ b/app/blob.py\n@@ -0,0 +1,{len(body)} @@\n" + "".join(f"+{t}\n" for t in body)
    )


def _glob(kind: str, n: int) -> tuple[str, list[str]]:
    """Ten stars that cannot match (exponential when backtracking), on paths of n characters."""
    if kind == "hostile":
        return "*a" * 10 + "*b", ["a" * n] * 20
    return "src/**/test_*_" + "x" * 7 + ".py", ["src/" + "a" * (n - 4)] * 20


def _bomb_pair(levels: int) -> tuple[bytes, bytes]:
    """A YAML 'billion laughs' under ``reason:`` (x9 per level), and a plain config as long."""
    bomb = "".join(
        ['a0: &a0 "lol"\n']
        + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, levels)]
    )
    # The anchors sit inside a mapping under reason:, which the loader reads (and expands) whole.
    hostile = "ignore:\n  - fingerprint: '0123456789abcdef'\n    reason:\n" + "".join(
        "      " + ln + "\n" for ln in bomb.splitlines()
    )
    benign = "exclude:\n" + "".join(
        f"  - 'docs/section_{i:04d}/**'\n" for i in range(len(hostile) // 26 + 1)
    )
    return hostile.encode(), benign[: len(hostile)].rsplit("\n", 1)[0].encode() + b"\n"


def _tarball(kind: str, members: int, path: Path) -> None:
    """``members`` tiny files (or 20 files of the same total size) under GitHub's top directory."""
    total = members * 64
    count = members if kind == "hostile" else 20
    size = total // count
    with tarfile.open(path, "w:gz") as tar:
        for i in range(count):
            data = (f"# file {i}\n" + "x = 1\n" * (size // 6 + 1)).encode()[:size]
            info = tarfile.TarInfo(f"octo-app-0123456/src/d{i % 97}/m{i}.py")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _tar_bomb(kind: str, mb: int, path: Path) -> None:
    """One member of ``mb`` MB of zeros (compresses ~1000:1), or the same in 2 MB members."""
    chunk = b"\0" * (1 << 20)
    count = 1 if kind == "hostile" else max(1, mb // 2)
    each = mb // count
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for i in range(count):
            info = tarfile.TarInfo(f"octo-app-0123456/data/blob{i}.bin")
            info.size = each << 20

            class _Zeros(io.RawIOBase):
                left = info.size

                def readable(self) -> bool:
                    return True

                def readinto(self, b: Any) -> int:
                    k = min(len(b), self.left, len(chunk))
                    b[:k] = chunk[:k]
                    self.left -= k
                    return k

            tar.addfile(info, io.BufferedReader(_Zeros()))


def _tree(kind: str, dirs: int, root: Path) -> None:
    """``dirs`` directories, each with a .gitignore and a file: one chain (deep) or two levels."""
    for i in range(dirs):
        if kind == "hostile":
            where = root.joinpath(*(["d"] * (i + 1)))
        else:
            where = root / f"g{i // 50}" / f"d{i}"
        where.mkdir(parents=True, exist_ok=True)
        (where / ".gitignore").write_text(f"*.tmp{i}\nbuild{i}/\n")
        (where / "m.py").write_text("x = 1\n")


def _gitignore_tree(kind: str, n: int, root: Path) -> None:
    """A .gitignore with ten stars (or an ordinary one) over 30 files with n-character names."""
    root.mkdir(parents=True, exist_ok=True)
    (root / ".gitignore").write_text(("*a" * 10 + "*b\n") if kind == "hostile" else "*.pyc\n")
    for i in range(30):
        name = f"{i:02d}" + "a" * (n - 2)
        (root / name).write_text("x = 1\n")


# --- cases: build the input (untimed) and return the call to time ------------------------------


def _case_pr_body_injection(kind: str, n: int, tmp: Path) -> Callable[[], object]:
    from bot.review import injection
    from bot.review.prompts import PRContext

    pr = PRContext(title="Refunds", body=_pr_body(kind, n))
    return lambda: injection.in_pull_request(pr)


def _case_pr_body_plan(kind: str, n: int, tmp: Path) -> Callable[[], object]:
    from bot.review.plan import plan_diff
    from bot.review.prompts import PRContext, RepoContext

    pr = PRContext(title="Refunds", body=_pr_body_plan(kind, n))
    diff = _long_line_diff("benign", 400)
    return lambda: plan_diff(diff, repo=RepoContext(repo="octo/app"), pr=pr)


def _case_diff_long_line(kind: str, n: int, tmp: Path) -> Callable[[], object]:
    from bot.review.plan import plan_diff
    from bot.review.prompts import RepoContext

    diff = _long_line_diff(kind, n)
    return lambda: plan_diff(diff, repo=RepoContext(repo="octo/app"))


def _case_globs(kind: str, n: int, tmp: Path) -> Callable[[], object]:
    from bot.diff import compile_globs

    pattern, paths = _glob(kind, n)

    def run() -> object:
        matches = compile_globs((pattern, "!docs/"))
        return [matches(p) for p in paths]

    return run


def _case_gitignore(kind: str, n: int, tmp: Path) -> Callable[[], object]:
    from bot.scan import walk

    _gitignore_tree(kind, n, tmp / "tree")
    return lambda: list(walk.walk_tree(tmp / "tree"))


def _case_alias_bomb(kind: str, n: int, tmp: Path) -> Callable[[], object]:
    from bot.errors import ConfigError
    from bot.repo_config import parse_repo_config

    hostile, benign = _bomb_pair(n)
    text = hostile if kind == "hostile" else benign

    def run() -> object:
        try:
            return parse_repo_config(text)
        except ConfigError as exc:
            return str(exc)

    return run


def _walk_archive(path: Path) -> object:
    from bot.scan import walk

    # Current API: the archive as a file on disk; the old one took the whole archive as bytes.
    try:
        return sum(1 for _ in walk.walk_tarball(path))
    except TypeError:
        return sum(1 for _ in walk.walk_tarball(path.read_bytes()))


def _case_tarball(kind: str, n: int, tmp: Path) -> Callable[[], object]:
    _tarball(kind, n, tmp / "repo.tar.gz")
    return lambda: _walk_archive(tmp / "repo.tar.gz")


def _case_tar_bomb(kind: str, n: int, tmp: Path) -> Callable[[], object]:
    _tar_bomb(kind, n, tmp / "bomb.tar.gz")
    return lambda: _walk_archive(tmp / "bomb.tar.gz")


def _case_deep_tree(kind: str, n: int, tmp: Path) -> Callable[[], object]:
    from bot.scan import walk

    _tree(kind, n, tmp / "tree")
    return lambda: sum(1 for _ in walk.walk_tree(tmp / "tree"))


def _case_fence_gap(kind: str, n: int, tmp: Path) -> Callable[[], object]:
    """A new file of lines holding "<", a long run of whitespace and a word (each line under the
    line-length cap): what the fence-tag pattern must get past without rescanning the gap."""
    from bot.review.plan import plan_diff
    from bot.review.prompts import RepoContext

    width = 9_000
    lead = "<" if kind == "hostile" else "a"
    lines = [lead + " " * (width - 2) + "x"] * max(1, n // width)
    head = "diff --git a/app/gap.txt b/app/gap.txt\nnew file mode 100644\n--- /dev/null\n"
    diff = (
        head
        + f"+++ b/app/gap.txt\n@@ -0,0 +1,{len(lines)} @@\n"
        + "".join(f"+{line}\n" for line in lines)
    )
    return lambda: plan_diff(diff, repo=RepoContext(repo="octo/app"))


def _case_report_markup(kind: str, n: int, tmp: Path) -> Callable[[], object]:
    """Model prose (which can echo PR text) of backtick runs and unclosed HTML comments, rendered
    as the Markdown report and the PR comment."""
    from bot.findings import Finding, ReviewResult
    from bot.report.render import comment_body, report_markdown

    if kind == "hostile":
        text = "`" * (n // 2) + "a" + "<!--" * (n // 8)
    else:
        text = "plain words " * (n // 12)
    finding = Finding(
        path="app.py", line=1, severity="high", cwe="CWE-89", title="SQL injection",
        description=text, exploit_scenario=text, recommendation="Bind parameters.",
        confidence=0.9, evidence="q = f'{x}'", fingerprint="a1b2c3d4e5f60718",
    )  # fmt: skip
    result = ReviewResult(findings=(finding,))
    return lambda: (report_markdown(result), comment_body(finding))


def _case_push_view(kind: str, n: int, tmp: Path) -> Callable[[], object]:
    """A re-review of a new file after a push, against what the last review was shown: lines
    that repeat (no line anchors the comparison; blank lines, braces and returns do this in real
    code) or ordinary distinct lines, each with one line in a hundred changed."""
    from bot.diff import parse_diff
    from bot.diff.delta import changed_since, new_side

    if kind == "hostile":
        old = ["}" if k % 3 else "    return None" for k in range(n)]
    else:
        old = [f"    total_{k} = compute(order.lines[{k}], rate={k % 7})" for k in range(n)]
    new = [line if k % 100 else line + "  # pushed" for k, line in enumerate(old)]

    def as_file(lines: list[str]) -> Any:
        body = "".join(f"+{line}\n" for line in lines)
        head = "diff --git a/app/v.py b/app/v.py\nnew file mode 100644\n--- /dev/null\n"
        return parse_diff(f"{head}+++ b/app/v.py\n@@ -0,0 +1,{len(lines)} @@\n{body}").files[0]

    seen, now = new_side(as_file(old)), as_file(new)
    return lambda: changed_since(now, seen)


# name: (builder, n, unit of n)
CASES: dict[str, tuple[Callable[[str, int, Path], Callable[[], object]], int, str]] = {
    "pr_body_injection": (_case_pr_body_injection, 60_000, "bytes of PR body"),
    "pr_body_plan": (_case_pr_body_plan, 60_000, "bytes of PR body"),
    "diff_long_line": (_case_diff_long_line, 1_000_000, "bytes in one diff line"),
    "globs_10_stars": (_case_globs, 40, "characters of path"),
    "gitignore_10_stars": (_case_gitignore, 40, "characters of file name"),
    "alias_bomb": (_case_alias_bomb, 8, "nesting levels (x9 each)"),
    "tarball_members": (_case_tarball, 10_000, "archive members"),
    "tar_gzip_bomb": (_case_tar_bomb, 256, "MB of one member"),
    "deep_tree": (_case_deep_tree, 400, "directories, each with a .gitignore"),
    "diff_fence_gap": (_case_fence_gap, 90_000, "bytes of diff lines"),
    "report_markup": (_case_report_markup, 60_000, "characters of model prose"),
    "push_view": (_case_push_view, 20_000, "lines of a file pushed again"),
}


def _child(case: str, kind: str, n: int) -> None:
    """Build the input, then time one call and its peak-RSS growth; print one JSON line."""
    sys.setrecursionlimit(10_000)
    # A bomb that works must fail here with MemoryError, not take the shared machine down.
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    with tempfile.TemporaryDirectory() as tmp:
        call = CASES[case][0](kind, n, Path(tmp))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        error, calls, t0 = None, 0, time.perf_counter()
        # Quick calls are repeated for at least REPEAT_S so milliseconds are not clock noise.
        while calls == 0 or (time.perf_counter() - t0 < REPEAT_S and calls < 200 and not error):
            try:
                out = call()
            except Exception as exc:
                out, error = None, f"{type(exc).__name__}: {str(exc)[:120]}"
            calls += 1
        seconds = (time.perf_counter() - t0) / calls
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = {
        "seconds": seconds,
        "peak_rss_mb": after / 1024,
        "rss_growth_mb": (after - before) / 1024,
        "error": error,
        "outcome": _describe(out),
    }
    print(json.dumps(result))


def _describe(out: object) -> str:
    if isinstance(out, list):
        return f"{len(out)} items"
    if isinstance(out, int | str):
        return str(out)[:120]
    return type(out).__name__


def measure(case: str, kind: str, n: int, timeout: float) -> dict[str, Any]:
    """One fresh-interpreter run of ``case`` on ``kind`` input of size ``n``, or its timeout."""
    cmd = [sys.executable, "-m", "bench.hostile", "--child", case, kind, str(n)]
    try:
        proc = subprocess.run(
            cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"seconds": None, "timeout_s": timeout}
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return {"seconds": None, "error": f"exit {proc.returncode}: {tail[:160]}"}
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def _fmt(seconds: float | None) -> str:
    return "timeout" if seconds is None else f"{seconds:.4f}"


def _row(case: str, timeout: float) -> dict[str, Any]:
    _, n, unit = CASES[case]
    runs = {
        (kind, size): measure(case, kind, size, timeout)
        for size in (n, 2 * n)
        for kind in ("benign", "hostile")
    }
    hostile, benign, hostile2 = runs["hostile", n], runs["benign", n], runs["hostile", 2 * n]
    ratio = growth = None
    floor = 0.001  # below 1 ms interpreter noise dominates: compare against that
    if hostile["seconds"] is not None and benign["seconds"] is not None:
        ratio = round(max(hostile["seconds"], floor) / max(benign["seconds"], floor), 2)
    if hostile["seconds"] is not None and hostile2["seconds"] is not None:
        growth = round(max(hostile2["seconds"], floor) / max(hostile["seconds"], floor), 2)
    return {
        "case": case,
        "n": n,
        "unit": unit,
        "runs": {f"{k}@{s}": v for (k, s), v in runs.items()},
        "ratio": ratio,
        "growth_on_doubling": growth,
        "ok": ratio is not None and ratio <= RATIO_TARGET and (growth or 99) <= GROWTH_TARGET,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the cases, print a table and write bench/results/hostile.json."""
    parser = argparse.ArgumentParser(prog="bench.hostile")
    parser.add_argument("--child", nargs=3, metavar=("CASE", "KIND", "N"))
    parser.add_argument("--label", default="after")
    parser.add_argument("--timeout", type=float, default=TIMEOUT_S)
    parser.add_argument("cases", nargs="*", default=list(CASES))
    args = parser.parse_args(argv)
    if args.child:
        _child(args.child[0], args.child[1], int(args.child[2]))
        return 0
    rows = []
    print(
        f"{'case':<20} {'n':>9} {'benign s':>9} {'hostile s':>9} {'ratio':>7} "
        f"{'x on 2n':>7} {'benign MB':>9} {'hostile MB':>10}  outcome"
    )
    for case in args.cases:
        row = _row(case, args.timeout)
        rows.append(row)
        b, h = row["runs"][f"benign@{row['n']}"], row["runs"][f"hostile@{row['n']}"]
        print(
            f"{case:<20} {row['n']:>9} {_fmt(b['seconds']):>9} {_fmt(h['seconds']):>9} "
            f"{row['ratio'] if row['ratio'] is not None else '-':>7} "
            f"{row['growth_on_doubling'] if row['growth_on_doubling'] is not None else '-':>7} "
            f"{b.get('rss_growth_mb', 0):>9.1f} {h.get('rss_growth_mb', 0):>10.1f}  "
            f"{h.get('error') or h.get('outcome') or ''}"[:200]
        )
    previous = _previous()
    labelled = dict(previous.get("labels", {}))
    # A run of some cases replaces those rows and keeps the label's others.
    kept = [r for r in labelled.get(args.label, {}).get("rows", []) if r["case"] not in args.cases]
    rows = sorted(kept + rows, key=lambda r: list(CASES).index(r["case"]))
    labelled[args.label] = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "commit": _commit(),
        "timeout_s": args.timeout,
        "rows": rows,
        "all_ok": all(r["ok"] for r in rows),
    }
    path = write_result(
        "hostile",
        {
            "targets": {"ratio_max": RATIO_TARGET, "growth_on_doubling_max": GROWTH_TARGET},
            "labels": labelled,
        },
    )
    print(f"written to {path} as {args.label!r}")
    return 0 if labelled[args.label]["all_ok"] else 1


def _previous() -> dict[str, Any]:
    try:
        return dict(json.loads((RESULTS / "hostile.json").read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


def _commit() -> str:
    out = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return out.stdout.strip() or os.environ.get("GIT_COMMIT", "")


if __name__ == "__main__":
    sys.exit(main())
