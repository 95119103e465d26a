"""The cache benchmark's own measures and its generated pull request (bench/cache_efficiency.py)."""

from __future__ import annotations

from bench import cache_efficiency as bench
from bot import diff as diffmod


def test_repeats_count_content_sent_before_wherever_it_stood() -> None:
    a = [f"t{i}" for i in range(100)]
    moved = ["x"] * 10 + a[20:60]  # 40 tokens of ``a`` at another place
    fresh = [f"n{i}" for i in range(50)]
    assert bench.repeated_tokens([a, moved, fresh], window=8) == [0, 40, 0]
    # the cache can serve only a shared prefix: none of the moved content
    assert bench.servable_tokens([a, moved, a], block=16) == [0, 0, 96]


def hunks(file: diffmod.ChangedFile) -> list[str]:
    return [diffmod.render_hunk(h) for h in file.hunks]


def test_the_generated_pull_request_is_what_the_benchmark_claims() -> None:
    pr = bench.realistic_pr()
    assert [len(t) for t in pr.touched] == [40, *bench.PUSH_FILES]
    first = diffmod.parse_diff(pr.diff(0))
    assert len(first.files) == 40
    kinds = {f.path.rsplit(".", 1)[-1] for f in first.files}
    assert {"py", "yml", "md", "txt"} <= kinds
    for head in range(1, len(pr.heads)):
        before = {f.path: f for f in diffmod.parse_diff(pr.diff(head - 1)).files}
        after = {f.path: f for f in diffmod.parse_diff(pr.diff(head)).files}
        changed = {p for p in after if hunks(after[p]) != hunks(before[p])}
        assert changed == set(pr.touched[head])
    assert pr.diff(0) == bench.realistic_pr().diff(0)  # deterministic
