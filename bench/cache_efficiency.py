"""Prefix-cache efficiency: a 40-unit pull request and 5 pushes to it, through the emulator.

secreview's layout (stable system prefix, PR text in the user message, one affinity key per
repository) is compared with the theoretical maximum for exactly the same traffic and with a
naive layout of the same review (PR text, head commit and file list in the system prompt ahead of
the policy; no ``x-session-affinity``, so requests land on any replica).

The theoretical maximum: each request may reuse, at best, the longest prefix it shares with any
earlier request, counted in whole cache blocks with the emulator's tokenizer.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import write_result
from bot.model import client as llm
from bot.model.client import ModelRequest, Usage, WorkersAIClient
from bot.review import engine, prompts
from bot.review.prompts import PRContext, RepoContext
from tests.emulators.prefix_cache import block_hashes, render_chat, tokenize
from tests.emulators.server import LiveServer
from tests.emulators.workers_ai import EmulatorApp, create_emulator

MODEL = "@cf/moonshotai/kimi-k2.6"
FILES = 40
LINES_PER_FILE = 150
PUSHES = 5
FILES_PER_PUSH = 3
UNIT_BUDGET = 4000  # tokens: each file is one unit, as in a PR touching 40 modules
REPLICAS = 8
BLOCK_TOKENS = 16
CACHE_BLOCKS = 400_000  # ~6.4 M tokens per replica: host-memory KV cache, not only GPU memory
# The emulator's default (~65 k tokens per replica) holds less than one review of this PR: with one
# affinity key per repository (DESIGN §4) every unit lands on one replica, so a push's re-review
# finds its units evicted. Measured too, so the sensitivity is on record.
SMALL_CACHE_BLOCKS = 4096
REPO = RepoContext(
    repo="octo/payments",
    languages=("Python",),
    frameworks=("django", "celery"),
    manifests=("pyproject.toml",),
    security_files=("payments/auth.py",),
    instructions="Card numbers and tokens are confidential; refunds must be authorised.",
)
TITLE = "Move refund handling into a service layer"
BODY = "Splits the refund views into services, adds audit logging and a retry on gateway errors."

_WORDS = [
    "order",
    "refund",
    "amount",
    "customer",
    "gateway",
    "token",
    "audit",
    "ledger",
    "invoice",
    "payment",
    "account",
    "currency",
    "merchant",
    "settlement",
    "charge",
    "dispute",
    "webhook",
    "session",
    "user",
    "request",
    "response",
]


def _line(rng: random.Random) -> str:
    a, b, c = rng.sample(_WORDS, 3)
    shapes = (
        f"    {a}_{b} = self.{c}_service.get_{a}({b}_id)",
        f"    if {a}.{b} is None or {a}.{c} < 0:",
        f"        raise {a.title()}Error(f'{{{b}.id}} has no {c}')",
        f"    log.info('{a} %s {b} %s', {a}.id, {c})",
        f"    return {a.title()}{b.title()}(id={c}.id, total={a}.amount)",
        f"def {a}_{b}_{c}(request, {a}_id: int) -> dict:",
        f"    {c} = Decimal({a}.amount) * {b}.rate  # {a} in minor units",
    )
    return rng.choice(shapes)


@dataclass
class Change:
    """The pull request's files: path → new lines (the old side is a shorter, older version)."""

    files: dict[str, list[str]]
    head: str

    def diff(self) -> str:
        out = []
        for path, lines in sorted(self.files.items()):
            old = lines[:20]
            out.append(f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n")
            out.append(f"@@ -1,{len(old)} +1,{len(lines)} @@\n")
            out += [f" {ln}\n" for ln in old]
            out += [f"+{ln}\n" for ln in lines[len(old) :]]
        return "".join(out)


def initial(rng: random.Random) -> Change:
    files = {
        f"payments/services/mod_{i:02d}.py": [_line(rng) for _ in range(LINES_PER_FILE)]
        for i in range(FILES)
    }
    return Change(files, head=f"{rng.getrandbits(160):040x}")


def push(change: Change, rng: random.Random) -> Change:
    files = {k: list(v) for k, v in change.files.items()}
    for path in rng.sample(sorted(files), FILES_PER_PUSH):
        for _ in range(5):
            files[path][rng.randrange(20, LINES_PER_FILE)] = _line(rng)
    return Change(files, head=f"{rng.getrandbits(160):040x}")


def pushes() -> list[Change]:
    rng = random.Random(7)
    history = [initial(rng)]
    for _ in range(PUSHES):
        history.append(push(history[-1], rng))
    return history


def secreview_review(client: WorkersAIClient, change: Change) -> engine.ReviewPlan:
    pr = PRContext(title=TITLE, body=BODY, files=tuple(sorted(change.files)))
    plan = engine.plan_review(
        change.diff(), repo=REPO, pr=pr, budget_tokens=UNIT_BUDGET, installation=42
    )
    assert len(plan.units) == FILES, f"expected {FILES} units, planned {len(plan.units)}"
    engine.execute(plan, client, poll_interval=0.0, sleep=lambda _s: None)
    return plan


def naive_review(client: WorkersAIClient, change: Change) -> None:
    """The same units, with the PR in the system prompt and no affinity header."""
    plan = engine.plan_review(change.diff(), repo=REPO, budget_tokens=UNIT_BUDGET)
    files = "\n".join(f"- {p} (+{len(v) - 20} lines)" for p, v in sorted(change.files.items()))
    system = (
        f"You are reviewing pull request '{TITLE}' at commit {change.head}.\n"
        f"Description: {BODY}\nChanged files:\n{files}\n\n{plan.prefix.text}"
    )
    requests = [
        ModelRequest(
            r.external_reference,
            ({"role": "system", "content": system}, dict(r.messages[1])),
        )
        for r in plan.requests
    ]
    request_id = client.submit_batch(requests, affinity="")
    refs = [r.external_reference for r in requests]
    status = client.poll_batch(request_id, refs, affinity="")
    while not status.done:
        status = client.poll_batch(request_id, refs, affinity="")


def traffic(emulator: EmulatorApp) -> list[list[dict[str, Any]]]:
    """Every model request the emulator served, as message lists, in the order it served them."""
    out = []
    for batch in emulator.state.batches.values():
        out.extend(list(item["messages"]) for item in batch.requests)
    return out


def theoretical_max(requests: Sequence[Sequence[dict[str, Any]]]) -> tuple[int, int]:
    """(cacheable tokens at best, prompt tokens) for this traffic, in whole cache blocks."""
    seen: set[bytes] = set()
    best = total = 0
    for messages in requests:
        tokens = tokenize(render_chat(messages))
        total += len(tokens)
        hashes = block_hashes(tokens, BLOCK_TOKENS)
        for h in hashes:
            if h not in seen:
                break
            best += BLOCK_TOKENS
        seen.update(hashes)
    return best, total


def measure(layout: str, cache_blocks: int = CACHE_BLOCKS) -> dict[str, Any]:
    emulator = create_emulator(
        replicas=REPLICAS, block_tokens=BLOCK_TOKENS, cache_blocks_per_replica=cache_blocks
    )
    emulator.state.polls_until_done = 0
    with LiveServer(emulator.app) as server:
        client = WorkersAIClient(
            "acct",
            "token",
            MODEL,
            server.url + "/client/v4",
            response_format=prompts.response_format(),
        )
        prefix_shas = set()
        for change in pushes():
            if layout == "secreview":
                prefix_shas.add(secreview_review(client, change).prefix.sha256)
            else:
                naive_review(client, change)
        client.close()
    served = emulator.state.served
    usage = Usage(
        sum(s.prompt_tokens for s in served),
        sum(s.cached_tokens for s in served),
        sum(s.completion_tokens for s in served),
    )
    best, total = theoretical_max(traffic(emulator))
    assert total == usage.prompt_tokens, (total, usage.prompt_tokens)
    return {
        "requests": len(served),
        "prompt_tokens": usage.prompt_tokens,
        "cached_tokens": usage.cached_tokens,
        "completion_tokens": usage.completion_tokens,
        "cached_share": usage.cached_tokens / usage.prompt_tokens,
        "theoretical_max_share": best / total,
        "share_of_max": usage.cached_tokens / best if best else 0.0,
        "cost_usd": round(llm.cost_usd(MODEL, usage), 6),
        "cost_usd_uncached": round(
            llm.cost_usd(MODEL, Usage(usage.prompt_tokens, 0, usage.completion_tokens)), 6
        ),
        "distinct_prefixes": len(prefix_shas) if layout == "secreview" else None,
    }


def main() -> None:
    ours = measure("secreview")
    naive = measure("naive")
    small = measure("secreview", SMALL_CACHE_BLOCKS)
    result = {
        "traffic": {
            "pull_request_units": FILES,
            "reviews": 1 + PUSHES,
            "files_changed_per_push": FILES_PER_PUSH,
            "replicas": REPLICAS,
            "block_tokens": BLOCK_TOKENS,
            "cache_blocks_per_replica": CACHE_BLOCKS,
            "model": MODEL,
        },
        "secreview": ours,
        "naive": naive,
        "secreview_small_replica_cache": {"cache_blocks_per_replica": SMALL_CACHE_BLOCKS, **small},
        "target_share_of_max": 0.97,
        "meets_target": ours["share_of_max"] >= 0.97,
    }
    path = write_result("cache_efficiency", result)
    print(
        f"{'layout':<10} {'requests':>8} {'prompt tok':>11} {'cached':>7} {'max':>7} "
        f"{'% of max':>8} {'cost $':>9} {'uncached $':>10}"
    )
    rows = (("secreview", ours), ("naive", naive), ("small LRU", small))
    for name, r in rows:
        print(
            f"{name:<10} {r['requests']:>8} {r['prompt_tokens']:>11,} {r['cached_share']:>7.1%} "
            f"{r['theoretical_max_share']:>7.1%} {r['share_of_max']:>8.1%} "
            f"{r['cost_usd']:>9.4f} {r['cost_usd_uncached']:>10.4f}"
        )
    print(
        f"target: secreview >= 97% of the theoretical maximum -> "
        f"{'met' if result['meets_target'] else 'NOT met'}; written to {path}"
    )


if __name__ == "__main__":
    main()
