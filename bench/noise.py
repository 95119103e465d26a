"""Noise: how many false findings reach the pull request, without and with the second look.

Twenty diffs written for this benchmark (bench/data/noise/): half plant a vulnerability, half are
clean refactors. The Workers AI emulator plays a model that reports every planted flaw *and*
plausible-but-false findings (on clean and planted diffs alike, each citing a real line), and,
for the verification pass, a verifier that is right about 90 % of the time — not perfect. The
review and its second look run through the real run (``bot.review.run``).

``--parts`` runs it once per section of the system prefix with that section cut (and once with
the JSON schema repeated in the prompt): what each part costs. The emulated reviewer reads only
the diff, so its answers cannot move: the table bounds what a cut would save, not what it would
cost in answers, and no policy section is cut on its evidence.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.common import write_result
from bot.model.client import WorkersAIClient
from bot.repo_config import RepoConfig
from bot.review import prompts, verify
from bot.review.models import single
from bot.review.plan import Plan, plan_diff
from bot.review.prompts import Prefix, RepoContext
from bot.review.run import review_plan
from bot.tokens import estimate_tokens
from tests.emulators.fake_model import added_lines, diff_text, find_issues, last_user_message
from tests.emulators.server import LiveServer
from tests.emulators.workers_ai import create_emulator

DATA = Path(__file__).resolve().parent / "data" / "noise"
MODEL = "@cf/moonshotai/kimi-k2.6"
REPO = RepoContext(repo="octo/shop", languages=("Python",), frameworks=("flask",))
VERIFIER_ACCURACY = 0.9
_FALSE_CLAIMS = [
    ("CWE-22", "Path traversal through a file path", "The path may contain ../ segments."),
    ("CWE-79", "Cross-site scripting in generated HTML", "The value reaches HTML unescaped."),
    ("CWE-89", "SQL injection in a query", "The value may reach a SQL statement."),
    ("CWE-400", "Unbounded resource use", "A large input could exhaust memory."),
    ("CWE-20", "Missing input validation", "The input is not validated before use."),
]


def _roll(*parts: str) -> float:
    digest = hashlib.sha256("\0".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _false_findings(unit_text: str) -> list[dict[str, Any]]:
    # Drawn from the diff alone: the layout of the prompt around it must not reshuffle them.
    diff = diff_text(unit_text)
    lines = [(p, n, c) for p, n, c in added_lines(diff) if c.strip()]
    out = []
    for k in range(2):
        path, line, code = lines[int(_roll(diff, str(k)) * len(lines))]
        cwe, title, why = _FALSE_CLAIMS[int(_roll(code, str(k)) * len(_FALSE_CLAIMS))]
        out.append(
            {
                "path": path,
                "line": line,
                "severity": "medium",
                "cwe": cwe,
                "title": title,
                "description": why,
                "exploit_scenario": "An attacker could abuse it.",
                "recommendation": "Validate the value.",
                "confidence": 0.7,
                "evidence": code.strip(),
            }
        )
    return out


def model(messages: Sequence[Mapping[str, Any]], request: Mapping[str, Any]) -> str:
    """Review: true findings plus false ones. Second look: a verifier right ~90 % of the time."""
    user = last_user_message(messages)
    if "## Second look" not in user:
        return json.dumps({"findings": find_issues(user) + _false_findings(user)})
    claims = json.loads(
        user.split('<untrusted-data kind="findings"')[1]
        .split(">\n", 1)[1]
        .split("</untrusted-data")[0]
    )
    planted = find_issues(user.split('kind="diff"')[1])
    verdicts = []
    for claim in claims:
        true = any(f["cwe"] == claim["cwe"] and f["line"] == claim["line"] for f in planted)
        right = _roll("verifier", json.dumps(claim, sort_keys=True)) < VERIFIER_ACCURACY
        confirmed = true if right else not true
        verdicts.append(
            {
                "index": claim["index"],
                "verdict": "confirmed" if confirmed else "refuted",
                "confidence": 0.85,
                "reason": "checked the code",
            }
        )
    return json.dumps({"verdicts": verdicts})


def truth(diff: bytes) -> set[tuple[str, int, str]]:
    plan = plan_diff(diff, repo=REPO)
    text = "\n".join(prompts.render_unit(u) for u in plan.units)
    found = find_issues(f'<untrusted-data kind="diff" id="x">\n{text}</untrusted-data')
    return {(f["path"], f["line"], f["cwe"]) for f in found}


Transform = Callable[[str], str]


def _with_system(plan: Plan, transform: Transform | None) -> Plan:
    """``plan`` with its system prefix rewritten (review and second look share it)."""
    if transform is None:
        return plan
    text = transform(plan.prefix.text)
    prefix = Prefix(text, hashlib.sha256(text.encode()).hexdigest())
    requests = tuple(
        dataclasses.replace(r, messages=({"role": "system", "content": text}, *r.messages[1:]))
        for r in plan.requests
    )
    return dataclasses.replace(plan, prefix=prefix, requests=requests)


def measure(transform: Transform | None = None) -> dict[str, Any]:
    """The benchmark over every diff, with the system prefix passed through ``transform``."""
    emulator = create_emulator(script=model)
    emulator.state.polls_until_done = 0
    totals = {"true_without": 0, "false_without": 0, "true_with": 0, "false_with": 0, "planted": 0}
    verify_usage = [0, 0, 0]
    verify_cost = review_cost = 0.0
    prefix_tokens = 0
    dropped: dict[str, int] = {}
    config = RepoConfig(verify=True, min_confidence=0.5)
    with LiveServer(emulator.app) as server:
        url = server.url + "/client/v4"
        reviewer = WorkersAIClient(
            "acct", "token", MODEL, url, response_format=prompts.response_format()
        )
        checker = WorkersAIClient(
            "acct", "token", MODEL, url, response_format=verify.response_format()
        )
        models = single(reviewer, verifier=checker)
        for path in sorted(DATA.glob("*.diff")):
            diff = path.read_bytes()
            planted = truth(diff)
            totals["planted"] += len(planted)
            plan = _with_system(plan_diff(diff, repo=REPO, config=config), transform)
            prefix_tokens = estimate_tokens(plan.prefix.text)
            final = review_plan(plan, models, sleep=_no_wait)
            review_cost += final.result.stats.cost_usd - final.verify_cost_usd
            # Every source counts: a false bandit hit reaches the PR as surely as a model's.
            kept = list(final.result.findings)
            before = {(f.path, f.line, f.cwe) for f in [*kept, *final.dropped]}
            after = {(f.path, f.line, f.cwe) for f in kept}
            totals["true_without"] += len(before & planted)
            totals["false_without"] += len(before - planted)
            totals["true_with"] += len(after & planted)
            totals["false_with"] += len(after - planted)
            verify_usage = [a + b for a, b in zip(verify_usage, final.verify_usage, strict=True)]
            verify_cost += final.verify_cost_usd
            for rejection in final.result.rejected:
                if rejection.unit == "second look":
                    dropped[rejection.reason] = dropped.get(rejection.reason, 0) + 1
    return {
        "diffs": len(list(DATA.glob("*.diff"))),
        "planted_vulnerabilities": totals["planted"],
        "without_second_look": {"true": totals["true_without"], "false": totals["false_without"]},
        "with_second_look": {"true": totals["true_with"], "false": totals["false_with"]},
        "dropped_by_reason": dropped,
        "verifier_accuracy": VERIFIER_ACCURACY,
        "prefix_tokens_estimate": prefix_tokens,
        "second_look_tokens": {
            "prompt": verify_usage[0],
            "cached": verify_usage[1],
            "completion": verify_usage[2],
        },
        "second_look_cached_share": round(verify_usage[1] / verify_usage[0], 4)
        if verify_usage[0]
        else 0,
        "second_look_cost_usd": round(verify_cost, 6),
        "review_cost_usd": round(review_cost, 6),
    }


def _no_wait(_seconds: float) -> None:
    """The emulator answers at once: no need to wait between polls."""


def sections(text: str) -> list[str]:
    """The ``## `` headings of a system prefix, in order."""
    return re.findall(r"(?m)^## .+$", text)


def without(heading: str) -> Transform:
    """A transform that cuts the section under ``heading`` (up to the next ``## `` heading)."""

    def cut(text: str) -> str:
        start = text.index(heading + "\n")
        following = re.compile(r"(?m)^## ").search(text, start + len(heading))
        return text[:start] + (text[following.start() :] if following else "")

    return cut


def _schema_in_prompt(_text: str) -> str:
    return prompts.build_prefix(REPO, schema_in_prompt=True).text


def ablation() -> dict[str, Any]:
    """The benchmark once as shipped, once per prefix section cut, once with the schema inline."""
    base = measure()
    rows: dict[str, Any] = {"as shipped": base, "+ schema in prompt": measure(_schema_in_prompt)}
    for heading in sections(prompts.build_prefix(REPO).text):
        rows[f"- {heading[3:]}"] = measure(without(heading))
    return rows


def _row(name: str, r: Mapping[str, Any]) -> str:
    w, v = r["without_second_look"], r["with_second_look"]
    return (
        f"{name:<40} {r['prefix_tokens_estimate']:>7,} {w['true']:>4}/{w['false']:<4} "
        f"{v['true']:>4}/{v['false']:<4} {r['review_cost_usd'] + r['second_look_cost_usd']:>9.4f}"
    )


def main(argv: Sequence[str] = ()) -> None:
    if "--parts" in argv:
        rows = ablation()
        path = write_result("noise_prefix_parts", {"rows": rows})
        head = f"{'tokens':>7} {'true/false':>9} {'after look':>10} {'cost $':>9}"
        print(f"{'system prefix':<40} {head}")
        for name, r in rows.items():
            print(_row(name, r))
        print(f"written to {path}")
        return
    result = measure()
    totals_false = result["without_second_look"]["false"]
    path = write_result("noise", result)
    print(f"{result['diffs']} diffs, {result['planted_vulnerabilities']} planted vulnerabilities")
    print(
        f"without the second look: {totals_false} false findings reach the PR, "
        f"{result['without_second_look']['true']} true"
    )
    print(
        f"with the second look:    {result['with_second_look']['false']} false findings reach "
        f"the PR, {result['with_second_look']['true']} true "
        f"(dropped: {result['dropped_by_reason']})"
    )
    tokens = result["second_look_tokens"]
    share = result["second_look_cached_share"]
    print(
        f"second look cost: {tokens['prompt']:,} prompt tokens ({share:.0%} cached), "
        f"{tokens['completion']:,} completion tokens, ${result['second_look_cost_usd']:.4f} "
        f"(the reviews themselves: ${result['review_cost_usd']:.4f}); written to {path}"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
