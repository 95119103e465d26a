"""How long a review takes when its worker is killed, with the DEFAULT settings (issue 9 part 5).

The fault trials run with a fast task time limit and sweeper; this measures what an operator
gets out of the box: ``secreview serve`` + one ``secreview worker`` on a private redis-server,
no SECREVIEW_* timing variable set, the emulator answering at once. The worker is killed -9 in
the middle of the review task (its batch submit was accepted by Workers AI), a fresh worker is
started at once (as an orchestrator would), and the clock runs from delivery until the check
run completes, up to ``--cap`` seconds.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.app_load import _git_head
from bench.common import write_result
from tests.appstack import HEAD, AppStack, Expect, assert_invariant, pr_event
from tests.fakes.github import new_app_key
from tests.procs import RedisServer

POINTS = {
    "mid_task": "inside the review task, right after Workers AI accepted the batch",
    "between_steps": "after the first poll answered 'running', while the next poll waits",
}


def measure(point: str, cap: float) -> dict[str, Any]:
    """One killed review at ``point``; seconds to published, or None past ``cap``."""
    tmp = Path(tempfile.mkdtemp(prefix="secreview-killed-"))
    server = RedisServer(tmp, appendonly=True).start()
    stack = AppStack(tmp, new_app_key(), server.url, server, env={})
    stack.open_pull()
    stack.model.state.polls_until_done = 2
    hold = stack.model.state.inject.hold("submit", "process") if point == "mid_task" else None
    stack.start()
    try:
        start = time.time()
        stack.deliver("pull_request", pr_event("opened", HEAD))
        if hold is not None:
            hold.wait(120)
        else:
            requests = stack.model.state.requests
            while not any(r.kind == "poll" and r.status == 200 for r in requests):
                time.sleep(0.05)
            time.sleep(0.3)  # the poll task has returned and scheduled the next one
        stack.kill_workers()
        if hold is not None:
            hold.release()
        stack.start_worker()
        seconds: float | None = None
        try:
            seconds = stack.wait_published(since=start, timeout=cap, idle=cap)
            assert_invariant(stack, [Expect()])
            outcome = "published, invariant holds"
        except AssertionError as exc:
            lines = str(exc).split("\n--- ")[0].splitlines()  # the problems, not the logs
            problems = [ln.removeprefix("- ") for ln in lines if ln.startswith("- ")][:3]
            outcome = "; ".join(problems) or lines[0][:200]
    finally:
        stack.close()
        server.stop()
    return {"point": POINTS[point], "seconds": seconds and round(seconds, 1), "outcome": outcome}


def main() -> None:
    """``python -m bench.app_killed [--cap 900] [--point mid_task|between_steps|all]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cap", type=float, default=900.0, help="give up after this many seconds")
    parser.add_argument("--point", choices=[*POINTS, "all"], default="all")
    args = parser.parse_args()
    points = list(POINTS) if args.point == "all" else [args.point]
    rows = {p: measure(p, args.cap) for p in points}
    write_result(
        "app_killed",
        {"code": _git_head(), "cap_s": args.cap, "settings": "defaults", "trials": rows},
    )
    for name, row in rows.items():
        print(f"{name}: {row['seconds']} s — {row['outcome']}")


if __name__ == "__main__":
    main()
