"""The fault table (issue 9 part 5): every trial of tests/test_faults.py, run even where marked
xfail, with its outcome and seconds from delivery to published.

Writes bench/results/app_faults.json and prints the table as Markdown for the closing note.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.app_load import _git_head
from bench.common import write_result

ROOT = Path(__file__).resolve().parent.parent


def run_trials(extra: list[str]) -> tuple[list[dict[str, Any]], float]:
    """Run the trials with ``--runxfail``; the rows they recorded and the wall time."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "faults.jsonl"
        env = {**os.environ, "FAULTS_REPORT": str(report)}
        start = time.monotonic()
        argv = [sys.executable, "-m", "pytest", "-q", "--runxfail", "tests/test_faults.py", *extra]
        subprocess.run(argv, cwd=ROOT, env=env, check=False)
        wall = time.monotonic() - start
        lines = report.read_text(encoding="utf-8").splitlines() if report.exists() else []
    return [json.loads(line) for line in lines], wall


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table: trial → outcome → seconds to published."""
    out = ["| trial | outcome | s to published |", "|---|---|---|"]
    for row in rows:
        seconds = "—" if row["seconds"] is None else f"{row['seconds']:.1f}"
        outcome = row["outcome"].replace("|", "\\|")
        out.append(f"| {row['trial'].removeprefix('test_')} | {outcome} | {seconds} |")
    return "\n".join(out)


def main() -> None:
    """``python -m bench.app_faults [pytest args]``."""
    rows, wall = run_trials(sys.argv[1:])
    write_result("app_faults", {"code": _git_head(), "wall_s": round(wall, 1), "trials": rows})
    print(markdown(rows))
    print(f"\n{len(rows)} trials in {wall:.0f} s")


if __name__ == "__main__":
    main()
