"""The installed App under load (issue 9 part 8): 200 PRs, 50 repositories, 5 installations.

``secreview serve`` and one ``secreview worker --concurrency 4`` (four worker processes, as the
shipped docker-compose.yml runs them) on a private redis-server, the fake GitHub answering after
80-250 ms, the Workers AI emulator answering each async batch 30-120 s after submit and refusing a
share of submits with 3040 (out of capacity). Deliveries come in bursts.

Time scale: model latency, the first poll and the model deadline are multiplied by ``--scale``
(default 0.1: answers after 3-12 s) so a run takes minutes, not an hour. GitHub latency and
everything the App does itself run at real speed. The same-run baseline is the model's own
latency: no review can be published before its batch is answered.

Reported: throughput, p50/p95 delivery → published (and the time beyond the model's latency), peak
Redis memory and memory per review, GitHub REST calls per review (small PRs against the target of
8), each installation's calls against GitHub's 5,000 requests/hour, and the worker time one review
costs, hence what one worker process sustains.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import random
import re
import statistics
import subprocess
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from bench.common import write_result
from tests.appstack import INCOMPLETE, AppStack, pr_event
from tests.fakes.github import installation_of, new_app_key
from tests.procs import RedisServer

INSTALLATIONS = 5
REPOS = 50
PRS = 200
BURSTS = 5
BURST_GAP_S = 20.0
WORKERS = 4
MODEL_LATENCY_S = (30.0, 120.0)
GITHUB_LATENCY_S = (0.08, 0.25)
CAPACITY_RATE = 0.05
HOURLY_LIMIT = 5000
SMALL_LINES = 40
TASK_DONE = re.compile(r"Task (\S+)\[[^\]]+\] succeeded in ([\d.]+)s")


@dataclass(frozen=True, slots=True)
class PullSpec:
    """One pull request of the load: where it lives and how big it is."""

    installation: int
    repo: str
    number: int
    head: str
    diff: str
    lines: int


def _file(path: str, rng: random.Random, lines: int, tag: str) -> str:
    body = [f"+# {tag}"] + [
        f"+def handler_{i}(request):" if i % 7 == 0 else f"+    value_{i} = {i}"
        for i in range(lines)
    ]
    if rng.random() < 0.5:  # a planted vulnerability the emulated model reports
        body[-1] = '+    return send_file(request.args["name"])'
    head = f"diff --git a/{path} b/{path}\nnew file mode 100644\nindex 0000000..1111111\n"
    return (
        head + f"--- /dev/null\n+++ b/{path}\n@@ -0,0 +1,{len(body)} @@\n" + "\n".join(body) + "\n"
    )


def pulls(rng: random.Random) -> list[PullSpec]:
    """200 pull requests, 4 per repository: most small, some medium, a few large."""
    out = []
    for i in range(PRS):
        repo_index = i % REPOS
        installation = 101 + repo_index % INSTALLATIONS
        repo = f"org{installation}/service-{repo_index:02d}"
        number = 1 + i // REPOS
        roll = rng.random()
        files, lines = (1, 12) if roll < 0.7 else (5, 40) if roll < 0.95 else (25, 60)
        tag = f"{repo}#{number}"  # unique content: no result reuse across pull requests
        diff = "".join(_file(f"src/mod_{f}.py", rng, lines, tag) for f in range(files))
        head = hashlib.sha1(f"{repo}#{number}".encode()).hexdigest()
        out.append(PullSpec(installation, repo, number, head, diff, files * lines))
    return out


class Sampler(threading.Thread):
    """Samples Redis memory and completed checks every 0.2 s."""

    def __init__(self, stack: AppStack, client: redis.Redis) -> None:
        super().__init__(daemon=True)
        self.stack, self.client = stack, client
        self.published: dict[str, float] = {}
        self.memory: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            now = time.time()
            with contextlib.suppress(redis.RedisError):  # a sample lost, not the run
                self.memory.append((now, int(self.client.info("memory")["used_memory"])))
            for check in list(self.stack.github.check_runs):
                if check["status"] == "completed" and check["name"] == "secreview":
                    self.published.setdefault(f"{check['_repo']}@{check['head_sha']}", now)
            self.stop.wait(0.2)


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (0-1) of ``values``, nearest rank."""
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1) if ordered else 0.0


def deliver_bursts(stack: AppStack, specs: list[PullSpec]) -> tuple[dict[str, float], list[float]]:
    """Deliver ``specs`` in BURSTS bursts; returns delivery time per PR and receiver latencies."""
    sent: dict[str, float] = {}
    answer_ms: list[float] = []
    size = len(specs) // BURSTS

    def send(spec: PullSpec) -> None:
        t0 = time.time()
        payload = pr_event(
            "opened", spec.head, repo=spec.repo, pr=spec.number, inst=spec.installation
        )
        status = stack.deliver("pull_request", payload).status_code
        answer_ms.append((time.time() - t0) * 1000)
        if status == 202:
            sent[f"{spec.repo}@{spec.head}"] = t0

    start = time.monotonic()
    with ThreadPoolExecutor(32) as pool:
        for b in range(BURSTS):
            time.sleep(max(0.0, start + b * BURST_GAP_S - time.monotonic()))
            list(pool.map(send, specs[b * size : (b + 1) * size]))
    return sent, answer_ms


def worker_seconds(stack: AppStack) -> dict[str, Any]:
    """Task run time summed from the workers' logs, per task name."""
    per_task: dict[str, list[float]] = defaultdict(list)
    for proc in stack.workers:
        for name, secs in TASK_DONE.findall(proc.log()):
            per_task[name].append(float(secs))
    return {
        name: {"tasks": len(v), "seconds": round(sum(v), 1)} for name, v in sorted(per_task.items())
    }


def endpoint(path: str) -> str:
    """``path`` as a template: repository, commit shas and numbers replaced."""
    path = re.sub(r"^/repos/[^/]+/[^/]+", "/repos/{r}", path)
    path = re.sub(r"/[0-9a-f]{40}(?=/|$)", "/{sha}", path)
    return re.sub(r"/\d+(?=/|$)", "/{n}", path)


def github_calls(stack: AppStack, specs: list[PullSpec], duration: float) -> dict[str, Any]:
    """REST calls per review (small PRs apart) and per installation against the hourly limit."""
    fake = stack.github
    by_pr: Counter[str] = Counter()
    heads = {(s.repo, s.head): s for s in specs}
    pr_of_check: dict[int, str] = {}
    for check in fake.check_runs:
        spec = heads.get((check["_repo"], check["head_sha"]))
        if spec is not None:
            pr_of_check[check["id"]] = f"{spec.repo}#{spec.number}"
    kinds: Counter[str] = Counter()
    per_installation: Counter[int] = Counter()
    for rec in fake.requests:
        kinds[f"{rec.method} {endpoint(rec.path)}"] += 1
        inst = installation_of(fake, rec.path)
        if inst is not None:
            per_installation[inst] += 1
        m = re.match(r"/repos/([^/]+/[^/]+)/(?:pulls|issues)/(\d+)", rec.path)
        c = re.match(r"/repos/[^/]+/[^/]+/check-runs/(\d+)", rec.path)
        if m:
            by_pr[f"{m.group(1)}#{m.group(2)}"] += 1
        elif c and int(c.group(1)) in pr_of_check:
            by_pr[pr_of_check[int(c.group(1))]] += 1
    total = len(fake.requests)
    small = [s for s in specs if s.lines <= SMALL_LINES]
    # Calls not tied to one PR path (tokens, config, check-run creation) are shared out evenly.
    unattributed = total - sum(by_pr.values())
    share = unattributed / len(specs)
    small_calls = [by_pr[f"{s.repo}#{s.number}"] + share for s in small]
    hours = duration / 3600
    return {
        "total": total,
        "per_review": round(total / len(specs), 2),
        "per_small_review_p50": round(statistics.median(small_calls), 1) if small_calls else None,
        "small_review_definition": f"1 file, <= {SMALL_LINES} changed lines",
        "target_per_small_review": 8,
        "by_endpoint": dict(kinds.most_common()),
        "per_installation": {str(k): v for k, v in sorted(per_installation.items())},
        "per_installation_per_hour_at_bench_rate": {
            str(k): round(v / hours) for k, v in sorted(per_installation.items())
        },
        "reviews_per_installation_hour_at_limit": round(HOURLY_LIMIT / (total / len(specs)), 0),
    }


def run(scale: float, out_name: str, capacity_rate: float = CAPACITY_RATE) -> dict[str, Any]:
    """One load run; returns the figures."""
    rng = random.Random(7)
    specs = pulls(rng)
    tmp = Path(tempfile.mkdtemp(prefix="secreview-app-load-"))
    server = RedisServer(tmp).start()
    env = {
        "SECREVIEW_FIRST_POLL": str(5.0 * scale),
        "SECREVIEW_MODEL_DEADLINE": str(max(10, int(1800 * scale))),
        "LOG_LEVEL": "INFO",
    }
    stack = AppStack(tmp, new_app_key(), server.url, server, env=env, concurrency=WORKERS)
    for spec in specs:
        stack.open_pull(spec.repo, spec.number, spec.head, spec.diff, spec.installation)
    stack.github.inject.latency = GITHUB_LATENCY_S
    faults = stack.model.state.inject
    faults.latency = (MODEL_LATENCY_S[0] * scale, MODEL_LATENCY_S[1] * scale)
    faults.capacity_rate = capacity_rate
    stack.start(workers=1)
    client = redis.Redis.from_url(server.url)
    sampler = Sampler(stack, client)
    try:
        baseline_memory = int(client.info("memory")["used_memory"])
        sampler.start()
        t0 = time.time()
        sent, answer_ms = deliver_bursts(stack, specs)
        deadline = time.monotonic() + max(600.0, 2400 * scale)
        while len(sampler.published) < len(sent) and time.monotonic() < deadline:
            time.sleep(0.5)
        duration = max(sampler.published.values(), default=time.time()) - t0
        time.sleep(1.0)
        sampler.stop.set()
        sampler.join()
        retained = int(client.info("memory")["used_memory"])
        keys = int(client.dbsize())
        tasks = worker_seconds(stack)
    finally:
        stack.close()
        client.close()
        server.stop()
    latencies = [sampler.published[k] - t for k, t in sent.items() if k in sampler.published]
    drawn = stack.model.state.inject.drawn
    peak = max((m for _, m in sampler.memory), default=baseline_memory)
    busy = sum(t["seconds"] for t in tasks.values())
    published = len(latencies)
    submits = [r for r in stack.model.state.requests if r.kind == "submit"]
    figures: dict[str, Any] = {
        "code": _git_head(),
        "time_scale": scale,
        "scaled": "model latency 30-120 s, first poll 5 s and model deadline 1800 s are x scale; "
        "GitHub latency and the App's own work are real time",
        "setup": {
            "pull_requests": PRS,
            "repositories": REPOS,
            "installations": INSTALLATIONS,
            "bursts": f"{BURSTS} x {PRS // BURSTS} deliveries, {BURST_GAP_S:.0f} s apart",
            "worker_processes": WORKERS,
            "github_latency_s": list(GITHUB_LATENCY_S),
            "model_latency_s": [MODEL_LATENCY_S[0] * scale, MODEL_LATENCY_S[1] * scale],
            "capacity_error_rate_on_submit": capacity_rate,
        },
        "delivered": len(sent),
        "published": published,
        "lost": len(sent) - published,
        "published_without_the_model": sum(
            1
            for c in stack.github.issue_comments
            if "secreview:summary" in c["body"] and INCOMPLETE.search(c["body"])
        ),
        "reviews_posted": len(stack.github.reviews),
        "duration_s": round(duration, 1),
        "throughput_reviews_per_min": round(published / duration * 60, 1) if duration else 0,
        "delivery_to_published_s": {
            "p50": pct(latencies, 0.5),
            "p95": pct(latencies, 0.95),
            "max": pct(latencies, 1.0),
        },
        "baseline_model_latency_s": {"p50": pct(drawn, 0.5), "p95": pct(drawn, 0.95)},
        "receiver_answer_ms": {"p50": pct(answer_ms, 0.5), "p95": pct(answer_ms, 0.95)},
        "redis": {
            "baseline_bytes": baseline_memory,
            "peak_bytes": peak,
            "peak_over_baseline_per_review_bytes": round(
                (peak - baseline_memory) / max(1, published)
            ),
            "retained_bytes_after_run": retained,
            "retained_per_review_bytes": round((retained - baseline_memory) / max(1, published)),
            "keys_after_run": keys,
        },
        "github_calls": github_calls(stack, specs, duration),
        "model": {
            "submits": len(submits),
            "capacity_refusals": stack.model.state.counters["fault_capacity"],
            "polls": stack.model.state.counters["poll"],
        },
        "worker_tasks": tasks,
        "worker_busy_s_per_review": round(busy / max(1, published), 2),
        "one_worker_process_sustains_reviews_per_hour": round(3600 / (busy / max(1, published)))
        if busy
        else None,
    }
    write_result(out_name, figures)
    return figures


def _git_head() -> str:
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def main() -> None:
    """``python -m bench.app_load [--scale 0.1] [--name app_load]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.1, help="model-time scale factor")
    parser.add_argument("--name", default="app_load", help="result file under bench/results/")
    parser.add_argument("--capacity-rate", type=float, default=CAPACITY_RATE, help="3040 share")
    args = parser.parse_args()
    figures = run(args.scale, args.name, args.capacity_rate)
    keys = (
        "published",
        "lost",
        "duration_s",
        "throughput_reviews_per_min",
        "delivery_to_published_s",
    )
    for key in keys:
        print(f"{key}: {figures[key]}")
    print(f"github calls per small review: {figures['github_calls']['per_small_review_p50']}")
    print(f"redis peak: {figures['redis']['peak_bytes']} bytes")
    sustains = figures["one_worker_process_sustains_reviews_per_hour"]
    print(f"one worker process sustains: {sustains} reviews/h")


if __name__ == "__main__":
    main()
